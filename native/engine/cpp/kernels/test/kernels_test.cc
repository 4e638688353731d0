// Kernel test: every kernel set this CPU runs (the best one chosen at run time, and the scalar
// reference) against plain double-precision dot products of dequantized values, for every weight
// type, several shapes, batches 1..17 and 1..3 threads. Prints one line per failure and a
// summary; exits 1 if anything failed.
//
// Tolerances (per output y = sum_i w_i x_i, with S = sum_i |w_i x_i|):
//  - scalar vs double dot of dequantized weights and the *quantized* activations the kernel saw:
//    |diff| <= 1e-5 * S + 1e-6 (only float summation order differs; integer sums are exact);
//  - scalar vs double dot with the original f32 activations: |diff| <= sum_i |w_i| * e_i
//    + 1e-5 * S + 1e-6, where e_i bounds the activation quantization error of element i
//    (half a step of its block's scale, plus the f16 rounding of that scale for Q8_0);
//    F32/F16 weights: |diff| <= 1e-5 * S + 1e-6;
//  - best kernel set vs scalar, and every batch/thread combination vs batch 1 on 1 thread:
//    |diff| <= 2e-5 * S + 1e-6.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../kernels_impl.h"
#include "../thread_pool.h"

using namespace baton;
using namespace baton::kern;

namespace {

int g_checks = 0;
int g_failures = 0;

void fail(const std::string& what) {
  ++g_failures;
  if (g_failures <= 40) std::printf("FAIL %s\n", what.c_str());
}

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) fail(what);
}

std::mt19937_64 rng(12345);

