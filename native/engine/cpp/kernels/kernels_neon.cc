// NEON kernels (arm64: Apple Silicon, Graviton, Raspberry Pi 4/5). Same scheme as the x86 set:
// activations quantized once per matmul (Q8_0 for Q8_0/Q4_0 weights, Q8_K for the K-quants),
// integer dot products per block — SDOT (vdotq_s32) when the build targets a CPU with the dot
// product extension (__ARM_FEATURE_DOTPROD: Apple M1 and later with -mcpu=apple-m1, or
// -march=armv8.2-a+dotprod), otherwise widening multiplies (vmull_s8 + vpadalq_s16) — and one
// float multiply-add per block. Tiles of R weight rows x C activation columns share loads.
#include <algorithm>
#include <cstring>

#include "kernels_impl.h"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>

namespace baton {
namespace kern {
namespace {

#define BATON_UNROLL _Pragma("GCC unroll 16")

constexpr int64_t kColChunk = 64;

inline float h2f(uint16_t h) {
  __fp16 x;
  std::memcpy(&x, &h, sizeof x);
  return static_cast<float>(x);
}

inline uint16_t f2h(float f) {
  const __fp16 x = static_cast<__fp16>(f);
  uint16_t h;
  std::memcpy(&h, &x, sizeof h);
  return h;
}

inline const uint8_t* row_ptr(const Matrix& w, int64_t r) {
  return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
}

// acc + sums of products of 16 signed bytes, 4 int32 lanes.
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t p1 = vmull_high_s8(a, b);
  return vpadalq_s16(vpadalq_s16(acc, p0), p1);
#endif
}

// ---- Q8_0 / Q4_0 x Q8_0 -----------------------------------------------------------------------

struct Q8_0W {
  using Block = block_q8_0;
  static void load(const Block& b, int8x16_t& w0, int8x16_t& w1) {
    w0 = vld1q_s8(b.qs);
    w1 = vld1q_s8(b.qs + 16);
  }
};

struct Q4_0W {
  using Block = block_q4_0;
  static void load(const Block& b, int8x16_t& w0, int8x16_t& w1) {
    const uint8x16_t v = vld1q_u8(b.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), eight);
    w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
  }
};

template <class W, int R, int C>
void tile_32(const uint8_t* const* wr, const uint8_t* const* ar, int64_t nb, float* const* out) {
  const typename W::Block* wb[R];
  const block_q8_0* ab[C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const typename W::Block*>(wr[r]);
  BATON_UNROLL
  for (int c = 0; c < C; ++c) ab[c] = reinterpret_cast<const block_q8_0*>(ar[c]);
  float32x4_t acc[R][C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) acc[r][c] = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < nb; ++i) {
    int8x16_t w0[R], w1[R];
    float wd[R];
    BATON_UNROLL
    for (int r = 0; r < R; ++r) {
      W::load(wb[r][i], w0[r], w1[r]);
      wd[r] = h2f(wb[r][i].d);
    }
    BATON_UNROLL
    for (int c = 0; c < C; ++c) {
      const int8x16_t a0 = vld1q_s8(ab[c][i].qs);
      const int8x16_t a1 = vld1q_s8(ab[c][i].qs + 16);
      const float ad = h2f(ab[c][i].d);
      BATON_UNROLL
      for (int r = 0; r < R; ++r) {
        const int32x4_t p = dot16(dot16(vdupq_n_s32(0), w0[r], a0), w1[r], a1);
        acc[r][c] = vmlaq_n_f32(acc[r][c], vcvtq_f32_s32(p), wd[r] * ad);
      }
    }
  }
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) out[r][c] = vaddvq_f32(acc[r][c]);
}

