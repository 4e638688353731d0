// Layer-range forward pass for llama / qwen2 / qwen3 (see engine.h). The math follows
// llama.cpp's graphs so that an F32 model with an F32 KV cache agrees with it to float rounding:
//   x = embed(token)                                    (first stage)
//   per layer: h = x + Wo · attention(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
//              x = h + Wdown · (silu(Wgate·n(h)) * Wup·n(h))
//   logits = Wout · n(x)                                (last stage)
// with n() an RMS norm, qwen2's Q/K/V biases and qwen3's per-head Q/K norms.
#include "engine.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <unordered_set>

namespace baton {

namespace {

constexpr int64_t kQueryRows = 64;    // query rows (tokens × heads of a KV group) per attention matmul
constexpr int64_t kHeadRows = 16;     // rows per output-head matmul when sampling
constexpr uint32_t kMeasureSequence = 0xffffffffu;

// ggml_rms_norm followed by ggml_mul: the sum in double, the scale in float.
void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * weight[i];
}

// ggml_rope (ext_factor 0, attn_factor 1) on one head: adjacent pairs (llama) or halves (neox).
void rope(float* head, int64_t n_rot, int64_t position, float base, float freq_scale, const float* freq_factors, bool neox) {
  const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
  float theta = static_cast<float>(position);
  for (int64_t i0 = 0; i0 < n_rot; i0 += 2) {
    const float ff = freq_factors != nullptr ? freq_factors[i0 / 2] : 1.0f;
    const float angle = freq_scale * (theta / ff);
    const float c = std::cos(angle), s = std::sin(angle);
    const int64_t a = neox ? i0 / 2 : i0;
    const int64_t b = neox ? i0 / 2 + n_rot / 2 : i0 + 1;
    const float x0 = head[a], x1 = head[b];
    head[a] = x0 * c - x1 * s;
    head[b] = x0 * s + x1 * c;
    theta *= theta_scale;
  }
}

std::string layer_name(int layer, const char* suffix) { return "blk." + std::to_string(layer) + "." + suffix; }

bool read_u64(const GgufFile& f, const std::string& key, uint64_t lo, uint64_t hi, uint64_t* out, std::string* error, bool required = true,
              uint64_t fallback = 0) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) {
    if (required) {
      *error = "missing metadata " + key + "; the file is not a complete model";
      return false;
    }
    *out = fallback;
    return true;
  }
  if (v->type == GgufType::ARRAY) {
    *error = "metadata " + key + " is a per-layer array; Baton supports one value for all layers";
    return false;
  }
  if (!f.get_u64(key, out, error)) return false;
  if (*out < lo || *out > hi) {
    *error = "metadata " + key + " = " + std::to_string(*out) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return false;
  }
  return true;
}

bool read_f32(const GgufFile& f, const std::string& key, float fallback, float* out, std::string* error) {
  if (f.find(key) == nullptr) {
    *out = fallback;
    return true;
  }
  double d = 0;
  if (!f.get_f64(key, &d, error)) return false;
  if (!std::isfinite(d)) {
    *error = "metadata " + key + " is not finite";
    return false;
  }
  *out = static_cast<float>(d);
  return true;
}