float randn() {
  static std::normal_distribution<float> nd(0.0f, 1.0f);
  return nd(rng);
}
int randi(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
float randu(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t cols) {
  const size_t rb = row_bytes(t, cols);
  std::vector<uint8_t> buf(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = buf.data() + r * rb;
    switch (t) {
      case DType::F32:
        for (int64_t c = 0; c < cols; ++c) reinterpret_cast<float*>(row)[c] = randn() * 0.05f;
        break;
      case DType::F16:
        for (int64_t c = 0; c < cols; ++c) reinterpret_cast<uint16_t*>(row)[c] = f32_to_f16(randn() * 0.05f);
        break;
      case DType::Q8_0: {
        auto* b = reinterpret_cast<block_q8_0*>(row);
        for (int64_t i = 0; i < cols / 32; ++i) {
          b[i].d = f32_to_f16(randu(1e-4f, 2e-3f));
          for (int j = 0; j < 32; ++j) b[i].qs[j] = static_cast<int8_t>(randi(-128, 127));
        }
        break;
      }
      case DType::Q4_0: {
        auto* b = reinterpret_cast<block_q4_0*>(row);
        for (int64_t i = 0; i < cols / 32; ++i) {
          b[i].d = f32_to_f16(randu(1e-3f, 2e-2f));
          for (int j = 0; j < 16; ++j) b[i].qs[j] = static_cast<uint8_t>(randi(0, 255));
        }
        break;
      }
      case DType::Q4_K: {
        auto* b = reinterpret_cast<block_q4_K*>(row);
        for (int64_t i = 0; i < cols / 256; ++i) {
          b[i].d = f32_to_f16(randu(1e-4f, 1e-3f));
          b[i].dmin = f32_to_f16(randu(1e-4f, 1e-3f));
          for (int j = 0; j < 12; ++j) b[i].scales[j] = static_cast<uint8_t>(randi(0, 255));
          for (int j = 0; j < 128; ++j) b[i].qs[j] = static_cast<uint8_t>(randi(0, 255));
        }
        break;
      }
      case DType::Q6_K: {
        auto* b = reinterpret_cast<block_q6_K*>(row);
        for (int64_t i = 0; i < cols / 256; ++i) {
          for (int j = 0; j < 128; ++j) b[i].ql[j] = static_cast<uint8_t>(randi(0, 255));
          for (int j = 0; j < 64; ++j) b[i].qh[j] = static_cast<uint8_t>(randi(0, 255));
          for (int j = 0; j < 16; ++j) b[i].scales[j] = static_cast<int8_t>(randi(-128, 127));
          b[i].d = f32_to_f16(randu(1e-5f, 1e-4f));
        }
        break;
      }
    }
  }
  return buf;
}

std::vector<float> random_activations(int64_t batch, int64_t cols) {
  std::vector<float> x(batch * cols);
  for (int64_t b = 0; b < batch; ++b) {
    const float scale = std::pow(10.0f, randu(-2.0f, 1.0f));
    for (int64_t c = 0; c < cols; ++c) x[b * cols + c] = randn() * scale;
    // an all-zero block (scale 0) and a block with one outlier
    if (cols >= 64) {
      for (int c = 0; c < 32; ++c) x[b * cols + c] = 0.0f;
      x[b * cols + 40] = 50.0f * scale;
    }
  }
  return x;
}

// Activations as the kernels see them (dequantized), and the per-element error bound e_i.
void quantized_view(DType t, const float* x, int64_t cols, std::vector<double>& xq, std::vector<double>& err) {
  xq.assign(cols, 0.0);
  err.assign(cols, 0.0);
  switch (act_format(t)) {
    case ActFormat::F32:
      for (int64_t c = 0; c < cols; ++c) xq[c] = x[c];
      return;
    case ActFormat::Q8_0: {
      std::vector<block_q8_0> q(cols / 32);
      quantize_row_q8_0_ref(x, q.data(), cols);
      for (int64_t i = 0; i < cols / 32; ++i) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[i * 32 + j]));
        const double d = amax / 127.0;
        for (int j = 0; j < 32; ++j) {
          xq[i * 32 + j] = static_cast<double>(f16_to_f32(q[i].d)) * q[i].qs[j];
          err[i * 32 + j] = d * (0.5 + 127.0 / 2048.0) * 1.0001;
        }
      }
      return;
    }
    case ActFormat::Q8_K: {
      std::vector<block_q8_K> q(cols / 256);
      quantize_row_q8_K_ref(x, q.data(), cols);
      for (int64_t i = 0; i < cols / 256; ++i) {
        for (int j = 0; j < 256; ++j) {
          xq[i * 256 + j] = static_cast<double>(q[i].d) * q[i].qs[j];
          err[i * 256 + j] = q[i].d * 0.5001;
        }
        int s[16] = {0};
        for (int j = 0; j < 256; ++j) s[j / 16] += q[i].qs[j];
        for (int g = 0; g < 16; ++g) check(s[g] == q[i].bsums[g], "q8_K bsums");
      }
      return;
    }
  }
}

std::string label(DType t, int64_t rows, int64_t cols, int64_t batch, int threads, const char* what) {
  char buf[400];
  std::snprintf(buf, sizeof buf, "%s %lldx%lld batch %lld threads %d: %s", dtype_name(t), static_cast<long long>(rows),
                static_cast<long long>(cols), static_cast<long long>(batch), threads, what);
  return buf;
}

