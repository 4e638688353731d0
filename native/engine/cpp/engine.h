// The engine: one contiguous layer range [start, end) of a GGUF llama / qwen2 / qwen3 model,
// memory-mapped, with its paged KV pool, scratch buffers and thread pool, all allocated at load.
// forward() runs token ids (first stage) or hidden states (later stages) of one or several
// sequences through the range in one pass over the weights, and returns hidden states, logits or
// sampled tokens (last stage). Errors come back as strings; nothing here throws to the caller
// or exits.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "kv_pool.h"
#include "sampler.h"

namespace baton {

enum class Arch { LLAMA, QWEN2, QWEN3 };

// Hyperparameters read from the GGUF metadata.
struct ModelConfig {
  std::string arch_name;
  Arch arch = Arch::LLAMA;
  int n_layers = 0;           // layers of the whole model
  int64_t n_embd = 0;         // hidden width
  int64_t n_ff = 0;           // feed-forward width
  int n_head = 0;             // query heads
  int n_head_kv = 0;          // key/value heads (GQA: n_head % n_head_kv == 0)
  int64_t head_dim = 0;       // attention.key_length (may differ from n_embd / n_head)
  int64_t n_rot = 0;          // rope.dimension_count (dims rotated per head)
  int64_t n_vocab = 0;
  int64_t context_length = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
  bool rope_neox = false;        // qwen2/qwen3 rotate (i, i + n_rot/2); llama rotates (2i, 2i+1)
  bool tied_embeddings = false;  // output.weight absent: the head is token_embd
};

// One transformer layer's weights; matrices point into the mapped file, small vectors are owned
// f32 copies.
struct LayerWeights {
  std::vector<float> attn_norm;        // [n_embd]
  Matrix wq, wk, wv;                   // [n_head*head_dim | n_head_kv*head_dim rows][n_embd cols]
  std::vector<float> bq, bk, bv;       // qwen2 biases (empty otherwise)
  std::vector<float> q_norm, k_norm;   // qwen3 per-head RMS norm weights [head_dim] (empty otherwise)
  Matrix wo;                           // [n_embd rows][n_head*head_dim cols]
  std::vector<float> ffn_norm;         // [n_embd]
  Matrix w_gate, w_up;                 // [n_ff rows][n_embd cols]
  Matrix w_down;                       // [n_embd rows][n_ff cols]
};

struct EngineOptions {
  std::string path;
  int layer_start = 0;
  int layer_end = -1;           // -1: the model's last layer
  int threads = 1;
  KvDType kv_dtype = KvDType::F16;
  int64_t kv_tokens = 0;        // KV pool capacity in token positions (0: context length, capped at 4096)
  int64_t max_batch_tokens = 512;
  int64_t max_context = 0;      // longest sequence (0: min(context length, kv tokens))
};

struct ForwardSegment {
  uint32_t sequence_id = 0;
  int64_t first_position = 0;   // positions [first, first + n)
  int64_t n_tokens = 0;
  SamplingParams sampling;
};

// The rows of one sequence inside a chunk of a forward call (internal).
struct ChunkSegment {
  size_t segment = 0;        // index into ForwardRequest::segments
  uint32_t sequence_id = 0;
  int64_t row_begin = 0;     // first row in the chunk's scratch
  int64_t n_rows = 0;
  int64_t first_position = 0;
  bool ends_segment = false; // the segment's last row is in this chunk
};

enum class OutputKind { HIDDEN, LOGITS_LAST, LOGITS_ALL, SAMPLE };

struct ForwardRequest {
  std::vector<ForwardSegment> segments;  // distinct sequences, rows in this order
  const int32_t* tokens = nullptr;       // first stage: Σn token ids
  const float* hidden_in = nullptr;      // later stages: Σn × n_embd
  const int32_t* history = nullptr;      // optional Σn token ids known for these positions (penalties), −1 unknown
  OutputKind output = OutputKind::HIDDEN;
  float* hidden_out = nullptr;           // HIDDEN: Σn × n_embd
  float* logits_out = nullptr;           // LOGITS_LAST: segments × n_vocab; LOGITS_ALL: Σn × n_vocab
  int32_t* tokens_out = nullptr;         // SAMPLE: one per segment
};

struct MemoryReport {
  uint64_t weights_mapped_bytes = 0;    // bytes of the tensors this range uses
  uint64_t weights_resident_bytes = 0;  // of those, pages in memory now (mincore)
  uint64_t kv_pool_bytes = 0;
  uint64_t scratch_bytes = 0;
  uint64_t file_bytes = 0;
};

class Engine {
 public:
  static std::unique_ptr<Engine> load(const EngineOptions& options, std::string* error);
  ~Engine();

