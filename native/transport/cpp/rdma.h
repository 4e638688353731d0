// Node bindings of the RDMA backend (rdma_addon.cc).
#pragma once

#include <napi.h>

namespace baton {
void register_rdma(Napi::Env env, Napi::Object exports);
}
