// AVX-512 kernels (x86-64 with AVX512F/BW/VL/DQ and AVX512-VNNI: Ice Lake, Sapphire Rapids,
// Zen 4 and later), chosen at run time ahead of the AVX2 set; avx512_kernels() returns null on
// other CPUs. Target pragmas keep the rest of the addon baseline x86-64.
//
// Decode and small batches run kernels_x86.inc built with the EVEX vpdpbusd on ymm registers
// (one instruction per 32 byte products where plain AVX2 needs vpmaddubsw + vpmaddwd + add),
// except F16 and Q4_K matrix-vector products, which have zmm versions below, and Q6_K, which
// keeps the AVX2 build (see avx512_kernels()). Attention over an F16 KV cache has zmm versions
// too (16 positions per transpose-and-add reduction).
//
// Batches (12+ columns) of quantized weights (prefill) run a packed GEMM instead. Per 16 weight
// rows (a "panel") the weights are unpacked once per matmul to unsigned bytes, interleaved so
// one zmm holds 4 consecutive bytes of each of the 16 rows, with one float scale per row and
// sub-block:
//   Q8_0: w + 128, Q4_0: the nibble (w + 8), Q6_K: the 6-bit value (w + 32)  — an offset kappa
//   per type, removed exactly in the integer sum as -kappa * (sum of the activation sub-block);
//   Q4_K: the nibble, with the min as a float offset per row and sub-block of 32.
// The activations are quantized once per matmul exactly as the other sets do (Q8_0 per 32, or
// Q8_K per 256) and laid out as plain int8 rows with per-32 scales and per-16/32 sums beside.
// A micro-kernel then keeps 2 panels (32 rows) x NC activation columns of int32 sums in zmm
// registers: each vpdpbusd multiplies 16 rows by 4 bytes of one column broadcast from memory,
// so no horizontal sums are needed, and one convert + FMA per sub-block applies the scales.
// The same pass over a packed panel serves every column of the batch (the packed panels of a
// row chunk stay in L2; activations stream from L2/L3). The activation rows, the unpacking and
// the panel packer are shared with the AVX2 set's 8-row version (end of kernels_x86.inc).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels_impl.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__clang__) || __GNUC__ >= 8)
#include <immintrin.h>
#define BATON_HAVE_AVX512 1

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
// GCC 12's own intrinsics (_mm512_cvtepi32_ps, _mm512_reduce_add_ps) trip these warnings with
// their _mm512_undefined_ps() placeholder.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace baton {
namespace kern {
namespace x86_avx512 {
#define BATON_X86_VNNI 2
#define BATON_X86_SET_NAME "avx512"
#define BATON_X86_SET_DETAIL "avx512f+bw+vl+vnni"
#include "kernels_x86.inc"
#undef BATON_X86_VNNI
#undef BATON_X86_SET_NAME
#undef BATON_X86_SET_DETAIL

namespace {

// RZ panels (16 * RZ rows, panel p at panels + p * panel_bytes) x NC activation columns, all
// sub-blocks; y[c][16 p + i] for the rows of each panel whose bit is set in mask[p].
template <class P, int RZ, int NC>
void micro(const uint8_t* panels, size_t panel_bytes, int64_t nsb, const uint8_t* const* act, const ActLayout& L,
           float* const* y, const __mmask16* mask) {
  constexpr int SB = P::SB;
  constexpr size_t sbb = sub_block_bytes<P, 16>();
  __m512 acc[RZ][NC];
  BATON_UNROLL
  for (int p = 0; p < RZ; ++p)
    BATON_UNROLL
    for (int c = 0; c < NC; ++c) acc[p][c] = _mm512_setzero_ps();
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* ps = panels + static_cast<size_t>(s) * sbb;
    const int64_t s32 = SB == 32 ? s : s / 2;  // index of the 32-element group (its scale)
    __m512i ai[RZ][NC];
    BATON_UNROLL
    for (int c = 0; c < NC; ++c) {
      __m512i init = _mm512_setzero_si512();
      if (P::kKappa != 0) {
        const int32_t sum = SB == 32 ? reinterpret_cast<const int32_t*>(act[c] + L.s32_off)[s]
                                     : reinterpret_cast<const int32_t*>(act[c] + L.s16_off)[s];
        init = _mm512_set1_epi32(-P::kKappa * sum);
      }
      BATON_UNROLL
      for (int p = 0; p < RZ; ++p) ai[p][c] = init;
    }
    BATON_UNROLL
    for (int qd = 0; qd < SB / 4; ++qd) {
      __m512i wv[RZ];
      BATON_UNROLL
      for (int p = 0; p < RZ; ++p) wv[p] = _mm512_load_si512(ps + p * panel_bytes + qd * 64);
      BATON_UNROLL
      for (int c = 0; c < NC; ++c) {
        int32_t a4;
        std::memcpy(&a4, act[c] + s * SB + qd * 4, 4);
        const __m512i ab = _mm512_set1_epi32(a4);
        BATON_UNROLL
        for (int p = 0; p < RZ; ++p) ai[p][c] = _mm512_dpbusd_epi32(ai[p][c], wv[p], ab);
      }
    }
    __m512 sc[RZ];
    BATON_UNROLL
    for (int p = 0; p < RZ; ++p) sc[p] = _mm512_load_ps(reinterpret_cast<const float*>(ps + p * panel_bytes + SB * 16));
    BATON_UNROLL
    for (int c = 0; c < NC; ++c) {
      const __m512 dc = _mm512_set1_ps(reinterpret_cast<const float*>(act[c] + L.d_off)[s32]);
      BATON_UNROLL
      for (int p = 0; p < RZ; ++p) acc[p][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[p][c]), _mm512_mul_ps(sc[p], dc), acc[p][c]);
    }
    if (P::kOff) {
      __m512 of[RZ];
      BATON_UNROLL
      for (int p = 0; p < RZ; ++p) of[p] = _mm512_load_ps(reinterpret_cast<const float*>(ps + p * panel_bytes + SB * 16 + 64));
      BATON_UNROLL
      for (int c = 0; c < NC; ++c) {
        const float sa = static_cast<float>(reinterpret_cast<const int32_t*>(act[c] + L.s32_off)[s]) *
                         reinterpret_cast<const float*>(act[c] + L.d_off)[s];
        const __m512 sav = _mm512_set1_ps(sa);
        BATON_UNROLL
        for (int p = 0; p < RZ; ++p) acc[p][c] = _mm512_fmadd_ps(of[p], sav, acc[p][c]);
      }
    }
  }
  BATON_UNROLL
  for (int p = 0; p < RZ; ++p)
    BATON_UNROLL
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(y[c] + 16 * p, mask[p], acc[p][c]);
}

constexpr int kNC = 6;  // activation columns per micro-kernel call

template <class P, int RZ>
void micro_cols(const uint8_t* panels, size_t panel_bytes, int64_t nsb, const uint8_t* const* act, const ActLayout& L,
                float* const* y, const __mmask16* mask, int nc) {
  switch (nc) {
    case 1: return micro<P, RZ, 1>(panels, panel_bytes, nsb, act, L, y, mask);
    case 2: return micro<P, RZ, 2>(panels, panel_bytes, nsb, act, L, y, mask);
    case 3: return micro<P, RZ, 3>(panels, panel_bytes, nsb, act, L, y, mask);
    case 4: return micro<P, RZ, 4>(panels, panel_bytes, nsb, act, L, y, mask);
    case 5: return micro<P, RZ, 5>(panels, panel_bytes, nsb, act, L, y, mask);
    default: return micro<P, RZ, kNC>(panels, panel_bytes, nsb, act, L, y, mask);
  }
}

thread_local std::vector<uint8_t> t_panels;

template <class P>
void gemm_packed(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  const ActLayout L(w.cols);
  const int64_t nsb = w.cols / P::SB;
  const size_t panel_bytes = static_cast<size_t>(nsb) * sub_block_bytes<P, 16>();
  if (t_panels.size() < 2 * panel_bytes + 64) t_panels.resize(2 * panel_bytes + 64);
  uint8_t* panels = t_panels.data() + ((64 - reinterpret_cast<uintptr_t>(t_panels.data()) % 64) % 64);
  const auto* x = static_cast<const uint8_t*>(xa);
  for (int64_t r = r0; r < r1; r += 32) {
    const int64_t n = std::min<int64_t>(32, r1 - r);
    const int rz = n > 16 ? 2 : 1;
    __mmask16 mask[2];
    for (int p = 0; p < rz; ++p) {
      const int valid = static_cast<int>(std::min<int64_t>(16, n - 16 * p));
      pack_panel<P, 16, true>(w, r + 16 * p, valid, panels + p * panel_bytes);
      mask[p] = static_cast<__mmask16>((1u << valid) - 1u);
    }
    for (int64_t b = 0; b < batch; b += kNC) {
      const int nc = static_cast<int>(std::min<int64_t>(kNC, batch - b));
      const uint8_t* act[kNC];
      float* out[kNC];
      for (int c = 0; c < nc; ++c) {
        act[c] = x + (b + c) * xs;
        out[c] = y + (b + c) * ldy + r;
      }
      if (rz == 2)
        micro_cols<P, 2>(panels, panel_bytes, nsb, act, L, out, mask, nc);
      else
        micro_cols<P, 1>(panels, panel_bytes, nsb, act, L, out, mask, nc);
    }
  }
}

void batch_gemm(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  switch (w.type) {
    case DType::Q8_0: return gemm_packed<PQ8_0>(w, r0, r1, xa, xs, batch, y, ldy);
    case DType::Q4_0: return gemm_packed<PQ4_0>(w, r0, r1, xa, xs, batch, y, ldy);
    case DType::Q4_K: return gemm_packed<PQ4_K>(w, r0, r1, xa, xs, batch, y, ldy);
    case DType::Q6_K: return gemm_packed<PQ6_K>(w, r0, r1, xa, xs, batch, y, ldy);
    default: return;  // batch_handles() refuses the rest
  }
}

// ---- matrix-vector (decode) ---------------------------------------------------------------------------
// (sw_prefetch() in kernels_x86.inc says whether to prefetch rows in software.)

// F16: RD weight rows from RD far-apart parts of [r0, r1) at once (independent memory streams),
// one cache line (32 halves) of each per step converted with one vcvtph2ps zmm per 16.
template <int RD, bool kPrefetch>
inline void gemv_f16_rows(const uint16_t* const* w, const float* x, int64_t n, float* out) {
  __m512 acc[RD][2];
  BATON_UNROLL
  for (int r = 0; r < RD; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
    BATON_UNROLL
    for (int r = 0; r < RD; ++r) {
      if (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(w[r] + k) + kPrefetchBytes, _MM_HINT_T0);
      acc[r][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r] + k))), x0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r] + k + 16))), x1, acc[r][1]);
    }
  }
  for (; k < n; k += 16) {
    const int m = static_cast<int>(std::min<int64_t>(16, n - k));
    const __mmask16 mask = static_cast<__mmask16>((1u << m) - 1u);
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + k);
    BATON_UNROLL
    for (int r = 0; r < RD; ++r)
      acc[r][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w[r] + k)), xv, acc[r][0]);
  }
  BATON_UNROLL
  for (int r = 0; r < RD; ++r) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

