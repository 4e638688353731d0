// Scalar kernels: the portable fallback and the reference the SIMD kernels are tested against.
// Same algorithm as the SIMD sets (activations quantized to Q8_0 / Q8_K, integer dot products
// per block, one float multiply-add per block), so all sets agree up to float summation order.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels_impl.h"

namespace baton {
namespace kern {

void quantize_row_q8_0_ref(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<block_q8_0*>(vy);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float* xb = x + i * QK8_0;
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));
  }
}

void quantize_row_q8_K_ref(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<block_q8_K*>(vy);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float* xb = x + i * QK_K;
    float amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[i].d = amax != 0.0f ? amax / 127.0f : 0.0f;
    for (int j = 0; j < QK_K; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyint(xb[j] * iscale));
    for (int g = 0; g < QK_K / 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += y[i].qs[g * 16 + j];
      y[i].bsums[g] = static_cast<int16_t>(s);
    }
  }
}

void dequantize_row_ref(DType type, const void* row, float* y, int64_t cols) {
  switch (type) {
    case DType::F32:
      std::memcpy(y, row, static_cast<size_t>(cols) * sizeof(float));
      return;
    case DType::F16: {
      const auto* x = static_cast<const uint16_t*>(row);
      for (int64_t i = 0; i < cols; ++i) y[i] = f16_to_f32(x[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* x = static_cast<const block_q8_0*>(row);
      for (int64_t i = 0; i < cols / QK8_0; ++i) {
        const float d = f16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[i * QK8_0 + j] = d * x[i].qs[j];
      }
      return;
    }
    case DType::Q4_0: {
      const auto* x = static_cast<const block_q4_0*>(row);
      for (int64_t i = 0; i < cols / QK4_0; ++i) {
        const float d = f16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
          y[i * QK4_0 + j] = d * ((x[i].qs[j] & 0x0F) - 8);
          y[i * QK4_0 + j + 16] = d * ((x[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::Q4_K: {
      const auto* x = static_cast<const block_q4_K*>(row);
      for (int64_t i = 0; i < cols / QK_K; ++i) {
        const float d = f16_to_f32(x[i].d);
        const float dmin = f16_to_f32(x[i].dmin);
        const uint8_t* q = x[i].qs;
        float* yb = y + i * QK_K;
        for (int c = 0; c < 4; ++c) {
          uint8_t sc, m;
          get_scale_min_k4(2 * c, x[i].scales, &sc, &m);
          const float d1 = d * sc, m1 = dmin * m;
          get_scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
          const float d2 = d * sc, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) yb[64 * c + l] = d1 * (q[32 * c + l] & 0xF) - m1;
          for (int l = 0; l < 32; ++l) yb[64 * c + 32 + l] = d2 * (q[32 * c + l] >> 4) - m2;
        }
      }
      return;
    }
    case DType::Q6_K: {
      const auto* x = static_cast<const block_q6_K*>(row);
      for (int64_t i = 0; i < cols / QK_K; ++i) {
        const float d = f16_to_f32(x[i].d);
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = x[i].ql + 64 * h;
          const uint8_t* qh = x[i].qh + 32 * h;
          const int8_t* sc = x[i].scales + 8 * h;
          float* yb = y + i * QK_K + 128 * h;
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            yb[l] = d * sc[is + 0] * q1;
            yb[l + 32] = d * sc[is + 2] * q2;
            yb[l + 64] = d * sc[is + 4] * q3;
            yb[l + 96] = d * sc[is + 6] * q4;
          }
        }
      }
      return;
    }
  }
}

void softmax_row_ref(float* x, int64_t n, float scale) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    x[i] *= scale;
    max = std::fmax(max, x[i]);
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul_row_ref(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] / (1.0f + std::exp(-a[i])) * b[i];
}

void attn_scores_f16_ref(const uint16_t* const* k_blocks, size_t k_stride, int64_t block, int64_t n, const float* q,
                         int64_t rows, int64_t hd, float* s, int64_t lds) {
  for (int64_t p = 0; p < n; ++p) {
    const uint16_t* k = k_blocks[p / block] + static_cast<size_t>(p % block) * k_stride;
    for (int64_t r = 0; r < rows; ++r) {
      const float* qr = q + r * hd;
      float acc = 0.0f;
      for (int64_t d = 0; d < hd; ++d) acc += qr[d] * f16_to_f32(k[d]);
      s[r * lds + p] = acc;
    }
  }
}

void attn_values_f16_ref(const uint16_t* const* vt_blocks, int64_t block, int64_t n, const float* w, int64_t ldw, int64_t rows,
                         int64_t hd, float* o) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < hd; ++d) {
      float acc = 0.0f;
      for (int64_t p = 0; p < n; ++p) acc += w[r * ldw + p] * f16_to_f32(vt_blocks[p / block][d * block + p % block]);
      o[r * hd + d] += acc;
    }
  }
}

