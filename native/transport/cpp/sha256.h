// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), self-contained so the addon links nothing
// beyond libc. Used only for the connection handshake, never on the per-frame path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace baton {

struct Sha256 {
  uint32_t state[8];
  uint64_t total_bytes;
  uint8_t block[64];
  size_t block_used;

  Sha256();
  void update(const void* data, size_t length);
  void finish(uint8_t digest[32]);
};

void hmac_sha256(const uint8_t* key, size_t key_length, const uint8_t* message, size_t message_length,
                 uint8_t mac[32]);

// Constant-time comparison of two 32-byte MACs.
bool mac_equal(const uint8_t a[32], const uint8_t b[32]);

}  // namespace baton