template <bool kPrefetch>
void gemv_f16(const Matrix& w, int64_t r0, int64_t r1, const float* x, float* y) {
  constexpr int RD = 4;
  const int64_t q = (r1 - r0) / RD;
  const uint16_t* wr[RD];
  float out[RD];
  for (int64_t k = 0; k < q; ++k) {
    for (int i = 0; i < RD; ++i) wr[i] = reinterpret_cast<const uint16_t*>(row_ptr(w, r0 + k + i * q));
    gemv_f16_rows<RD, kPrefetch>(wr, x, w.cols, out);
    for (int i = 0; i < RD; ++i) y[r0 + k + i * q] = out[i];
  }
  for (int64_t r = r0 + RD * q; r < r1; ++r) {
    wr[0] = reinterpret_cast<const uint16_t*>(row_ptr(w, r));
    gemv_f16_rows<1, kPrefetch>(wr, x, w.cols, out);
    y[r] = out[0];
  }
}

void gemm_f16_512(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  if (batch != 1) {
    gemm_f16(w, r0, r1, xa, xs, batch, y, ldy);
    return;
  }
  if (sw_prefetch())
    gemv_f16<true>(w, r0, r1, static_cast<const float*>(xa), y);
  else
    gemv_f16<false>(w, r0, r1, static_cast<const float*>(xa), y);
}

