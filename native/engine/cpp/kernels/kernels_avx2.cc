// AVX2 + FMA + F16C kernels (x86-64). Compiled with a target pragma so the rest of the addon
// stays baseline x86-64; avx2_kernels() returns null on CPUs without these features.
//
// Quantized weights follow llama.cpp: activations are quantized once per matmul (Q8_0 for
// Q8_0/Q4_0 weights, Q8_K for Q4_K/Q6_K), then each block is an integer dot product
// (_mm256_maddubs_epi16 on unsigned x signed bytes, the sign trick for signed x signed,
// _mm256_madd_epi16 to int32) and one FMA with the product of the scales. A tile of R weight
// rows x C activation columns shares every load: decode (batch 1) streams 4 rows at once;
// batches use 2x4 / 4x2 tiles over a chunk of columns that stays in cache, so one pass over the
// weights serves the whole chunk.
#include <algorithm>
#include <cmath>
#include <cstring>

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
namespace {

// Columns of a batch processed per pass over a block of weight rows (their activations stay in L2).
constexpr int64_t kColChunk = 64;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hsum128(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline const uint8_t* row_ptr(const Matrix& w, int64_t r) {
  return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
}

// Sum of products of signed bytes, as 8 int32 lanes.
inline __m256i dot_i8(__m256i w, __m256i a) {
  const __m256i aw = _mm256_sign_epi8(w, w);
  const __m256i sa = _mm256_sign_epi8(a, w);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sa), _mm256_set1_epi16(1));
}

// ---- weight-block loaders for the 32-element formats (Q8_0, Q4_0) ------------------------------

struct Q8_0W {
  using Block = block_q8_0;
  static __m256i load(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
};

struct Q4_0W {
  using Block = block_q4_0;
  static __m256i load(const Block& b) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
  }
};

template <class W, int R, int C>
inline void tile_32(const uint8_t* const* wr, const uint8_t* const* ar, int64_t nb, float* const* out) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const typename W::Block* wb[R];
  const block_q8_0* ab[C];
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const typename W::Block*>(wr[r]);
  for (int c = 0; c < C; ++c) ab[c] = reinterpret_cast<const block_q8_0*>(ar[c]);
  for (int64_t i = 0; i < nb; ++i) {
    __m256i wq[R];
    float wd[R];
    for (int r = 0; r < R; ++r) {
      wq[r] = W::load(wb[r][i]);
      wd[r] = h2f(wb[r][i].d);
    }
    for (int c = 0; c < C; ++c) {
      const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[c][i].qs));
      const float ad = h2f(ab[c][i].d);
      for (int r = 0; r < R; ++r)
        acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_i8(wq[r], aq)), _mm256_set1_ps(wd[r] * ad), acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r][c] = hsum(acc[r][c]);
}

// ---- Q4_K x Q8_K --------------------------------------------------------------------------------

// 8 scales then 8 mins (6 bits each) from the 12 packed bytes.
inline void unpack_q4_K_scales(const uint8_t* s, uint8_t out[16]) {
  uint32_t u[4];
  std::memcpy(u, s, 12);
  const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
  const uint32_t uaux = u[1] & kmask1;
  u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
  u[2] = uaux;
  u[0] &= kmask1;
  std::memcpy(out, u, 16);
}

