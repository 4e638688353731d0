// The RDMA frame channel; see rdma_channel.h.
#include "rdma_channel.h"

#include <cstdlib>
#include <cstring>

#include "handshake.h"

namespace baton {
namespace {

constexpr uint16_t kFragmentFirst = 1;
constexpr uint16_t kFragmentLast = 2;
constexpr uint16_t kFragmentCreditOnly = 4;
constexpr uint32_t kFragmentMagic = 0x46524442;  // "BDRF"

// Fragment header: u32 magic, u32 sequence, u32 frame bytes (header + payload), u16 flags,
// u8 credits returned (low), u8 credits returned (high) — then data up to the slot size.
}  // namespace

RdmaChannel::RdmaChannel(VerbsProvider* provider) : provider_(provider) {}

RdmaChannel::~RdmaChannel() {
  if (qp_.handle) provider_->destroy_qp(&qp_);
  if (send_mr_.handle) provider_->dereg_mr(&send_mr_);
  if (recv_mr_.handle) provider_->dereg_mr(&recv_mr_);
  if (send_cq_) provider_->destroy_cq(send_cq_);
  if (recv_cq_) provider_->destroy_cq(recv_cq_);
  if (pd_) provider_->dealloc_pd(pd_);
  if (context_) provider_->close_device(context_);
}

bool RdmaChannel::fail(std::string* error, const std::string& message) {
  failure_ = message;
  *error = message;
  if (qp_.handle && state_ != QpState::ERROR) {
    std::string ignored;
    provider_->modify_qp(&qp_, QpState::ERROR, QpPeer{}, &ignored);
  }
  state_ = QpState::ERROR;
  return false;
}

bool RdmaChannel::open(const std::string& device, const RdmaChannelOptions& options, std::string* error) {
  options_ = options;
  if (options.slots < 2 || options.slots > 4096) return fail(error, "RDMA slots must be from 2 to 4096");
  if (options.slot_bytes <= kFragmentHeaderBytes || options.slot_bytes > (1u << 20)) {
    return fail(error, "RDMA slot size must be from 17 bytes to 1 MiB");
  }
  if (provider_->apple_rules && options.slot_bytes > 4096) return fail(error, "Apple's RDMA allows at most 4 KB frames");
  if (provider_->apple_rules && options.qp_type != QpType::UC) return fail(error, "Apple's RDMA supports only UC queue pairs");
  context_ = provider_->open_device(provider_, device, error);
  if (!context_) return fail(error, *error);
  if (!provider_->query_port(context_, options.port, &port_, error)) return fail(error, *error);
  pd_ = provider_->alloc_pd(context_, error);
  if (!pd_) return fail(error, *error);
  size_t ring_bytes = size_t(options.slots) * options.slot_bytes;
  send_ring_.reset(new uint8_t[ring_bytes]);
  recv_ring_.reset(new uint8_t[ring_bytes]);
  if (!provider_->reg_mr(pd_, send_ring_.get(), ring_bytes, &send_mr_, error)) return fail(error, *error);
  if (!provider_->reg_mr(pd_, recv_ring_.get(), ring_bytes, &recv_mr_, error)) return fail(error, *error);
  send_cq_ = provider_->create_cq(context_, int(options.slots) * 2, error);
  recv_cq_ = send_cq_ ? provider_->create_cq(context_, int(options.slots) * 2, error) : nullptr;
  if (!send_cq_ || !recv_cq_) return fail(error, *error);
  if (!provider_->create_qp(pd_, send_cq_, recv_cq_, options.qp_type, options.slots, options.slots, &qp_, error)) {
    return fail(error, *error);
  }
  QpPeer init;
  init.port = options.port;
  if (!provider_->modify_qp(&qp_, QpState::INIT, init, error)) return fail(error, "RESET->INIT: " + *error);
  state_ = QpState::INIT;
  for (uint32_t slot = 0; slot < options.slots; slot++) {
    if (!provider_->post_recv(&qp_, slot, recv_mr_, recv_ring_.get() + size_t(slot) * options.slot_bytes,
                              options.slot_bytes, error)) {
      return fail(error, "posting receive " + std::to_string(slot) + ": " + *error);
    }
  }
  uint8_t random[4];
  random_bytes(random, 4);
  psn_ = load_u32(random) & 0xffffff;
  credits_ = options.slots;
  return true;
}

QpPeer RdmaChannel::local_endpoint() const {
  QpPeer endpoint;
  endpoint.qp_num = qp_.qp_num;
  endpoint.lid = port_.lid;
  std::memcpy(endpoint.gid, port_.gid, 16);
  endpoint.psn = psn_;
  endpoint.mtu_bytes = port_.mtu_bytes;
  endpoint.port = options_.port;
  return endpoint;
}

bool RdmaChannel::connect(const QpPeer& peer, std::string* error) {
  if (state_ != QpState::INIT) return fail(error, "RDMA channel is not open");
  QpPeer target = peer;
  target.port = options_.port;
  target.own_psn = psn_;
  target.mtu_bytes = std::min(peer.mtu_bytes, port_.mtu_bytes);
  if (!provider_->modify_qp(&qp_, QpState::RTR, target, error)) return fail(error, "INIT->RTR: " + *error);
  state_ = QpState::RTR;
  if (!provider_->modify_qp(&qp_, QpState::RTS, target, error)) return fail(error, "RTR->RTS: " + *error);
  state_ = QpState::RTS;
  return true;
}

bool RdmaChannel::send(const uint8_t* header, const uint8_t* payload, size_t payload_length, std::string* error) {
  if (state_ != QpState::RTS) return fail(error, failure_.empty() ? "RDMA channel is not connected" : failure_);
  std::vector<uint8_t> frame(kFrameHeaderBytes + payload_length);
  std::memcpy(frame.data(), header, kFrameHeaderBytes);
  if (payload_length > 0) std::memcpy(frame.data() + kFrameHeaderBytes, payload, payload_length);
  queued_bytes_ += frame.size();
  outgoing_.push_back(std::move(frame));
  stats_.frames_sent++;
  return post_fragments(error);
}

bool RdmaChannel::post_one(uint16_t flags, const uint8_t* data, uint16_t length, std::string* error) {
  uint32_t slot = next_send_slot_;
  uint8_t* target = send_ring_.get() + size_t(slot) * options_.slot_bytes;
  uint32_t frame_bytes = outgoing_.empty() ? 0 : uint32_t(outgoing_.front().size());
  uint16_t credits = uint16_t(std::min<uint32_t>(credits_to_return_, 0xffff));
  store_u32(target, kFragmentMagic);
  store_u32(target + 4, send_sequence_);
  store_u32(target + 8, (flags & kFragmentCreditOnly) ? 0 : frame_bytes);
  store_u16(target + 12, flags);
  store_u16(target + 14, credits);
  if (length > 0) std::memcpy(target + kFragmentHeaderBytes, data, length);
  if (!provider_->post_send(&qp_, slot, send_mr_, target, uint32_t(kFragmentHeaderBytes + length), error)) {
    return fail(error, "posting a send: " + *error);
  }
  credits_to_return_ -= credits;
  credits_--;
  send_slots_busy_++;
  next_send_slot_ = (next_send_slot_ + 1) % options_.slots;
  send_sequence_++;
  stats_.fragments_sent++;
  return true;
}

bool RdmaChannel::post_fragments(std::string* error) {
  size_t data_per_fragment = options_.slot_bytes - kFragmentHeaderBytes;
  // One credit stays in reserve for returning credits, so two ends with full queues cannot deadlock.
  while (!outgoing_.empty() && credits_ > 1 && send_slots_busy_ < options_.slots) {
    std::vector<uint8_t>& frame = outgoing_.front();
    size_t take = std::min(data_per_fragment, frame.size() - outgoing_offset_);
    uint16_t flags = 0;
    if (outgoing_offset_ == 0) flags |= kFragmentFirst;
    if (outgoing_offset_ + take == frame.size()) flags |= kFragmentLast;
    if (!post_one(flags, frame.data() + outgoing_offset_, uint16_t(take), error)) return false;
    outgoing_offset_ += take;
    queued_bytes_ -= take;
    if (outgoing_offset_ == frame.size()) {
      outgoing_.pop_front();
      outgoing_offset_ = 0;
    }
  }
  if (!outgoing_.empty() && credits_ <= 1) stats_.credit_stalls++;
  if (credits_to_return_ >= options_.slots / 2 && credits_ >= 1 && send_slots_busy_ < options_.slots) {
    stats_.credit_messages++;
    if (!post_one(kFragmentCreditOnly, nullptr, 0, error)) return false;
  }
  return true;
}

bool RdmaChannel::progress(std::vector<ReceivedFrame>* frames, std::string* error) {
  if (state_ == QpState::ERROR) return fail(error, failure_);
  WorkCompletion completions[32];
  int count;
  while ((count = provider_->poll_cq(send_cq_, 32, completions)) > 0) {
    for (int i = 0; i < count; i++) {
      if (completions[i].status != 0) return fail(error, "RDMA send failed: " + completions[i].status_text);
      send_slots_busy_--;
    }
  }
  if (count < 0) return fail(error, "polling the send completion queue failed");
  while ((count = provider_->poll_cq(recv_cq_, 32, completions)) > 0) {
    for (int i = 0; i < count; i++) {
      WorkCompletion& completion = completions[i];
      if (completion.status != 0) return fail(error, "RDMA receive failed: " + completion.status_text);
      uint32_t slot = uint32_t(completion.wr_id);
      if (slot >= options_.slots || completion.byte_len < kFragmentHeaderBytes || completion.byte_len > options_.slot_bytes) {
        return fail(error, "RDMA receive completion out of range");
      }
      uint8_t* fragment = recv_ring_.get() + size_t(slot) * options_.slot_bytes;
      uint32_t sequence = load_u32(fragment + 4);
      uint32_t frame_bytes = load_u32(fragment + 8);
      uint16_t flags = load_u16(fragment + 12);
      uint16_t credits = load_u16(fragment + 14);
      size_t data_length = completion.byte_len - kFragmentHeaderBytes;
      if (load_u32(fragment) != kFragmentMagic) return fail(error, "RDMA fragment with a bad magic");
      if (sequence != expected_sequence_) {
        return fail(error, "RDMA fragment " + std::to_string(expected_sequence_) + " was lost (got " +
                               std::to_string(sequence) + "); an unreliable queue pair dropped a message");
      }
      expected_sequence_++;
      stats_.fragments_received++;
      credits_ += credits;
      if (!(flags & kFragmentCreditOnly)) {
        if (flags & kFragmentFirst) {
          if (assembling_active_) return fail(error, "RDMA frame started before the previous one ended");
          if (frame_bytes < kFrameHeaderBytes || frame_bytes - kFrameHeaderBytes > options_.max_payload_bytes) {
            return fail(error, "RDMA frame of " + std::to_string(frame_bytes) + " bytes is out of bounds");
          }
          assembling_.clear();
          assembling_.reserve(frame_bytes);
          assembling_expected_ = frame_bytes;
          assembling_active_ = true;
        }
        if (!assembling_active_ || assembling_.size() + data_length > assembling_expected_) {
          return fail(error, "RDMA fragment does not belong to a frame");
        }
        assembling_.insert(assembling_.end(), fragment + kFragmentHeaderBytes, fragment + kFragmentHeaderBytes + data_length);
        if (flags & kFragmentLast) {
          if (assembling_.size() != assembling_expected_) return fail(error, "RDMA frame ended early");
          FrameHeader header;
          std::string message;
          if (parse_frame_header(assembling_.data(), options_.max_payload_bytes, header, &message) != FrameParseError::NONE) {
            return fail(error, "malformed frame over RDMA: " + message);
          }
          if (header.payload_length != assembling_expected_ - kFrameHeaderBytes) {
            return fail(error, "RDMA frame length disagrees with its header");
          }
          ReceivedFrame frame;
          std::memcpy(frame.header, assembling_.data(), kFrameHeaderBytes);
          frame.payload_length = header.payload_length;
          if (frame.payload_length > 0) {
            frame.payload = static_cast<uint8_t*>(std::malloc(frame.payload_length));
            std::memcpy(frame.payload, assembling_.data() + kFrameHeaderBytes, frame.payload_length);
          }
          frames->push_back(frame);
          stats_.frames_received++;
          assembling_active_ = false;
          assembling_.clear();
        }
      }
      if (!provider_->post_recv(&qp_, slot, recv_mr_, fragment, options_.slot_bytes, error)) {
        return fail(error, "reposting a receive: " + *error);
      }
      credits_to_return_++;
    }
  }
  if (count < 0) return fail(error, "polling the receive completion queue failed");
  return post_fragments(error);
}

// ---- fake-provider self test ----

std::vector<std::string> rdma_fake_self_test() {
  std::vector<std::string> log;
  auto check = [&](const std::string& name, bool ok, const std::string& detail) {
    log.push_back((ok ? "ok " : "FAIL ") + name + (ok ? "" : ": " + detail));
  };
  for (bool apple : {false, true}) {
    VerbsProvider* p = fake_verbs_provider(apple);
    std::string prefix = apple ? "apple: " : "";
    std::string error;
    void* context = p->open_device(p, "fake0", &error);
    void* pd = p->alloc_pd(context, &error);
    void* cq = p->create_cq(context, 8, &error);
    RdmaQp a, b;
    p->create_qp(pd, cq, cq, QpType::UC, 4, 4, &a, &error);
    p->create_qp(pd, cq, cq, QpType::UC, 4, 4, &b, &error);
    std::vector<uint8_t> memory(8192);
    RdmaMr mr;
    check(prefix + "register memory", p->reg_mr(pd, memory.data(), memory.size(), &mr, &error), error);
    QpPeer peer;
    peer.port = 1;
    error.clear();
    check(prefix + "RESET->RTR is refused", !p->modify_qp(&a, QpState::RTR, peer, &error) && error.find("invalid") != std::string::npos, error);
    error.clear();
    check(prefix + "post_recv in RESET is refused", !p->post_recv(&a, 0, mr, memory.data(), 64, &error), error);
    p->modify_qp(&a, QpState::INIT, peer, &error);
    p->modify_qp(&b, QpState::INIT, peer, &error);
    error.clear();
    check(prefix + "post_send in INIT is refused", !p->post_send(&a, 0, mr, memory.data(), 64, &error) && error.find("RTS") != std::string::npos, error);
    error.clear();
    check(prefix + "receive outside the region is refused", !p->post_recv(&b, 0, mr, memory.data() + 8000, 400, &error) && error.find("protection") != std::string::npos, error);
    RdmaMr bogus = mr;
    bogus.lkey = 12345;
    error.clear();
    check(prefix + "unregistered lkey is refused", !p->post_recv(&b, 0, bogus, memory.data(), 64, &error), error);
    QpPeer to_a = peer, to_b = peer;
    to_a.qp_num = a.qp_num;
    to_b.qp_num = b.qp_num;
    bool up = p->modify_qp(&a, QpState::RTR, to_b, &error) && p->modify_qp(&a, QpState::RTS, to_b, &error) &&
              p->modify_qp(&b, QpState::RTR, to_a, &error) && p->modify_qp(&b, QpState::RTS, to_a, &error);
    check(prefix + "INIT->RTR->RTS", up, error);
    std::memcpy(memory.data(), "hello", 5);
    WorkCompletion completions[8];
    p->post_send(&a, 7, mr, memory.data(), 5, &error);
    int n = p->poll_cq(cq, 8, completions);
    check(prefix + "UC send without a posted receive is dropped silently", n == 1 && !completions[0].is_recv && completions[0].status == 0, "completions " + std::to_string(n));
    error.clear();
    bool posted = p->post_recv(&b, 42, mr, memory.data() + 4096, 4096, &error) && p->post_send(&a, 8, mr, memory.data(), 5, &error);
    n = p->poll_cq(cq, 8, completions);
    bool got = false;
    for (int i = 0; i < n; i++) got = got || (completions[i].is_recv && completions[i].wr_id == 42 && completions[i].byte_len == 5);
    check(prefix + "send/recv completes on both queues", posted && got && std::memcmp(memory.data() + 4096, "hello", 5) == 0, error);
    for (int i = 0; i < 4; i++) p->post_recv(&b, i, mr, memory.data() + 4096, 64, &error);
    error.clear();
    check(prefix + "receive queue depth is enforced", !p->post_recv(&b, 5, mr, memory.data() + 4096, 64, &error) && error.find("full") != std::string::npos, error);
    error.clear();
    bool big = p->post_send(&a, 9, mr, memory.data(), 5000, &error);
    if (apple) check("apple: a 5000-byte message is refused", !big && error.find("4096") != std::string::npos, error);
    p->poll_cq(cq, 8, completions);
    if (apple) {
      RdmaQp rc;
      error.clear();
      check("apple: an RC queue pair is refused", !p->create_qp(pd, cq, cq, QpType::RC, 4, 4, &rc, &error) && error.find("UC") != std::string::npos, error);
      std::vector<RdmaQp> more(8);
      bool all = true;
      for (auto& qp : more) all = all && p->create_qp(pd, cq, cq, QpType::UC, 4, 4, &qp, &error);
      RdmaQp eleventh;
      error.clear();
      check("apple: at most 10 queue pairs", all && !p->create_qp(pd, cq, cq, QpType::UC, 4, 4, &eleventh, &error) && error.find("10") != std::string::npos, error);
      for (auto& qp : more) p->destroy_qp(&qp);
      RdmaQp c, d;
      p->create_qp(pd, cq, cq, QpType::UC, 4, 4, &c, &error);
      p->create_qp(pd, cq, cq, QpType::UC, 8, 8, &d, &error);
      QpPeer to_d = peer;
      to_d.qp_num = d.qp_num;
      p->modify_qp(&c, QpState::INIT, peer, &error);
      error.clear();
      check("apple: unequal frame counts are refused at RTR", !p->modify_qp(&c, QpState::RTR, to_d, &error) && error.find("equal frame counts") != std::string::npos, error);
      p->destroy_qp(&c);
      p->destroy_qp(&d);
    }
    p->dereg_mr(&mr);
    error.clear();
    check(prefix + "deregistered memory is refused", !p->post_recv(&b, 0, mr, memory.data(), 64, &error), error);
    p->destroy_qp(&a);
    p->destroy_qp(&b);
    p->destroy_cq(cq);
    p->dealloc_pd(pd);
    p->close_device(context);
  }
  return log;
}

}  // namespace baton
