// AVX2 + FMA + F16C kernels (x86-64), in two builds of kernels_x86.inc: plain, and with AVX-VNNI
// (vpdpbusd; Alder Lake, Sapphire Rapids, Zen 5) picked at run time when the CPU has it. Target
// pragmas keep the rest of the addon baseline x86-64; avx2_kernels() returns null on CPUs
// without AVX2/FMA/F16C (the scalar set runs there).
//
// Quantized weights follow llama.cpp: activations are quantized once per matmul (Q8_0 for
// Q8_0/Q4_0 weights, Q8_K for Q4_K/Q6_K); each block is an integer dot product
// (_mm256_maddubs_epi16 unsigned x signed bytes — the sign trick for Q8_0's signed x signed —
// then _mm256_madd_epi16 to int32, or one vpdpbusd) and one FMA with the product of the scales.
// Decode (batch 1) streams 4 weight rows at once, taken from 4 far-apart parts of the row range
// and prefetched ahead (Q4_0 two blocks per step, the K-quants row by row within a super-block).
// Small batches use tiles of R weight rows x C activation columns (3x4, 2x4, 1x4) sharing every
// load, over chunks of 64 columns that stay in L2, so one pass over the weights serves a whole
// chunk. Batches of 16+ columns of quantized weights (prefill) run the packed GEMM at the end of
// kernels_x86.inc: 8-row panels unpacked once per matmul, 8 rows x 4 columns per micro-kernel.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels_impl.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
namespace baton {
namespace kern {
namespace x86_avx2 {
#define BATON_X86_VNNI 0
#define BATON_X86_SET_NAME "avx2"
#define BATON_X86_SET_DETAIL "avx2+fma+f16c"
#include "kernels_x86.inc"
#undef BATON_X86_VNNI
#undef BATON_X86_SET_NAME
#undef BATON_X86_SET_DETAIL
}  // namespace x86_avx2
}  // namespace kern
}  // namespace baton
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

// AVX-VNNI (Alder Lake, Sapphire Rapids, Zen 5): GCC >= 11, clang >= 12.
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
#define BATON_HAVE_AVXVNNI 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avxvnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
#endif
namespace baton {
namespace kern {
namespace x86_vnni {
#define BATON_X86_VNNI 1
#define BATON_X86_SET_NAME "avx2"
#define BATON_X86_SET_DETAIL "avx2+fma+f16c+avx-vnni"
#include "kernels_x86.inc"
#undef BATON_X86_VNNI
#undef BATON_X86_SET_NAME
#undef BATON_X86_SET_DETAIL
}  // namespace x86_vnni
}  // namespace kern
}  // namespace baton
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace baton {
namespace kern {
const KernelSet* avx2_plain_kernels() {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return &x86_avx2::kSet;
#endif
  return nullptr;
}

const KernelSet* avx2_kernels() {
  const KernelSet* plain = avx2_plain_kernels();
#if defined(BATON_HAVE_AVXVNNI)
  if (plain != nullptr && __builtin_cpu_supports("avxvnni")) return &x86_vnni::kSet;
#endif
  return plain;
}
}  // namespace kern
}  // namespace baton

#else  // not x86-64

namespace baton {
namespace kern {
const KernelSet* avx2_kernels() { return nullptr; }
const KernelSet* avx2_plain_kernels() { return nullptr; }
}  // namespace kern
}  // namespace baton

#endif
