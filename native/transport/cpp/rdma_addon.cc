// Node bindings of the RDMA backend: device listing for the node announcement, the provider's
// status (why RDMA is unavailable), the fake-provider self test, and RdmaChannel objects that the
// TS side drives (QP details travel over the TCP connection; see src/rdma.ts).
#include <cstdlib>
#include <memory>

#include "rdma.h"
#include "rdma_channel.h"

namespace baton {
namespace {

VerbsProvider* provider_named(const std::string& name, std::string* error) {
  if (name == "fake") return fake_verbs_provider(false);
  if (name == "fake-apple") return fake_verbs_provider(true);
  if (name == "system") return system_verbs_provider(error);
  *error = "unknown RDMA provider \"" + name + "\" (system, fake or fake-apple)";
  return nullptr;
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string error;
  Napi::Array result = Napi::Array::New(env);
  VerbsProvider* provider = provider_named(info[0].As<Napi::String>(), &error);
  std::vector<std::string> names;
  if (provider && provider->list_devices(provider, &names, &error)) {
    for (size_t i = 0; i < names.size(); i++) result.Set(uint32_t(i), names[i]);
  }
  return result;
}

// "" when the provider is usable and has devices; otherwise why not.
Napi::Value ProviderStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string error;
  VerbsProvider* provider = provider_named(info[0].As<Napi::String>(), &error);
  std::vector<std::string> names;
  if (provider && provider->list_devices(provider, &names, &error) && names.empty()) error = "no RDMA devices found";
  return Napi::String::New(env, error);
}

Napi::Value FakeSelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> lines = rdma_fake_self_test();
  Napi::Array result = Napi::Array::New(env, lines.size());
  for (size_t i = 0; i < lines.size(); i++) result.Set(uint32_t(i), lines[i]);
  return result;
}

