// Internals shared by the kernel sets (scalar, AVX2, NEON) and the dispatcher in kernels.cc:
// ggml's block layouts, the activation formats, and the table of functions a kernel set fills.
#pragma once
#include <cstddef>
#include <cstdint>

#include "f16.h"
#include "kernels.h"

namespace baton {
namespace kern {

constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;
constexpr int QK_K = 256;

// ggml block layouts (byte-identical to ggml-common.h).
struct block_q8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[QK8_0];
};
struct block_q4_0 {
  uint16_t d;             // f16 scale
  uint8_t qs[QK4_0 / 2];  // element j in low nibble of qs[j], element j+16 in the high nibble; value = nibble - 8
};
struct block_q4_K {
  uint16_t d;           // f16 super-block scale of the 6-bit scales
  uint16_t dmin;        // f16 super-block scale of the 6-bit mins
  uint8_t scales[12];   // 8 scales and 8 mins, 6 bits each (get_scale_min_k4)
  uint8_t qs[QK_K / 2]; // 4-bit quants: 64-element chunk c uses qs[32c..32c+32), low nibbles first
};
struct block_q6_K {
  uint8_t ql[QK_K / 2];     // low 4 bits
  uint8_t qh[QK_K / 4];     // high 2 bits
  int8_t scales[QK_K / 16]; // 8-bit scales, one per 16 elements
  uint16_t d;               // f16 super-block scale
};
// Activation format for the K-quants (ggml's block_q8_K).
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];  // sums of qs in groups of 16
};
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");

inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// What the activations of a matmul are converted to before the dot products.
enum class ActFormat { F32, Q8_0, Q8_K };

inline ActFormat act_format(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
      return ActFormat::Q8_0;
    case DType::Q4_K:
    case DType::Q6_K:
      return ActFormat::Q8_K;
    default:
      return ActFormat::F32;
  }
}

inline size_t act_row_bytes(ActFormat f, int64_t cols) {
  switch (f) {
    case ActFormat::Q8_0:
      return static_cast<size_t>(cols / QK8_0) * sizeof(block_q8_0);
    case ActFormat::Q8_K:
      return static_cast<size_t>(cols / QK_K) * sizeof(block_q8_K);
    default:
      return static_cast<size_t>(cols) * sizeof(float);
  }
}

// Computes y[b * ldy + r] for r in [r0, r1), b in [0, batch): row r of w against activation row
// b, which starts at xa + b * xa_stride (in the format act_format(w.type) says).
using GemmFn = void (*)(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xa_stride, int64_t batch,
                        float* y, int64_t ldy);
using QuantizeFn = void (*)(const float* x, void* y, int64_t n);
using AttnScoresFn = void (*)(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q,
                              int64_t rows, int64_t hd, float* s, int64_t lds);
using AttnValuesFn = void (*)(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw,
                              int64_t rows, int64_t hd, float* o);

// A kernel set's optional path for batches of quantized weights (prefill): activation rows in
// the set's own format, made once per matmul by `prepare`, and a gemm that reads them. matmul()
// takes it for batches of at least min_batch columns and weights of at least min_rows rows whose
// type handles() accepts; row ranges handed to gemm start at multiples of row_align.
struct BatchKernels {
  int64_t min_batch;
  int64_t min_rows;
  int64_t row_align;
  bool (*handles)(DType t);
  size_t (*act_row_bytes)(DType t, int64_t cols);
  void (*prepare)(DType t, const float* x, void* dst, int64_t cols);
  GemmFn gemm;  // dispatches on w.type
};

struct KernelSet {
  const char* name;    // "avx512", "avx2", "neon" or "scalar" (kernels_name())
  const char* detail;  // the instruction set extensions used, e.g. "avx2+fma+f16c+avx-vnni"
  GemmFn gemm_f32;
  GemmFn gemm_f16;
  GemmFn gemm_q8_0;
  GemmFn gemm_q4_0;
  GemmFn gemm_q4_K;
  GemmFn gemm_q6_K;
  QuantizeFn quantize_q8_0;  // n multiple of 32
  QuantizeFn quantize_q8_K;  // n multiple of 256
  void (*f16_to_f32_row)(const uint16_t* x, float* y, int64_t n);
  void (*f32_to_f16_row)(const float* x, uint16_t* y, int64_t n);
  const BatchKernels* batch = nullptr;  // null: every batch runs the gemm_* functions above
  // Attention over an F16 KV cache (kernels.h: attn_scores_f16 / attn_values_f16); null: one
  // matmul per block of positions (the scalar reference attn_*_f16_ref is the tests' yardstick).
  AttnScoresFn attn_scores_f16 = nullptr;
  AttnValuesFn attn_values_f16 = nullptr;
  // Vectorized exp for softmax_row / silu_mul_row; null: the scalar versions (std::exp).
  void (*softmax_row)(float* x, int64_t n, float scale) = nullptr;
  void (*silu_mul_row)(float* a, const float* b, int64_t n) = nullptr;
};

const KernelSet* scalar_kernels();
// Null when the CPU (or the build) lacks the features. avx2_kernels() is the best x86 set for
// this CPU (with AVX-VNNI when present); avx2_plain_kernels() never uses AVX-VNNI.
const KernelSet* avx2_kernels();
const KernelSet* avx2_plain_kernels();
// AVX512F/BW/VL/DQ + AVX512-VNNI (Ice Lake, Sapphire Rapids, Zen 4+); null when absent.
const KernelSet* avx512_kernels();
const KernelSet* neon_kernels();        // with SDOT when the CPU has it
const KernelSet* neon_plain_kernels();  // never SDOT (null when the build requires it)

// Every kernel set this CPU can run, scalar first (tests compare each against it). Returns the count.
int available_kernel_sets(const KernelSet** out, int max);
// Makes matmul & co. use `set` (null: the automatic choice). Tests only.
void force_kernel_set(const KernelSet* set);

// Scalar reference pieces the SIMD sets reuse for tails and dequantization.
void quantize_row_q8_0_ref(const float* x, void* y, int64_t n);
void quantize_row_q8_K_ref(const float* x, void* y, int64_t n);
void dequantize_row_ref(DType type, const void* row, float* dst, int64_t cols);
void softmax_row_ref(float* x, int64_t n, float scale);
void silu_mul_row_ref(float* a, const float* b, int64_t n);
void attn_scores_f16_ref(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q,
                         int64_t rows, int64_t hd, float* s, int64_t lds);
void attn_values_f16_ref(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw, int64_t rows,
                         int64_t hd, float* o);

}  // namespace kern
}  // namespace baton