template <int R, int C>
inline void tile_q4_K(const uint8_t* const* wr, const uint8_t* const* ar, int64_t nb, float* const* out) {
  __m256 acc[R][C];
  __m128 accm[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      acc[r][c] = _mm256_setzero_ps();
      accm[r][c] = _mm_setzero_ps();
    }
  const block_q4_K* wb[R];
  const block_q8_K* ab[C];
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const block_q4_K*>(wr[r]);
  for (int c = 0; c < C; ++c) ab[c] = reinterpret_cast<const block_q8_K*>(ar[c]);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t sm[R][16];
    for (int r = 0; r < R; ++r) unpack_q4_K_scales(wb[r][i].scales, sm[r]);
    __m256i sumi[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) sumi[r][c] = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      __m256i lo[R], hi[R], sl[R], sh[R];
      for (int r = 0; r < R; ++r) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[r][i].qs + 32 * j));
        lo[r] = _mm256_and_si256(q, m4);
        hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        sl[r] = _mm256_set1_epi16(sm[r][2 * j]);
        sh[r] = _mm256_set1_epi16(sm[r][2 * j + 1]);
      }
      for (int c = 0; c < C; ++c) {
        const __m256i al = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[c][i].qs + 64 * j));
        const __m256i ah = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[c][i].qs + 64 * j + 32));
        for (int r = 0; r < R; ++r) {
          const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], al), sl[r]);
          const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], ah), sh[r]);
          sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_add_epi32(pl, ph));
        }
      }
    }
    for (int c = 0; c < C; ++c) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[c][i].bsums));
      const __m128i bsp = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
      const float ad = ab[c][i].d;
      for (int r = 0; r < R; ++r) {
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm[r] + 8)));
        const __m128i pm = _mm_madd_epi16(mins, bsp);
        acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][c]), _mm256_set1_ps(h2f(wb[r][i].d) * ad), acc[r][c]);
        accm[r][c] = _mm_fmadd_ps(_mm_cvtepi32_ps(pm), _mm_set1_ps(h2f(wb[r][i].dmin) * ad), accm[r][c]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r][c] = hsum(acc[r][c]) - hsum128(accm[r][c]);
}

// ---- Q6_K x Q8_K --------------------------------------------------------------------------------

template <int R, int C>
inline void tile_q6_K(const uint8_t* const* wr, const uint8_t* const* ar, int64_t nb, float* const* out) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const block_q6_K* wb[R];
  const block_q8_K* ab[C];
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const block_q6_K*>(wr[r]);
  for (int c = 0; c < C; ++c) ab[c] = reinterpret_cast<const block_q8_K*>(ar[c]);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m30 = _mm256_set1_epi8(0x30);
  for (int64_t i = 0; i < nb; ++i) {
    __m256i sumi[R][C];
    // -32 * sum_g scale_g * bsum_g, folded into the integer sum
    for (int r = 0; r < R; ++r) {
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[r][i].scales)));
      for (int c = 0; c < C; ++c) {
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[c][i].bsums));
        sumi[r][c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
      }
    }
    for (int h = 0; h < 2; ++h) {
      __m256i q[R][4];
      __m256i s[R][4];
      for (int r = 0; r < R; ++r) {
        const block_q6_K& b = wb[r][i];
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
        q[r][0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        q[r][1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        q[r][2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
        q[r][3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                  _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
        const int8_t* sc = b.scales + 8 * h;
        for (int k = 0; k < 4; ++k)
          s[r][k] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
      }
      for (int c = 0; c < C; ++c) {
        const int8_t* a8 = ab[c][i].qs + 128 * h;
        for (int k = 0; k < 4; ++k) {
          const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a8 + 32 * k));
          for (int r = 0; r < R; ++r)
            sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(q[r][k], a), s[r][k]));
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const float d = h2f(wb[r][i].d);
      for (int c = 0; c < C; ++c)
        acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][c]), _mm256_set1_ps(d * ab[c][i].d), acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r][c] = hsum(acc[r][c]);
}

// ---- F32 / F16 weights x f32 activations --------------------------------------------------------

struct F32W {
  using T = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float one(const float* p) { return *p; }
};
struct F16W {
  using T = uint16_t;
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float one(const uint16_t* p) { return h2f(*p); }
};