// Q4_K x Q8_K, one activation column: two 64-element chunks (4 sub-blocks) of a row per zmm,
// so a super-block takes 2 steps of vpmaddubsw + vpmaddwd (with the 6-bit scales spread over
// the lanes by vpshufb) instead of 4 on ymm.
// vpshufb control: int16 lane s of a 128-bit lane in every int16 of the low 256 bits, s + 2 in
// the high 256.
inline __m512i q4_K_scale_ctrl(int s) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(((2 * s + 1) << 8) | (2 * s)))),
                            _mm256_set1_epi16(static_cast<short>(((2 * s + 5) << 8) | (2 * s + 4))), 1);
}

inline __m512i load_2x256(const int8_t* lo, const int8_t* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}

template <int R, bool kPrefetch>
inline void gemv_q4_K_rows(const uint8_t* const* wr, const uint8_t* a0, int64_t nb, float* out) {
  const block_q4_K* wb[R];
  BATON_UNROLL
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const block_q4_K*>(wr[r]);
  const auto* ab = reinterpret_cast<const block_q8_K*>(a0);
  __m512 acc[R];
  __m128 accm[R];
  BATON_UNROLL
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm512_setzero_ps();
    accm[r] = _mm_setzero_ps();
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i c_lo0 = q4_K_scale_ctrl(0), c_hi0 = q4_K_scale_ctrl(1), c_lo1 = q4_K_scale_ctrl(4), c_hi1 = q4_K_scale_ctrl(5);
  for (int64_t i = 0; i < nb; ++i) {
    const int8_t* aq = ab[i].qs;
    // sub-blocks (0, 2), (1, 3), (4, 6), (5, 7) of the activations
    const __m512i al0 = load_2x256(aq, aq + 64), ah0 = load_2x256(aq + 32, aq + 96);
    const __m512i al1 = load_2x256(aq + 128, aq + 192), ah1 = load_2x256(aq + 160, aq + 224);
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[i].bsums));
    const __m128i bsp = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128 ad = _mm_set1_ps(ab[i].d);
    BATON_UNROLL
    for (int r = 0; r < R; ++r) {
      const block_q4_K& b = wb[r][i];
      if (kPrefetch) {
        prefetch_ahead(&b);
        prefetch_ahead(&b, sizeof(block_q4_K) - 1);
      }
      const __m128i sm = unpack_q4_K_scales(b.scales);
      const __m512i sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(sm));
      const __m128i mins = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
      const __m512i q0 = _mm512_loadu_si512(b.qs), q1 = _mm512_loadu_si512(b.qs + 64);
      __m512i sumi = _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_and_si512(q0, m4), al0), _mm512_shuffle_epi8(sc, c_lo0));
      sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), ah0),
                                                      _mm512_shuffle_epi8(sc, c_hi0)));
      sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_and_si512(q1, m4), al1), _mm512_shuffle_epi8(sc, c_lo1)));
      sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), ah1),
                                                      _mm512_shuffle_epi8(sc, c_hi1)));
      uint32_t dd;
      std::memcpy(&dd, &b.d, 4);
      const __m128 dm = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd))), ad);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_broadcastss_ps(dm), acc[r]);
      accm[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(mins, bsp)), _mm_permute_ps(dm, 0x55), accm[r]);
    }
  }
  BATON_UNROLL
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]) - hsum128(accm[r]);
}