bool read_config(const GgufFile& f, ModelConfig* c, std::string* error) {
  if (!f.get_string("general.architecture", &c->arch_name, error)) return false;
  if (c->arch_name == "llama") c->arch = Arch::LLAMA;
  else if (c->arch_name == "qwen2") c->arch = Arch::QWEN2;
  else if (c->arch_name == "qwen3") c->arch = Arch::QWEN3;
  else {
    *error = "architecture \"" + c->arch_name + "\" is not supported (Baton runs llama, qwen2 and qwen3 models)";
    return false;
  }
  const std::string p = c->arch_name + ".";
  uint64_t v = 0;
  if (!read_u64(f, p + "block_count", 1, 4096, &v, error)) return false;
  c->n_layers = static_cast<int>(v);
  if (!read_u64(f, p + "embedding_length", 1, 1 << 18, &v, error)) return false;
  c->n_embd = static_cast<int64_t>(v);
  if (!read_u64(f, p + "feed_forward_length", 1, 1 << 20, &v, error)) return false;
  c->n_ff = static_cast<int64_t>(v);
  if (!read_u64(f, p + "attention.head_count", 1, 4096, &v, error)) return false;
  c->n_head = static_cast<int>(v);
  if (!read_u64(f, p + "attention.head_count_kv", 1, 4096, &v, error, false, c->n_head)) return false;
  c->n_head_kv = static_cast<int>(v);
  if (c->n_head % c->n_head_kv != 0) {
    *error = "attention.head_count " + std::to_string(c->n_head) + " is not a multiple of head_count_kv " + std::to_string(c->n_head_kv);
    return false;
  }
  if (!read_u64(f, p + "attention.key_length", 2, 4096, &v, error, false, c->n_embd / c->n_head)) return false;
  c->head_dim = static_cast<int64_t>(v);
  uint64_t value_length = 0;
  if (!read_u64(f, p + "attention.value_length", 1, 4096, &value_length, error, false, c->head_dim)) return false;
  if (static_cast<int64_t>(value_length) != c->head_dim) {
    *error = "attention.value_length differs from key_length; Baton supports equal key and value head sizes";
    return false;
  }
  if (c->head_dim < 2 || c->head_dim % 2 != 0) {
    *error = "head size " + std::to_string(c->head_dim) + " must be even and at least 2";
    return false;
  }
  if (!read_u64(f, p + "rope.dimension_count", 2, static_cast<uint64_t>(c->head_dim), &v, error, false, c->head_dim)) return false;
  c->n_rot = static_cast<int64_t>(v);
  if (c->n_rot % 2 != 0) {
    *error = "rope.dimension_count must be even";
    return false;
  }
  if (!read_u64(f, p + "context_length", 1, 1u << 24, &v, error, false, 4096)) return false;
  c->context_length = static_cast<int64_t>(v);
  if (!read_f32(f, p + "attention.layer_norm_rms_epsilon", 1e-5f, &c->rms_eps, error)) return false;
  if (!read_f32(f, p + "rope.freq_base", 10000.0f, &c->rope_base, error)) return false;
  if (c->rms_eps < 0 || c->rope_base <= 0) {
    *error = "rms epsilon must be >= 0 and rope.freq_base > 0";
    return false;
  }
  std::string scaling = "none";
  if (f.find(p + "rope.scaling.type") != nullptr && !f.get_string(p + "rope.scaling.type", &scaling, error)) return false;
  if (scaling == "linear") {
    float factor = 1.0f;
    if (!read_f32(f, p + "rope.scaling.factor", 1.0f, &factor, error)) return false;
    if (factor <= 0) {
      *error = "rope.scaling.factor must be positive";
      return false;
    }
    c->rope_freq_scale = 1.0f / factor;
  } else if (scaling != "none" && !scaling.empty()) {
    *error = "rope scaling \"" + scaling + "\" is not supported (none and linear are)";
    return false;
  }
  c->rope_neox = c->arch != Arch::LLAMA;
  const GgufTensorInfo* embd = f.tensor("token_embd.weight");
  if (embd == nullptr) {
    *error = "tensor token_embd.weight is missing";
    return false;
  }
  if (embd->ne[0] != c->n_embd || embd->ne[1] < 1 || embd->ne[1] > (1 << 24)) {
    *error = "token_embd.weight has shape [" + std::to_string(embd->ne[0]) + ", " + std::to_string(embd->ne[1]) + "], expected [" +
             std::to_string(c->n_embd) + ", vocab]";
    return false;
  }
  c->n_vocab = embd->ne[1];
  c->tied_embeddings = f.tensor("output.weight") == nullptr;
  return true;
}

}  // namespace

Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::load(const EngineOptions& options, std::string* error) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  e->file_ = GgufFile::open(options.path, error);
  if (!e->file_) return nullptr;
  if (!read_config(*e->file_, &e->config_, error)) {
    *error = options.path + ": " + *error;
    return nullptr;
  }
  const ModelConfig& c = e->config_;
  e->layer_start_ = options.layer_start;
  e->layer_end_ = options.layer_end < 0 ? c.n_layers : options.layer_end;
  if (e->layer_start_ < 0 || e->layer_start_ >= e->layer_end_ || e->layer_end_ > c.n_layers) {
    *error = "layer range [" + std::to_string(e->layer_start_) + ", " + std::to_string(e->layer_end_) + ") is not inside the model's " +
             std::to_string(c.n_layers) + " layers";
    return nullptr;
  }
  if (options.threads < 1 || options.threads > 1024) {
    *error = "threads must be between 1 and 1024";
    return nullptr;
  }
  if (options.max_batch_tokens < 1 || options.max_batch_tokens > 65536) {
    *error = "max batch tokens must be between 1 and 65536";
    return nullptr;
  }
  int64_t kv_tokens = options.kv_tokens > 0 ? options.kv_tokens : std::min<int64_t>(c.context_length, 4096);
  int64_t max_context = options.max_context > 0 ? options.max_context : std::min<int64_t>(c.context_length, kv_tokens);
  if (max_context > kv_tokens) max_context = kv_tokens;
  e->options_.kv_tokens = kv_tokens;
  e->options_.max_context = max_context;
  if (options.kv_dtype == KvDType::Q8_0 && c.head_dim % 32 != 0) {
    *error = "a q8_0 KV cache needs a head size that is a multiple of 32 (this model's is " + std::to_string(c.head_dim) + "); use f16";
    return nullptr;
  }
  if (!e->load_weights(error)) {
    *error = options.path + ": " + *error;
    return nullptr;
  }
  const int64_t n_blocks = (kv_tokens + KvPool::kBlockTokens - 1) / KvPool::kBlockTokens;
  {
    // Refuse sizes this machine cannot hold before allocating (a hostile header can ask for any).
    const double kv_dim_d = static_cast<double>(c.n_head_kv) * static_cast<double>(c.head_dim);
    const double kv_bytes = static_cast<double>(n_blocks) * KvPool::kBlockTokens * 2.0 * (e->layer_end_ - e->layer_start_) * kv_dim_d *
                            (options.kv_dtype == KvDType::F32 ? 4.0 : 2.0);
    const double rows = static_cast<double>(options.max_batch_tokens);
    const double scratch = 4.0 * (rows * (3.0 * c.n_embd + 3.0 * c.n_head * c.head_dim + 2.0 * kv_dim_d + 2.0 * c.n_ff) + 16.0 * c.n_vocab +
                                  options.threads * (64.0 * max_context + c.head_dim * max_context));
    const double physical = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
    if (physical > 0 && kv_bytes + scratch > physical) {
      *error = "this engine would need " + std::to_string(static_cast<int64_t>(kv_bytes / 1048576)) + " MiB of KV cache and " +
               std::to_string(static_cast<int64_t>(scratch / 1048576)) + " MiB of scratch, more than this machine's " +
               std::to_string(static_cast<int64_t>(physical / 1048576)) + " MiB; lower kvTokens, maxContext or maxBatchTokens";
      return nullptr;
    }
  }
  if (!e->kv_.init(e->layer_end_ - e->layer_start_, c.n_head_kv * c.head_dim, options.kv_dtype, n_blocks, error)) return nullptr;

  const int64_t B = options.max_batch_tokens;
  const int64_t C = max_context;
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  try {
    e->x_.assign(B * c.n_embd, 0);
    e->xb_.assign(B * std::max(c.n_embd, q_dim), 0);
    e->xb2_.assign(B * c.n_embd, 0);
    e->q_.assign(B * q_dim, 0);
    e->att_.assign(B * q_dim, 0);
    e->k_.assign(B * kv_dim, 0);
    e->v_.assign(B * kv_dim, 0);
    e->hb_.assign(B * c.n_ff, 0);
    e->hb2_.assign(B * c.n_ff, 0);
    if (e->last_stage()) e->logits_.assign(kHeadRows * c.n_vocab, 0);
    e->row_position_.assign(B, 0);
    e->pool_ = std::make_unique<ThreadPool>(options.threads);
    e->attn_scratch_.resize(e->pool_->size());
    const bool gather_v = options.kv_dtype == KvDType::Q8_0;
    for (auto& s : e->attn_scratch_) {
      s.q.assign(kQueryRows * c.head_dim, 0);
      s.s.assign(kQueryRows * C, 0);
      s.o.assign(kQueryRows * c.head_dim, 0);
      s.part.assign(kQueryRows * (KvPool::kBlockTokens + c.head_dim), 0);
      if (gather_v) s.vt.assign(c.head_dim * C, 0);
      s.row.assign(c.head_dim, 0);
    }
  } catch (const std::bad_alloc&) {
    *error = "cannot allocate scratch for " + std::to_string(B) + " batch tokens and a " + std::to_string(C) +
             "-token context; lower maxBatchTokens or maxContext";
    return nullptr;
  }
  uint64_t floats = e->x_.size() + e->xb_.size() + e->xb2_.size() + e->q_.size() + e->att_.size() + e->k_.size() + e->v_.size() +
                    e->hb_.size() + e->hb2_.size() + e->logits_.size();
  for (const auto& s : e->attn_scratch_) floats += s.q.size() + s.s.size() + s.o.size() + s.part.size() + s.vt.size() + s.row.size();
  e->scratch_bytes_ = floats * sizeof(float);
  return e;
}