void test_type(DType t, int64_t rows, int64_t cols, ThreadPool* pools[3]) {
  const std::vector<uint8_t> wbuf = random_weights(t, rows, cols);
  const Matrix w{t, rows, cols, wbuf.data(), row_bytes(t, cols)};
  const int64_t max_batch = 17;
  const std::vector<float> x = random_activations(max_batch, cols);

  // Double-precision references for every (batch row, weight row).
  std::vector<float> wd(rows * cols);
  for (int64_t r = 0; r < rows; ++r) dequantize_row_ref(t, wbuf.data() + r * w.row_stride, &wd[r * cols], cols);
  std::vector<double> ref_q(max_batch * rows), ref_x(max_batch * rows), mag(max_batch * rows), bound(max_batch * rows);
  std::vector<double> xq, err;
  for (int64_t b = 0; b < max_batch; ++b) {
    quantized_view(t, &x[b * cols], cols, xq, err);
    for (int64_t r = 0; r < rows; ++r) {
      double sq = 0, sx = 0, m = 0, e = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double wv = wd[r * cols + c];
        sq += wv * xq[c];
        sx += wv * x[b * cols + c];
        m += std::fabs(wv * xq[c]);
        e += std::fabs(wv) * err[c];
      }
      ref_q[b * rows + r] = sq;
      ref_x[b * rows + r] = sx;
      mag[b * rows + r] = m;
      bound[b * rows + r] = e;
    }
  }

  // The public dequantize_row against the reference.
  {
    std::vector<float> d(cols);
    for (int64_t r = 0; r < rows; r += std::max<int64_t>(1, rows / 3)) {
      dequantize_row(w, r, d.data());
      bool ok = std::memcmp(d.data(), &wd[r * cols], cols * sizeof(float)) == 0;
      check(ok, label(t, rows, cols, 1, 1, "dequantize_row"));
    }
  }

  std::vector<float> scalar1(max_batch * rows);
  const int64_t batches[] = {1, 2, 3, 4, 5, 7, 8, 16, 17};
  const KernelSet* sets[8];
  const int nsets = available_kernel_sets(sets, 8);
  for (int set = 0; set < nsets; ++set) {
    force_kernel_set(sets[set]);
    const std::string setname = sets[set]->detail;
    std::vector<float> base(max_batch * rows);
    // batch 1 on 1 thread, row by row of x
    for (int64_t b = 0; b < max_batch; ++b) matmul(w, &x[b * cols], 1, &base[b * rows], nullptr);
    for (int64_t b = 0; b < max_batch; ++b) {
      for (int64_t r = 0; r < rows; ++r) {
        const double v = base[b * rows + r], i = b * rows + r;
        const double m = mag[i];
        if (set == 0) {
          if (std::fabs(v - ref_q[i]) > 1e-5 * m + 1e-6) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "scalar vs double(quantized x) row %lld: %.9g vs %.9g", (long long)r, v, ref_q[i]);
            fail(label(t, rows, cols, 1, 1, buf));
          }
          if (std::fabs(v - ref_x[i]) > bound[i] + 1e-5 * m + 1e-6) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "scalar vs double(f32 x) row %lld: %.9g vs %.9g (bound %.3g)", (long long)r, v, ref_x[i],
                          bound[i]);
            fail(label(t, rows, cols, 1, 1, buf));
          }
          g_checks += 2;
        } else {
          if (std::fabs(v - scalar1[i]) > 2e-5 * m + 1e-6) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "%s vs scalar row %lld: %.9g vs %.9g", setname.c_str(), (long long)r, v, scalar1[i]);
            fail(label(t, rows, cols, 1, 1, buf));
          }
          ++g_checks;
        }
      }
    }
    if (set == 0) scalar1 = base;
    // batches and threads against batch 1
    std::vector<float> y(max_batch * rows);
    for (int64_t batch : batches) {
      for (int th = 1; th <= 3; ++th) {
        if (set == 0 && th > 1 && batch > 4) continue;  // the scalar set is slow; threading is tested on small batches
        std::fill(y.begin(), y.end(), NAN);
        matmul(w, x.data(), batch, y.data(), th == 1 ? nullptr : pools[th - 1]);
        bool ok = true;
        int64_t bad = -1;
        for (int64_t i = 0; i < batch * rows && ok; ++i) {
          if (!(std::fabs(y[i] - base[i]) <= 2e-5 * mag[i] + 1e-6)) {
            ok = false;
            bad = i;
          }
        }
        char buf[200];
        if (!ok)
          std::snprintf(buf, sizeof buf, "%s batched vs batch 1 at [%lld][%lld]: %.9g vs %.9g", setname.c_str(),
                        (long long)(bad / rows), (long long)(bad % rows), y[bad], base[bad]);
        check(ok, label(t, rows, cols, batch, th, ok ? "" : buf));
      }
    }
  }
  force_kernel_set(nullptr);
}

