// Paged KV pool (see kv_pool.h).
#include "kv_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "kernels/f16.h"

namespace baton {

const char* kv_dtype_name(KvDType type) {
  switch (type) {
    case KvDType::F32: return "f32";
    case KvDType::F16: return "f16";
    case KvDType::Q8_0: return "q8_0";
  }
  return "unknown";
}

bool kv_dtype_parse(const std::string& name, KvDType* out) {
  if (name == "f32") *out = KvDType::F32;
  else if (name == "f16") *out = KvDType::F16;
  else if (name == "q8_0") *out = KvDType::Q8_0;
  else return false;
  return true;
}

KvPool::~KvPool() { std::free(memory_); }

DType KvPool::row_type() const {
  switch (dtype_) {
    case KvDType::F32: return DType::F32;
    case KvDType::F16: return DType::F16;
    case KvDType::Q8_0: return DType::Q8_0;
  }
  return DType::F32;
}

bool KvPool::init(int n_layers, int64_t kv_dim, KvDType dtype, int64_t n_blocks, std::string* error) {
  if (n_layers < 0 || kv_dim <= 0 || n_blocks < 1 || n_blocks > (1ll << 30)) {
    *error = "KV pool needs at least one block and a positive width";
    return false;
  }
  if (dtype == KvDType::Q8_0 && kv_dim % 32 != 0) {
    *error = "a q8_0 KV cache needs n_kv_heads × head_dim to be a multiple of 32 (it is " + std::to_string(kv_dim) + "); use f16";
    return false;
  }
  n_layers_ = n_layers;
  kv_dim_ = kv_dim;
  dtype_ = dtype;
  switch (dtype) {
    case KvDType::F32: row_bytes_ = static_cast<size_t>(kv_dim) * 4; break;
    case KvDType::F16: row_bytes_ = static_cast<size_t>(kv_dim) * 2; break;
    case KvDType::Q8_0: row_bytes_ = static_cast<size_t>(kv_dim / 32) * 34; break;
  }
  block_bytes_ = static_cast<size_t>(std::max(n_layers, 1)) * 2 * kBlockTokens * row_bytes_;
  block_bytes_ = (block_bytes_ + 63) / 64 * 64;
  n_blocks_ = n_blocks;
  size_t total = block_bytes_ * static_cast<size_t>(n_blocks);
  // Attention reads every block of a sequence per layer and token, blocks far apart: 2 MiB pages
  // (Linux, transparent huge pages on "madvise") cut the TLB misses of those reads. Measured
  // gain was small (attention ~21% -> ~20% of a Q4_0 decode profile at ~700 positions).
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t align = total >= kHuge ? kHuge : 64;
  const size_t alloc = (total + align - 1) / align * align;
  memory_ = static_cast<uint8_t*>(std::aligned_alloc(align, alloc));
  if (memory_ == nullptr) {
    *error = "cannot allocate a KV pool of " + std::to_string(total) + " bytes; ask for fewer KV tokens";
    return false;
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHuge) madvise(memory_, alloc, MADV_HUGEPAGE);  // a hint: failure changes nothing
#endif
  std::memset(memory_, 0, total);
  free_blocks_.reserve(n_blocks);
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_blocks_.push_back(static_cast<int32_t>(b));
  return true;
}

bool KvPool::reserve(Sequence& s, int64_t positions, uint32_t seq, std::string* error) {
  if (positions < 0) {
    *error = "negative token count";
    return false;
  }
  int64_t need = (positions + kBlockTokens - 1) / kBlockTokens;
  int64_t have = static_cast<int64_t>(s.blocks.size());
  if (need <= have) return true;
  if (need - have > static_cast<int64_t>(free_blocks_.size())) {
    *error = "KV pool out of blocks: sequence " + std::to_string(seq) + " needs " + std::to_string(need - have) + " more blocks of " +
             std::to_string(kBlockTokens) + " tokens but only " + std::to_string(free_blocks_.size()) + " of " + std::to_string(n_blocks_) +
             " are free; free or truncate sequences, or load the engine with more KV tokens";
    return false;
  }
  for (int64_t b = have; b < need; ++b) {
    s.blocks.push_back(free_blocks_.back());
    free_blocks_.pop_back();
  }
  return true;
}

bool KvPool::allocate(uint32_t seq, int64_t tokens, std::string* error) {
  if (sequences_.count(seq) != 0) {
    *error = "sequence " + std::to_string(seq) + " already exists; free it first";
    return false;
  }
  Sequence s;
  if (!reserve(s, tokens, seq, error)) return false;
  sequences_.emplace(seq, std::move(s));
  return true;
}

bool KvPool::extend(uint32_t seq, int64_t tokens, std::string* error) {
  if (tokens < 0) {
    *error = "cannot extend by a negative token count";
    return false;
  }
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) return allocate(seq, tokens, error);
  return reserve(it->second, it->second.length + tokens, seq, error);
}

