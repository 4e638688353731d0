// Compute kernels of the engine: the contract between the forward pass (native/engine/cpp/*.cc)
// and the per-CPU-feature kernel files (native/engine/cpp/kernels/*). Row-major weights in
// ggml's block layouts; activations f32. Kernel choice (AVX-512+VNNI, AVX2+FMA+F16C, NEON,
// scalar) happens once at run time in kernels_select(); callers never see it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace baton {

// ggml type ids, as stored in GGUF tensor infos.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
};

// Bytes of one row of `cols` elements of `type` (cols must be a multiple of the block size).
// Returns 0 for an unsupported type or a cols value that is not a multiple of the block size.
size_t row_bytes(DType type, int64_t cols);
// Elements per block (1 for F32/F16, 32 for Q8_0/Q4_0, 256 for K-quants); 0 if unsupported.
int64_t block_elements(DType type);
bool dtype_supported(uint32_t ggml_type);
const char* dtype_name(DType type);

// A weight matrix: `rows` rows of `cols` elements, each row `row_stride` bytes apart.
struct Matrix {
  DType type;
  int64_t rows;
  int64_t cols;
  const void* data;
  size_t row_stride;
};

class ThreadPool;  // kernels/thread_pool.h

// y[b * rows + r] = sum_c W[r][c] * x[b * cols + c]  for b in [0, batch), r in [0, rows).
// One pass over the weights serves the whole batch. Splits rows over the pool's threads.
// `pool` may be null (run on the calling thread). Q8_0/Q4_0 weights quantize x to Q8_0 first and
// Q4_K/Q6_K weights to Q8_K (as llama.cpp does), so their results carry that rounding (the
// kernel test bounds it); F32/F16 weights use x as given. Safe to call from several threads at
// once (scratch is per calling thread); calls sharing one pool are serialized by the pool.
void matmul(const Matrix& w, const float* x, int64_t batch, float* y, ThreadPool* pool);

// dst[0..cols) = row `row` of w, dequantized (embedding lookup).
void dequantize_row(const Matrix& w, int64_t row, float* dst);

// Row conversions (F16 KV cache, scratch), with F16C / NEON when available. n is any count.
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n);
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n);
// Quantizes n floats (n a multiple of 32) to ggml Q8_0 blocks (e.g. a Q8_0 KV cache): n / 32
// blocks of {f16 scale, int8[32]}, row_bytes(DType::Q8_0, n) bytes.
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
// Scalar conversions of one value are in kernels/f16.h (baton::f16_to_f32, baton::f32_to_f16).

// Attention over an F16 KV cache kept in blocks of `block` positions (the KV pool's layout).
// Scores: s[r * lds + p] = sum_d q[r * hd + d] * K_p[d] for r < rows, p < n, where position p is
// row p % block of k_blocks[p / block] and rows are k_stride halves apart.
void attn_scores_f16(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q, int64_t rows,
                     int64_t hd, float* s, int64_t lds);
// Values: o[r * hd + d] += sum_{p < n} w[r * ldw + p] * V_p[d], with V transposed per block:
// V_p[d] = vt_blocks[p / block][d * block + p % block]. Positions past n in the last block are
// never read as weights and their values never reach o (they may hold anything, even NaN).
void attn_values_f16(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw, int64_t rows,
                     int64_t hd, float* o);

// x[i] = exp(scale * x[i] - m) / sum_j exp(scale * x[j] - m) for i < n (n >= 1), m the max.
void softmax_row(float* x, int64_t n, float scale);
// a[i] = silu(a[i]) * b[i] = a[i] / (1 + exp(-a[i])) * b[i] (SwiGLU).
void silu_mul_row(float* a, const float* b, int64_t n);

// Name of the kernel set chosen at run time: "avx512", "avx2", "neon" or "scalar".
const char* kernels_name();
// The instruction set extensions that set uses, e.g. "avx2+fma+f16c+avx-vnni", "neon+dotprod".
const char* kernels_detail();
// Forces the scalar kernels (tests compare the two). Returns the previous name.
const char* kernels_force_scalar(bool scalar);

}  // namespace baton