void test_f16() {
  // Every half round-trips through float; float -> half rounds to nearest even.
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      if (((h >> 10) & 0x1f) != 0x1f || (h & 0x3ff) == 0) ++bad;
      continue;
    }
    if (f32_to_f16(f) != h) ++bad;
    // the midpoint to the next half rounds to even
    if ((h & 0x7fff) < 0x7bff) {
      const float g = f16_to_f32(static_cast<uint16_t>(h + 1));
      if (!std::isinf(g) && (h & 0x8000) == 0) {
        const float mid = static_cast<float>((static_cast<double>(f) + g) / 2);
        const uint16_t want = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
        if (f32_to_f16(mid) != want) ++bad;
      }
    }
  }
  check(bad == 0, "f16 round trip and round-to-nearest-even (" + std::to_string(bad) + " bad)");
  check(f32_to_f16(1e6f) == 0x7c00 && f32_to_f16(-1e6f) == 0xfc00 && f32_to_f16(65519.0f) == 0x7bff, "f16 overflow");
  check(f32_to_f16(1e-10f) == 0 && f16_to_f32(1) == std::ldexp(1.0f, -24), "f16 subnormals");

  // Each set's row converters agree with the scalar ones.
  const KernelSet* sets[8];
  const int nsets = available_kernel_sets(sets, 8);
  for (int set = 0; set < nsets; ++set) {
  force_kernel_set(sets[set]);
  std::vector<float> xs(1003), back(1003), back2(1003);
  for (auto& v : xs) v = randn() * std::pow(10.0f, randu(-6.0f, 5.0f));
  xs[0] = 0.0f;
  xs[1] = -0.0f;
  xs[2] = 70000.0f;
  xs[3] = INFINITY;
  std::vector<uint16_t> h(1003), hs(1003);
  f32_to_f16_row(xs.data(), h.data(), 1003);
  for (int i = 0; i < 1003; ++i) hs[i] = f32_to_f16(xs[i]);
  check(h == hs, std::string("f32_to_f16_row (") + kernels_detail() + ") vs scalar");
  f16_to_f32_row(h.data(), back.data(), 1003);
  for (int i = 0; i < 1003; ++i) back2[i] = f16_to_f32(h[i]);
  check(std::memcmp(back.data(), back2.data(), 1003 * 4) == 0, std::string("f16_to_f32_row (") + kernels_detail() + ") vs scalar");

  // quantize_row_q8_0 of the active set is byte-identical to the reference.
  std::vector<float> x = random_activations(1, 1024);
  std::vector<block_q8_0> a(32), b(32);
  quantize_row_q8_0(x.data(), a.data(), 1024);
  quantize_row_q8_0_ref(x.data(), b.data(), 1024);
  check(std::memcmp(a.data(), b.data(), sizeof(block_q8_0) * 32) == 0, std::string("quantize_row_q8_0 (") + kernels_detail() + ") vs reference");
  // and the Q8_K activation quantizer too
  std::vector<float> xk = random_activations(1, 1024);
  std::vector<block_q8_K> ka(4), kb(4);
  sets[set]->quantize_q8_K(xk.data(), ka.data(), 1024);
  quantize_row_q8_K_ref(xk.data(), kb.data(), 1024);
  check(std::memcmp(ka.data(), kb.data(), sizeof(block_q8_K) * 4) == 0, std::string("quantize_q8_K (") + kernels_detail() + ") vs reference");
  }
  force_kernel_set(nullptr);
}