template <bool kPrefetch>
void gemv_q4_K(const Matrix& w, int64_t r0, int64_t r1, const uint8_t* x, float* y) {
  constexpr int RD = 4;
  const int64_t nb = w.cols / QK_K;
  const int64_t q = (r1 - r0) / RD;
  const uint8_t* wr[RD];
  float out[RD];
  for (int64_t k = 0; k < q; ++k) {
    for (int i = 0; i < RD; ++i) wr[i] = row_ptr(w, r0 + k + i * q);
    gemv_q4_K_rows<RD, kPrefetch>(wr, x, nb, out);
    for (int i = 0; i < RD; ++i) y[r0 + k + i * q] = out[i];
  }
  for (int64_t r = r0 + RD * q; r < r1; ++r) {
    wr[0] = row_ptr(w, r);
    gemv_q4_K_rows<1, kPrefetch>(wr, x, nb, out);
    y[r] = out[0];
  }
}

void gemm_q4_K_512(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  if (batch != 1) {
    gemm_q4_K(w, r0, r1, xa, xs, batch, y, ldy);
    return;
  }
  if (sw_prefetch())
    gemv_q4_K<true>(w, r0, r1, static_cast<const uint8_t*>(xa), y);
  else
    gemv_q4_K<false>(w, r0, r1, static_cast<const uint8_t*>(xa), y);
}

