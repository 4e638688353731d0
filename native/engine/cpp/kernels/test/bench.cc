// Kernel micro-benchmark: a 4096 x 1024 matrix-vector product per weight type (decode), weights
// streamed from memory (rotating through copies larger than the caches), reported as GB/s of
// weights read beside a STREAM-style read of the same bytes, measured alternately with it; then the same
// matrix times a batch (prefill) in GFLOP/s. Usage: bench [--threads N] [--mb M] [--batch B]
// [--rows R] [--cols C] [--types f32,f16,q8_0,q4_0,q4_k,q6_k] [--scalar | --set DETAIL]. A small
// --mb keeps the weights in cache (compute-bound figures). --set picks one of the kernel sets
// this CPU runs by its detail string (e.g. avx2+fma+f16c) to compare it with the automatic choice.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../kernels_impl.h"
#include "../thread_pool.h"

using namespace baton;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sum of n 64-bit words with 4 x 256-bit (or 8 scalar) accumulators: a pure streaming read.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t sum_words_avx2(const uint8_t* p, size_t n) {
  // four streams a quarter of the range apart, like a kernel streaming four weight rows
  const size_t q = n / 4 / 4 * 4;
  const uint8_t* s0 = p;
  const uint8_t* s1 = p + 8 * q;
  const uint8_t* s2 = p + 16 * q;
  const uint8_t* s3 = p + 24 * q;
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 4 <= q; i += 4) {
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s0 + 8 * i)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s1 + 8 * i)));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s2 + 8 * i)));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s3 + 8 * i)));
  }
  a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), a);
  uint64_t s = out[0] + out[1] + out[2] + out[3];
  for (i = 4 * q; i < n; ++i) {
    uint64_t v;
    std::memcpy(&v, p + 8 * i, 8);
    s += v;
  }
  return s;
}
#endif
static uint64_t sum_words(const uint8_t* p, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx2")) return sum_words_avx2(p, n);
#endif
  uint64_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      uint64_t v;
      std::memcpy(&v, p + 8 * (i + k), 8);
      s[k] += v;
    }
  for (; i < n; ++i) {
    uint64_t v;
    std::memcpy(&v, p + 8 * i, 8);
    s[0] += v;
  }
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Plain read bandwidth: one pass summing `bytes` of 64-bit words with 8 accumulators (split over
// the pool's threads), the same access pattern as streaming weights minus the arithmetic.
double read_pass_seconds(const uint8_t* p, size_t bytes, ThreadPool* pool) {
  const size_t n = bytes / 8;
  std::vector<uint64_t> part(pool ? pool->size() : 1, 0);
  auto body = [&](int ith, int nt) {
    const size_t lo = n * ith / nt / 32 * 32, hi = ith + 1 == nt ? n : n * (ith + 1) / nt / 32 * 32;
    part[ith] = sum_words(p + 8 * lo, hi - lo);
  };
  const double t0 = now();
  if (pool) pool->run(body); else body(0, 1);
  const double t = now() - t0;
  static volatile uint64_t sink;
  for (uint64_t v : part) sink = sink + v;
  return t;
}

DType parse_type(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "q8_0") return DType::Q8_0;
  if (s == "q4_0") return DType::Q4_0;
  if (s == "q4_k") return DType::Q4_K;
  if (s == "q6_k") return DType::Q6_K;
  std::fprintf(stderr, "bench: unknown type %s (use f32,f16,q8_0,q4_0,q4_k,q6_k)\n", s.c_str());
  std::exit(2);
}

