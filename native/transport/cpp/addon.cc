// Node bindings (node-addon-api) for the transport. JS validates options; this file copies them
// into plain structs, and turns I/O-loop events into one JS call per wake-up through a single
// ThreadSafeFunction. Received payloads of 64 KB and more are handed over without a copy as
// external Buffers whose finalizer frees the native allocation.
#include <dlfcn.h>
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "frame.h"
#include "io_loop.h"
#include "rdma.h"
#include "sha256.h"

namespace baton {
namespace {

constexpr size_t kCopyBelowBytes = 64 * 1024;

class Addon : public EventSink {
 public:
  ~Addon() override {
    loop_.reset();  // joins the I/O thread before the function goes away
    if (started_ && !uv_mode_) tsfn_.Release();
  }

  void notify() override {
    if (uv_mode_) {
      deliver_now();
      return;
    }
    if (call_pending_.exchange(true)) return;
    tsfn_.NonBlockingCall([this](Napi::Env env, Napi::Function dispatch) { deliver(env, dispatch); });
  }

  // uv driver: called on the main thread from a libuv callback (no JS on the stack).
  void deliver_now() {
    if (delivering_) return;  // re-entered from JS: the loop below picks the events up
    if (!loop_->has_events()) return;  // a wake-up that completed no frame: no JS to run
    delivering_ = true;
    napi_handle_scope raw_scope = nullptr;
    bool scoped = napi_open_handle_scope(env_, &raw_scope) == napi_ok;
    if (!scoped || stopped_ || !can_run_js()) {
      // The environment is shutting down (process.exit in a worker, …): drop what arrived.
      std::vector<Event> dropped;
      loop_->take_events(dropped);
      for (auto& event : dropped) payload_free(event.payload, event.payload_length);
      if (scoped) napi_close_handle_scope(env_, raw_scope);
      delivering_ = false;
      return;
    }
    try {
      while (!stopped_ && loop_->has_events()) deliver(env_, dispatch_.Value());
    } catch (const Napi::Error& error) {
      napi_fatal_exception(env_, error.Value());
    }
    napi_close_handle_scope(env_, raw_scope);
    delivering_ = false;
  }

  void start(Napi::Env env, Napi::Function dispatch, bool uv_mode) {
    if (started_) throw Napi::Error::New(env, "transport already initialised");
    uv_mode_ = uv_mode;
    started_ = true;
    if (uv_mode) {
      env_ = env;
      dispatch_ = Napi::Persistent(dispatch);
      noop_ = Napi::Persistent(Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return info.Env().Undefined(); }));
      context_ = std::make_unique<Napi::AsyncContext>(env, "baton-transport");
      uv_loop_t* uv_loop = nullptr;
      if (napi_get_uv_event_loop(env, &uv_loop) != napi_ok) throw Napi::Error::New(env, "no libuv loop");
      loop_ = std::make_unique<IoLoop>(this, uv_loop);
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, dispatch, "baton-transport", 0, 1);
    tsfn_.Unref(env);
    loop_ = std::make_unique<IoLoop>(this, nullptr);
  }

  bool uv_mode() const { return uv_mode_; }

  // Calls a JS no-op through the raw C API: fails (without throwing) once JS can no longer run.
  bool can_run_js() {
    napi_value global, noop, result;
    if (napi_get_global(env_, &global) != napi_ok) return false;
    if (napi_get_reference_value(env_, noop_, &noop) != napi_ok || noop == nullptr) return false;
    return napi_call_function(env_, global, noop, 0, nullptr, &result) == napi_ok;
  }

  IoLoop* loop(Napi::Env env) {
    if (!loop_) throw Napi::Error::New(env, "transport not initialised");
    return loop_.get();
  }

  Napi::ThreadSafeFunction tsfn_;