// attn_scores_f16 / attn_values_f16 of every set against double precision over the same f16
// values: |diff| <= 1e-5 * S + 1e-6 with S = sum of |products|. Block slots past n hold NaN,
// which must never reach the output.
void test_attention() {
  const KernelSet* sets[8];
  const int nsets = available_kernel_sets(sets, 8);
  const int64_t block = 16;
  const int64_t hds[] = {64, 128, 16, 80, 6};
  const int64_t ns[] = {1, 15, 16, 17, 100};
  const int64_t rowss[] = {1, 4, 7};
  for (int64_t hd : hds) {
    for (int64_t n : ns) {
      for (int64_t rows : rowss) {
        const int64_t nb = (n + block - 1) / block;
        const size_t k_stride = static_cast<size_t>(hd) * 3 + 8;  // other heads' data between rows
        std::vector<uint16_t> kbuf(nb * block * k_stride), vbuf(nb * hd * block);
        for (auto& h : kbuf) h = f32_to_f16(randn());
        for (auto& h : vbuf) h = f32_to_f16(randn());
        std::vector<const uint16_t*> kb(nb), vb(nb);
        for (int64_t b = 0; b < nb; ++b) {
          kb[b] = kbuf.data() + b * block * k_stride;
          vb[b] = vbuf.data() + b * hd * block;
        }
        for (int64_t p = n; p < nb * block; ++p)
          for (int64_t d = 0; d < hd; ++d) vbuf[(p / block) * hd * block + d * block + p % block] = 0x7e00;  // NaN
        std::vector<float> q(rows * hd), w(rows * n), o0(rows * hd);
        for (auto& v : q) v = randn();
        for (auto& v : w) v = randu(0.0f, 1.0f);
        for (auto& v : o0) v = randn();
        std::vector<double> sref(rows * n), smag(rows * n), oref(rows * hd), omag(rows * hd);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t p = 0; p < n; ++p) {
            double a = 0, m = 0;
            for (int64_t d = 0; d < hd; ++d) {
              const double t = static_cast<double>(q[r * hd + d]) * f16_to_f32(kb[p / block][(p % block) * k_stride + d]);
              a += t;
              m += std::fabs(t);
            }
            sref[r * n + p] = a;
            smag[r * n + p] = m;
          }
          for (int64_t d = 0; d < hd; ++d) {
            double a = o0[r * hd + d], m = std::fabs(o0[r * hd + d]);
            for (int64_t p = 0; p < n; ++p) {
              const double t = static_cast<double>(w[r * n + p]) * f16_to_f32(vb[p / block][d * block + p % block]);
              a += t;
              m += std::fabs(t);
            }
            oref[r * hd + d] = a;
            omag[r * hd + d] = m;
          }
        }
        for (int set = 0; set < nsets; ++set) {
          force_kernel_set(sets[set]);
          char what[200];
          std::snprintf(what, sizeof what, "attention %s hd %lld n %lld rows %lld", sets[set]->detail, (long long)hd, (long long)n,
                        (long long)rows);
          std::vector<float> sc(rows * n + 1, -1.0f);
          attn_scores_f16(kb.data(), k_stride, block, n, q.data(), rows, hd, sc.data(), n);
          bool ok = sc[rows * n] == -1.0f;  // nothing written past the last row
          for (int64_t i = 0; i < rows * n; ++i) ok = ok && std::fabs(sc[i] - sref[i]) <= 1e-5 * smag[i] + 1e-6;
          check(ok, std::string(what) + ": scores");
          std::vector<float> o = o0;
          attn_values_f16(vb.data(), block, n, w.data(), n, rows, hd, o.data());
          ok = true;
          for (int64_t i = 0; i < rows * hd; ++i) ok = ok && std::fabs(o[i] - oref[i]) <= 1e-5 * omag[i] + 1e-6;
          check(ok, std::string(what) + ": values");
        }
        force_kernel_set(nullptr);
      }
    }
  }
}

