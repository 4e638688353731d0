// The data-plane frame header, mirrored from libs/contracts/src/frame.ts (the TS file is the
// specification; test/frame-header.test.ts encodes in one language and parses in the other).
// Fixed 128 bytes, little-endian. parse_frame_header() is the only code that reads header
// bytes from the network: it never reads past the 128 bytes it is given and checks every field
// that a later stage would trust (magic, version, kind, dtype, payload length, frame size).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace baton {

constexpr uint32_t kFrameMagic = 0x314E5442;  // "BTN1"
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kFrameHeaderBytes = 128;

enum class FrameKind : uint8_t { TOKENS = 1, HIDDEN = 2, TOKEN_OUT = 3, CONTROL = 4, ERROR = 5, PROBE = 6 };
enum class PayloadDType : uint8_t { NONE = 0, F32 = 1, F16 = 2, I32 = 3, U8 = 4 };

constexpr uint8_t kFlagLastChunk = 1 << 0;
constexpr uint8_t kFlagWantLogits = 1 << 1;
constexpr uint8_t kFlagStop = 1 << 2;
constexpr uint8_t kFlagReply = 1 << 3;

struct FrameHeader {
  uint16_t version = kFrameVersion;
  uint8_t kind = 0;
  uint8_t flags = 0;
  uint32_t sequence_id = 0;
  uint32_t first_position = 0;
  uint32_t token_count = 0;
  uint8_t dtype = 0;
  uint32_t width = 0;
  uint32_t payload_length = 0;
  uint8_t request_id[16] = {};
  uint8_t trace_id[16] = {};
  uint8_t span_id[8] = {};
  uint8_t trace_flags = 0;
  float temperature = 0;
  float top_p = 1;
  uint32_t top_k = 0;
  float min_p = 0;
  float repetition_penalty = 1;
  float presence_penalty = 0;
  float frequency_penalty = 0;
  uint64_t seed = 0;
  uint32_t max_tokens = 0;
  uint32_t plan_version = 0;
};

// Little-endian loads and stores that do not depend on host byte order or alignment.
inline uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint64_t load_u64(const uint8_t* p) { return uint64_t(load_u32(p)) | (uint64_t(load_u32(p + 4)) << 32); }
inline float load_f32(const uint8_t* p) {
  uint32_t bits = load_u32(p);
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}
inline void store_u16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); }
inline void store_u32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); p[2] = uint8_t(v >> 16); p[3] = uint8_t(v >> 24);
}
inline void store_u64(uint8_t* p, uint64_t v) { store_u32(p, uint32_t(v)); store_u32(p + 4, uint32_t(v >> 32)); }
inline void store_f32(uint8_t* p, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  store_u32(p, bits);
}

inline size_t payload_dtype_bytes(uint8_t dtype) {
  switch (dtype) {
    case 1: return 4;  // F32
    case 2: return 2;  // F16
    case 3: return 4;  // I32
    case 4: return 1;  // U8
    default: return 0;
  }
}

enum class FrameParseError { NONE, MAGIC, VERSION, KIND, DTYPE, LENGTH_MISMATCH, TOO_LARGE };