// Random bytes with sane f16 scales are enough for timing (the layout, not the values, matters),
// except that F16/F32 values must not be NaN/inf: fill those with small numbers.
void fill(DType t, std::vector<uint8_t>& buf, std::mt19937_64& rng) {
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&buf[i], &v, 8);
  }
  if (t == DType::F32) {
    auto* f = reinterpret_cast<float*>(buf.data());
    for (size_t i = 0; i < buf.size() / 4; ++i) f[i] = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-5f;
  } else if (t == DType::F16) {
    auto* h = reinterpret_cast<uint16_t*>(buf.data());
    for (size_t i = 0; i < buf.size() / 2; ++i) h[i] = static_cast<uint16_t>(h[i] & 0xBBFF);  // |x| < 2
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  int64_t rows = 4096, cols = 1024;
  size_t mb = 512;
  int64_t batch = 128;
  bool scalar = false;
  std::string set;
  std::string types = "f32,f16,q8_0,q4_0,q4_k,q6_k";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--mb" && i + 1 < argc) mb = static_cast<size_t>(std::atol(argv[++i]));
    else if (a == "--batch" && i + 1 < argc) batch = std::atol(argv[++i]);
    else if (a == "--types" && i + 1 < argc) types = argv[++i];
    else if (a == "--scalar") scalar = true;
    else if (a == "--set" && i + 1 < argc) set = argv[++i];
    else if (a == "--rows" && i + 1 < argc) rows = std::atol(argv[++i]);
    else if (a == "--cols" && i + 1 < argc) cols = std::atol(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench [--threads N] [--rows R] [--cols C] [--mb M] [--batch B] [--types f32,f16,...] [--scalar | --set DETAIL]\n");
      return 2;
    }
  }
  if (threads < 1 || mb < 1 || batch < 1 || rows < 1 || cols < 256 || cols % 256 != 0) {
    std::fprintf(stderr, "bench: --threads must be >= 1, --mb >= 1, --batch >= 1, --cols a multiple of 256\n");
    return 2;
  }
  if (scalar) kernels_force_scalar(true);
  if (!set.empty()) {
    const kern::KernelSet* sets[8];
    const int n = kern::available_kernel_sets(sets, 8);
    const kern::KernelSet* pick = nullptr;
    for (int i = 0; i < n; ++i)
      if (set == sets[i]->detail) pick = sets[i];
    if (pick == nullptr) {
      std::fprintf(stderr, "bench: no kernel set %s on this CPU; available:", set.c_str());
      for (int i = 0; i < n; ++i) std::fprintf(stderr, " %s", sets[i]->detail);
      std::fprintf(stderr, "\n");
      return 2;
    }
    kern::force_kernel_set(pick);
  }
  std::unique_ptr<ThreadPool> pool_owner(threads > 1 ? new ThreadPool(threads) : nullptr);
  ThreadPool* pool = pool_owner.get();
  std::printf("kernels: %s (%s), threads %d, matrix %lld x %lld, working set %zu MB\n", kernels_name(), kernels_detail(), threads,
              (long long)rows, (long long)cols, mb);

  if (pool != nullptr) {
    // round trip of an empty job through the pool (wake every worker, wait for all)
    std::vector<double> ts;
    for (int i = 0; i < 2000; ++i) {
      const double t0 = now();
      pool->run([](int, int) {});
      ts.push_back(now() - t0);
    }
    std::sort(ts.begin(), ts.end());
    std::printf("pool: empty run() round trip with %d threads: median %.1f us, best %.1f us\n", threads, ts[ts.size() / 2] * 1e6,
                ts[0] * 1e6);
  }
  std::printf("%-6s %10s %12s %12s %8s %16s\n", "type", "MB/matrix", "decode GB/s", "read GB/s", "ratio", "prefill GFLOP/s");
  std::mt19937_64 rng(7);
  std::vector<float> x(static_cast<size_t>(cols * batch)), y(static_cast<size_t>(rows * batch));
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
  size_t pos = 0;
  while (pos <= types.size()) {
    size_t comma = types.find(',', pos);
    if (comma == std::string::npos) comma = types.size();
    const DType t = parse_type(types.substr(pos, comma - pos));
    pos = comma + 1;
    const size_t rb = row_bytes(t, cols);
    const size_t mbytes = rb * rows;
    const size_t copies = std::max<size_t>(2, (mb << 20) / mbytes);
    std::vector<uint8_t> buf(mbytes * copies);
    fill(t, buf, rng);
    std::vector<Matrix> ms;
    for (size_t c = 0; c < copies; ++c) ms.push_back(Matrix{t, rows, cols, buf.data() + c * mbytes, rb});
    // decode: passes over all copies, each right after a plain read pass over the same bytes;
    // the best of each (other processes share this machine's memory bus)
    double best = 1e30, rbest = 1e30;
    const int reps = copies <= 4 ? 200 : 5;
    for (int rep = 0; rep < reps; ++rep) {
      rbest = std::min(rbest, read_pass_seconds(buf.data(), buf.size(), pool) / static_cast<double>(copies));
      const double t0 = now();
      for (size_t c = 0; c < copies; ++c) matmul(ms[c], x.data(), 1, y.data(), pool);
      best = std::min(best, (now() - t0) / static_cast<double>(copies));
    }
    const double gbs = static_cast<double>(mbytes) / best / 1e9;
    const double rgbs = static_cast<double>(mbytes) / rbest / 1e9;
    // prefill: batch columns against one matrix
    double pbest = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = now();
      matmul(ms[rep % copies], x.data(), batch, y.data(), pool);
      pbest = std::min(pbest, now() - t0);
    }
    const double gflops = 2.0 * rows * cols * batch / pbest / 1e9;
    std::printf("%-6s %10.2f %12.2f %12.2f %8.2f %16.1f\n", dtype_name(t), mbytes / 1048576.0, gbs, rgbs, gbs / rgbs, gflops);
  }
  std::printf("decode GB/s = weight bytes of one matrix / time of one matvec (batch 1); read GB/s = the same\n"
              "bytes summed as 64-bit words, measured alternately with it; prefill: batch %lld.\n", (long long)batch);
  return 0;
}