bool Engine::load_weights(std::string* error) {
  const ModelConfig& c = config_;
  const GgufFile& f = *file_;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, Matrix* out, bool streamed) -> bool {
    const GgufTensorInfo* t = f.tensor(name);
    if (t == nullptr) {
      *error = "tensor " + name + " is missing";
      return false;
    }
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1) {
      *error = "tensor " + name + " has shape [" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) + "], expected [" +
               std::to_string(cols) + ", " + std::to_string(rows) + "]";
      return false;
    }
    if (!dtype_supported(t->type)) {
      *error = "tensor " + name + " has type " + ggml_type_name(t->type) + ", which Baton does not run (F32, F16, Q8_0, Q4_0, Q4_K and Q6_K are supported)";
      return false;
    }
    const DType type = static_cast<DType>(t->type);
    const size_t stride = row_bytes(type, cols);
    if (stride == 0 || stride * static_cast<uint64_t>(rows) != t->bytes) {
      *error = "tensor " + name + " size does not match its shape";
      return false;
    }
    *out = Matrix{type, rows, cols, f.data() + t->offset, stride};
    mapped_ranges_.emplace_back(f.data() + t->offset, t->bytes);
    if (streamed) streamed_bytes_ += t->bytes;
    return true;
  };
  auto vector = [&](const std::string& name, int64_t n, std::vector<float>* out, bool optional) -> bool {
    const GgufTensorInfo* t = f.tensor(name);
    if (t == nullptr) {
      if (optional) return true;
      *error = "tensor " + name + " is missing";
      return false;
    }
    if (t->elements() != n || t->ne[0] != n) {
      *error = "tensor " + name + " has " + std::to_string(t->elements()) + " elements, expected " + std::to_string(n);
      return false;
    }
    if (!dtype_supported(t->type)) {
      *error = "tensor " + name + " has unsupported type " + ggml_type_name(t->type);
      return false;
    }
    const DType type = static_cast<DType>(t->type);
    const size_t stride = row_bytes(type, n);
    if (stride == 0 || stride != t->bytes) {
      *error = "tensor " + name + " size does not match its shape";
      return false;
    }
    out->assign(n, 0);
    dequantize_row(Matrix{type, 1, n, f.data() + t->offset, stride}, 0, out->data());
    for (float x : *out) {
      if (!std::isfinite(x)) {
        *error = "tensor " + name + " holds a non-finite value";
        return false;
      }
    }
    streamed_bytes_ += t->bytes;
    return true;
  };
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  if (first_stage() || (last_stage() && c.tied_embeddings)) {
    if (!matrix("token_embd.weight", c.n_vocab, c.n_embd, &token_embd_, false)) return false;
  }
  if (!vector("rope_freqs.weight", c.n_rot / 2, &rope_freqs_, true)) return false;
  for (int l = layer_start_; l < layer_end_; ++l) {
    LayerWeights w;
    if (!vector(layer_name(l, "attn_norm.weight"), c.n_embd, &w.attn_norm, false)) return false;
    if (!matrix(layer_name(l, "attn_q.weight"), q_dim, c.n_embd, &w.wq, true)) return false;
    if (!matrix(layer_name(l, "attn_k.weight"), kv_dim, c.n_embd, &w.wk, true)) return false;
    if (!matrix(layer_name(l, "attn_v.weight"), kv_dim, c.n_embd, &w.wv, true)) return false;
    if (!matrix(layer_name(l, "attn_output.weight"), c.n_embd, q_dim, &w.wo, true)) return false;
    const bool biases = c.arch == Arch::QWEN2;
    if (!vector(layer_name(l, "attn_q.bias"), q_dim, &w.bq, !biases)) return false;
    if (!vector(layer_name(l, "attn_k.bias"), kv_dim, &w.bk, !biases)) return false;
    if (!vector(layer_name(l, "attn_v.bias"), kv_dim, &w.bv, !biases)) return false;
    const bool qk_norm = c.arch == Arch::QWEN3;
    if (!vector(layer_name(l, "attn_q_norm.weight"), c.head_dim, &w.q_norm, !qk_norm)) return false;
    if (!vector(layer_name(l, "attn_k_norm.weight"), c.head_dim, &w.k_norm, !qk_norm)) return false;
    if (!vector(layer_name(l, "ffn_norm.weight"), c.n_embd, &w.ffn_norm, false)) return false;
    if (!matrix(layer_name(l, "ffn_gate.weight"), c.n_ff, c.n_embd, &w.w_gate, true)) return false;
    if (!matrix(layer_name(l, "ffn_up.weight"), c.n_ff, c.n_embd, &w.w_up, true)) return false;
    if (!matrix(layer_name(l, "ffn_down.weight"), c.n_embd, c.n_ff, &w.w_down, true)) return false;
    layers_.push_back(std::move(w));
  }
  if (last_stage()) {
    if (!vector("output_norm.weight", c.n_embd, &output_norm_, false)) return false;
    if (c.tied_embeddings) {
      output_ = token_embd_;
      streamed_bytes_ += token_embd_.row_stride * token_embd_.rows;
    } else if (!matrix("output.weight", c.n_vocab, c.n_embd, &output_, true)) {
      return false;
    }
  }
  // Bring the range's pages in now (load time, not first-token time): advise, then touch.
  const long page = sysconf(_SC_PAGESIZE);
  volatile uint8_t sink = 0;
  for (const auto& [ptr, bytes] : mapped_ranges_) {
    uintptr_t begin = reinterpret_cast<uintptr_t>(ptr) / page * page;
    madvise(reinterpret_cast<void*>(begin), bytes + (reinterpret_cast<uintptr_t>(ptr) - begin), MADV_WILLNEED);
    for (uint64_t off = 0; off < bytes; off += page) sink = sink + ptr[off];
  }
  (void)sink;
  return true;
}