 private:
  void deliver(Napi::Env env, Napi::Function dispatch) {
    call_pending_ = false;
    std::vector<Event> events;
    loop_->take_events(events);
    if (events.empty()) return;
    size_t frames = 0;
    for (auto& event : events) frames += event.type == EventType::FRAME;
    Napi::Buffer<uint8_t> headers = Napi::Buffer<uint8_t>::New(env, frames * kFrameHeaderBytes);
    Napi::Array list = Napi::Array::New(env, events.size() * 4);
    uint32_t slot = 0;
    size_t header_offset = 0;
    for (auto& event : events) {
      list.Set(slot++, uint32_t(event.type));
      list.Set(slot++, event.id);
      switch (event.type) {
        case EventType::CONNECTION:
        case EventType::CONNECTED:
          list.Set(slot++, event.listener);
          list.Set(slot++, event.text);
          break;
        case EventType::FRAME: {
          std::memcpy(headers.Data() + header_offset, event.header, kFrameHeaderBytes);
          list.Set(slot++, double(header_offset));
          header_offset += kFrameHeaderBytes;
          Napi::Value payload = env.Undefined();
          if (event.payload_length > 0 && event.payload_length < kCopyBelowBytes) {
            payload = Napi::Buffer<uint8_t>::Copy(env, event.payload, event.payload_length);
            payload_free(event.payload, event.payload_length);
          } else if (event.payload_length > 0) {
            int64_t length = int64_t(event.payload_length);
            Napi::MemoryManagement::AdjustExternalMemory(env, length);
            payload = Napi::Buffer<uint8_t>::New(env, event.payload, event.payload_length,
                                                 [length](Napi::Env finalize_env, uint8_t* data) {
                                                   payload_free(data, size_t(length));
                                                   Napi::MemoryManagement::AdjustExternalMemory(finalize_env, -length);
                                                 });
          }
          event.payload = nullptr;
          list.Set(slot++, payload);
          loop_->delivered(event.id, event.payload_length);
          break;
        }
        case EventType::CLOSE:
        case EventType::REJECTED:
          list.Set(slot++, event.code);
          list.Set(slot++, event.type == EventType::REJECTED ? event.detail : event.text);
          break;
        default:
          list.Set(slot++, env.Undefined());
          list.Set(slot++, env.Undefined());
      }
    }
    // Raw calls: a JS handler may end the environment (process.exit in a worker), after which
    // the wrappers' error path itself cannot run.
    napi_value argv[2] = {list, headers};
    napi_value result;
    napi_status status = uv_mode_ ? napi_make_callback(env, *context_, env.Global(), dispatch, 2, argv, &result)
                                  : napi_call_function(env, env.Global(), dispatch, 2, argv, &result);
    if (status == napi_pending_exception) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    }
    if (status != napi_ok) stopped_ = true;
  }

 public:
  bool stopped_ = false;

 private:

  std::unique_ptr<IoLoop> loop_;
  bool uv_mode_ = false;
  bool delivering_ = false;
  Napi::Env env_ = Napi::Env(nullptr);
  Napi::FunctionReference dispatch_;
  Napi::FunctionReference noop_;
  std::unique_ptr<Napi::AsyncContext> context_;
  std::atomic<bool> call_pending_{false};
  bool started_ = false;
};

Addon& addon_of(Napi::Env env) { return *env.GetInstanceData<Addon>(); }

EndpointOptions read_options(Napi::Env env, Napi::Object object) {
  EndpointOptions options;
  Napi::Value secret = object.Get("secret");
  if (!secret.IsBuffer()) throw Napi::TypeError::New(env, "options.secret must be a Buffer");
  auto bytes = secret.As<Napi::Buffer<uint8_t>>();
  options.secret.assign(bytes.Data(), bytes.Data() + bytes.Length());
  options.max_payload_bytes = uint64_t(object.Get("maxFrameBytes").As<Napi::Number>().DoubleValue());
  options.high_water_mark = size_t(object.Get("highWaterMark").As<Napi::Number>().DoubleValue());
  options.max_undelivered_bytes = size_t(object.Get("maxUndeliveredBytes").As<Napi::Number>().DoubleValue());
  options.handshake_timeout_ms = uint32_t(object.Get("handshakeTimeoutMs").As<Napi::Number>().Uint32Value());
  options.protocol_version = uint16_t(object.Get("protocolVersion").As<Napi::Number>().Uint32Value());
  options.socket_buffer_bytes = int(object.Get("socketBufferBytes").As<Napi::Number>().Int32Value());
  return options;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  std::string mode = info[1].As<Napi::String>();
  addon_of(info.Env()).start(info.Env(), info[0].As<Napi::Function>(), mode == "uv");
  return info.Env().Undefined();
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  Addon& addon = addon_of(info.Env());
  if (addon.uv_mode()) return info.Env().Undefined();  // uv_poll handles keep the loop alive themselves
  if (info[0].As<Napi::Boolean>().Value()) addon.tsfn_.Ref(info.Env());
  else addon.tsfn_.Unref(info.Env());
  return info.Env().Undefined();
}