// ---- Q4_K x Q8_K --------------------------------------------------------------------------------

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
void tile_q4_K(const uint8_t* const* wr, const uint8_t* const* ar, int64_t nb, float* const* out) {
  const block_q4_K* wb[R];
  const block_q8_K* ab[C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const block_q4_K*>(wr[r]);
  BATON_UNROLL
  for (int c = 0; c < C; ++c) ab[c] = reinterpret_cast<const block_q8_K*>(ar[c]);
  float sum[R][C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) sum[r][c] = 0.0f;
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t sm[R][16];
    int16x8_t mins[R];
    BATON_UNROLL
    for (int r = 0; r < R; ++r) {
      unpack_q4_K_scales(wb[r][i].scales, sm[r]);
      mins[r] = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm[r] + 8)));
    }
    int32x4_t isum[R][C];
    BATON_UNROLL
    for (int r = 0; r < R; ++r)
      BATON_UNROLL
      for (int c = 0; c < C; ++c) isum[r][c] = vdupq_n_s32(0);
    BATON_UNROLL
    for (int j = 0; j < 4; ++j) {
      int8x16_t lo0[R], lo1[R], hi0[R], hi1[R];
      BATON_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint8x16_t q0 = vld1q_u8(wb[r][i].qs + 32 * j);
        const uint8x16_t q1 = vld1q_u8(wb[r][i].qs + 32 * j + 16);
        lo0[r] = vreinterpretq_s8_u8(vandq_u8(q0, m4));
        lo1[r] = vreinterpretq_s8_u8(vandq_u8(q1, m4));
        hi0[r] = vreinterpretq_s8_u8(vshrq_n_u8(q0, 4));
        hi1[r] = vreinterpretq_s8_u8(vshrq_n_u8(q1, 4));
      }
      BATON_UNROLL
      for (int c = 0; c < C; ++c) {
        const int8_t* a = ab[c][i].qs + 64 * j;
        const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16), a2 = vld1q_s8(a + 32), a3 = vld1q_s8(a + 48);
        BATON_UNROLL
        for (int r = 0; r < R; ++r) {
          const int32x4_t pl = dot16(dot16(vdupq_n_s32(0), lo0[r], a0), lo1[r], a1);
          const int32x4_t ph = dot16(dot16(vdupq_n_s32(0), hi0[r], a2), hi1[r], a3);
          isum[r][c] = vmlaq_n_s32(isum[r][c], pl, sm[r][2 * j]);
          isum[r][c] = vmlaq_n_s32(isum[r][c], ph, sm[r][2 * j + 1]);
        }
      }
    }
    BATON_UNROLL
    for (int c = 0; c < C; ++c) {
      const int16x8_t bsp = vpaddq_s16(vld1q_s16(ab[c][i].bsums), vld1q_s16(ab[c][i].bsums + 8));
      const float ad = ab[c][i].d;
      BATON_UNROLL
      for (int r = 0; r < R; ++r) {
        const int32x4_t pm = vmlal_high_s16(vmull_s16(vget_low_s16(mins[r]), vget_low_s16(bsp)), mins[r], bsp);
        sum[r][c] += ad * (h2f(wb[r][i].d) * static_cast<float>(vaddvq_s32(isum[r][c])) -
                           h2f(wb[r][i].dmin) * static_cast<float>(vaddvq_s32(pm)));
      }
    }
  }
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) out[r][c] = sum[r][c];
}

// ---- Q6_K x Q8_K --------------------------------------------------------------------------------

template <int R, int C>
void tile_q6_K(const uint8_t* const* wr, const uint8_t* const* ar, int64_t nb, float* const* out) {
  const block_q6_K* wb[R];
  const block_q8_K* ab[C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const block_q6_K*>(wr[r]);
  BATON_UNROLL
  for (int c = 0; c < C; ++c) ab[c] = reinterpret_cast<const block_q8_K*>(ar[c]);
  float sum[R][C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) sum[r][c] = 0.0f;
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
  const int8x16_t m32 = vdupq_n_s8(32);
  for (int64_t i = 0; i < nb; ++i) {
    int32x4_t isum[R][C];
    BATON_UNROLL
    for (int r = 0; r < R; ++r)
      BATON_UNROLL
      for (int c = 0; c < C; ++c) isum[r][c] = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      BATON_UNROLL
      for (int half = 0; half < 2; ++half) {  // elements l in [16*half, 16*half + 16)
        int8x16_t q[R][4];
        BATON_UNROLL
        for (int r = 0; r < R; ++r) {
          const block_q6_K& b = wb[r][i];
          const uint8x16_t ql0 = vld1q_u8(b.ql + 64 * h + 16 * half);
          const uint8x16_t ql1 = vld1q_u8(b.ql + 64 * h + 32 + 16 * half);
          const uint8x16_t qh = vld1q_u8(b.qh + 32 * h + 16 * half);
          q[r][0] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(ql0, m4), vshlq_n_u8(vandq_u8(qh, m3), 4))), m32);
          q[r][1] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(ql1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), m3), 4))), m32);
          q[r][2] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(ql0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), m3), 4))), m32);
          q[r][3] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(ql1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4))), m32);
        }
        BATON_UNROLL
        for (int c = 0; c < C; ++c) {
          const int8_t* a = ab[c][i].qs + 128 * h + 16 * half;
          BATON_UNROLL
          for (int k = 0; k < 4; ++k) {
            const int8x16_t av = vld1q_s8(a + 32 * k);
            BATON_UNROLL
            for (int r = 0; r < R; ++r) {
              const int scale = wb[r][i].scales[8 * h + 2 * k + half];
              isum[r][c] = vmlaq_n_s32(isum[r][c], dot16(vdupq_n_s32(0), q[r][k], av), scale);
            }
          }
        }
      }
    }
    BATON_UNROLL
    for (int r = 0; r < R; ++r) {
      const float d = h2f(wb[r][i].d);
      BATON_UNROLL
      for (int c = 0; c < C; ++c) sum[r][c] += d * ab[c][i].d * static_cast<float>(vaddvq_s32(isum[r][c]));
    }
  }
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) out[r][c] = sum[r][c];
}

