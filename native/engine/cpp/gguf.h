// GGUF reader: parses a GGUF (v2/v3) file held in memory (usually memory-mapped) into metadata
// key/values and tensor infos. Every offset, size and count is checked against the buffer size
// with overflow-safe 64-bit arithmetic: a truncated, corrupted or hostile file yields an error
// string, never a crash or a read outside the buffer. Values point into the buffer (no copies),
// so a GgufFile must outlive nothing that reads its buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace baton {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

const char* gguf_type_name(GgufType type);

struct GgufValue {
  GgufType type = GgufType::U8;
  // Scalars (numbers and bools), widened.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string_view str;  // STRING
  // ARRAY: element type and count. Numeric elements start at array_data (unaligned, little
  // endian); strings are in `strings`; arrays of arrays are validated but not exposed.
  GgufType array_type = GgufType::U8;
  uint64_t array_count = 0;
  const uint8_t* array_data = nullptr;
  std::vector<std::string_view> strings;

  bool is_integer() const;
  bool is_number() const;
  // Element `index` of a numeric array as double / int64 (index < array_count).
  double array_number(uint64_t index) const;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] = elements per row (columns), ne[1] = rows, ...
  uint32_t type = 0;             // ggml type id
  uint64_t offset = 0;           // absolute offset of the data in the file
  uint64_t bytes = 0;            // size of the data
  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

// Block size and bytes per block of a ggml type (all types the format defines, supported by the
// kernels or not, so sizes can be checked). false for an unknown type id.
bool ggml_type_size(uint32_t type, int64_t* block_elements, int64_t* block_bytes);
const char* ggml_type_name(uint32_t type);

class GgufFile {
 public:
  // Parses `size` bytes at `data` (not copied: the caller keeps it alive). nullptr + *error on
  // any problem.
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, std::string* error);
  // Memory-maps `path` read-only and parses it; the mapping lives as long as the GgufFile.
  static std::unique_ptr<GgufFile> open(const std::string& path, std::string* error);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Keys in file order.
  const std::vector<std::string>& keys() const { return key_order_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(const std::string& name) const;

  // Typed getters: false (and *error names the key and problem) when missing or mistyped.
  bool get_string(const std::string& key, std::string* out, std::string* error) const;
  bool get_u64(const std::string& key, uint64_t* out, std::string* error) const;
  bool get_f64(const std::string& key, double* out, std::string* error) const;

 private:
  GgufFile() = default;
  bool parse_all(std::string* error);

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // owned mapping (open), or null (parse)
  size_t map_size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> key_order_;
  std::unordered_map<std::string, GgufValue> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace baton
