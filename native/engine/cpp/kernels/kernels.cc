// Kernel dispatch: picks the kernel set for this CPU once (AVX-512+VNNI, AVX2+FMA+F16C, NEON, or
// scalar), prepares the activations in the format the weight type's dot products want (f32, Q8_0
// or Q8_K, quantized once per matmul; or the set's own batch format for prefill), and splits
// weight rows over the thread pool in chunks that threads claim dynamically (a busy core on a
// shared machine then does less of the work).
#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "kernels_impl.h"
#include "thread_pool.h"

namespace baton {

namespace {

const kern::KernelSet* detect() {
  if (const kern::KernelSet* k = kern::avx512_kernels()) return k;
  if (const kern::KernelSet* k = kern::avx2_kernels()) return k;
  if (const kern::KernelSet* k = kern::neon_kernels()) return k;
  return kern::scalar_kernels();
}

std::atomic<const kern::KernelSet*> g_forced{nullptr};

const kern::KernelSet* active() {
  static const kern::KernelSet* const best = detect();
  const kern::KernelSet* forced = g_forced.load(std::memory_order_acquire);
  return forced != nullptr ? forced : best;
}

kern::GemmFn gemm_for(const kern::KernelSet* k, DType t) {
  switch (t) {
    case DType::F32:
      return k->gemm_f32;
    case DType::F16:
      return k->gemm_f16;
    case DType::Q8_0:
      return k->gemm_q8_0;
    case DType::Q4_0:
      return k->gemm_q4_0;
    case DType::Q4_K:
      return k->gemm_q4_K;
    case DType::Q6_K:
      return k->gemm_q6_K;
  }
  return nullptr;
}

// Per calling thread: activations converted for the current matmul.
thread_local std::vector<uint8_t> t_act;

}  // namespace

int64_t block_elements(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
      return 1;
    case DType::Q8_0:
    case DType::Q4_0:
      return 32;
    case DType::Q4_K:
    case DType::Q6_K:
      return 256;
  }
  return 0;
}

static size_t block_bytes(DType type) {
  switch (type) {
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
    case DType::Q8_0:
      return sizeof(kern::block_q8_0);
    case DType::Q4_0:
      return sizeof(kern::block_q4_0);
    case DType::Q4_K:
      return sizeof(kern::block_q4_K);
    case DType::Q6_K:
      return sizeof(kern::block_q6_K);
  }
  return 0;
}

size_t row_bytes(DType type, int64_t cols) {
  const int64_t be = block_elements(type);
  if (be == 0 || cols < 0 || cols % be != 0) return 0;
  return static_cast<size_t>(cols / be) * block_bytes(type);
}

bool dtype_supported(uint32_t t) {
  switch (t) {
    case 0:
    case 1:
    case 2:
    case 8:
    case 12:
    case 14:
      return true;
    default:
      return false;
  }
}

const char* dtype_name(DType type) {
  switch (type) {
    case DType::F32:
      return "f32";
    case DType::F16:
      return "f16";
    case DType::Q8_0:
      return "q8_0";
    case DType::Q4_0:
      return "q4_0";
    case DType::Q4_K:
      return "q4_k";
    case DType::Q6_K:
      return "q6_k";
  }
  return "unknown";
}

void matmul(const Matrix& w, const float* x, int64_t batch, float* y, ThreadPool* pool) {
  if (batch <= 0 || w.rows <= 0) return;
  const kern::KernelSet* k = active();
  kern::GemmFn gemm = gemm_for(k, w.type);
  const kern::ActFormat fmt = kern::act_format(w.type);
  const int nth = pool != nullptr ? pool->size() : 1;
  const int64_t cols = w.cols;
  // Row chunks are multiples of this: the kernels' row tiles (1-4 rows) divide 24.
  int64_t align = 24;

  const void* xa = x;
  size_t xs = static_cast<size_t>(cols) * sizeof(float);
  const kern::BatchKernels* bk = k->batch;
  if (bk != nullptr && batch >= bk->min_batch && w.rows >= bk->min_rows && bk->handles(w.type)) {
    xs = bk->act_row_bytes(w.type, cols);
    if (t_act.size() < xs * static_cast<size_t>(batch)) t_act.resize(xs * static_cast<size_t>(batch));
    uint8_t* dst = t_act.data();
    const DType t = w.type;
    if (nth > 1) {
      pool->run([&](int ith, int n) {
        for (int64_t b = ith; b < batch; b += n) bk->prepare(t, x + b * cols, dst + b * xs, cols);
      });
    } else {
      for (int64_t b = 0; b < batch; ++b) bk->prepare(t, x + b * cols, dst + b * xs, cols);
    }
    xa = dst;
    gemm = bk->gemm;
    align = bk->row_align;
  } else if (fmt != kern::ActFormat::F32) {
    xs = kern::act_row_bytes(fmt, cols);
    if (t_act.size() < xs * static_cast<size_t>(batch)) t_act.resize(xs * static_cast<size_t>(batch));
    uint8_t* dst = t_act.data();
    const kern::QuantizeFn quantize = fmt == kern::ActFormat::Q8_0 ? k->quantize_q8_0 : k->quantize_q8_K;
    if (nth > 1 && batch >= 4) {
      pool->run([&](int ith, int n) {
        for (int64_t b = ith; b < batch; b += n) quantize(x + b * cols, dst + b * xs, cols);
      });
    } else {
      for (int64_t b = 0; b < batch; ++b) quantize(x + b * cols, dst + b * xs, cols);
    }
    xa = dst;
  }

  // Work is claimed in chunks of rows: about 8 chunks per thread, each a multiple of `align`.
  const int64_t rows = w.rows;
  if (nth == 1 || rows < 2 * align) {
    gemm(w, 0, rows, xa, xs, batch, y, rows);
    return;
  }
  int64_t chunk = (rows + nth * 8 - 1) / (nth * 8);
  chunk = std::max<int64_t>(align, (chunk + align - 1) / align * align);
  const int64_t nchunks = (rows + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  pool->run([&](int, int) {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      const int64_t r0 = c * chunk;
      gemm(w, r0, std::min(rows, r0 + chunk), xa, xs, batch, y, rows);
    }
  });
}