// listen(host, port, unixPath, options) -> [listenerId, boundPort]
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EndpointOptions options = read_options(env, info[3].As<Napi::Object>());
  std::string error;
  int bound_port = 0;
  uint32_t id = addon_of(env).loop(env)->listen(info[0].As<Napi::String>(), info[1].As<Napi::Number>().Int32Value(),
                                                info[2].As<Napi::String>(), options, &bound_port, &error);
  if (id == 0) throw Napi::Error::New(env, error);
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, id);
  result.Set(1u, bound_port);
  return result;
}

// connect(host, port, unixPath, options) -> connectionId
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EndpointOptions options = read_options(env, info[3].As<Napi::Object>());
  std::string error;
  uint32_t id = addon_of(env).loop(env)->connect(info[0].As<Napi::String>(), info[1].As<Napi::Number>().Int32Value(),
                                                 info[2].As<Napi::String>(), options, &error);
  if (id == 0) throw Napi::Error::New(env, error);
  return Napi::Number::New(env, id);
}

bool view_bytes(Napi::Value value, const uint8_t** data, size_t* length) {
  if (!value.IsTypedArray()) return false;
  auto array = value.As<Napi::TypedArray>();
  *data = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  *length = array.ByteLength();
  return true;
}

// send(connectionId, header128, payload | undefined, maxFrameBytes) -> 0 ok, 1 over high water, 2 not open
Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  const uint8_t* header = nullptr;
  size_t header_length = 0;
  if (!view_bytes(info[1], &header, &header_length) || header_length != kFrameHeaderBytes) {
    throw Napi::TypeError::New(env, "frame header must be 128 bytes");
  }
  const uint8_t* payload = nullptr;
  size_t payload_length = 0;
  if (!info[2].IsUndefined() && !view_bytes(info[2], &payload, &payload_length)) {
    throw Napi::TypeError::New(env, "payload must be a Buffer or typed array");
  }
  FrameHeader parsed;
  std::string message;
  if (parse_frame_header(header, uint64_t(info[3].As<Napi::Number>().DoubleValue()), parsed, &message) !=
      FrameParseError::NONE) {
    throw Napi::RangeError::New(env, "refusing to send: " + message);
  }
  if (parsed.payload_length != payload_length) {
    throw Napi::RangeError::New(env, "refusing to send: header payloadLength " + std::to_string(parsed.payload_length) +
                                         " but the payload has " + std::to_string(payload_length) + " bytes");
  }
  SendStatus status = addon_of(env).loop(env)->send(id, header, payload, payload_length);
  return Napi::Number::New(env, int(status));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  addon_of(env).loop(env)->close(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

Napi::Value CloseListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  addon_of(env).loop(env)->close_listener(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

Napi::Value QueuedBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, double(addon_of(env).loop(env)->queued_bytes(info[0].As<Napi::Number>().Uint32Value())));
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  const baton::Stats& s = addon_of(env).loop(env)->stats;
  auto put = [&](const char* name, const std::atomic<uint64_t>& value) { result.Set(name, double(value.load())); };
  put("connectionsAccepted", s.connections_accepted);
  put("connectionsOpened", s.connections_opened);
  put("connectionsClosed", s.connections_closed);
  put("connectionErrors", s.connection_errors);
  put("handshakeFailures", s.handshake_failures);
  put("authFailures", s.auth_failures);
  put("versionMismatches", s.version_mismatches);
  put("malformedFrames", s.malformed_frames);
  put("oversizedFrames", s.oversized_frames);
  put("truncatedFrames", s.truncated_frames);
  put("framesSent", s.frames_sent);
  put("framesReceived", s.frames_received);
  put("bytesSent", s.bytes_sent);
  put("bytesReceived", s.bytes_received);
  put("sendsOverHighWater", s.sends_over_high_water);
  put("ioWakeups", s.wakeups);
  return result;
}