  bool forward(const ForwardRequest& request, std::string* error);
  // Times `steps` single-token decode steps on a scratch sequence; bytes of weights streamed per
  // second (weights of the range, plus the head on the last stage).
  bool measure_decode(int steps, double* bytes_per_sec, double* seconds_per_token, std::string* error);
  MemoryReport memory() const;

  const ModelConfig& config() const { return config_; }
  const EngineOptions& options() const { return options_; }
  int layer_start() const { return layer_start_; }
  int layer_end() const { return layer_end_; }
  bool first_stage() const { return layer_start_ == 0; }
  bool last_stage() const { return layer_end_ == config_.n_layers; }
  uint64_t weight_bytes_per_token() const { return streamed_bytes_; }
  KvPool& kv() { return kv_; }
  // Forgets what the engine remembers of a sequence outside the KV pool (its last sampled token);
  // called when the sequence is freed, truncated or replaced.
  void reset_sequence(uint32_t sequence_id) { last_sampled_.erase(sequence_id); }
  // Held by every operation on the engine (forward on a worker thread, KV ops on the JS thread).
  std::mutex& mutex() { return mutex_; }

 private:
  Engine() = default;
  bool load_weights(std::string* error);
  void run_chunk(const ForwardRequest& request, const std::vector<int64_t>& seg_row0, int64_t row_begin, int64_t row_end);
  void attention(int layer_local, const std::vector<ChunkSegment>& chunk);

  EngineOptions options_;
  ModelConfig config_;
  std::unique_ptr<GgufFile> file_;
  int layer_start_ = 0, layer_end_ = 0;

  Matrix token_embd_{};               // first stage, or last stage with tied embeddings
  std::vector<LayerWeights> layers_;  // index = layer - layer_start
  std::vector<float> output_norm_;    // last stage
  Matrix output_{};                   // last stage: output.weight or token_embd
  std::vector<float> rope_freqs_;     // optional per-pair frequency factors [n_rot / 2]
  std::vector<std::pair<const uint8_t*, uint64_t>> mapped_ranges_;
  uint64_t streamed_bytes_ = 0;

  KvPool kv_;
  std::unique_ptr<ThreadPool> pool_;
  std::mutex mutex_;

  // Scratch, sized by max_batch_tokens (B) and max_context (C).
  std::vector<float> x_, xb_, xb2_;   // [B][n_embd]
  std::vector<float> q_, att_;        // [B][n_head*head_dim]
  std::vector<float> k_, v_;          // [B][n_head_kv*head_dim]
  std::vector<float> hb_, hb2_;       // [B][n_ff]
  std::vector<float> logits_;         // [kHeadRows][n_vocab] (sampling)
  struct AttentionScratch {
    std::vector<float> q;      // [kQueryRows][head_dim]: the query rows of one KV head
    std::vector<float> s;      // [kQueryRows][C]: scores, then softmax weights
    std::vector<float> o;      // [kQueryRows][head_dim]: output
    std::vector<float> part;   // [kQueryRows][16 + head_dim]: one block's scores, or weights then output
    std::vector<float> vt;     // [head_dim][C]: q8_0 cache only: the head's values, f32, transposed
    std::vector<float> row;    // [head_dim]
    std::vector<const uint16_t*> kb, vb;  // f16 cache: the head's K and transposed V in each block
  };
  std::vector<AttentionScratch> attn_scratch_;  // one per thread
  std::vector<std::pair<float, int32_t>> sample_scratch_;
  std::vector<int32_t> history_scratch_;
  std::vector<int64_t> row_position_;  // [B]
  std::unordered_map<uint32_t, std::pair<int64_t, int32_t>> last_sampled_;  // sequence → (position, token)
  uint64_t scratch_bytes_ = 0;
};

}  // namespace baton
