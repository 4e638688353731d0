// The verbs provider interface: a table of function pointers over the handful of ibverbs calls
// the RDMA backend needs, in neutral types (no ibverbs headers needed to use it). Providers:
//  - system: libibverbs.so.1 (Linux) or librdma.dylib (macOS 26.2+) loaded with dlopen at run time
//    (rdma_system.cc); the data path needs <infiniband/verbs.h> at build time, listing devices not;
//  - fake: an in-process fabric for tests, with an Apple-rules mode that enforces Apple's subset
//    (rdma_fake.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace baton {

enum class QpType { RC, UC };
enum class QpState { RESET, INIT, RTR, RTS, ERROR };

struct RdmaMr {
  void* handle = nullptr;
  uint32_t lkey = 0;
  uint32_t rkey = 0;
  uint8_t* addr = nullptr;
  size_t length = 0;
};

struct RdmaQp {
  void* handle = nullptr;
  uint32_t qp_num = 0;
};

struct PortInfo {
  uint16_t lid = 0;
  uint8_t gid[16] = {};
  uint32_t mtu_bytes = 0;
};

// What INIT→RTR→RTS needs from the peer (exchanged over the TCP connection).
struct QpPeer {
  uint32_t qp_num = 0;
  uint16_t lid = 0;
  uint8_t gid[16] = {};
  uint32_t psn = 0;
  uint32_t own_psn = 0;
  uint32_t mtu_bytes = 4096;
  uint8_t port = 1;
};

struct WorkCompletion {
  uint64_t wr_id = 0;
  int status = 0;  // 0 = success
  bool is_recv = false;
  uint32_t byte_len = 0;
  std::string status_text;
};

struct VerbsProvider {
  const char* name;
  // Apple's subset: UC queue pairs only, SEND/RECV only, 4 KB messages, at most 10 queue pairs,
  // and both ends of a queue pair must post equal numbers of frame slots.
  bool apple_rules;
  bool (*list_devices)(VerbsProvider* self, std::vector<std::string>* names, std::string* error);
  void* (*open_device)(VerbsProvider* self, const std::string& name, std::string* error);
  void (*close_device)(void* context);
  bool (*query_port)(void* context, uint8_t port, PortInfo* out, std::string* error);
  void* (*alloc_pd)(void* context, std::string* error);
  void (*dealloc_pd)(void* pd);
  bool (*reg_mr)(void* pd, void* addr, size_t length, RdmaMr* out, std::string* error);
  void (*dereg_mr)(RdmaMr* mr);
  void* (*create_cq)(void* context, int depth, std::string* error);
  void (*destroy_cq)(void* cq);
  bool (*create_qp)(void* pd, void* send_cq, void* recv_cq, QpType type, uint32_t max_send, uint32_t max_recv,
                    RdmaQp* out, std::string* error);
  void (*destroy_qp)(RdmaQp* qp);
  bool (*modify_qp)(RdmaQp* qp, QpState target, const QpPeer& peer, std::string* error);
  bool (*post_send)(RdmaQp* qp, uint64_t wr_id, const RdmaMr& mr, const uint8_t* addr, uint32_t length,
                    std::string* error);
  bool (*post_recv)(RdmaQp* qp, uint64_t wr_id, const RdmaMr& mr, uint8_t* addr, uint32_t length,
                    std::string* error);
  int (*poll_cq)(void* cq, int max, WorkCompletion* out);
};

// The in-process fake fabric (one per process; devices "fake0" and "fake1").
VerbsProvider* fake_verbs_provider(bool apple_rules);
// libibverbs / librdma via dlopen; null with `error` set when the library is absent.
VerbsProvider* system_verbs_provider(std::string* error);

}  // namespace baton