MemoryReport Engine::memory() const {
  MemoryReport r;
  const long page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec;
  for (const auto& [ptr, bytes] : mapped_ranges_) {
    r.weights_mapped_bytes += bytes;
    uintptr_t begin = reinterpret_cast<uintptr_t>(ptr) / page * page;
    uintptr_t end = reinterpret_cast<uintptr_t>(ptr) + bytes;
    size_t pages = (end - begin + page - 1) / page;
    vec.assign(pages, 0);
    if (mincore(reinterpret_cast<void*>(begin), end - begin, vec.data()) == 0) {
      uint64_t resident = 0;
      for (unsigned char v : vec) resident += (v & 1);
      r.weights_resident_bytes += std::min<uint64_t>(resident * page, bytes);
    }
  }
  r.kv_pool_bytes = kv_.pool_bytes();
  r.scratch_bytes = scratch_bytes_;
  r.file_bytes = file_->size();
  return r;
}

bool Engine::forward(const ForwardRequest& req, std::string* error) {
  const ModelConfig& c = config_;
  if (req.segments.empty()) {
    *error = "forward needs at least one sequence";
    return false;
  }
  if ((req.tokens == nullptr) == (req.hidden_in == nullptr)) {
    *error = "forward needs either token ids or hidden states as input";
    return false;
  }
  if (req.tokens != nullptr && !first_stage()) {
    *error = "token ids go to the first stage; this engine runs layers [" + std::to_string(layer_start_) + ", " + std::to_string(layer_end_) +
             ") and takes hidden states";
    return false;
  }
  if (req.output != OutputKind::HIDDEN && !last_stage()) {
    *error = "logits and sampling need the last stage; this engine ends at layer " + std::to_string(layer_end_) + " of " + std::to_string(c.n_layers);
    return false;
  }
  std::unordered_set<uint32_t> seen;
  int64_t total = 0;
  int64_t blocks = 0;
  for (const auto& s : req.segments) {
    if (!seen.insert(s.sequence_id).second) {
      *error = "sequence " + std::to_string(s.sequence_id) + " appears twice in one forward call";
      return false;
    }
    if (s.n_tokens < 1 || s.first_position < 0) {
      *error = "each sequence needs at least one token and a non-negative first position";
      return false;
    }
    if (s.first_position + s.n_tokens > options_.max_context) {
      *error = "sequence " + std::to_string(s.sequence_id) + " would reach position " + std::to_string(s.first_position + s.n_tokens) +
               ", past this engine's context of " + std::to_string(options_.max_context) + " tokens";
      return false;
    }
    int64_t need = kv_.blocks_needed(s.sequence_id, s.first_position, s.n_tokens, error);
    if (need < 0) return false;
    blocks += need;
    total += s.n_tokens;
  }
  if (blocks > kv_.blocks_free()) {
    *error = "KV pool out of blocks: this call needs " + std::to_string(blocks) + " more blocks of " + std::to_string(KvPool::kBlockTokens) +
             " tokens but " + std::to_string(kv_.blocks_free()) + " are free; free or truncate sequences, or load the engine with more KV tokens";
    return false;
  }
  if (req.tokens != nullptr) {
    for (int64_t r = 0; r < total; ++r) {
      if (req.tokens[r] < 0 || req.tokens[r] >= c.n_vocab) {
        *error = "token id " + std::to_string(req.tokens[r]) + " is outside the vocabulary [0, " + std::to_string(c.n_vocab) + ")";
        return false;
      }
    }
  }
  std::vector<int64_t> seg_row0(req.segments.size() + 1, 0);
  for (size_t i = 0; i < req.segments.size(); ++i) seg_row0[i + 1] = seg_row0[i] + req.segments[i].n_tokens;
  for (size_t i = 0; i < req.segments.size(); ++i) {
    const auto& s = req.segments[i];
    if (!kv_.begin_write(s.sequence_id, s.first_position, s.n_tokens, error)) return false;
    std::vector<int32_t>& known = *kv_.tokens(s.sequence_id);
    for (int64_t j = 0; j < s.n_tokens; ++j) {
      int32_t t = req.tokens != nullptr ? req.tokens[seg_row0[i] + j] : (req.history != nullptr ? req.history[seg_row0[i] + j] : -1);
      known[s.first_position + j] = t;
    }
    auto it = last_sampled_.find(s.sequence_id);
    if (it != last_sampled_.end() && it->second.first < s.first_position + s.n_tokens && it->second.first >= s.first_position &&
        known[it->second.first] < 0) {
      known[it->second.first] = it->second.second;
    }
  }
  for (int64_t r0 = 0; r0 < total; r0 += options_.max_batch_tokens) {
    run_chunk(req, seg_row0, r0, std::min(total, r0 + options_.max_batch_tokens));
  }
  if (req.output == OutputKind::SAMPLE) {
    for (size_t i = 0; i < req.segments.size(); ++i) {
      const auto& s = req.segments[i];
      last_sampled_[s.sequence_id] = {s.first_position + s.n_tokens, req.tokens_out[i]};
    }
  }
  return true;
}