class ChannelWrap : public Napi::ObjectWrap<ChannelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RdmaChannel",
                       {InstanceMethod("endpoint", &ChannelWrap::Endpoint), InstanceMethod("connect", &ChannelWrap::Connect),
                        InstanceMethod("send", &ChannelWrap::Send), InstanceMethod("progress", &ChannelWrap::Progress),
                        InstanceMethod("stats", &ChannelWrap::Stats), InstanceMethod("close", &ChannelWrap::Close)});
  }

  // new RdmaChannel(provider, device, { slots, slotBytes, qpType, maxFrameBytes })
  explicit ChannelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChannelWrap>(info) {
    Napi::Env env = info.Env();
    std::string error;
    VerbsProvider* provider = provider_named(info[0].As<Napi::String>(), &error);
    if (!provider) throw Napi::Error::New(env, error);
    Napi::Object o = info[2].As<Napi::Object>();
    RdmaChannelOptions options;
    options.slots = o.Get("slots").As<Napi::Number>().Uint32Value();
    options.slot_bytes = o.Get("slotBytes").As<Napi::Number>().Uint32Value();
    options.qp_type = o.Get("qpType").As<Napi::String>().Utf8Value() == "RC" ? QpType::RC : QpType::UC;
    options.max_payload_bytes = uint64_t(o.Get("maxFrameBytes").As<Napi::Number>().DoubleValue());
    channel_ = std::make_unique<RdmaChannel>(provider);
    if (!channel_->open(info[1].As<Napi::String>(), options, &error)) {
      channel_.reset();
      throw Napi::Error::New(env, error);
    }
  }

 private:
  RdmaChannel& channel(Napi::Env env) {
    if (!channel_) throw Napi::Error::New(env, "RDMA channel is closed");
    return *channel_;
  }

  Napi::Value Endpoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    QpPeer local = channel(env).local_endpoint();
    Napi::Object o = Napi::Object::New(env);
    o.Set("qpNum", local.qp_num);
    o.Set("lid", local.lid);
    o.Set("gid", Napi::String::New(env, [&] {
            static const char* digits = "0123456789abcdef";
            std::string hex;
            for (uint8_t byte : local.gid) { hex += digits[byte >> 4]; hex += digits[byte & 15]; }
            return hex;
          }()));
    o.Set("psn", local.psn);
    o.Set("mtuBytes", local.mtu_bytes);
    o.Set("slots", channel(env).slots());
    return o;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    QpPeer peer;
    peer.qp_num = o.Get("qpNum").As<Napi::Number>().Uint32Value();
    peer.lid = uint16_t(o.Get("lid").As<Napi::Number>().Uint32Value());
    std::string gid = o.Get("gid").As<Napi::String>();
    for (size_t i = 0; i < 16 && 2 * i + 1 < gid.size(); i++) peer.gid[i] = uint8_t(std::strtoul(gid.substr(2 * i, 2).c_str(), nullptr, 16));
    peer.psn = o.Get("psn").As<Napi::Number>().Uint32Value();
    peer.mtu_bytes = o.Get("mtuBytes").As<Napi::Number>().Uint32Value();
    std::string error;
    if (!channel(env).connect(peer, &error)) throw Napi::Error::New(env, error);
    return env.Undefined();
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto header = info[0].As<Napi::TypedArray>();
    if (header.ByteLength() != kFrameHeaderBytes) throw Napi::TypeError::New(env, "frame header must be 128 bytes");
    const uint8_t* header_bytes = static_cast<const uint8_t*>(header.ArrayBuffer().Data()) + header.ByteOffset();
    const uint8_t* payload = nullptr;
    size_t length = 0;
    if (info[1].IsTypedArray()) {
      auto array = info[1].As<Napi::TypedArray>();
      payload = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
      length = array.ByteLength();
    }
    std::string error;
    if (!channel(env).send(header_bytes, payload, length, &error)) throw Napi::Error::New(env, error);
    return Napi::Number::New(env, double(channel(env).queued_bytes()));
  }

  // -> [header0, payload0, header1, payload1, …]
  Napi::Value Progress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<ReceivedFrame> frames;
    std::string error;
    bool ok = channel(env).progress(&frames, &error);
    Napi::Array result = Napi::Array::New(env, frames.size() * 2);
    uint32_t slot = 0;
    for (auto& frame : frames) {
      result.Set(slot++, Napi::Buffer<uint8_t>::Copy(env, frame.header, kFrameHeaderBytes));
      if (frame.payload) {
        result.Set(slot++, Napi::Buffer<uint8_t>::New(env, frame.payload, frame.payload_length,
                                                      [](Napi::Env, uint8_t* data) { std::free(data); }));
      } else {
        result.Set(slot++, Napi::Buffer<uint8_t>::New(env, 0));
      }
    }
    if (!ok) throw Napi::Error::New(env, error);
    return result;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const RdmaChannelStats& s = channel(env).stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("framesSent", double(s.frames_sent));
    o.Set("framesReceived", double(s.frames_received));
    o.Set("fragmentsSent", double(s.fragments_sent));
    o.Set("fragmentsReceived", double(s.fragments_received));
    o.Set("creditMessages", double(s.credit_messages));
    o.Set("creditStalls", double(s.credit_stalls));
    o.Set("queuedBytes", double(channel(env).queued_bytes()));
    static const char* names[] = {"RESET", "INIT", "RTR", "RTS", "ERROR"};
    o.Set("state", names[int(channel(env).state())]);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    channel_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<RdmaChannel> channel_;
};

}  // namespace

void register_rdma(Napi::Env env, Napi::Object exports) {
  exports.Set("rdmaDevices", Napi::Function::New(env, Devices));
  exports.Set("rdmaProviderStatus", Napi::Function::New(env, ProviderStatus));
  exports.Set("rdmaFakeSelfTest", Napi::Function::New(env, FakeSelfTest));
  exports.Set("RdmaChannel", ChannelWrap::Define(env));
}

}  // namespace baton
