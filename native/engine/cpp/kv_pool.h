// Paged KV cache of one engine: a fixed pool of blocks of 16 token positions, each block holding
// the K and V rows of every layer of the engine's range for those positions. Sequences own lists
// of blocks (their block table); all memory is allocated once, up front. Not thread-safe: the
// engine serializes access.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/kernels.h"

namespace baton {

enum class KvDType { F32, F16, Q8_0 };
const char* kv_dtype_name(KvDType type);
bool kv_dtype_parse(const std::string& name, KvDType* out);

struct KvSequenceStats {
  uint32_t sequence_id;
  int64_t tokens;    // positions [0, tokens) hold valid K/V
  int64_t capacity;  // positions reserved (blocks × 16)
  int64_t blocks;
};

struct KvPoolStats {
  int64_t blocks_total;
  int64_t blocks_used;
  int64_t block_tokens;
  int64_t block_bytes;
  int64_t pool_bytes;
  std::vector<KvSequenceStats> sequences;
};

class KvPool {
 public:
  static constexpr int64_t kBlockTokens = 16;

  KvPool() = default;
  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  // n_layers: layers of the engine's range; kv_dim: n_kv_heads × head_dim.
  bool init(int n_layers, int64_t kv_dim, KvDType dtype, int64_t n_blocks, std::string* error);

  KvDType dtype() const { return dtype_; }
  DType row_type() const;
  size_t row_bytes() const { return row_bytes_; }
  int64_t kv_dim() const { return kv_dim_; }
  size_t pool_bytes() const { return static_cast<size_t>(n_blocks_) * block_bytes_; }
  int64_t blocks_free() const { return static_cast<int64_t>(free_blocks_.size()); }

  // Creates an empty sequence with room for `tokens` positions. Error if it exists.
  bool allocate(uint32_t seq, int64_t tokens, std::string* error);
  // Makes room for `tokens` more positions after the sequence's current length (creating the
  // sequence if absent).
  bool extend(uint32_t seq, int64_t tokens, std::string* error);
  bool free(uint32_t seq, std::string* error);
  // Keeps positions [0, n) and releases the blocks past them.
  bool truncate(uint32_t seq, int64_t n, std::string* error);
  // Makes `dst` (created if absent, replaced if present) hold a copy of positions [0, n) of `src`.
  bool copy_prefix(uint32_t dst, uint32_t src, int64_t n, std::string* error);
  bool exists(uint32_t seq) const { return sequences_.count(seq) != 0; }
  int64_t length(uint32_t seq) const;
  KvPoolStats stats() const;

  // Blocks begin_write(seq, first, n) would take from the free list, or −1 (and *error) when the
  // write is not allowed (first past the sequence's length).
  int64_t blocks_needed(uint32_t seq, int64_t first, int64_t n, std::string* error) const;
  // For the forward pass: reserve [first, first + n) (first ≤ length; later positions dropped)
  // and set the length to first + n. Rolls back nothing on error: the sequence is unchanged.
  bool begin_write(uint32_t seq, int64_t first, int64_t n, std::string* error);
  // Writes one position's K and V (f32, kv_dim each) for local layer `layer`.
  void write(uint32_t seq, int layer, int64_t pos, const float* k, const float* v);
  // Block layout, per layer of the range: K as 16 rows of kv_dim elements (row_bytes() apart);
  // V the same for q8_0, but transposed for f32/f16 (kv_dim rows of 16 positions), so attention
  // can multiply the softmax weights by a V block as one matrix-vector product.
  bool v_transposed() const { return dtype_ != KvDType::Q8_0; }
  // The K / V part of block `block` (index into the sequence's block table) for local layer `layer`.
  const uint8_t* k_block(uint32_t seq, int layer, int64_t block) const;
  const uint8_t* v_block(uint32_t seq, int layer, int64_t block) const;
  // The same through a block table (for loops over many blocks): the sequence's block ids, and
  // the K (kv 0) or V (kv 1) part of a block id.
  const int32_t* block_ids(uint32_t seq) const { return sequences_.at(seq).blocks.data(); }
  const uint8_t* part(int32_t block_id, int layer, int kv) const {
    return memory_ + static_cast<size_t>(block_id) * block_bytes_ + (static_cast<size_t>(layer) * 2 + kv) * kBlockTokens * row_bytes_;
  }
  // Row of position `pos` (< length): K always; V only when !v_transposed().
  const uint8_t* k_row(uint32_t seq, int layer, int64_t pos) const;
  const uint8_t* v_row(uint32_t seq, int layer, int64_t pos) const;
  // Token ids by position (−1 where unknown), kept for sampling penalties.
  std::vector<int32_t>* tokens(uint32_t seq);

 private:
  struct Sequence {
    std::vector<int32_t> blocks;
    int64_t length = 0;
    std::vector<int32_t> tokens;
  };
  bool reserve(Sequence& s, int64_t positions, uint32_t seq, std::string* error);
  uint8_t* row(const Sequence& s, int layer, int kv, int64_t pos) const;
  void encode_row(const float* src, uint8_t* dst) const;

  uint8_t* memory_ = nullptr;
  int n_layers_ = 0;
  int64_t kv_dim_ = 0;
  KvDType dtype_ = KvDType::F16;
  size_t row_bytes_ = 0;
  size_t block_bytes_ = 0;
  int64_t n_blocks_ = 0;
  std::vector<int32_t> free_blocks_;
  std::unordered_map<uint32_t, Sequence> sequences_;
};

}  // namespace baton