// ---- attention over an F16 KV cache ---------------------------------------------------------------

// out lane i = sum of the 16 lanes of a[i]: a transpose-and-add tree (45 instructions for 16
// horizontal sums instead of ~10 each).
inline __m512 reduce16(__m512* a) {
  __m512 b[8], c[4];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int j = 0; j < 4; ++j)
    c[j] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * j], b[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(b[2 * j], b[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 d0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 d1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(c[2], c[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(d0, d1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Blocks of 16 positions: each block's keys are converted to f32 once (L1 scratch), then every
// query row takes 16 dot products whose horizontal sums come out of one reduce16.
void attn_scores_f16_512(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q, int64_t rows,
                     int64_t hd, float* s, int64_t lds) {
  if (block != 16 || hd % 16 != 0 || hd > kAttnMaxHead) {
    attn_scores_f16_ref(k_blocks, k_stride, block, n, q, rows, hd, s, lds);
    return;
  }
  alignas(64) float kf[16 * kAttnMaxHead];
  const int64_t nch = hd / 16;
  for (int64_t p0 = 0; p0 < n; p0 += 16) {
    const int np = static_cast<int>(std::min<int64_t>(16, n - p0));
    const uint16_t* kb = k_blocks[p0 / 16];
    // Blocks lie far apart in the pool: fetch the rows of the one after next while this one is
    // computed (one block ahead is too short for a DRAM round trip).
    if (p0 + 32 < n) {
      const uint16_t* next = k_blocks[p0 / 16 + 2];
      for (int p = 0; p < 16; ++p)
        for (int64_t off = 0; off < hd; off += 32) _mm_prefetch(reinterpret_cast<const char*>(next + p * k_stride + off), _MM_HINT_T0);
    }
    for (int p = 0; p < 16; ++p)
      for (int64_t ch = 0; ch < nch; ++ch)
        _mm512_store_ps(kf + p * hd + 16 * ch,
                        p < np ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb + p * k_stride + 16 * ch)))
                               : _mm512_setzero_ps());
    const __mmask16 mask = static_cast<__mmask16>((1u << np) - 1u);
    for (int64_t r = 0; r < rows; ++r) {
      const float* qr = q + r * hd;
      __m512 part[16];
      for (int p = 0; p < 16; ++p) part[p] = _mm512_setzero_ps();
      for (int64_t ch = 0; ch < nch; ++ch) {
        const __m512 qv = _mm512_loadu_ps(qr + 16 * ch);
        BATON_UNROLL
        for (int p = 0; p < 16; ++p) part[p] = _mm512_fmadd_ps(qv, _mm512_load_ps(kf + p * hd + 16 * ch), part[p]);
      }
      _mm512_mask_storeu_ps(s + r * lds + p0, mask, reduce16(part));
    }
  }
}

// Accumulates w * V over all blocks in registers, lane j holding the positions j (mod 16), and
// reduces each output once at the end: 4 query rows x 4 head dims per pass over the blocks.
template <int RR, int DC>
void attn_values_tile512(const uint16_t* const* vt_blocks, int64_t n, const float* w, int64_t ldw, int64_t hd, int64_t d0,
                      float* o) {
  __m512 acc[RR][DC];
  BATON_UNROLL
  for (int r = 0; r < RR; ++r)
    BATON_UNROLL
    for (int j = 0; j < DC; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t p0 = 0; p0 < n; p0 += 16) {
    const int np = static_cast<int>(std::min<int64_t>(16, n - p0));
    const __mmask16 mask = static_cast<__mmask16>((1u << np) - 1u);
    const uint16_t* vb = vt_blocks[p0 / 16] + d0 * 16;
    if (p0 + 32 < n)  // these head dims two blocks ahead (blocks lie far apart)
      _mm_prefetch(reinterpret_cast<const char*>(vt_blocks[p0 / 16 + 2] + d0 * 16), _MM_HINT_T0);
    __m512 wv[RR];
    BATON_UNROLL
    for (int r = 0; r < RR; ++r) wv[r] = _mm512_maskz_loadu_ps(mask, w + r * ldw + p0);
    BATON_UNROLL
    for (int j = 0; j < DC; ++j) {
      // masked: values past n may be anything (NaN * 0 would still be NaN)
      const __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, vb + j * 16));
      BATON_UNROLL
      for (int r = 0; r < RR; ++r) acc[r][j] = _mm512_fmadd_ps(wv[r], v, acc[r][j]);
    }
  }
  BATON_UNROLL
  for (int r = 0; r < RR; ++r)
    BATON_UNROLL
    for (int j = 0; j < DC; ++j) o[r * hd + d0 + j] += _mm512_reduce_add_ps(acc[r][j]);
}

template <int RR>
void attn_values_rows512(const uint16_t* const* vt_blocks, int64_t n, const float* w, int64_t ldw, int64_t hd, float* o) {
  for (int64_t d0 = 0; d0 < hd; d0 += 4) attn_values_tile512<RR, 4>(vt_blocks, n, w, ldw, hd, d0, o);
}

void attn_values_f16_512(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw, int64_t rows,
                     int64_t hd, float* o) {
  if (block != 16 || hd % 4 != 0) {
    attn_values_f16_ref(vt_blocks, block, n, w, ldw, rows, hd, o);
    return;
  }
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) attn_values_rows512<4>(vt_blocks, n, w + r * ldw, ldw, hd, o + r * hd);
  switch (rows - r) {
    case 3: attn_values_rows512<3>(vt_blocks, n, w + r * ldw, ldw, hd, o + r * hd); break;
    case 2: attn_values_rows512<2>(vt_blocks, n, w + r * ldw, ldw, hd, o + r * hd); break;
    case 1: attn_values_rows512<1>(vt_blocks, n, w + r * ldw, ldw, hd, o + r * hd); break;
    default: break;
  }
}