// For tests: the C++ view of a header, as the same field names as the TS FrameHeader.
Napi::Value ParseHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* bytes = nullptr;
  size_t length = 0;
  if (!view_bytes(info[0], &bytes, &length) || length < kFrameHeaderBytes) {
    throw Napi::RangeError::New(env, "frame header truncated: " + std::to_string(length) + " of 128 bytes");
  }
  FrameHeader h;
  std::string message;
  if (parse_frame_header(bytes, ~uint64_t(0), h, &message) != FrameParseError::NONE) throw Napi::Error::New(env, message);
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", h.version);
  o.Set("kind", h.kind);
  o.Set("flags", h.flags);
  o.Set("sequenceId", h.sequence_id);
  o.Set("firstPosition", h.first_position);
  o.Set("tokenCount", h.token_count);
  o.Set("dtype", h.dtype);
  o.Set("width", h.width);
  o.Set("payloadLength", h.payload_length);
  o.Set("requestId", Napi::Buffer<uint8_t>::Copy(env, h.request_id, 16));
  o.Set("traceId", Napi::Buffer<uint8_t>::Copy(env, h.trace_id, 16));
  o.Set("spanId", Napi::Buffer<uint8_t>::Copy(env, h.span_id, 8));
  o.Set("traceFlags", h.trace_flags);
  o.Set("temperature", h.temperature);
  o.Set("topP", h.top_p);
  o.Set("topK", h.top_k);
  o.Set("minP", h.min_p);
  o.Set("repetitionPenalty", h.repetition_penalty);
  o.Set("presencePenalty", h.presence_penalty);
  o.Set("frequencyPenalty", h.frequency_penalty);
  o.Set("seed", Napi::BigInt::New(env, h.seed));
  o.Set("maxTokens", h.max_tokens);
  o.Set("planVersion", h.plan_version);
  return o;
}

// For tests: C++ encodes a header from the same field names.
Napi::Value EncodeHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  FrameHeader h;
  auto u32 = [&](const char* name) { return o.Get(name).As<Napi::Number>().Uint32Value(); };
  auto f32 = [&](const char* name) { return o.Get(name).As<Napi::Number>().FloatValue(); };
  auto copy = [&](const char* name, uint8_t* target, size_t length) {
    const uint8_t* bytes;
    size_t got;
    if (!view_bytes(o.Get(name), &bytes, &got) || got != length) throw Napi::TypeError::New(env, std::string(name) + " has the wrong size");
    std::memcpy(target, bytes, length);
  };
  h.version = uint16_t(u32("version"));
  h.kind = uint8_t(u32("kind"));
  h.flags = uint8_t(u32("flags"));
  h.sequence_id = u32("sequenceId");
  h.first_position = u32("firstPosition");
  h.token_count = u32("tokenCount");
  h.dtype = uint8_t(u32("dtype"));
  h.width = u32("width");
  h.payload_length = u32("payloadLength");
  copy("requestId", h.request_id, 16);
  copy("traceId", h.trace_id, 16);
  copy("spanId", h.span_id, 8);
  h.trace_flags = uint8_t(u32("traceFlags"));
  h.temperature = f32("temperature");
  h.top_p = f32("topP");
  h.top_k = u32("topK");
  h.min_p = f32("minP");
  h.repetition_penalty = f32("repetitionPenalty");
  h.presence_penalty = f32("presencePenalty");
  h.frequency_penalty = f32("frequencyPenalty");
  bool lossless = false;
  h.seed = o.Get("seed").As<Napi::BigInt>().Uint64Value(&lossless);
  h.max_tokens = u32("maxTokens");
  h.plan_version = u32("planVersion");
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, kFrameHeaderBytes);
  encode_frame_header(h, out.Data());
  return out;
}

// For tests: HMAC-SHA256(key, message) computed by the handshake's own implementation.
Napi::Value HmacSha256(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Buffer<uint8_t>>();
  auto message = info[1].As<Napi::Buffer<uint8_t>>();
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, 32);
  hmac_sha256(key.Data(), key.Length(), message.Data(), message.Length(), out.Data());
  return out;
}

// libuv may run our close callbacks after a worker's environment is gone and Node has dlclose'd
// the addon: pin this library in memory for the life of the process.
void pin_library() {
  static bool pinned = false;
  if (pinned) return;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&pin_library), &info) != 0 && info.dli_fname) {
    pinned = dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE) != nullptr;
  }
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  pin_library();
  env.SetInstanceData<Addon>(new Addon());
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("ref", Napi::Function::New(env, Ref));
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("send", Napi::Function::New(env, Send));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("closeListener", Napi::Function::New(env, CloseListener));
  exports.Set("queuedBytes", Napi::Function::New(env, QueuedBytes));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("parseHeader", Napi::Function::New(env, ParseHeader));
  exports.Set("encodeHeader", Napi::Function::New(env, EncodeHeader));
  exports.Set("hmacSha256", Napi::Function::New(env, HmacSha256));
  register_rdma(env, exports);
  return exports;
}

}  // namespace
}  // namespace baton

static Napi::Object InitTransport(Napi::Env env, Napi::Object exports) { return baton::Module(env, exports); }

NODE_API_MODULE(baton_transport, InitTransport)
