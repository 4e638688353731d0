// GGUF parsing with every read bounds-checked (see gguf.h).
#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

namespace baton {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxStringBytes = 1ull << 30;

struct TypeSize {
  uint32_t id;
  const char* name;
  int64_t block_elements;
  int64_t block_bytes;
};

// ggml's type table (ids as stored in GGUF). Removed ids are absent.
constexpr TypeSize kTypeSizes[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},          {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},       {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},    {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136},  {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},         {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }
bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }

// A bounds-checked little-endian reader over [data, data + size).
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  bool read(void* out, uint64_t n) {
    if (n > remaining()) return false;
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(uint64_t n) {
    if (n > remaining()) return false;
    pos_ += n;
    return true;
  }
  template <typename T>
  bool get(T* out) { return read(out, sizeof(T)); }
  bool string(std::string_view* out) {
    uint64_t len = 0;
    if (!get(&len)) return false;
    if (len > remaining() || len > kMaxStringBytes) return false;
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return true;
  }
  const uint8_t* here() const { return data_ + pos_; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

int64_t scalar_size(GgufType type) {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

// Reads one scalar of `type` at p (known in bounds) into v.
void decode_scalar(GgufType type, const uint8_t* p, GgufValue* v) {
  switch (type) {
    case GgufType::U8: v->u = p[0]; v->i = p[0]; v->f = p[0]; break;
    case GgufType::I8: { int8_t x; std::memcpy(&x, p, 1); v->i = x; v->u = static_cast<uint64_t>(x); v->f = x; break; }
    case GgufType::BOOL: v->u = p[0] != 0; v->i = p[0] != 0; v->f = p[0] != 0; break;
    case GgufType::U16: { uint16_t x; std::memcpy(&x, p, 2); v->u = x; v->i = x; v->f = x; break; }
    case GgufType::I16: { int16_t x; std::memcpy(&x, p, 2); v->i = x; v->u = static_cast<uint64_t>(x); v->f = x; break; }
    case GgufType::U32: { uint32_t x; std::memcpy(&x, p, 4); v->u = x; v->i = x; v->f = x; break; }
    case GgufType::I32: { int32_t x; std::memcpy(&x, p, 4); v->i = x; v->u = static_cast<uint64_t>(x); v->f = x; break; }
    case GgufType::F32: {
      float x;
      std::memcpy(&x, p, 4);
      v->f = x;
      // Integer views only for values an int64 holds (a cast of NaN or 1e30 is undefined).
      v->i = std::isfinite(x) && std::fabs(x) < 9.2e18f ? static_cast<int64_t>(x) : 0;
      v->u = static_cast<uint64_t>(v->i);
      break;
    }
    case GgufType::U64: { uint64_t x; std::memcpy(&x, p, 8); v->u = x; v->i = static_cast<int64_t>(x); v->f = static_cast<double>(x); break; }
    case GgufType::I64: { int64_t x; std::memcpy(&x, p, 8); v->i = x; v->u = static_cast<uint64_t>(x); v->f = static_cast<double>(x); break; }
    case GgufType::F64: { double x; std::memcpy(&x, p, 8); v->f = x; v->i = 0; v->u = 0; break; }
    default: break;
  }
}

// Skips a (possibly nested) array body of `count` elements of `type`; used for arrays of arrays.
bool skip_array(Cursor& c, GgufType type, uint64_t count, int depth, std::string* error) {
  if (depth > kMaxArrayDepth) { *error = "arrays nested deeper than 8 levels"; return false; }
  if (type == GgufType::STRING) {
    for (uint64_t k = 0; k < count; ++k) {
      std::string_view s;
      if (!c.string(&s)) { *error = "array string runs past the end of the file"; return false; }
    }
    return true;
  }
  if (type == GgufType::ARRAY) {
    for (uint64_t k = 0; k < count; ++k) {
      uint32_t inner_type = 0;
      uint64_t inner_count = 0;
      if (!c.get(&inner_type) || !c.get(&inner_count)) { *error = "nested array header runs past the end of the file"; return false; }
      if (!valid_type(inner_type)) { *error = "nested array has unknown element type " + std::to_string(inner_type); return false; }
      if (!skip_array(c, static_cast<GgufType>(inner_type), inner_count, depth + 1, error)) return false;
    }
    return true;
  }
  uint64_t bytes = 0;
  if (mul_overflows(count, static_cast<uint64_t>(scalar_size(type)), &bytes) || !c.skip(bytes)) {
    *error = "array of " + std::to_string(count) + " elements runs past the end of the file";
    return false;
  }
  return true;
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  auto t = static_cast<uint32_t>(type);
  return t < 13 ? names[t] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: case GgufType::BOOL: return true;
    default: return false;
  }
}

bool GgufValue::is_number() const { return is_integer() || type == GgufType::F32 || type == GgufType::F64; }

double GgufValue::array_number(uint64_t index) const {
  if (type != GgufType::ARRAY || index >= array_count || array_data == nullptr) return 0;
  int64_t size = scalar_size(array_type);
  if (size == 0) return 0;
  GgufValue v;
  decode_scalar(array_type, array_data + index * size, &v);
  return v.f;
}

bool ggml_type_size(uint32_t type, int64_t* block_elements, int64_t* block_bytes) {
  for (const auto& t : kTypeSizes) {
    if (t.id == type) {
      *block_elements = t.block_elements;
      *block_bytes = t.block_bytes;
      return true;
    }
  }
  return false;
}

const char* ggml_type_name(uint32_t type) {
  for (const auto& t : kTypeSizes) if (t.id == type) return t.name;
  return "unknown";
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, std::string* error) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->data_ = data;
  file->size_ = size;
  if (!file->parse_all(error)) return nullptr;
  return file;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *error = "cannot stat " + path + ": " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = path + " is not a regular file";
    ::close(fd);
    return nullptr;
  }
  if (st.st_size < 24) {
    *error = path + " is not a GGUF file: " + std::to_string(st.st_size) + " bytes is shorter than a GGUF header";
    ::close(fd);
    return nullptr;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    *error = "cannot map " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->map_ = map;
  file->map_size_ = size;
  file->data_ = static_cast<const uint8_t*>(map);
  file->size_ = size;
  file->path_ = path;
  if (!file->parse_all(error)) {
    *error = path + ": " + *error;
    return nullptr;
  }
  return file;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

bool GgufFile::parse_all(std::string* error) {
  Cursor c(data_, size_);
  uint32_t magic = 0;
  if (!c.get(&magic) || magic != kGgufMagic) { *error = "not a GGUF file (bad magic)"; return false; }
  if (!c.get(&version_)) { *error = "truncated GGUF header"; return false; }
  if (version_ != 2 && version_ != 3) { *error = "unsupported GGUF version " + std::to_string(version_) + " (Baton reads versions 2 and 3)"; return false; }
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.get(&n_tensors) || !c.get(&n_kv)) { *error = "truncated GGUF header"; return false; }
  // Each key/value takes at least 12 bytes and each tensor info at least 28: a count larger than
  // the file could hold is refused before anything is reserved.
  if (n_kv > c.remaining() / 12) { *error = "metadata count " + std::to_string(n_kv) + " is larger than the file can hold"; return false; }
  if (n_tensors > c.remaining() / 28) { *error = "tensor count " + std::to_string(n_tensors) + " is larger than the file can hold"; return false; }

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key;
    if (!c.string(&key)) { *error = "metadata key " + std::to_string(k) + " runs past the end of the file"; return false; }
    std::string key_str(key);
    uint32_t raw_type = 0;
    if (!c.get(&raw_type)) { *error = "metadata " + key_str + ": value type runs past the end of the file"; return false; }
    if (!valid_type(raw_type)) { *error = "metadata " + key_str + ": unknown value type " + std::to_string(raw_type); return false; }
    GgufValue v;
    v.type = static_cast<GgufType>(raw_type);
    if (v.type == GgufType::STRING) {
      if (!c.string(&v.str)) { *error = "metadata " + key_str + ": string runs past the end of the file"; return false; }
    } else if (v.type == GgufType::ARRAY) {
      uint32_t elem = 0;
      if (!c.get(&elem) || !c.get(&v.array_count)) { *error = "metadata " + key_str + ": array header runs past the end of the file"; return false; }
      if (!valid_type(elem)) { *error = "metadata " + key_str + ": unknown array element type " + std::to_string(elem); return false; }
      v.array_type = static_cast<GgufType>(elem);
      if (v.array_type == GgufType::STRING) {
        if (v.array_count > c.remaining() / 8) { *error = "metadata " + key_str + ": array of " + std::to_string(v.array_count) + " strings runs past the end of the file"; return false; }
        v.strings.reserve(v.array_count);
        for (uint64_t j = 0; j < v.array_count; ++j) {
          std::string_view s;
          if (!c.string(&s)) { *error = "metadata " + key_str + ": string " + std::to_string(j) + " runs past the end of the file"; return false; }
          v.strings.push_back(s);
        }
      } else if (v.array_type == GgufType::ARRAY) {
        if (!skip_array(c, v.array_type, v.array_count, 1, error)) { *error = "metadata " + key_str + ": " + *error; return false; }
      } else {
        v.array_data = c.here();
        uint64_t bytes = 0;
        if (mul_overflows(v.array_count, static_cast<uint64_t>(scalar_size(v.array_type)), &bytes) || !c.skip(bytes)) {
          *error = "metadata " + key_str + ": array of " + std::to_string(v.array_count) + " runs past the end of the file";
          return false;
        }
      }
    } else {
      uint8_t buf[8];
      if (!c.read(buf, static_cast<uint64_t>(scalar_size(v.type)))) { *error = "metadata " + key_str + ": value runs past the end of the file"; return false; }
      decode_scalar(v.type, buf, &v);
    }
    if (values_.count(key_str) != 0) { *error = "duplicate metadata key " + key_str; return false; }
    key_order_.push_back(key_str);
    values_.emplace(std::move(key_str), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->u == 0 || a->u > (1u << 20) || (a->u & (a->u - 1)) != 0) {
      *error = "general.alignment must be a power of two up to 1 MiB";
      return false;
    }
    alignment_ = static_cast<uint32_t>(a->u);
  }

  tensors_.reserve(n_tensors);
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensorInfo info;
    std::string_view name;
    if (!c.string(&name)) { *error = "tensor info " + std::to_string(t) + ": name runs past the end of the file"; return false; }
    info.name = std::string(name);
    const std::string where = "tensor " + info.name + ": ";
    if (!c.get(&info.n_dims)) { *error = where + "info runs past the end of the file"; return false; }
    if (info.n_dims == 0 || info.n_dims > kMaxDims) { *error = where + std::to_string(info.n_dims) + " dimensions (1 to 4 allowed)"; return false; }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < info.n_dims; ++d) {
      uint64_t dim = 0;
      if (!c.get(&dim)) { *error = where + "info runs past the end of the file"; return false; }
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) { *error = where + "dimension " + std::to_string(d) + " is " + std::to_string(dim); return false; }
      if (mul_overflows(elements, dim, &elements) || elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        *error = where + "element count overflows";
        return false;
      }
      info.ne[d] = static_cast<int64_t>(dim);
    }
    uint64_t rel_offset = 0;
    if (!c.get(&info.type) || !c.get(&rel_offset)) { *error = where + "info runs past the end of the file"; return false; }
    int64_t block_elements = 0, block_bytes = 0;
    if (!ggml_type_size(info.type, &block_elements, &block_bytes)) { *error = where + "unknown tensor type " + std::to_string(info.type); return false; }
    if (info.ne[0] % block_elements != 0) {
      *error = where + "row of " + std::to_string(info.ne[0]) + " elements is not a multiple of the " + ggml_type_name(info.type) + " block size " + std::to_string(block_elements);
      return false;
    }
    if (mul_overflows(elements / static_cast<uint64_t>(block_elements), static_cast<uint64_t>(block_bytes), &info.bytes)) { *error = where + "byte size overflows"; return false; }
    if (rel_offset % alignment_ != 0) { *error = where + "data offset " + std::to_string(rel_offset) + " is not aligned to " + std::to_string(alignment_); return false; }
    info.offset = rel_offset;  // made absolute below, once the data section start is known
    if (tensor_index_.count(info.name) != 0) { *error = "duplicate tensor " + info.name; return false; }
    tensor_index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }

  uint64_t pos = c.pos();
  uint64_t padded = 0;
  if (add_overflows(pos, alignment_ - 1, &padded)) { *error = "data section offset overflows"; return false; }
  data_offset_ = padded / alignment_ * alignment_;
  if (data_offset_ > size_ && n_tensors > 0) { *error = "file ends before its tensor data section"; return false; }
  for (auto& info : tensors_) {
    uint64_t start = 0, end = 0;
    if (add_overflows(data_offset_, info.offset, &start) || add_overflows(start, info.bytes, &end) || end > size_) {
      *error = "tensor " + info.name + ": data [" + std::to_string(info.offset) + ", +" + std::to_string(info.bytes) + ") runs past the end of the file (truncated download?)";
      return false;
    }
    info.offset = start;
  }
  return true;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