void dequantize_row(const Matrix& w, int64_t row, float* dst) {
  const auto* p = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(row) * w.row_stride;
  if (w.type == DType::F16) {
    active()->f16_to_f32_row(reinterpret_cast<const uint16_t*>(p), dst, w.cols);
    return;
  }
  kern::dequantize_row_ref(w.type, p, dst, w.cols);
}

void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) { active()->f32_to_f16_row(src, dst, n); }
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) { active()->f16_to_f32_row(src, dst, n); }
void quantize_row_q8_0(const float* src, void* dst, int64_t n) { active()->quantize_q8_0(src, dst, n); }

// Sets without attention kernels (NEON, scalar) run one matmul per block, as the engine did
// before these kernels existed.
namespace {
thread_local std::vector<float> t_attn;

void attn_scores_by_blocks(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q,
                           int64_t rows, int64_t hd, float* s, int64_t lds) {
  if (t_attn.size() < static_cast<size_t>(rows * block)) t_attn.resize(static_cast<size_t>(rows * block));
  for (int64_t p0 = 0, b = 0; p0 < n; p0 += block, ++b) {
    const int64_t nb = std::min(block, n - p0);
    matmul(Matrix{DType::F16, nb, hd, k_blocks[b], k_stride * 2}, q, rows, t_attn.data(), nullptr);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(s + r * lds + p0, t_attn.data() + r * nb, sizeof(float) * nb);
  }
}

void attn_values_by_blocks(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw, int64_t rows,
                           int64_t hd, float* o) {
  const size_t need = static_cast<size_t>(rows * (block + hd));
  if (t_attn.size() < need) t_attn.resize(need);
  float* weights = t_attn.data();
  float* out = weights + rows * block;
  for (int64_t p0 = 0, b = 0; p0 < n; p0 += block, ++b) {
    const int64_t nb = std::min(block, n - p0);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(weights + r * nb, w + r * ldw + p0, sizeof(float) * nb);
    matmul(Matrix{DType::F16, hd, nb, vt_blocks[b], static_cast<size_t>(block) * 2}, weights, rows, out, nullptr);
    for (int64_t i = 0; i < rows * hd; ++i) o[i] += out[i];
  }
}
}  // namespace

void attn_scores_f16(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q, int64_t rows,
                     int64_t hd, float* s, int64_t lds) {
  const kern::AttnScoresFn f = active()->attn_scores_f16;
  (f != nullptr ? f : attn_scores_by_blocks)(k_blocks, k_stride, block, n, q, rows, hd, s, lds);
}

void attn_values_f16(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw, int64_t rows,
                     int64_t hd, float* o) {
  const kern::AttnValuesFn f = active()->attn_values_f16;
  (f != nullptr ? f : attn_values_by_blocks)(vt_blocks, block, n, w, ldw, rows, hd, o);
}

void softmax_row(float* x, int64_t n, float scale) {
  const kern::KernelSet* k = active();
  (k->softmax_row != nullptr ? k->softmax_row : kern::softmax_row_ref)(x, n, scale);
}

void silu_mul_row(float* a, const float* b, int64_t n) {
  const kern::KernelSet* k = active();
  (k->silu_mul_row != nullptr ? k->silu_mul_row : kern::silu_mul_row_ref)(a, b, n);
}

const char* kernels_name() { return active()->name; }
const char* kernels_detail() { return active()->detail; }

const char* kernels_force_scalar(bool scalar) {
  const char* prev = kernels_name();
  g_forced.store(scalar ? kern::scalar_kernels() : nullptr, std::memory_order_release);
  return prev;
}

namespace kern {

int available_kernel_sets(const KernelSet** out, int max) {
  const KernelSet* all[] = {scalar_kernels(),     avx2_plain_kernels(), avx2_kernels(),
                            avx512_kernels(),     neon_plain_kernels(), neon_kernels()};
  int n = 0;
  for (const KernelSet* k : all) {
    if (k == nullptr || n >= max) continue;
    bool seen = false;
    for (int i = 0; i < n; ++i) seen = seen || out[i] == k;
    if (!seen) out[n++] = k;
  }
  return n;
}

void force_kernel_set(const KernelSet* set) { g_forced.store(set, std::memory_order_release); }

}  // namespace kern

}  // namespace baton
