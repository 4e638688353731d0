// An in-process fake verbs provider: a "fabric" in which queue pairs of this process connect to
// each other by queue-pair number. It follows the verbs rules the RDMA backend depends on —
// the RESET→INIT→RTR→RTS state machine, memory-region bounds and keys, receive-queue depth,
// completion queues, UC's silent drop when no receive is posted — and, in Apple-rules mode,
// Apple's subset (UC only, SEND/RECV only, ≤ 4 KB messages, ≤ 10 queue pairs per device, equal
// slot counts on both ends of a queue pair). Tests run the real RDMA channel code against it.
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "rdma_provider.h"

namespace baton {
namespace {

constexpr uint32_t kAppleMaxMessage = 4096;
constexpr int kAppleMaxQueuePairs = 10;

struct FakeContext {
  std::string device;
  bool apple;
  int queue_pairs = 0;
};
struct FakeMrRecord {
  uint8_t* addr;
  size_t length;
  uint32_t lkey;
};
struct FakePd {
  FakeContext* context;
  std::vector<FakeMrRecord> regions;
};
struct FakeCq {
  int depth;
  std::deque<WorkCompletion> entries;
};
struct FakeRecv {
  uint64_t wr_id;
  uint8_t* addr;
  uint32_t length;
};
struct FakeQp {
  uint32_t qp_num = 0;
  FakePd* pd = nullptr;
  FakeCq* send_cq = nullptr;
  FakeCq* recv_cq = nullptr;
  QpType type = QpType::UC;
  QpState state = QpState::RESET;
  uint32_t max_send = 0, max_recv = 0;
  uint32_t dest_qp = 0;
  std::deque<FakeRecv> recvs;
};

struct Fabric {
  std::recursive_mutex mutex;
  std::unordered_map<uint32_t, FakeQp*> queue_pairs;
  uint32_t next_qp_num = 0x100;
  uint32_t next_key = 0x1000;
  uint64_t dropped = 0;
};

Fabric& fabric() {
  static Fabric* instance = new Fabric();  // never destroyed: providers outlive every channel
  return *instance;
}

const char* state_name(QpState state) {
  switch (state) {
    case QpState::RESET: return "RESET";
    case QpState::INIT: return "INIT";
    case QpState::RTR: return "RTR";
    case QpState::RTS: return "RTS";
    default: return "ERROR";
  }
}

bool list_devices(VerbsProvider*, std::vector<std::string>* names, std::string*) {
  *names = {"fake0", "fake1"};
  return true;
}

void* open_device(VerbsProvider* self, const std::string& name, std::string* error) {
  if (name != "fake0" && name != "fake1") {
    *error = "no RDMA device named \"" + name + "\" (the fake fabric has fake0 and fake1)";
    return nullptr;
  }
  return new FakeContext{name, self->apple_rules};
}

void close_device(void* context) { delete static_cast<FakeContext*>(context); }

bool query_port(void* context, uint8_t port, PortInfo* out, std::string* error) {
  if (port != 1) {
    *error = "port " + std::to_string(port) + " does not exist";
    return false;
  }
  auto* c = static_cast<FakeContext*>(context);
  out->lid = uint16_t(1 + (c->device == "fake1"));
  std::memset(out->gid, 0, 16);
  std::memcpy(out->gid, c->device.data(), std::min<size_t>(16, c->device.size()));
  out->mtu_bytes = 4096;
  return true;
}

void* alloc_pd(void* context, std::string*) { return new FakePd{static_cast<FakeContext*>(context), {}}; }
void dealloc_pd(void* pd) { delete static_cast<FakePd*>(pd); }

bool reg_mr(void* pd, void* addr, size_t length, RdmaMr* out, std::string* error) {
  if (addr == nullptr || length == 0) {
    *error = "cannot register an empty memory region";
    return false;
  }
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  uint32_t key = fabric().next_key++;
  static_cast<FakePd*>(pd)->regions.push_back({static_cast<uint8_t*>(addr), length, key});
  out->handle = pd;
  out->lkey = key;
  out->rkey = key;
  out->addr = static_cast<uint8_t*>(addr);
  out->length = length;
  return true;
}

void dereg_mr(RdmaMr* mr) {
  auto* pd = static_cast<FakePd*>(mr->handle);
  if (!pd) return;
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  for (auto it = pd->regions.begin(); it != pd->regions.end(); ++it) {
    if (it->lkey == mr->lkey) {
      pd->regions.erase(it);
      break;
    }
  }
  mr->handle = nullptr;
}

void* create_cq(void*, int depth, std::string* error) {
  if (depth <= 0) {
    *error = "completion queue depth must be positive";
    return nullptr;
  }
  return new FakeCq{depth, {}};
}
void destroy_cq(void* cq) { delete static_cast<FakeCq*>(cq); }

bool create_qp(void* pd, void* send_cq, void* recv_cq, QpType type, uint32_t max_send, uint32_t max_recv, RdmaQp* out,
               std::string* error) {
  auto* p = static_cast<FakePd*>(pd);
  if (p->context->apple && type != QpType::UC) {
    *error = "Apple's RDMA supports only unreliable-connected (UC) queue pairs";
    return false;
  }
  if (p->context->apple && p->context->queue_pairs >= kAppleMaxQueuePairs) {
    *error = "Apple's RDMA allows at most 10 queue pairs per device";
    return false;
  }
  if (max_send == 0 || max_recv == 0) {
    *error = "queue pair depths must be positive";
    return false;
  }
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  auto* qp = new FakeQp();
  qp->qp_num = fabric().next_qp_num++;
  qp->pd = p;
  qp->send_cq = static_cast<FakeCq*>(send_cq);
  qp->recv_cq = static_cast<FakeCq*>(recv_cq);
  qp->type = type;
  qp->max_send = max_send;
  qp->max_recv = max_recv;
  fabric().queue_pairs[qp->qp_num] = qp;
  p->context->queue_pairs++;
  out->handle = qp;
  out->qp_num = qp->qp_num;
  return true;
}

void destroy_qp(RdmaQp* qp) {
  auto* q = static_cast<FakeQp*>(qp->handle);
  if (!q) return;
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  fabric().queue_pairs.erase(q->qp_num);
  q->pd->context->queue_pairs--;
  delete q;
  qp->handle = nullptr;
}

bool modify_qp(RdmaQp* qp, QpState target, const QpPeer& peer, std::string* error) {
  auto* q = static_cast<FakeQp*>(qp->handle);
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  bool allowed = target == QpState::ERROR || target == QpState::RESET ||
                 (q->state == QpState::RESET && target == QpState::INIT) ||
                 (q->state == QpState::INIT && target == QpState::RTR) ||
                 (q->state == QpState::RTR && target == QpState::RTS);
  if (!allowed) {
    *error = std::string("invalid queue pair transition ") + state_name(q->state) + " -> " + state_name(target);
    return false;
  }
  if (target == QpState::INIT && peer.port != 1) {
    *error = "port " + std::to_string(peer.port) + " does not exist";
    return false;
  }
  if (target == QpState::RTR) {
    auto found = fabric().queue_pairs.find(peer.qp_num);
    if (found == fabric().queue_pairs.end()) {
      *error = "remote queue pair " + std::to_string(peer.qp_num) + " is unknown to the fabric";
      return false;
    }
    FakeQp* remote = found->second;
    if (remote->type != q->type) {
      *error = "queue pair types differ between the two ends";
      return false;
    }
    if (q->pd->context->apple && (remote->max_send != q->max_send || remote->max_recv != q->max_recv)) {
      *error = "Apple's RDMA needs equal frame counts on both sides: this end has " + std::to_string(q->max_send) +
               "/" + std::to_string(q->max_recv) + " send/receive slots, the peer " + std::to_string(remote->max_send) +
               "/" + std::to_string(remote->max_recv);
      return false;
    }
    q->dest_qp = peer.qp_num;
  }
  if (target == QpState::RESET) q->recvs.clear();
  q->state = target;
  return true;
}

bool in_region(FakePd* pd, const RdmaMr& mr, const uint8_t* addr, uint32_t length, std::string* error) {
  for (auto& region : pd->regions) {
    if (region.lkey != mr.lkey) continue;
    if (addr >= region.addr && length <= region.length && size_t(addr - region.addr) <= region.length - length) return true;
    *error = "local protection error: the buffer lies outside its registered memory region";
    return false;
  }
  *error = "local protection error: lkey " + std::to_string(mr.lkey) + " is not registered with this protection domain";
  return false;
}

bool post_recv(RdmaQp* qp, uint64_t wr_id, const RdmaMr& mr, uint8_t* addr, uint32_t length, std::string* error) {
  auto* q = static_cast<FakeQp*>(qp->handle);
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  if (q->state == QpState::RESET || q->state == QpState::ERROR) {
    *error = std::string("cannot post a receive in state ") + state_name(q->state);
    return false;
  }
  if (q->recvs.size() >= q->max_recv) {
    *error = "receive queue full (" + std::to_string(q->max_recv) + " posted)";
    return false;
  }
  if (!in_region(q->pd, mr, addr, length, error)) return false;
  q->recvs.push_back({wr_id, addr, length});
  return true;
}

void complete(FakeCq* cq, WorkCompletion completion) {
  if (int(cq->entries.size()) < cq->depth) cq->entries.push_back(std::move(completion));
}

bool post_send(RdmaQp* qp, uint64_t wr_id, const RdmaMr& mr, const uint8_t* addr, uint32_t length, std::string* error) {
  auto* q = static_cast<FakeQp*>(qp->handle);
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  if (q->state != QpState::RTS) {
    *error = std::string("cannot post a send in state ") + state_name(q->state) + " (needs RTS)";
    return false;
  }
  if (q->pd->context->apple && length > kAppleMaxMessage) {
    *error = "Apple's RDMA allows at most 4096 bytes per message, got " + std::to_string(length);
    return false;
  }
  if (int(q->send_cq->entries.size()) >= q->send_cq->depth) {
    *error = "send completion queue full: poll it before posting more";
    return false;
  }
  if (!in_region(q->pd, mr, addr, length, error)) return false;
  WorkCompletion sent;
  sent.wr_id = wr_id;
  sent.byte_len = length;
  auto found = fabric().queue_pairs.find(q->dest_qp);
  FakeQp* remote = found == fabric().queue_pairs.end() ? nullptr : found->second;
  bool remote_ready = remote && (remote->state == QpState::RTR || remote->state == QpState::RTS);
  if (!remote_ready || remote->recvs.empty()) {
    if (q->type == QpType::UC) {
      fabric().dropped++;  // UC: the message is silently lost
    } else {
      sent.status = 13;  // IBV_WC_RNR_RETRY_EXC_ERR
      sent.status_text = "receiver not ready (no receive posted)";
      q->state = QpState::ERROR;
    }
    complete(q->send_cq, sent);
    return true;
  }
  FakeRecv recv = remote->recvs.front();
  remote->recvs.pop_front();
  WorkCompletion received;
  received.wr_id = recv.wr_id;
  received.is_recv = true;
  received.byte_len = length;
  if (recv.length < length) {
    received.status = 1;  // IBV_WC_LOC_LEN_ERR
    received.status_text = "local length error: message larger than the posted receive";
    remote->state = QpState::ERROR;
  } else {
    std::memcpy(recv.addr, addr, length);
  }
  complete(remote->recv_cq, received);
  complete(q->send_cq, sent);
  return true;
}

int poll_cq(void* cq, int max, WorkCompletion* out) {
  auto* c = static_cast<FakeCq*>(cq);
  std::lock_guard<std::recursive_mutex> lock(fabric().mutex);
  int count = 0;
  while (count < max && !c->entries.empty()) {
    out[count++] = std::move(c->entries.front());
    c->entries.pop_front();
  }
  return count;
}

VerbsProvider make(bool apple) {
  return VerbsProvider{apple ? "fake-apple" : "fake", apple, list_devices, open_device, close_device, query_port,
                       alloc_pd, dealloc_pd, reg_mr, dereg_mr, create_cq, destroy_cq, create_qp, destroy_qp,
                       modify_qp, post_send, post_recv, poll_cq};
}

}  // namespace

VerbsProvider* fake_verbs_provider(bool apple_rules) {
  static VerbsProvider plain = make(false);
  static VerbsProvider apple = make(true);
  return apple_rules ? &apple : &plain;
}

}  // namespace baton