bool GgufFile::get_string(const std::string& key, std::string* out, std::string* error) const {
  const GgufValue* v = find(key);
  if (v == nullptr) { *error = "missing metadata " + key; return false; }
  if (v->type != GgufType::STRING) { *error = "metadata " + key + " is a " + gguf_type_name(v->type) + ", expected a string"; return false; }
  *out = std::string(v->str);
  return true;
}

bool GgufFile::get_u64(const std::string& key, uint64_t* out, std::string* error) const {
  const GgufValue* v = find(key);
  if (v == nullptr) { *error = "missing metadata " + key; return false; }
  const bool is_signed = v->type == GgufType::I8 || v->type == GgufType::I16 || v->type == GgufType::I32 || v->type == GgufType::I64;
  if (!v->is_integer() || (is_signed && v->i < 0)) {
    *error = "metadata " + key + " must be a non-negative integer";
    return false;
  }
  *out = v->u;
  return true;
}

bool GgufFile::get_f64(const std::string& key, double* out, std::string* error) const {
  const GgufValue* v = find(key);
  if (v == nullptr) { *error = "missing metadata " + key; return false; }
  if (!v->is_number()) { *error = "metadata " + key + " is a " + gguf_type_name(v->type) + ", expected a number"; return false; }
  *out = v->f;  // decode_scalar widened every numeric type to double
  return true;
}

}  // namespace baton
