// One RDMA connection carrying transport frames over a verbs provider: a queue pair with a ring
// of fixed-size slots on each side (4 KB by default — Apple's limit), registered once. A frame
// (128-byte header + payload) is cut into slot-sized fragments, each with a 16-byte fragment
// header; the receiver reassembles them in order. SEND/RECV only, so UC (Apple) works: a
// credit scheme guarantees a receive is posted for every fragment sent (UC drops the others),
// and a sequence gap (a lost UC message) fails the channel so the caller falls back to TCP.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "frame.h"
#include "rdma_provider.h"

namespace baton {

constexpr size_t kFragmentHeaderBytes = 16;

struct RdmaChannelOptions {
  uint32_t slots = 64;          // receive slots posted, = send credits of the peer; equal on both ends
  uint32_t slot_bytes = 4096;   // message size: fragment header + data
  QpType qp_type = QpType::UC;
  uint64_t max_payload_bytes = 64ull << 20;
  uint8_t port = 1;
};

struct RdmaChannelStats {
  uint64_t frames_sent = 0, frames_received = 0;
  uint64_t fragments_sent = 0, fragments_received = 0;
  uint64_t credit_messages = 0, credit_stalls = 0;
};

struct ReceivedFrame {
  uint8_t header[kFrameHeaderBytes];
  uint8_t* payload = nullptr;  // malloc'd; ownership passes to the caller
  size_t payload_length = 0;
};

class RdmaChannel {
 public:
  explicit RdmaChannel(VerbsProvider* provider);
  ~RdmaChannel();

  // Opens the device, registers the rings, creates the queue pair and moves it RESET→INIT, and
  // posts every receive slot.
  bool open(const std::string& device, const RdmaChannelOptions& options, std::string* error);
  // What the peer needs for its INIT→RTR (sent over the TCP connection).
  QpPeer local_endpoint() const;
  uint32_t slots() const { return options_.slots; }
  // INIT→RTR→RTS towards the peer.
  bool connect(const QpPeer& peer, std::string* error);
  // Queues a frame (copied) and posts what credits allow.
  bool send(const uint8_t* header, const uint8_t* payload, size_t payload_length, std::string* error);
  // Polls completions, reassembles frames into `frames`, reposts receives, returns credits and
  // posts queued fragments. False (with `error`) once the channel has failed.
  bool progress(std::vector<ReceivedFrame>* frames, std::string* error);
  // Bytes of frames queued but not yet posted.
  size_t queued_bytes() const { return queued_bytes_; }
  QpState state() const { return state_; }
  const RdmaChannelStats& stats() const { return stats_; }

 private:
  bool post_fragments(std::string* error);
  bool post_one(uint16_t flags, const uint8_t* data, uint16_t length, std::string* error);
  bool fail(std::string* error, const std::string& message);

  VerbsProvider* provider_;
  RdmaChannelOptions options_;
  void* context_ = nullptr;
  void* pd_ = nullptr;
  void* send_cq_ = nullptr;
  void* recv_cq_ = nullptr;
  RdmaQp qp_;
  PortInfo port_;
  uint32_t psn_ = 0;
  std::unique_ptr<uint8_t[]> send_ring_, recv_ring_;
  RdmaMr send_mr_, recv_mr_;
  QpState state_ = QpState::RESET;
  std::string failure_;

  // Send side.
  std::deque<std::vector<uint8_t>> outgoing_;  // whole frames: header + payload
  size_t outgoing_offset_ = 0;                 // bytes of outgoing_.front() already posted
  size_t queued_bytes_ = 0;
  uint32_t credits_ = 0;                       // receives the peer has posted for us
  uint32_t send_slots_busy_ = 0;
  uint32_t next_send_slot_ = 0;
  uint32_t send_sequence_ = 0;
  uint32_t credits_to_return_ = 0;

  // Receive side.
  uint32_t expected_sequence_ = 0;
  std::vector<uint8_t> assembling_;
  size_t assembling_expected_ = 0;
  bool assembling_active_ = false;

  RdmaChannelStats stats_;
};

// Runs the fake provider through its rules (state machine, registration, posting, completions,
// Apple's subset) and returns one line per check: "ok <name>" or "FAIL <name>: <detail>".
std::vector<std::string> rdma_fake_self_test();

}  // namespace baton