namespace {

inline const uint8_t* row_ptr(const Matrix& w, int64_t r) {
  return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_stride;
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void gemm_f32(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y,
              int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const auto* wr = reinterpret_cast<const float*>(row_ptr(w, r));
    for (int64_t b = 0; b < batch; ++b) {
      const auto* x = reinterpret_cast<const float*>(static_cast<const uint8_t*>(xa) + b * xs);
      y[b * ldy + r] = dot_f32(wr, x, w.cols);
    }
  }
}

void gemm_f16(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y,
              int64_t ldy) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    const auto* wr = reinterpret_cast<const uint16_t*>(row_ptr(w, r));
    for (int64_t c = 0; c < w.cols; ++c) row[c] = f16_to_f32(wr[c]);
    for (int64_t b = 0; b < batch; ++b) {
      const auto* x = reinterpret_cast<const float*>(static_cast<const uint8_t*>(xa) + b * xs);
      y[b * ldy + r] = dot_f32(row.data(), x, w.cols);
    }
  }
}

float dot_q8_0(const block_q8_0* x, const block_q8_0* a, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int s = 0;
    for (int j = 0; j < QK8_0; ++j) s += x[i].qs[j] * a[i].qs[j];
    sum += static_cast<float>(s) * (f16_to_f32(x[i].d) * f16_to_f32(a[i].d));
  }
  return sum;
}

float dot_q4_0(const block_q4_0* x, const block_q8_0* a, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int s = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      s += ((x[i].qs[j] & 0x0F) - 8) * a[i].qs[j];
      s += ((x[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
    }
    sum += static_cast<float>(s) * (f16_to_f32(x[i].d) * f16_to_f32(a[i].d));
  }
  return sum;
}

float dot_q4_K(const block_q4_K* x, const block_q8_K* a, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0, summ = 0;
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      get_scale_min_k4(s, x[i].scales, &sc, &m);
      const uint8_t* q = x[i].qs + 32 * (s / 2);
      const int8_t* q8 = a[i].qs + 32 * s;
      const int shift = (s & 1) * 4;
      int p = 0;
      for (int l = 0; l < 32; ++l) p += ((q[l] >> shift) & 0xF) * q8[l];
      sumi += sc * p;
      summ += m * (a[i].bsums[2 * s] + a[i].bsums[2 * s + 1]);
    }
    sum += a[i].d * (f16_to_f32(x[i].d) * static_cast<float>(sumi) - f16_to_f32(x[i].dmin) * static_cast<float>(summ));
  }
  return sum;
}

float dot_q6_K(const block_q6_K* x, const block_q8_K* a, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[i].ql + 64 * h;
      const uint8_t* qh = x[i].qh + 32 * h;
      const int8_t* sc = x[i].scales + 8 * h;
      const int8_t* q8 = a[i].qs + 128 * h;
      int p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        p[is + 0] += (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * q8[l];
        p[is + 2] += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * q8[l + 32];
        p[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * q8[l + 64];
        p[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * q8[l + 96];
      }
      for (int g = 0; g < 8; ++g) sumi += sc[g] * p[g];
    }
    sum += a[i].d * f16_to_f32(x[i].d) * static_cast<float>(sumi);
  }
  return sum;
}

template <typename WB, typename AB, float (*DOT)(const WB*, const AB*, int64_t), int QK>
void gemm_blocks(const Matrix& w, int64_t r0, int64_t r1, const void* xa, size_t xs, int64_t batch, float* y,
                 int64_t ldy) {
  const int64_t nb = w.cols / QK;
  for (int64_t r = r0; r < r1; ++r) {
    const auto* wr = reinterpret_cast<const WB*>(row_ptr(w, r));
    for (int64_t b = 0; b < batch; ++b) {
      const auto* a = reinterpret_cast<const AB*>(static_cast<const uint8_t*>(xa) + b * xs);
      y[b * ldy + r] = DOT(wr, a, nb);
    }
  }
}

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(x[i]);
}
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

const KernelSet kScalar = {
    "scalar",
    "scalar",
    gemm_f32,
    gemm_f16,
    gemm_blocks<block_q8_0, block_q8_0, dot_q8_0, QK8_0>,
    gemm_blocks<block_q4_0, block_q8_0, dot_q4_0, QK4_0>,
    gemm_blocks<block_q4_K, block_q8_K, dot_q4_K, QK_K>,
    gemm_blocks<block_q6_K, block_q8_K, dot_q6_K, QK_K>,
    quantize_row_q8_0_ref,
    quantize_row_q8_K_ref,
    f16_to_f32_row,
    f32_to_f16_row,
};

}  // namespace

const KernelSet* scalar_kernels() { return &kScalar; }

}  // namespace kern
}  // namespace baton