template <class W, int R, int C>
inline void tile_float(const uint8_t* const* wr, const uint8_t* const* ar, int64_t n, float* const* out) {
  using T = typename W::T;
  const T* w[R];
  const float* a[C];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const T*>(wr[r]);
  for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const float*>(ar[c]);
  // With one column, two accumulators per row keep enough FMAs in flight.
  constexpr int U = C == 1 ? 2 : 1;
  __m256 acc[R][C][U];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      for (int u = 0; u < U; ++u) acc[r][c][u] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 * U <= n; k += 8 * U) {
    for (int u = 0; u < U; ++u) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r) wv[r] = W::load8(w[r] + k + 8 * u);
      for (int c = 0; c < C; ++c) {
        const __m256 av = _mm256_loadu_ps(a[c] + k + 8 * u);
        for (int r = 0; r < R; ++r) acc[r][c][u] = _mm256_fmadd_ps(wv[r], av, acc[r][c][u]);
      }
    }
  }
  for (; k + 8 <= n; k += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = W::load8(w[r] + k);
    for (int c = 0; c < C; ++c) {
      const __m256 av = _mm256_loadu_ps(a[c] + k);
      for (int r = 0; r < R; ++r) acc[r][c][0] = _mm256_fmadd_ps(wv[r], av, acc[r][c][0]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      __m256 s = acc[r][c][0];
      for (int u = 1; u < U; ++u) s = _mm256_add_ps(s, acc[r][c][u]);
      float v = hsum(s);
      for (int64_t t = k; t < n; ++t) v += W::one(w[r] + t) * a[c][t];
      out[r][c] = v;
    }
}

// ---- the tiled driver -----------------------------------------------------------------------------

// TILE<R, C>(weight row pointers, activation row pointers, inner count, out[R][C]).
template <template <int, int> class K>
void gemm_tiled(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y,
                int64_t ldy, int64_t inner) {
  const auto* x = static_cast<const uint8_t*>(xa);
  float tmp[4][4];
  float* out[4] = {tmp[0], tmp[1], tmp[2], tmp[3]};
  const uint8_t* wr[4];
  const uint8_t* ar[4];
  auto store = [&](int64_t r, int64_t b, int R, int C) {
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) y[(b + j) * ldy + r + i] = tmp[i][j];
  };
  if (batch == 1) {
    ar[0] = x;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      for (int i = 0; i < 4; ++i) wr[i] = row_ptr(w, r + i);
      K<4, 1>::run(wr, ar, inner, out);
      store(r, 0, 4, 1);
    }
    for (; r < r1; ++r) {
      wr[0] = row_ptr(w, r);
      K<1, 1>::run(wr, ar, inner, out);
      store(r, 0, 1, 1);
    }
    return;
  }
  for (int64_t b0 = 0; b0 < batch; b0 += kColChunk) {
    const int64_t b1 = std::min(batch, b0 + kColChunk);
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      wr[0] = row_ptr(w, r);
      wr[1] = row_ptr(w, r + 1);
      int64_t b = b0;
      for (; b + 4 <= b1; b += 4) {
        for (int j = 0; j < 4; ++j) ar[j] = x + (b + j) * xs;
        K<2, 4>::run(wr, ar, inner, out);
        store(r, b, 2, 4);
      }
      for (; b < b1; ++b) {
        ar[0] = x + b * xs;
        K<2, 1>::run(wr, ar, inner, out);
        store(r, b, 2, 1);
      }
    }
    for (; r < r1; ++r) {
      wr[0] = row_ptr(w, r);
      int64_t b = b0;
      for (; b + 4 <= b1; b += 4) {
        for (int j = 0; j < 4; ++j) ar[j] = x + (b + j) * xs;
        K<1, 4>::run(wr, ar, inner, out);
        store(r, b, 1, 4);
      }
      for (; b < b1; ++b) {
        ar[0] = x + b * xs;
        K<1, 1>::run(wr, ar, inner, out);
        store(r, b, 1, 1);
      }
    }
  }
}

template <int R, int C>
struct KQ8_0 {
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_32<Q8_0W, R, C>(w, a, n, o); }
};
template <int R, int C>
struct KQ4_0 {
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_32<Q4_0W, R, C>(w, a, n, o); }
};
template <int R, int C>
struct KQ4_K {
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_q4_K<R, C>(w, a, n, o); }
};
template <int R, int C>
struct KQ6_K {
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_q6_K<R, C>(w, a, n, o); }
};
template <int R, int C>
struct KF32 {
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_float<F32W, R, C>(w, a, n, o); }
};
template <int R, int C>
struct KF16 {
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_float<F16W, R, C>(w, a, n, o); }
};

