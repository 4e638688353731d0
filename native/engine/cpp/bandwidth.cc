// Read-bandwidth test (see bandwidth.h). Eight independent 64-bit accumulators per thread keep
// enough loads in flight; the compiler vectorizes the loop. The sum is returned so the reads
// cannot be optimized away.
#include "bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/thread_pool.h"

namespace baton {

namespace {

uint64_t read_slice(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
    a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

}  // namespace

double measure_read_bandwidth(size_t bytes, int passes, int threads, std::string* error) {
  bytes = std::max<size_t>(bytes, 1 << 20) / 64 * 64;
  auto* buffer = static_cast<uint64_t*>(std::aligned_alloc(64, bytes));
  if (buffer == nullptr) {
    *error = "cannot allocate " + std::to_string(bytes) + " bytes for the bandwidth test";
    return 0;
  }
  const size_t words = bytes / 8;
  for (size_t i = 0; i < words; ++i) buffer[i] = i * 0x9E3779B97F4A7C15ull;  // fault every page in
  ThreadPool pool(std::max(1, threads));
  std::vector<uint64_t> sums(pool.size(), 0);
  double best = 0;
  for (int pass = 0; pass < std::max(1, passes); ++pass) {
    auto start = std::chrono::steady_clock::now();
    pool.run([&](int ith, int nth) {
      const size_t per = (words + nth - 1) / nth;
      const size_t begin = std::min(words, per * ith), end = std::min(words, begin + per);
      sums[ith] += read_slice(buffer + begin, end - begin);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, static_cast<double>(bytes) / seconds);
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  std::free(buffer);
  if (total == 42) best += 0;  // keeps the sums observable
  return best;
}

}  // namespace baton
