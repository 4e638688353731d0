// The connection handshake: protocol version + mutual HMAC-SHA256 challenge/response with the
// cluster secret. Pure logic (no sockets): the I/O loop feeds received bytes and sends what
// this returns, so the same code serves TCP, Unix sockets and the TCP side channel of RDMA.
//
// Wire format: every message is an 8-byte head — magic "BTNH" (u32 LE 0x484E5442), type u8,
// reserved u8, body length u16 LE — then the body.
//   HELLO  (1) u16 protocol version, u16 frame version, u32 features, 32-byte random nonce
//   AUTH   (2) HMAC-SHA256(secret, "baton-transport/1 <client|server>" || clientNonce || serverNonce)
//   OK     (3) empty: "your AUTH verified"
//   REFUSE (4) u8 reason (1 version, 2 secret, 3 other), UTF-8 text; the sender closes after it
// Both sides send HELLO at once; AUTH after receiving the peer's HELLO; OK after verifying the
// peer's AUTH. A side is open when it has verified the peer and received the peer's OK.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace baton {

constexpr uint32_t kHandshakeMagic = 0x484E5442;  // "BTNH"
constexpr uint16_t kProtocolVersion = 1;
constexpr size_t kHandshakeHeadBytes = 8;
constexpr size_t kHandshakeMaxBody = 1024;

enum class HandshakeMessage : uint8_t { HELLO = 1, AUTH = 2, OK = 3, REFUSE = 4 };
enum class RefuseReason : uint8_t { VERSION = 1, SECRET = 2, OTHER = 3 };

struct HandshakeResult {
  enum Status { CONTINUE, OPEN, FAILED } status = CONTINUE;
  std::string error_code;     // BATON_VERSION_MISMATCH, BATON_AUTH_FAILED, BATON_HANDSHAKE_REFUSED, BATON_HANDSHAKE_MALFORMED
  std::string error_message;
  size_t consumed = 0;        // bytes of input used; the rest belongs to the frame stream
};

class Handshake {
 public:
  Handshake(bool is_client, const std::vector<uint8_t>& secret, uint16_t protocol_version, uint32_t features);
  // The HELLO to send first.
  std::vector<uint8_t> hello() const;
  // Consumes complete messages from `data`; appends replies to `out`.
  HandshakeResult feed(const uint8_t* data, size_t length, std::vector<uint8_t>& out);
  uint32_t peer_features() const { return peer_features_; }

 private:
  void compute_mac(bool for_client, uint8_t mac[32]) const;
  static void append_message(std::vector<uint8_t>& out, HandshakeMessage type, const uint8_t* body, size_t length);
  static void append_refuse(std::vector<uint8_t>& out, RefuseReason reason, const std::string& text);

  bool is_client_;
  std::vector<uint8_t> secret_;
  uint16_t protocol_version_;
  uint32_t features_;
  uint32_t peer_features_ = 0;
  uint8_t own_nonce_[32];
  uint8_t peer_nonce_[32] = {};
  bool got_hello_ = false;
  bool verified_peer_ = false;
  bool got_ok_ = false;
};

// Fills `bytes` with cryptographically random bytes from the OS.
void random_bytes(uint8_t* bytes, size_t length);

}  // namespace baton