// softmax_row and silu_mul_row of every set against double precision: each output within 2e-6
// of its magnitude (the vector exp is ~1 ulp; float sums of up to 1000 terms) + 1e-12.
void test_exp_rows() {
  const KernelSet* sets[8];
  const int nsets = available_kernel_sets(sets, 8);
  const int64_t ns[] = {1, 7, 8, 9, 33, 1000};
  for (int set = 0; set < nsets; ++set) {
    force_kernel_set(sets[set]);
    for (int64_t n : ns) {
      std::vector<float> x(n), b(n);
      for (auto& v : x) v = randn() * 8.0f;
      for (auto& v : b) v = randn();
      x[0] = -200.0f;  // far below the max: exp underflows towards 0
      const float scale = 0.125f;
      std::vector<double> ref(n);
      double m = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i) m = std::fmax(m, static_cast<double>(x[i] * scale));
      for (int64_t i = 0; i < n; ++i) sum += ref[i] = std::exp(static_cast<double>(x[i] * scale) - m);
      std::vector<float> y = x;
      softmax_row(y.data(), n, scale);
      bool ok = true;
      for (int64_t i = 0; i < n; ++i) ok = ok && std::fabs(y[i] - ref[i] / sum) <= 2e-6 * (ref[i] / sum) + 1e-12;
      check(ok, std::string("softmax_row (") + sets[set]->detail + ") n " + std::to_string(n));
      y = x;
      y[n - 1] = 100.0f;  // exp(-100) ~ 4e-44: silu(100) = 100
      silu_mul_row(y.data(), b.data(), n);
      ok = true;
      for (int64_t i = 0; i < n; ++i) {
        const double a = i == n - 1 ? 100.0 : x[i];
        const double want = a / (1.0 + std::exp(-a)) * b[i];
        ok = ok && std::fabs(y[i] - want) <= 2e-6 * std::fabs(want) + 1e-12;
      }
      check(ok, std::string("silu_mul_row (") + sets[set]->detail + ") n " + std::to_string(n));
    }
  }
  force_kernel_set(nullptr);
}

void test_pool() {
  for (int n = 1; n <= 4; ++n) {
    ThreadPool pool(n);
    check(pool.size() == n, "pool size");
    std::vector<int> hits(n, 0);
    for (int rep = 0; rep < 2000; ++rep) pool.run([&](int ith, int nth) {
        if (nth == n) hits[ith]++;
      });
    bool ok = true;
    for (int i = 0; i < n; ++i) ok = ok && hits[i] == 2000;
    check(ok, "pool runs every ith exactly once per run (" + std::to_string(n) + " threads)");
    bool threw = false;
    try {
      pool.run([](int ith, int) {
        if (ith == 0 || ith == 1) throw std::runtime_error("boom");
      });
    } catch (const std::runtime_error&) {
      threw = true;
    }
    check(threw, "pool rethrows a worker's exception");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const KernelSet* sets[8];
  const int nsets = available_kernel_sets(sets, 8);
  std::printf("kernels: %s (%s); testing", kernels_name(), kernels_detail());
  for (int i = 0; i < nsets; ++i) std::printf(" %s", sets[i]->detail);
  std::printf("\n");
  test_pool();
  test_f16();
  test_attention();
  test_exp_rows();
  ThreadPool p2(2), p3(3);
  ThreadPool* pools[3] = {nullptr, &p2, &p3};
  struct Shape {
    int64_t rows, cols;
  };
  const Shape small[] = {{1, 32}, {5, 96}, {33, 64}, {70, 160}};
  const Shape kshapes[] = {{1, 256}, {3, 512}, {37, 256}, {131, 768}};
  const DType types[] = {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K};
  for (DType t : types) {
    const bool k = block_elements(t) == 256;
    for (const Shape& s : (k ? kshapes : small)) test_type(t, s.rows, s.cols, pools);
    if (block_elements(t) == 1) {  // F32/F16 rows of any length (vector tails)
      test_type(t, 3, 37, pools);
      test_type(t, 50, 13, pools);
      test_type(t, 9, 1, pools);
    }
    if (!quick) test_type(t, 259, k ? 1024 : 1056, pools);
  }
  std::printf("kernels-test: %d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
