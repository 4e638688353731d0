// The connection handshake; see handshake.h.
#include "handshake.h"

#include <algorithm>
#include <cstring>
#include <random>
#if defined(__APPLE__)
#include <sys/random.h>
#endif
#include <unistd.h>

#include "frame.h"
#include "sha256.h"

namespace baton {

void random_bytes(uint8_t* bytes, size_t length) {
  while (length > 0) {
    size_t chunk = length > 256 ? 256 : length;
    if (getentropy(bytes, chunk) != 0) {
      std::random_device device;  // fallback; getentropy does not fail on supported systems
      for (size_t i = 0; i < chunk; i++) bytes[i] = uint8_t(device());
    }
    bytes += chunk;
    length -= chunk;
  }
}

Handshake::Handshake(bool is_client, const std::vector<uint8_t>& secret, uint16_t protocol_version, uint32_t features)
    : is_client_(is_client), secret_(secret), protocol_version_(protocol_version), features_(features) {
  random_bytes(own_nonce_, sizeof own_nonce_);
}

void Handshake::append_message(std::vector<uint8_t>& out, HandshakeMessage type, const uint8_t* body, size_t length) {
  uint8_t head[kHandshakeHeadBytes];
  store_u32(head, kHandshakeMagic);
  head[4] = uint8_t(type);
  head[5] = 0;
  store_u16(head + 6, uint16_t(length));
  out.insert(out.end(), head, head + kHandshakeHeadBytes);
  if (length > 0) out.insert(out.end(), body, body + length);
}

void Handshake::append_refuse(std::vector<uint8_t>& out, RefuseReason reason, const std::string& text) {
  std::vector<uint8_t> body;
  body.push_back(uint8_t(reason));
  body.insert(body.end(), text.begin(), text.begin() + std::min(text.size(), kHandshakeMaxBody - 1));
  append_message(out, HandshakeMessage::REFUSE, body.data(), body.size());
}

std::vector<uint8_t> Handshake::hello() const {
  uint8_t body[40];
  store_u16(body, protocol_version_);
  store_u16(body + 2, kFrameVersion);
  store_u32(body + 4, features_);
  std::memcpy(body + 8, own_nonce_, 32);
  std::vector<uint8_t> out;
  append_message(out, HandshakeMessage::HELLO, body, sizeof body);
  return out;
}

void Handshake::compute_mac(bool for_client, uint8_t mac[32]) const {
  static const char kClientLabel[] = "baton-transport/1 client";
  static const char kServerLabel[] = "baton-transport/1 server";
  const char* label = for_client ? kClientLabel : kServerLabel;
  size_t label_length = std::strlen(label);
  uint8_t message[64 + 32 + 32];
  std::memcpy(message, label, label_length);
  const uint8_t* client_nonce = is_client_ ? own_nonce_ : peer_nonce_;
  const uint8_t* server_nonce = is_client_ ? peer_nonce_ : own_nonce_;
  std::memcpy(message + label_length, client_nonce, 32);
  std::memcpy(message + label_length + 32, server_nonce, 32);
  hmac_sha256(secret_.data(), secret_.size(), message, label_length + 64, mac);
}

HandshakeResult Handshake::feed(const uint8_t* data, size_t length, std::vector<uint8_t>& out) {
  HandshakeResult result;
  auto fail = [&](const char* code, const std::string& message) {
    result.status = HandshakeResult::FAILED;
    result.error_code = code;
    result.error_message = message;
    return result;
  };
  size_t offset = 0;
  while (length - offset >= kHandshakeHeadBytes) {
    const uint8_t* head = data + offset;
    if (load_u32(head) != kHandshakeMagic) {
      append_refuse(out, RefuseReason::OTHER, "expected a Baton transport handshake");
      return fail("BATON_HANDSHAKE_MALFORMED",
                  "the peer did not send a Baton transport handshake (is it a Baton node on this port?)");
    }
    uint8_t type = head[4];
    size_t body_length = load_u16(head + 6);
    if (body_length > kHandshakeMaxBody) return fail("BATON_HANDSHAKE_MALFORMED", "handshake message too long");
    if (length - offset < kHandshakeHeadBytes + body_length) break;
    const uint8_t* body = head + kHandshakeHeadBytes;
    offset += kHandshakeHeadBytes + body_length;
    result.consumed = offset;
    switch (HandshakeMessage(type)) {
      case HandshakeMessage::HELLO: {
        if (got_hello_ || body_length < 40) return fail("BATON_HANDSHAKE_MALFORMED", "malformed or repeated HELLO");
        uint16_t peer_version = load_u16(body);
        uint16_t peer_frame_version = load_u16(body + 2);
        if (peer_version != protocol_version_ || peer_frame_version != kFrameVersion) {
          std::string text = "transport protocol version mismatch: this peer speaks protocol " +
                             std::to_string(protocol_version_) + " / frame " + std::to_string(kFrameVersion) +
                             ", the other speaks protocol " + std::to_string(peer_version) + " / frame " +
                             std::to_string(peer_frame_version) + "; run the same Baton version on every node";
          append_refuse(out, RefuseReason::VERSION, text);
          return fail("BATON_VERSION_MISMATCH", text);
        }
        peer_features_ = load_u32(body + 4);
        std::memcpy(peer_nonce_, body + 8, 32);
        got_hello_ = true;
        uint8_t mac[32];
        compute_mac(is_client_, mac);
        append_message(out, HandshakeMessage::AUTH, mac, 32);
        break;
      }
      case HandshakeMessage::AUTH: {
        if (!got_hello_ || verified_peer_ || body_length != 32) {
          return fail("BATON_HANDSHAKE_MALFORMED", "AUTH out of order or malformed");
        }
        uint8_t expected[32];
        compute_mac(!is_client_, expected);
        if (!mac_equal(expected, body)) {
          std::string text =
              "authentication failed: the cluster secrets differ; give every node the same secret (BATON_SECRET)";
          append_refuse(out, RefuseReason::SECRET, text);
          return fail("BATON_AUTH_FAILED", text);
        }
        verified_peer_ = true;
        append_message(out, HandshakeMessage::OK, nullptr, 0);
        break;
      }
      case HandshakeMessage::OK:
        if (!verified_peer_ && !got_hello_) return fail("BATON_HANDSHAKE_MALFORMED", "OK before HELLO");
        got_ok_ = true;
        break;
      case HandshakeMessage::REFUSE: {
        std::string text = body_length > 1 ? std::string(reinterpret_cast<const char*>(body + 1), body_length - 1) : "";
        for (char& c : text) {
          if (static_cast<unsigned char>(c) < 0x20) c = ' ';
        }
        const char* code = body_length > 0 && body[0] == uint8_t(RefuseReason::VERSION) ? "BATON_VERSION_MISMATCH"
                           : body_length > 0 && body[0] == uint8_t(RefuseReason::SECRET) ? "BATON_AUTH_FAILED"
                                                                                            : "BATON_HANDSHAKE_REFUSED";
        return fail(code, "the peer refused the handshake: " + text);
      }
      default:
        append_refuse(out, RefuseReason::OTHER, "unknown handshake message");
        return fail("BATON_HANDSHAKE_MALFORMED", "unknown handshake message type " + std::to_string(type));
    }
    if (verified_peer_ && got_ok_) {
      result.status = HandshakeResult::OPEN;
      return result;
    }
  }
  return result;
}

}  // namespace baton