void Engine::run_chunk(const ForwardRequest& req, const std::vector<int64_t>& seg_row0, int64_t r0, int64_t r1) {
  const ModelConfig& c = config_;
  const int64_t R = r1 - r0;
  const int64_t dim = c.n_embd, hd = c.head_dim;
  const int64_t q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;

  // Which rows of which sequences this chunk holds.
  std::vector<ChunkSegment> chunk;
  for (size_t i = 0; i < req.segments.size(); ++i) {
    const int64_t a = std::max(r0, seg_row0[i]), b = std::min(r1, seg_row0[i + 1]);
    if (a >= b) continue;
    ChunkSegment cs;
    cs.segment = i;
    cs.sequence_id = req.segments[i].sequence_id;
    cs.row_begin = a - r0;
    cs.n_rows = b - a;
    cs.first_position = req.segments[i].first_position + (a - seg_row0[i]);
    cs.ends_segment = b == seg_row0[i + 1];
    for (int64_t j = 0; j < cs.n_rows; ++j) row_position_[cs.row_begin + j] = cs.first_position + j;
    chunk.push_back(cs);
  }

  float* x = x_.data();
  if (req.tokens != nullptr) {
    for (int64_t r = 0; r < R; ++r) dequantize_row(token_embd_, req.tokens[r0 + r], x + r * dim);
  } else {
    std::memcpy(x, req.hidden_in + r0 * dim, sizeof(float) * R * dim);
  }

  ThreadPool* pool = pool_.get();
  for (size_t li = 0; li < layers_.size(); ++li) {
    const LayerWeights& w = layers_[li];
    // Attention.
    for (int64_t r = 0; r < R; ++r) rmsnorm(xb_.data() + r * dim, x + r * dim, w.attn_norm.data(), dim, c.rms_eps);
    matmul(w.wq, xb_.data(), R, q_.data(), pool);
    matmul(w.wk, xb_.data(), R, k_.data(), pool);
    matmul(w.wv, xb_.data(), R, v_.data(), pool);
    for (int64_t r = 0; r < R; ++r) {
      float* q = q_.data() + r * q_dim;
      float* k = k_.data() + r * kv_dim;
      float* v = v_.data() + r * kv_dim;
      if (!w.bq.empty()) {
        for (int64_t i = 0; i < q_dim; ++i) q[i] += w.bq[i];
        for (int64_t i = 0; i < kv_dim; ++i) k[i] += w.bk[i];
        for (int64_t i = 0; i < kv_dim; ++i) v[i] += w.bv[i];
      }
      if (!w.q_norm.empty()) {
        for (int h = 0; h < c.n_head; ++h) rmsnorm(q + h * hd, q + h * hd, w.q_norm.data(), hd, c.rms_eps);
        for (int h = 0; h < c.n_head_kv; ++h) rmsnorm(k + h * hd, k + h * hd, w.k_norm.data(), hd, c.rms_eps);
      }
      const int64_t pos = row_position_[r];
      const float* ff = rope_freqs_.empty() ? nullptr : rope_freqs_.data();
      for (int h = 0; h < c.n_head; ++h) rope(q + h * hd, c.n_rot, pos, c.rope_base, c.rope_freq_scale, ff, c.rope_neox);
      for (int h = 0; h < c.n_head_kv; ++h) rope(k + h * hd, c.n_rot, pos, c.rope_base, c.rope_freq_scale, ff, c.rope_neox);
    }
    for (const auto& cs : chunk) {
      for (int64_t j = 0; j < cs.n_rows; ++j) {
        const int64_t r = cs.row_begin + j;
        kv_.write(cs.sequence_id, static_cast<int>(li), cs.first_position + j, k_.data() + r * kv_dim, v_.data() + r * kv_dim);
      }
    }
    attention(static_cast<int>(li), chunk);
    matmul(w.wo, att_.data(), R, xb2_.data(), pool);
    for (int64_t i = 0; i < R * dim; ++i) x[i] += xb2_[i];
    // Feed-forward.
    for (int64_t r = 0; r < R; ++r) rmsnorm(xb_.data() + r * dim, x + r * dim, w.ffn_norm.data(), dim, c.rms_eps);
    matmul(w.w_gate, xb_.data(), R, hb_.data(), pool);
    matmul(w.w_up, xb_.data(), R, hb2_.data(), pool);
    silu_mul_row(hb_.data(), hb2_.data(), R * c.n_ff);
    matmul(w.w_down, hb_.data(), R, xb2_.data(), pool);
    for (int64_t i = 0; i < R * dim; ++i) x[i] += xb2_[i];
  }

  switch (req.output) {
    case OutputKind::HIDDEN:
      std::memcpy(req.hidden_out + r0 * dim, x, sizeof(float) * R * dim);
      break;
    case OutputKind::LOGITS_ALL:
      for (int64_t r = 0; r < R; ++r) rmsnorm(xb_.data() + r * dim, x + r * dim, output_norm_.data(), dim, c.rms_eps);
      matmul(output_, xb_.data(), R, req.logits_out + r0 * c.n_vocab, pool);
      break;
    case OutputKind::LOGITS_LAST:
    case OutputKind::SAMPLE: {
      // The sequences whose last row is in this chunk are consecutive: rows → head in groups.
      std::vector<const ChunkSegment*> ending;
      for (const auto& cs : chunk) if (cs.ends_segment) ending.push_back(&cs);
      for (size_t g = 0; g < ending.size(); g += kHeadRows) {
        const size_t n = std::min<size_t>(kHeadRows, ending.size() - g);
        for (size_t i = 0; i < n; ++i) {
          const ChunkSegment& cs = *ending[g + i];
          const int64_t r = cs.row_begin + cs.n_rows - 1;
          rmsnorm(xb_.data() + i * dim, x + r * dim, output_norm_.data(), dim, c.rms_eps);
        }
        if (req.output == OutputKind::LOGITS_LAST) {
          matmul(output_, xb_.data(), static_cast<int64_t>(n), req.logits_out + ending[g]->segment * c.n_vocab, pool);
          continue;
        }
        matmul(output_, xb_.data(), static_cast<int64_t>(n), logits_.data(), pool);
        for (size_t i = 0; i < n; ++i) {
          const ChunkSegment& cs = *ending[g + i];
          const ForwardSegment& seg = req.segments[cs.segment];
          const int64_t next_position = seg.first_position + seg.n_tokens;
          const std::vector<int32_t>& known = *kv_.tokens(cs.sequence_id);
          req.tokens_out[cs.segment] = sample_token(logits_.data() + i * c.n_vocab, c.n_vocab, seg.sampling, known.data(),
                                                    static_cast<int64_t>(known.size()), static_cast<uint64_t>(next_position), &sample_scratch_);
        }
      }
      break;
    }
  }
}