void gemm_q8_0(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  gemm_tiled<KQ8_0>(w, r0, r1, xa, xs, batch, y, ldy, w.cols / QK8_0);
}
void gemm_q4_0(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  gemm_tiled<KQ4_0>(w, r0, r1, xa, xs, batch, y, ldy, w.cols / QK4_0);
}
void gemm_q4_K(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  gemm_tiled<KQ4_K>(w, r0, r1, xa, xs, batch, y, ldy, w.cols / QK_K);
}
void gemm_q6_K(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  gemm_tiled<KQ6_K>(w, r0, r1, xa, xs, batch, y, ldy, w.cols / QK_K);
}
void gemm_f32(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  gemm_tiled<KF32>(w, r0, r1, xa, xs, batch, y, ldy, w.cols);
}
void gemm_f16(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y, int64_t ldy) {
  gemm_tiled<KF16>(w, r0, r1, xa, xs, batch, y, ldy, w.cols);
}

// ---- activation quantization and conversions ---------------------------------------------------

// |x| max of 8 floats, in every lane.
inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Rounds 32 floats * scale to int8 (nearest even, like the scalar nearbyint) in element order.
inline __m256i round_pack_32(const float* x, __m256 s) {
  const int mode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), s), mode));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8), s), mode));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 16), s), mode));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 24), s), mode));
  i0 = _mm256_packs_epi32(i0, i1);
  i2 = _mm256_packs_epi32(i2, i3);
  i0 = _mm256_packs_epi16(i0, i2);
  return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void quantize_q8_0(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<block_q8_0*>(vy);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float* xb = x + i * QK8_0;
    __m256 m = abs_ps(_mm256_loadu_ps(xb));
    m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + 8)));
    m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + 16)));
    m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + 24)));
    const float amax = hmax(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = _cvtss_sh(d, 0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), round_pack_32(xb, _mm256_set1_ps(id)));
  }
}

void quantize_q8_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<block_q8_K*>(vy);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float* xb = x + i * QK_K;
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + j)));
    const float amax = hmax(m);
    const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[i].d = amax != 0.0f ? amax / 127.0f : 0.0f;
    const __m256 s = _mm256_set1_ps(iscale);
    for (int j = 0; j < QK_K; j += 32) {
      const __m256i q = round_pack_32(xb + j, s);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j), q);
      // group sums of 16: widen to int16, add pairs down to one value per group
      const __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
      const __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
      const __m256i slo = _mm256_madd_epi16(lo, _mm256_set1_epi16(1));
      const __m256i shi = _mm256_madd_epi16(hi, _mm256_set1_epi16(1));
      __m256i t = _mm256_hadd_epi32(slo, shi);  // [lo0..1, hi0..1 | lo2..3, hi2..3] pairs
      t = _mm256_hadd_epi32(t, t);
      // lanes: 0 = lo first half(0..3 of 128-lane 0), ...; sum the two 128-bit halves
      const __m128i g = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
      y[i].bsums[j / 16] = static_cast<int16_t>(_mm_cvtsi128_si32(g));
      y[i].bsums[j / 16 + 1] = static_cast<int16_t>(_mm_extract_epi32(g, 1));
    }
  }
}

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = _cvtsh_ss(x[i]);
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = _cvtss_sh(x[i], 0);
}

const KernelSet kAvx2 = {
    "avx2", gemm_f32, gemm_f16, gemm_q8_0, gemm_q4_0, gemm_q4_K, gemm_q6_K, quantize_q8_0, quantize_q8_K,
    f16_to_f32_row, f32_to_f16_row,
};

}  // namespace
}  // namespace kern
}  // namespace baton

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

namespace baton {
namespace kern {
const KernelSet* avx2_kernels() {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return &kAvx2;
#endif
  return nullptr;
}
}  // namespace kern
}  // namespace baton

#else  // not x86-64

namespace baton {
namespace kern {
const KernelSet* avx2_kernels() { return nullptr; }
}  // namespace kern
}  // namespace baton

#endif
