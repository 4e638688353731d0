// The system verbs provider: libibverbs.so.1 (Linux) or librdma.dylib (macOS 26.2+, Apple's
// subset) opened with dlopen at run time, so the addon neither links nor requires them. Device
// listing needs only three exported functions and works everywhere; the data path needs the
// struct layouts from <infiniband/verbs.h> and is compiled only when those headers are present
// (Debian: libibverbs-dev). Without them the provider reports why and the transport stays on TCP.
#include <dlfcn.h>

#include <cerrno>
#include <cstring>

#include "rdma_provider.h"

#if defined(__has_include)
#if __has_include(<infiniband/verbs.h>) && !defined(BATON_NO_VERBS_HEADERS)
#include <infiniband/verbs.h>
#define BATON_HAVE_VERBS_HEADERS 1
#endif
#endif

namespace baton {
namespace {

#if defined(__APPLE__)
const char* const kLibraries[] = {"librdma.dylib", "/usr/lib/librdma.dylib"};
#else
const char* const kLibraries[] = {"libibverbs.so.1", "libibverbs.so"};
#endif

struct Library {
  void* handle = nullptr;
  std::string load_error;
  void** (*get_device_list)(int*) = nullptr;
  void (*free_device_list)(void**) = nullptr;
  const char* (*get_device_name)(void*) = nullptr;
#ifdef BATON_HAVE_VERBS_HEADERS
  ibv_context* (*open_device)(ibv_device*) = nullptr;
  int (*close_device)(ibv_context*) = nullptr;
  int (*query_port)(ibv_context*, uint8_t, ibv_port_attr*) = nullptr;
  int (*query_gid)(ibv_context*, uint8_t, int, ibv_gid*) = nullptr;
  ibv_pd* (*alloc_pd)(ibv_context*) = nullptr;
  int (*dealloc_pd)(ibv_pd*) = nullptr;
  ibv_mr* (*reg_mr)(ibv_pd*, void*, size_t, int) = nullptr;
  int (*dereg_mr)(ibv_mr*) = nullptr;
  ibv_cq* (*create_cq)(ibv_context*, int, void*, ibv_comp_channel*, int) = nullptr;
  int (*destroy_cq)(ibv_cq*) = nullptr;
  ibv_qp* (*create_qp)(ibv_pd*, ibv_qp_init_attr*) = nullptr;
  int (*destroy_qp)(ibv_qp*) = nullptr;
  int (*modify_qp)(ibv_qp*, ibv_qp_attr*, int) = nullptr;
  const char* (*wc_status_str)(ibv_wc_status) = nullptr;
#endif
};

Library& library() {
  static Library* lib = [] {
    auto* l = new Library();
    for (const char* name : kLibraries) {
      l->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (l->handle) break;
      const char* text = dlerror();
      l->load_error = text ? text : "dlopen failed";
    }
    if (!l->handle) return l;
    auto sym = [&](const char* name) { return dlsym(l->handle, name); };
    l->get_device_list = reinterpret_cast<void** (*)(int*)>(sym("ibv_get_device_list"));
    l->free_device_list = reinterpret_cast<void (*)(void**)>(sym("ibv_free_device_list"));
    l->get_device_name = reinterpret_cast<const char* (*)(void*)>(sym("ibv_get_device_name"));
#ifdef BATON_HAVE_VERBS_HEADERS
    l->open_device = reinterpret_cast<decltype(l->open_device)>(sym("ibv_open_device"));
    l->close_device = reinterpret_cast<decltype(l->close_device)>(sym("ibv_close_device"));
    l->query_port = reinterpret_cast<decltype(l->query_port)>(sym("ibv_query_port"));
    l->query_gid = reinterpret_cast<decltype(l->query_gid)>(sym("ibv_query_gid"));
    l->alloc_pd = reinterpret_cast<decltype(l->alloc_pd)>(sym("ibv_alloc_pd"));
    l->dealloc_pd = reinterpret_cast<decltype(l->dealloc_pd)>(sym("ibv_dealloc_pd"));
    l->reg_mr = reinterpret_cast<decltype(l->reg_mr)>(sym("ibv_reg_mr"));
    l->dereg_mr = reinterpret_cast<decltype(l->dereg_mr)>(sym("ibv_dereg_mr"));
    l->create_cq = reinterpret_cast<decltype(l->create_cq)>(sym("ibv_create_cq"));
    l->destroy_cq = reinterpret_cast<decltype(l->destroy_cq)>(sym("ibv_destroy_cq"));
    l->create_qp = reinterpret_cast<decltype(l->create_qp)>(sym("ibv_create_qp"));
    l->destroy_qp = reinterpret_cast<decltype(l->destroy_qp)>(sym("ibv_destroy_qp"));
    l->modify_qp = reinterpret_cast<decltype(l->modify_qp)>(sym("ibv_modify_qp"));
    l->wc_status_str = reinterpret_cast<decltype(l->wc_status_str)>(sym("ibv_wc_status_str"));
#endif
    if (!l->get_device_list || !l->free_device_list || !l->get_device_name) {
      l->load_error = "the verbs library lacks ibv_get_device_list/ibv_get_device_name";
      dlclose(l->handle);
      l->handle = nullptr;
    }
    return l;
  }();
  return *lib;
}

bool list_devices(VerbsProvider*, std::vector<std::string>* names, std::string* error) {
  Library& lib = library();
  names->clear();
  if (!lib.handle) {
    *error = "no verbs library (" + lib.load_error + ")";
    return false;
  }
  int count = 0;
  errno = 0;
  void** devices = lib.get_device_list(&count);
  if (!devices) {
    *error = std::string("ibv_get_device_list failed: ") + std::strerror(errno ? errno : ENODEV) +
             " (no RDMA devices or no kernel support)";
    return false;
  }
  for (int i = 0; i < count; i++) {
    const char* name = lib.get_device_name(devices[i]);
    if (name) names->push_back(name);
  }
  lib.free_device_list(devices);
  return true;
}

#ifdef BATON_HAVE_VERBS_HEADERS

bool data_path_ready(std::string* error) {
  Library& lib = library();
  if (!lib.handle) {
    *error = "no verbs library (" + lib.load_error + ")";
    return false;
  }
  if (!lib.open_device || !lib.alloc_pd || !lib.reg_mr || !lib.create_cq || !lib.create_qp || !lib.modify_qp ||
      !lib.query_port || !lib.query_gid) {
    *error = "the verbs library lacks functions the data path needs";
    return false;
  }
  return true;
}

void* open_device(VerbsProvider*, const std::string& name, std::string* error) {
  if (!data_path_ready(error)) return nullptr;
  Library& lib = library();
  int count = 0;
  void** devices = lib.get_device_list(&count);
  if (!devices) {
    *error = std::string("ibv_get_device_list failed: ") + std::strerror(errno ? errno : ENODEV);
    return nullptr;
  }
  ibv_context* context = nullptr;
  for (int i = 0; i < count; i++) {
    if (name == lib.get_device_name(devices[i])) context = lib.open_device(static_cast<ibv_device*>(devices[i]));
  }
  lib.free_device_list(devices);
  if (!context) *error = "cannot open RDMA device \"" + name + "\"";
  return context;
}

void close_device(void* context) { library().close_device(static_cast<ibv_context*>(context)); }

uint32_t mtu_bytes(ibv_mtu mtu) { return 128u << unsigned(mtu); }  // IBV_MTU_256 = 1

bool query_port(void* context, uint8_t port, PortInfo* out, std::string* error) {
  ibv_port_attr attributes{};
  if (library().query_port(static_cast<ibv_context*>(context), port, &attributes) != 0) {
    *error = "ibv_query_port failed";
    return false;
  }
  ibv_gid gid{};
  library().query_gid(static_cast<ibv_context*>(context), port, 0, &gid);
  out->lid = attributes.lid;
  std::memcpy(out->gid, gid.raw, 16);
  out->mtu_bytes = mtu_bytes(attributes.active_mtu);
  return true;
}

void* alloc_pd(void* context, std::string* error) {
  ibv_pd* pd = library().alloc_pd(static_cast<ibv_context*>(context));
  if (!pd) *error = "ibv_alloc_pd failed";
  return pd;
}
void dealloc_pd(void* pd) { library().dealloc_pd(static_cast<ibv_pd*>(pd)); }

bool reg_mr(void* pd, void* addr, size_t length, RdmaMr* out, std::string* error) {
  ibv_mr* mr = library().reg_mr(static_cast<ibv_pd*>(pd), addr, length, IBV_ACCESS_LOCAL_WRITE);
  if (!mr) {
    *error = std::string("ibv_reg_mr failed: ") + std::strerror(errno);
    return false;
  }
  out->handle = mr;
  out->lkey = mr->lkey;
  out->rkey = mr->rkey;
  out->addr = static_cast<uint8_t*>(addr);
  out->length = length;
  return true;
}
void dereg_mr(RdmaMr* mr) {
  if (mr->handle) library().dereg_mr(static_cast<ibv_mr*>(mr->handle));
  mr->handle = nullptr;
}

void* create_cq(void* context, int depth, std::string* error) {
  ibv_cq* cq = library().create_cq(static_cast<ibv_context*>(context), depth, nullptr, nullptr, 0);
  if (!cq) *error = "ibv_create_cq failed";
  return cq;
}
void destroy_cq(void* cq) { library().destroy_cq(static_cast<ibv_cq*>(cq)); }

bool create_qp(void* pd, void* send_cq, void* recv_cq, QpType type, uint32_t max_send, uint32_t max_recv, RdmaQp* out,
               std::string* error) {
  ibv_qp_init_attr init{};
  init.send_cq = static_cast<ibv_cq*>(send_cq);
  init.recv_cq = static_cast<ibv_cq*>(recv_cq);
  init.cap.max_send_wr = max_send;
  init.cap.max_recv_wr = max_recv;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.qp_type = type == QpType::UC ? IBV_QPT_UC : IBV_QPT_RC;
  init.sq_sig_all = 1;
  ibv_qp* qp = library().create_qp(static_cast<ibv_pd*>(pd), &init);
  if (!qp) {
    *error = std::string("ibv_create_qp failed: ") + std::strerror(errno);
    return false;
  }
  out->handle = qp;
  out->qp_num = qp->qp_num;
  return true;
}
void destroy_qp(RdmaQp* qp) {
  if (qp->handle) library().destroy_qp(static_cast<ibv_qp*>(qp->handle));
  qp->handle = nullptr;
}

ibv_mtu to_mtu(uint32_t bytes) {
  if (bytes >= 4096) return IBV_MTU_4096;
  if (bytes >= 2048) return IBV_MTU_2048;
  if (bytes >= 1024) return IBV_MTU_1024;
  if (bytes >= 512) return IBV_MTU_512;
  return IBV_MTU_256;
}

bool modify_qp(RdmaQp* qp, QpState target, const QpPeer& peer, std::string* error) {
  auto* q = static_cast<ibv_qp*>(qp->handle);
  bool reliable = q->qp_type == IBV_QPT_RC;
  ibv_qp_attr attributes{};
  int mask = IBV_QP_STATE;
  switch (target) {
    case QpState::RESET: attributes.qp_state = IBV_QPS_RESET; break;
    case QpState::ERROR: attributes.qp_state = IBV_QPS_ERR; break;
    case QpState::INIT:
      attributes.qp_state = IBV_QPS_INIT;
      attributes.pkey_index = 0;
      attributes.port_num = peer.port;
      attributes.qp_access_flags = IBV_ACCESS_LOCAL_WRITE;
      mask |= IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
      break;
    case QpState::RTR: {
      attributes.qp_state = IBV_QPS_RTR;
      attributes.path_mtu = to_mtu(peer.mtu_bytes);
      attributes.dest_qp_num = peer.qp_num;
      attributes.rq_psn = peer.psn & 0xffffff;
      attributes.ah_attr.dlid = peer.lid;
      attributes.ah_attr.port_num = peer.port;
      bool global = false;
      for (uint8_t byte : peer.gid) global = global || byte != 0;
      if (global) {
        attributes.ah_attr.is_global = 1;
        std::memcpy(attributes.ah_attr.grh.dgid.raw, peer.gid, 16);
        attributes.ah_attr.grh.hop_limit = 1;
        attributes.ah_attr.grh.sgid_index = 0;
      }
      mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
      if (reliable) {
        attributes.max_dest_rd_atomic = 1;
        attributes.min_rnr_timer = 12;
        mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      }
      break;
    }
    case QpState::RTS:
      attributes.qp_state = IBV_QPS_RTS;
      attributes.sq_psn = peer.own_psn & 0xffffff;
      mask |= IBV_QP_SQ_PSN;
      if (reliable) {
        attributes.timeout = 14;
        attributes.retry_cnt = 7;
        attributes.rnr_retry = 7;
        attributes.max_rd_atomic = 1;
        mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
      }
      break;
  }
  int result = library().modify_qp(q, &attributes, mask);
  if (result != 0) {
    *error = std::string("ibv_modify_qp failed: ") + std::strerror(result);
    return false;
  }
  return true;
}

bool post_send(RdmaQp* qp, uint64_t wr_id, const RdmaMr& mr, const uint8_t* addr, uint32_t length, std::string* error) {
  ibv_sge sge{reinterpret_cast<uintptr_t>(addr), length, mr.lkey};
  ibv_send_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  int result = ibv_post_send(static_cast<ibv_qp*>(qp->handle), &wr, &bad);  // inline: context ops table
  if (result != 0) *error = std::string("ibv_post_send failed: ") + std::strerror(result);
  return result == 0;
}

bool post_recv(RdmaQp* qp, uint64_t wr_id, const RdmaMr& mr, uint8_t* addr, uint32_t length, std::string* error) {
  ibv_sge sge{reinterpret_cast<uintptr_t>(addr), length, mr.lkey};
  ibv_recv_wr wr{};
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  int result = ibv_post_recv(static_cast<ibv_qp*>(qp->handle), &wr, &bad);
  if (result != 0) *error = std::string("ibv_post_recv failed: ") + std::strerror(result);
  return result == 0;
}

int poll_cq(void* cq, int max, WorkCompletion* out) {
  ibv_wc completions[32];
  int count = ibv_poll_cq(static_cast<ibv_cq*>(cq), max < 32 ? max : 32, completions);
  for (int i = 0; i < count; i++) {
    out[i].wr_id = completions[i].wr_id;
    out[i].status = completions[i].status;
    out[i].is_recv = (completions[i].opcode & IBV_WC_RECV) != 0;
    out[i].byte_len = completions[i].byte_len;
    out[i].status_text = completions[i].status == IBV_WC_SUCCESS ? ""
                         : library().wc_status_str ? library().wc_status_str(completions[i].status)
                                                   : "completion error";
  }
  return count;
}

#else  // no verbs headers at build time: the data path reports why

void* open_device(VerbsProvider*, const std::string&, std::string* error) {
  *error = "this build has no RDMA data path (rebuild with libibverbs-dev installed)";
  return nullptr;
}
void close_device(void*) {}
bool query_port(void*, uint8_t, PortInfo*, std::string* error) { return open_device(nullptr, "", error) != nullptr; }
void* alloc_pd(void*, std::string* error) { return open_device(nullptr, "", error); }
void dealloc_pd(void*) {}
bool reg_mr(void*, void*, size_t, RdmaMr*, std::string* error) { return open_device(nullptr, "", error) != nullptr; }
void dereg_mr(RdmaMr*) {}
void* create_cq(void*, int, std::string* error) { return open_device(nullptr, "", error); }
void destroy_cq(void*) {}
bool create_qp(void*, void*, void*, QpType, uint32_t, uint32_t, RdmaQp*, std::string* error) {
  return open_device(nullptr, "", error) != nullptr;
}
void destroy_qp(RdmaQp*) {}
bool modify_qp(RdmaQp*, QpState, const QpPeer&, std::string* error) { return open_device(nullptr, "", error) != nullptr; }
bool post_send(RdmaQp*, uint64_t, const RdmaMr&, const uint8_t*, uint32_t, std::string* error) {
  return open_device(nullptr, "", error) != nullptr;
}
bool post_recv(RdmaQp*, uint64_t, const RdmaMr&, uint8_t*, uint32_t, std::string* error) {
  return open_device(nullptr, "", error) != nullptr;
}
int poll_cq(void*, int, WorkCompletion*) { return -1; }

#endif

}  // namespace

VerbsProvider* system_verbs_provider(std::string* error) {
  static VerbsProvider provider{
#if defined(__APPLE__)
      "librdma", true,
#else
      "libibverbs", false,
#endif
      list_devices, open_device, close_device, query_port, alloc_pd, dealloc_pd, reg_mr, dereg_mr, create_cq,
      destroy_cq, create_qp, destroy_qp, modify_qp, post_send, post_recv, poll_cq};
  if (!library().handle) {
    *error = "no verbs library (" + library().load_error + ")";
    return nullptr;
  }
  return &provider;
}

}  // namespace baton