// Parses `bytes[0..128)`. On failure returns the error and writes a message into `message`.
inline FrameParseError parse_frame_header(const uint8_t* bytes, uint64_t max_payload_bytes, FrameHeader& out,
                                          std::string* message) {
  auto fail = [&](FrameParseError error, const std::string& text) {
    if (message) *message = text;
    return error;
  };
  uint32_t magic = load_u32(bytes);
  if (magic != kFrameMagic) {
    char text[64];
    std::snprintf(text, sizeof text, "bad frame magic 0x%x", magic);
    return fail(FrameParseError::MAGIC, text);
  }
  out.version = load_u16(bytes + 4);
  if (out.version != kFrameVersion) {
    return fail(FrameParseError::VERSION, "unsupported frame version " + std::to_string(out.version) +
                                              " (this build speaks " + std::to_string(kFrameVersion) + ")");
  }
  out.kind = bytes[6];
  if (out.kind < 1 || out.kind > 6) return fail(FrameParseError::KIND, "unknown frame kind " + std::to_string(out.kind));
  out.flags = bytes[7];
  out.sequence_id = load_u32(bytes + 8);
  out.first_position = load_u32(bytes + 12);
  out.token_count = load_u32(bytes + 16);
  out.dtype = bytes[20];
  if (out.dtype > 4) return fail(FrameParseError::DTYPE, "unknown payload dtype " + std::to_string(out.dtype));
  out.width = load_u32(bytes + 24);
  out.payload_length = load_u32(bytes + 28);
  std::memcpy(out.request_id, bytes + 32, 16);
  std::memcpy(out.trace_id, bytes + 48, 16);
  std::memcpy(out.span_id, bytes + 64, 8);
  out.trace_flags = bytes[72];
  out.temperature = load_f32(bytes + 76);
  out.top_p = load_f32(bytes + 80);
  out.top_k = load_u32(bytes + 84);
  out.min_p = load_f32(bytes + 88);
  out.repetition_penalty = load_f32(bytes + 92);
  out.presence_penalty = load_f32(bytes + 96);
  out.frequency_penalty = load_f32(bytes + 100);
  out.seed = load_u64(bytes + 104);
  out.max_tokens = load_u32(bytes + 112);
  out.plan_version = load_u32(bytes + 116);
  size_t element_bytes = payload_dtype_bytes(out.dtype);
  if (element_bytes > 0) {
    uint64_t expected = uint64_t(out.token_count) * uint64_t(out.width) * element_bytes;  // no u32 overflow
    if (expected != out.payload_length) {
      return fail(FrameParseError::LENGTH_MISMATCH,
                  "frame payload length " + std::to_string(out.payload_length) + " does not match " +
                      std::to_string(out.token_count) + " tokens x " + std::to_string(out.width) + " x " +
                      std::to_string(element_bytes) + " bytes = " + std::to_string(expected));
    }
  }
  if (out.payload_length > max_payload_bytes) {
    return fail(FrameParseError::TOO_LARGE, "frame payload of " + std::to_string(out.payload_length) +
                                                " bytes exceeds the maximum frame size of " +
                                                std::to_string(max_payload_bytes) + " bytes");
  }
  return FrameParseError::NONE;
}

// Writes `header` as 128 bytes (reserved bytes zero).
inline void encode_frame_header(const FrameHeader& h, uint8_t* bytes) {
  std::memset(bytes, 0, kFrameHeaderBytes);
  store_u32(bytes, kFrameMagic);
  store_u16(bytes + 4, h.version);
  bytes[6] = h.kind;
  bytes[7] = h.flags;
  store_u32(bytes + 8, h.sequence_id);
  store_u32(bytes + 12, h.first_position);
  store_u32(bytes + 16, h.token_count);
  bytes[20] = h.dtype;
  store_u32(bytes + 24, h.width);
  store_u32(bytes + 28, h.payload_length);
  std::memcpy(bytes + 32, h.request_id, 16);
  std::memcpy(bytes + 48, h.trace_id, 16);
  std::memcpy(bytes + 64, h.span_id, 8);
  bytes[72] = h.trace_flags;
  store_f32(bytes + 76, h.temperature);
  store_f32(bytes + 80, h.top_p);
  store_u32(bytes + 84, h.top_k);
  store_f32(bytes + 88, h.min_p);
  store_f32(bytes + 92, h.repetition_penalty);
  store_f32(bytes + 96, h.presence_penalty);
  store_f32(bytes + 100, h.frequency_penalty);
  store_u64(bytes + 104, h.seed);
  store_u32(bytes + 112, h.max_tokens);
  store_u32(bytes + 116, h.plan_version);
}

}  // namespace baton