// ---- F32 / F16 weights x f32 activations --------------------------------------------------------

struct F32W {
  using T = float;
  static void load8(const float* p, float32x4_t& a, float32x4_t& b) {
    a = vld1q_f32(p);
    b = vld1q_f32(p + 4);
  }
  static float one(const float* p) { return *p; }
};
struct F16W {
  using T = uint16_t;
  static void load8(const uint16_t* p, float32x4_t& a, float32x4_t& b) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    a = vcvt_f32_f16(vget_low_f16(h));
    b = vcvt_high_f32_f16(h);
  }
  static float one(const uint16_t* p) { return h2f(*p); }
};

template <class W, int R, int C>
void tile_float(const uint8_t* const* wr, const uint8_t* const* ar, int64_t n, float* const* out) {
  using T = typename W::T;
  const T* w[R];
  const float* a[C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const T*>(wr[r]);
  BATON_UNROLL
  for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const float*>(ar[c]);
  float32x4_t acc0[R][C], acc1[R][C];
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) acc0[r][c] = acc1[r][c] = vdupq_n_f32(0.0f);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    float32x4_t w0[R], w1[R];
    BATON_UNROLL
    for (int r = 0; r < R; ++r) W::load8(w[r] + k, w0[r], w1[r]);
    BATON_UNROLL
    for (int c = 0; c < C; ++c) {
      const float32x4_t x0 = vld1q_f32(a[c] + k), x1 = vld1q_f32(a[c] + k + 4);
      BATON_UNROLL
      for (int r = 0; r < R; ++r) {
        acc0[r][c] = vfmaq_f32(acc0[r][c], w0[r], x0);
        acc1[r][c] = vfmaq_f32(acc1[r][c], w1[r], x1);
      }
    }
  }
  BATON_UNROLL
  for (int r = 0; r < R; ++r)
    BATON_UNROLL
    for (int c = 0; c < C; ++c) {
      float v = vaddvq_f32(vaddq_f32(acc0[r][c], acc1[r][c]));
      for (int64_t t = k; t < n; ++t) v += W::one(w[r] + t) * a[c][t];
      out[r][c] = v;
    }
}