bool KvPool::free(uint32_t seq, std::string* error) {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    *error = "unknown sequence " + std::to_string(seq);
    return false;
  }
  for (int32_t b : it->second.blocks) free_blocks_.push_back(b);
  sequences_.erase(it);
  return true;
}

bool KvPool::truncate(uint32_t seq, int64_t n, std::string* error) {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    *error = "unknown sequence " + std::to_string(seq);
    return false;
  }
  if (n < 0) {
    *error = "cannot truncate to a negative length";
    return false;
  }
  Sequence& s = it->second;
  s.length = std::min(s.length, n);
  if (static_cast<int64_t>(s.tokens.size()) > s.length) s.tokens.resize(s.length);
  int64_t keep = (n + kBlockTokens - 1) / kBlockTokens;
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    free_blocks_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
  return true;
}

bool KvPool::copy_prefix(uint32_t dst, uint32_t src, int64_t n, std::string* error) {
  auto it = sequences_.find(src);
  if (it == sequences_.end()) {
    *error = "unknown source sequence " + std::to_string(src);
    return false;
  }
  if (dst == src) {
    *error = "copy-prefix source and destination are the same sequence";
    return false;
  }
  if (n < 0 || n > it->second.length) {
    *error = "cannot copy " + std::to_string(n) + " tokens: source sequence " + std::to_string(src) + " holds " + std::to_string(it->second.length);
    return false;
  }
  Sequence fresh;
  auto old = sequences_.find(dst);
  // Reuse dst's blocks first so replacing a sequence does not need twice its size.
  if (old != sequences_.end()) {
    fresh.blocks = std::move(old->second.blocks);
    sequences_.erase(old);
  }
  int64_t need = (n + kBlockTokens - 1) / kBlockTokens;
  while (static_cast<int64_t>(fresh.blocks.size()) > need) {
    free_blocks_.push_back(fresh.blocks.back());
    fresh.blocks.pop_back();
  }
  if (!reserve(fresh, n, dst, error)) {
    for (int32_t b : fresh.blocks) free_blocks_.push_back(b);
    return false;
  }
  const Sequence& from = sequences_.at(src);
  for (int64_t b = 0; b < need; ++b) {
    std::memcpy(memory_ + static_cast<size_t>(fresh.blocks[b]) * block_bytes_, memory_ + static_cast<size_t>(from.blocks[b]) * block_bytes_, block_bytes_);
  }
  fresh.length = n;
  fresh.tokens.assign(from.tokens.begin(), from.tokens.begin() + std::min<int64_t>(n, from.tokens.size()));
  sequences_.emplace(dst, std::move(fresh));
  return true;
}

int64_t KvPool::length(uint32_t seq) const {
  auto it = sequences_.find(seq);
  return it == sequences_.end() ? -1 : it->second.length;
}

KvPoolStats KvPool::stats() const {
  KvPoolStats st;
  st.blocks_total = n_blocks_;
  st.blocks_used = n_blocks_ - static_cast<int64_t>(free_blocks_.size());
  st.block_tokens = kBlockTokens;
  st.block_bytes = static_cast<int64_t>(block_bytes_);
  st.pool_bytes = static_cast<int64_t>(pool_bytes());
  for (const auto& [id, s] : sequences_) {
    st.sequences.push_back({id, s.length, static_cast<int64_t>(s.blocks.size()) * kBlockTokens, static_cast<int64_t>(s.blocks.size())});
  }
  std::sort(st.sequences.begin(), st.sequences.end(), [](const KvSequenceStats& a, const KvSequenceStats& b) { return a.sequence_id < b.sequence_id; });
  return st;
}