// Causal attention of the chunk's rows over their sequences' KV, read in place from the pool's
// blocks. One task per (sequence, KV head, block of query rows), spread over the pool:
//   S = K_g · q          f16 cache: attn_scores_f16 over all blocks; f32/q8_0: one kernel
//                        matmul per 16-position block of K rows
//   S = softmax(S · scale) with the causal mask (softmax_row)
//   O = Vᵀ_g · S         f32/f16 caches keep V transposed per block: f16 attn_values_f16 over
//                        all blocks, f32 one matmul per block; a q8_0 cache's V rows are
//                        dequantized and transposed first.
void Engine::attention(int li, const std::vector<ChunkSegment>& chunk) {
  const ModelConfig& c = config_;
  const int64_t hd = c.head_dim;
  const int group = c.n_head / c.n_head_kv;
  const int64_t q_dim = c.n_head * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const DType kv_type = kv_.row_type();
  const size_t kv_row_bytes = kv_.row_bytes();
  const size_t head_k_offset = row_bytes(kv_type, hd);                 // bytes of one head's slice of a K row
  const size_t elem_bytes = kv_type == DType::F32 ? 4 : 2;              // transposed V element (f32/f16)
  const int64_t tokens_per_block = std::max<int64_t>(1, kQueryRows / group);
  constexpr int64_t B = KvPool::kBlockTokens;

  struct Task {
    const ChunkSegment* cs;
    int g;
    int64_t j0;
  };
  std::vector<Task> tasks;
  for (const ChunkSegment& cs : chunk) {
    for (int64_t j0 = 0; j0 < cs.n_rows; j0 += tokens_per_block)
      for (int g = 0; g < c.n_head_kv; ++g) tasks.push_back({&cs, g, j0});
  }
  auto run = [&](const Task& task, AttentionScratch& s) {
    const ChunkSegment& cs = *task.cs;
    const int g = task.g;
    const int64_t j0 = task.j0;
    const int64_t nj = std::min(tokens_per_block, cs.n_rows - j0);
    const int64_t rows = nj * group;
    const int64_t Lb = cs.first_position + j0 + nj;  // keys [0, position of the last query]
    const int32_t* blocks = kv_.block_ids(cs.sequence_id);
    const int64_t n_blocks = (Lb + B - 1) / B;
    for (int64_t j = 0; j < nj; ++j) {
      const float* q = q_.data() + (cs.row_begin + j0 + j) * q_dim + static_cast<int64_t>(g) * group * hd;
      std::memcpy(s.q.data() + j * group * hd, q, sizeof(float) * group * hd);
    }
    // An F16 cache (the default) has kernels that walk the blocks themselves: no per-block
    // matmul calls, and V is summed in registers across blocks.
    const bool f16 = kv_type == DType::F16;
    if (f16) {
      s.kb.resize(n_blocks);
      s.vb.resize(n_blocks);
      for (int64_t b = 0; b < n_blocks; ++b) {
        s.kb[b] = reinterpret_cast<const uint16_t*>(kv_.part(blocks[b], li, 0) + g * head_k_offset);
        s.vb[b] = reinterpret_cast<const uint16_t*>(kv_.part(blocks[b], li, 1) + static_cast<size_t>(g) * hd * B * elem_bytes);
      }
      attn_scores_f16(s.kb.data(), kv_row_bytes / 2, B, Lb, s.q.data(), rows, hd, s.s.data(), Lb);
    } else {
      // Scores, block by block.
      for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t n = std::min(B, Lb - b * B);
        const uint8_t* k = kv_.part(blocks[b], li, 0) + g * head_k_offset;
        matmul(Matrix{kv_type, n, hd, k, kv_row_bytes}, s.q.data(), rows, s.part.data(), nullptr);
        for (int64_t r = 0; r < rows; ++r) std::memcpy(s.s.data() + r * Lb + b * B, s.part.data() + r * n, sizeof(float) * n);
      }
    }
    for (int64_t j = 0; j < nj; ++j) {
      const int64_t visible = cs.first_position + j0 + j + 1;  // keys [0, position]
      for (int h = 0; h < group; ++h) {
        float* row = s.s.data() + (j * group + h) * Lb;
        softmax_row(row, visible, scale);
        for (int64_t p = visible; p < Lb; ++p) row[p] = 0;
      }
    }
    if (f16) {
      std::fill(s.o.begin(), s.o.begin() + rows * hd, 0.0f);
      attn_values_f16(s.vb.data(), B, Lb, s.s.data(), Lb, rows, hd, s.o.data());
    } else if (kv_.v_transposed()) {
      std::fill(s.o.begin(), s.o.begin() + rows * hd, 0.0f);
      for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t n = std::min(B, Lb - b * B);
        float* weights = s.part.data();
        for (int64_t r = 0; r < rows; ++r) std::memcpy(weights + r * n, s.s.data() + r * Lb + b * B, sizeof(float) * n);
        const uint8_t* v = kv_.part(blocks[b], li, 1) + static_cast<size_t>(g) * hd * B * elem_bytes;
        float* out = s.part.data() + rows * B;  // after the weights
        matmul(Matrix{kv_type, hd, n, v, B * elem_bytes}, weights, rows, out, nullptr);
        for (int64_t i = 0; i < rows * hd; ++i) s.o[i] += out[i];
      }
    } else {
      for (int64_t p = 0; p < Lb; ++p) {
        const uint8_t* v = kv_.part(blocks[p / B], li, 1) + (p % B) * kv_row_bytes + g * head_k_offset;
        dequantize_row(Matrix{kv_type, 1, hd, v, head_k_offset}, 0, s.row.data());
        for (int64_t d = 0; d < hd; ++d) s.vt[d * Lb + p] = s.row[d];
      }
      matmul(Matrix{DType::F32, hd, Lb, s.vt.data(), static_cast<size_t>(Lb) * 4}, s.s.data(), rows, s.o.data(), nullptr);
    }
    for (int64_t j = 0; j < nj; ++j) {
      float* out = att_.data() + (cs.row_begin + j0 + j) * q_dim + static_cast<int64_t>(g) * group * hd;
      std::memcpy(out, s.o.data() + j * group * hd, sizeof(float) * group * hd);
    }
  };
  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  pool_->run([&](int ith, int nth) {
    for (int64_t t = ith; t < n_tasks; t += nth) run(tasks[t], attn_scratch_[ith]);
  });
}