// Packing costs about as much as a few columns of products: at 8 columns the packed GEMM and the
// unpacked tiles were even on Zen 4 (kernels bench, Q8_0 ~0.9x, Q4_0/Q6_K ~1.15x), at 12 the
// packed one was 1.2-1.6x faster, so it starts at 12.
const BatchKernels kBatch = {12, 32, 32, batch_handles, batch_act_row_bytes, batch_prepare, batch_gemm};

}  // namespace

const KernelSet kSet512 = {kSet.name, kSet.detail, kSet.gemm_f32, gemm_f16_512, kSet.gemm_q8_0, kSet.gemm_q4_0,
                           gemm_q4_K_512, kSet.gemm_q6_K, kSet.quantize_q8_0, kSet.quantize_q8_K, kSet.f16_to_f32_row,
                           kSet.f32_to_f16_row, &kBatch, attn_scores_f16_512, attn_values_f16_512,
                           kSet.softmax_row, kSet.silu_mul_row};

}  // namespace x86_avx512
}  // namespace kern
}  // namespace baton
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
#endif

namespace baton {
namespace kern {
const KernelSet* avx512_kernels() {
#if defined(BATON_HAVE_AVX512)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni")) {
    // Q6_K's unpacked tiles (decode, small batches) use no VNNI, and built for AVX-512 GCC 12
    // spills their scales through mask registers (kmovw): the AVX2 build was 1.7x faster on Zen 4.
    static const KernelSet set = [] {
      KernelSet k = x86_avx512::kSet512;
      if (const KernelSet* avx2 = avx2_kernels()) k.gemm_q6_K = avx2->gemm_q6_K;
      return k;
    }();
    return &set;
  }
#endif
  return nullptr;
}
}  // namespace kern
}  // namespace baton