int64_t KvPool::blocks_needed(uint32_t seq, int64_t first, int64_t n, std::string* error) const {
  auto it = sequences_.find(seq);
  int64_t length = it == sequences_.end() ? 0 : it->second.length;
  int64_t have = it == sequences_.end() ? 0 : static_cast<int64_t>(it->second.blocks.size());
  if (first < 0 || first > length) {
    *error = "sequence " + std::to_string(seq) + " holds " + std::to_string(length) + " tokens, so its next position is at most " +
             std::to_string(length) + " (got " + std::to_string(first) + ")";
    return -1;
  }
  int64_t need = (first + n + kBlockTokens - 1) / kBlockTokens;
  return need > have ? need - have : 0;
}

bool KvPool::begin_write(uint32_t seq, int64_t first, int64_t n, std::string* error) {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    if (first != 0) {
      *error = "sequence " + std::to_string(seq) + " does not exist, so its first position must be 0 (got " + std::to_string(first) + ")";
      return false;
    }
    if (!allocate(seq, n, error)) return false;
    it = sequences_.find(seq);
  }
  Sequence& s = it->second;
  if (first < 0 || first > s.length) {
    *error = "sequence " + std::to_string(seq) + " holds " + std::to_string(s.length) + " tokens, so the next position is at most " +
             std::to_string(s.length) + " (got " + std::to_string(first) + ")";
    return false;
  }
  if (!reserve(s, first + n, seq, error)) return false;
  s.length = first + n;
  if (static_cast<int64_t>(s.tokens.size()) > first) s.tokens.resize(first);
  s.tokens.resize(first + n, -1);
  return true;
}

uint8_t* KvPool::row(const Sequence& s, int layer, int kv, int64_t pos) const {
  int32_t block = s.blocks[pos / kBlockTokens];
  size_t offset = static_cast<size_t>(block) * block_bytes_ + ((static_cast<size_t>(layer) * 2 + kv) * kBlockTokens + pos % kBlockTokens) * row_bytes_;
  return memory_ + offset;
}

void KvPool::encode_row(const float* src, uint8_t* dst) const {
  switch (dtype_) {
    case KvDType::F32:
      std::memcpy(dst, src, kv_dim_ * 4);
      break;
    case KvDType::F16: {
      for (int64_t i = 0; i < kv_dim_; ++i) {
        uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + i * 2, &h, 2);
      }
      break;
    }
    case KvDType::Q8_0: {
      // ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d).
      for (int64_t b = 0; b < kv_dim_ / 32; ++b) {
        const float* x = src + b * 32;
        uint8_t* out = dst + b * 34;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = f32_to_f16(d);
        std::memcpy(out, &dh, 2);
        for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[j] * id)));
      }
      break;
    }
  }
}

void KvPool::write(uint32_t seq, int layer, int64_t pos, const float* k, const float* v) {
  const Sequence& s = sequences_.at(seq);
  encode_row(k, row(s, layer, 0, pos));
  if (!v_transposed()) {
    encode_row(v, row(s, layer, 1, pos));
    return;
  }
  uint8_t* part = row(s, layer, 1, pos - pos % kBlockTokens);
  const int64_t j = pos % kBlockTokens;
  if (dtype_ == KvDType::F32) {
    float* dst = reinterpret_cast<float*>(part);
    for (int64_t d = 0; d < kv_dim_; ++d) dst[d * kBlockTokens + j] = v[d];
  } else {
    uint16_t* dst = reinterpret_cast<uint16_t*>(part);
    for (int64_t d = 0; d < kv_dim_; ++d) dst[d * kBlockTokens + j] = f32_to_f16(v[d]);
  }
}

const uint8_t* KvPool::k_block(uint32_t seq, int layer, int64_t block) const { return row(sequences_.at(seq), layer, 0, block * kBlockTokens); }
const uint8_t* KvPool::v_block(uint32_t seq, int layer, int64_t block) const { return row(sequences_.at(seq), layer, 1, block * kBlockTokens); }

const uint8_t* KvPool::k_row(uint32_t seq, int layer, int64_t pos) const { return row(sequences_.at(seq), layer, 0, pos); }
const uint8_t* KvPool::v_row(uint32_t seq, int layer, int64_t pos) const { return row(sequences_.at(seq), layer, 1, pos); }

std::vector<int32_t>* KvPool::tokens(uint32_t seq) {
  auto it = sequences_.find(seq);
  return it == sequences_.end() ? nullptr : &it->second.tokens;
}

}  // namespace baton