bool Engine::measure_decode(int steps, double* bytes_per_sec, double* seconds_per_token, std::string* error) {
  if (steps < 1) steps = 1;
  if (kv_.exists(kMeasureSequence)) kv_.free(kMeasureSequence, error);
  const int64_t dim = config_.n_embd;
  std::vector<float> hidden(dim), out(dim);
  for (int64_t i = 0; i < dim; ++i) hidden[i] = 0.01f * static_cast<float>((i * 7919) % 201 - 100);
  int32_t token = 1 % static_cast<int32_t>(config_.n_vocab);
  int32_t sampled = 0;
  std::vector<double> times;
  bool ok = true;
  for (int step = 0; step <= steps && ok; ++step) {
    ForwardRequest req;
    ForwardSegment seg;
    seg.sequence_id = kMeasureSequence;
    seg.first_position = step;
    seg.n_tokens = 1;
    req.segments.push_back(seg);
    if (first_stage()) req.tokens = &token;
    else req.hidden_in = hidden.data();
    if (last_stage()) {
      req.output = OutputKind::SAMPLE;
      req.tokens_out = &sampled;
    } else {
      req.output = OutputKind::HIDDEN;
      req.hidden_out = out.data();
    }
    auto start = std::chrono::steady_clock::now();
    ok = forward(req, error);
    auto end = std::chrono::steady_clock::now();
    if (step > 0) times.push_back(std::chrono::duration<double>(end - start).count());
  }
  std::string ignored;
  if (kv_.exists(kMeasureSequence)) kv_.free(kMeasureSequence, &ignored);
  last_sampled_.erase(kMeasureSequence);
  if (!ok) return false;
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  *seconds_per_token = median;
  *bytes_per_sec = static_cast<double>(streamed_bytes_) / median;
  return true;
}

}  // namespace baton