// ---- the tiled driver (as in kernels_x86.inc) ---------------------------------------------------

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
    constexpr int RD = K<1, 1>::kDecodeRows;
    ar[0] = x;
    int64_t r = r0;
    for (; r + RD <= r1; r += RD) {
      for (int i = 0; i < RD; ++i) wr[i] = row_ptr(w, r + i);
      K<RD, 1>::run(wr, ar, inner, out);
      store(r, 0, RD, 1);
    }
    for (; r < r1; ++r) {
      wr[0] = row_ptr(w, r);
      K<1, 1>::run(wr, ar, inner, out);
      store(r, 0, 1, 1);
    }
    return;
  }
  constexpr int TR = K<1, 1>::kTileRows, TC = K<1, 1>::kTileCols;
  for (int64_t b0 = 0; b0 < batch; b0 += kColChunk) {
    const int64_t b1 = std::min(batch, b0 + kColChunk);
    int64_t r = r0;
    for (; r + TR <= r1; r += TR) {
      for (int i = 0; i < TR; ++i) wr[i] = row_ptr(w, r + i);
      int64_t b = b0;
      for (; b + TC <= b1; b += TC) {
        for (int j = 0; j < TC; ++j) ar[j] = x + (b + j) * xs;
        K<TR, TC>::run(wr, ar, inner, out);
        store(r, b, TR, TC);
      }
      for (; b < b1; ++b) {
        ar[0] = x + b * xs;
        K<TR, 1>::run(wr, ar, inner, out);
        store(r, b, TR, 1);
      }
    }
    for (; r < r1; ++r) {
      wr[0] = row_ptr(w, r);
      int64_t b = b0;
      for (; b + TC <= b1; b += TC) {
        for (int j = 0; j < TC; ++j) ar[j] = x + (b + j) * xs;
        K<1, TC>::run(wr, ar, inner, out);
        store(r, b, 1, TC);
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
  static constexpr int kDecodeRows = 4, kTileRows = 4, kTileCols = 4;
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_32<Q8_0W, R, C>(w, a, n, o); }
};
template <int R, int C>
struct KQ4_0 {
  static constexpr int kDecodeRows = 4, kTileRows = 4, kTileCols = 4;
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_32<Q4_0W, R, C>(w, a, n, o); }
};
template <int R, int C>
struct KQ4_K {
  static constexpr int kDecodeRows = 2, kTileRows = 2, kTileCols = 4;
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_q4_K<R, C>(w, a, n, o); }
};
template <int R, int C>
struct KQ6_K {
  static constexpr int kDecodeRows = 2, kTileRows = 2, kTileCols = 4;
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_q6_K<R, C>(w, a, n, o); }
};
template <int R, int C>
struct KF32 {
  static constexpr int kDecodeRows = 4, kTileRows = 4, kTileCols = 4;
  static void run(const uint8_t* const* w, const uint8_t* const* a, int64_t n, float* const* o) { tile_float<F32W, R, C>(w, a, n, o); }
};
template <int R, int C>
struct KF16 {
  static constexpr int kDecodeRows = 4, kTileRows = 4, kTileCols = 4;
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

// 8 floats * s rounded to nearest even (like the scalar nearbyint), narrowed to int8.
inline int8x8_t round_pack_8(const float* x, float s) {
  const int32x4_t i0 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x), s));
  const int32x4_t i1 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4), s));
  return vqmovn_s16(vcombine_s16(vqmovn_s32(i0), vqmovn_s32(i1)));
}

inline float absmax(const float* x, int n) {
  float32x4_t m = vdupq_n_f32(0.0f);
  for (int j = 0; j < n; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
  return vmaxvq_f32(m);
}

void quantize_q8_0(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<block_q8_0*>(vy);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float* xb = x + i * QK8_0;
    const float amax = absmax(xb, QK8_0);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f2h(d);
    for (int j = 0; j < QK8_0; j += 8) vst1_s8(y[i].qs + j, round_pack_8(xb + j, id));
  }
}

void quantize_q8_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<block_q8_K*>(vy);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float* xb = x + i * QK_K;
    const float amax = absmax(xb, QK_K);
    const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[i].d = amax != 0.0f ? amax / 127.0f : 0.0f;
    for (int j = 0; j < QK_K; j += 8) vst1_s8(y[i].qs + j, round_pack_8(xb + j, iscale));
    for (int g = 0; g < QK_K / 16; ++g) y[i].bsums[g] = static_cast<int16_t>(vaddlvq_s8(vld1q_s8(y[i].qs + 16 * g)));
  }
}

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(x + i));
    vst1q_f32(y + i, vcvt_f32_f16(vget_low_f16(h)));
    vst1q_f32(y + i + 4, vcvt_high_f32_f16(h));
  }
  for (; i < n; ++i) y[i] = h2f(x[i]);
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
    vst1q_u16(y + i, vreinterpretq_u16_f16(h));
  }
  for (; i < n; ++i) y[i] = f2h(x[i]);
}

const KernelSet kNeon = {
    "neon", gemm_f32, gemm_f16, gemm_q8_0, gemm_q4_0, gemm_q4_K, gemm_q6_K, quantize_q8_0, quantize_q8_K,
    f16_to_f32_row, f32_to_f16_row,
};

}  // namespace

const KernelSet* neon_kernels() { return &kNeon; }

}  // namespace kern
}  // namespace baton

#else  // not arm64

namespace baton {
namespace kern {
const KernelSet* neon_kernels() { return nullptr; }
}  // namespace kern
}  // namespace baton

#endif
