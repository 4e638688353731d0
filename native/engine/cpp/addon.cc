// N-API surface of the engine (node-addon-api). The TypeScript layer (src/native.ts) validates
// arguments and builds flat option objects; this file copies them into plain C++ structs on the
// JS thread, runs long work (load, forward, measure, GGUF reads) in AsyncWorkers that never touch
// JS values off the main thread, and turns error strings into rejected Promises.
//
// Buffer lifetimes: typed arrays passed to forward() are pinned with persistent references from
// the call until its Promise settles; the engine reads inputs and writes outputs in place (no
// copies) on a worker thread during that time, so the caller must not touch them until then.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bandwidth.h"
#include "engine.h"
#include "gguf.h"
#include "kernels/kernels.h"

namespace {

using baton::Engine;

// ---- helpers ---------------------------------------------------------------------------------

double get_number(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("option ") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::string get_string(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("option ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

uint32_t arg_u32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer in [0, 2^32)");
  return static_cast<uint32_t>(d);
}

int64_t arg_count(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || std::floor(d) != d) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative integer");
  return static_cast<int64_t>(d);
}

Napi::Value make_number(Napi::Env env, uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }

// ---- GGUF metadata ---------------------------------------------------------------------------

Napi::Value gguf_value_to_js(Napi::Env env, const baton::GgufValue& v) {
  using baton::GgufType;
  switch (v.type) {
    case GgufType::STRING: return Napi::String::New(env, std::string(v.str));
    case GgufType::BOOL: return Napi::Boolean::New(env, v.u != 0);
    case GgufType::F32: case GgufType::F64: return Napi::Number::New(env, v.f);
    case GgufType::U64:
      if (v.u > 9007199254740991ull) return Napi::BigInt::New(env, v.u);
      return Napi::Number::New(env, static_cast<double>(v.u));
    case GgufType::I64:
      if (v.i > 9007199254740991ll || v.i < -9007199254740991ll) return Napi::BigInt::New(env, v.i);
      return Napi::Number::New(env, static_cast<double>(v.i));
    case GgufType::ARRAY: {
      if (v.array_type == GgufType::STRING) {
        Napi::Array a = Napi::Array::New(env, v.strings.size());
        for (size_t i = 0; i < v.strings.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, std::string(v.strings[i])));
        return a;
      }
      if (v.array_type == GgufType::ARRAY) return Napi::Array::New(env, 0);
      Napi::Array a = Napi::Array::New(env, v.array_count);
      for (uint64_t i = 0; i < v.array_count; ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v.array_number(i)));
      return a;
    }
    default: return Napi::Number::New(env, static_cast<double>(v.i));
  }
}

class ReadGgufWorker : public Napi::AsyncWorker {
 public:
  ReadGgufWorker(Napi::Env env, std::string path) : Napi::AsyncWorker(env), path_(std::move(path)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string error;
    file_ = baton::GgufFile::open(path_, &error);
    if (!file_) SetError(error);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("version", Napi::Number::New(env, file_->version()));
    out.Set("alignment", Napi::Number::New(env, file_->alignment()));
    out.Set("dataOffset", make_number(env, file_->data_offset()));
    out.Set("fileBytes", make_number(env, file_->size()));
    Napi::Object meta = Napi::Object::New(env);
    for (const auto& key : file_->keys()) meta.Set(key, gguf_value_to_js(env, *file_->find(key)));
    out.Set("metadata", meta);
    Napi::Array tensors = Napi::Array::New(env, file_->tensors().size());
    uint32_t i = 0;
    for (const auto& t : file_->tensors()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      Napi::Array shape = Napi::Array::New(env, t.n_dims);
      for (uint32_t d = 0; d < t.n_dims; ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(t.ne[d])));
      o.Set("shape", shape);
      o.Set("type", Napi::String::New(env, baton::ggml_type_name(t.type)));
      o.Set("offset", make_number(env, t.offset));
      o.Set("bytes", make_number(env, t.bytes));
      tensors.Set(i++, o);
    }
    out.Set("tensors", tensors);
    file_.reset();
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::string path_;
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<baton::GgufFile> file_;
};

Napi::Value ReadGguf(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "readGguf(path): path must be a string");
  auto* w = new ReadGgufWorker(info.Env(), info[0].As<Napi::String>().Utf8Value());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Parses a GGUF image held in a buffer (tests and fuzzing from JS): null if valid, else the error.
Napi::Value CheckGgufBuffer(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "checkGgufBuffer(bytes): bytes must be a Uint8Array");
  Napi::TypedArray a = info[0].As<Napi::TypedArray>();
  const uint8_t* data = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  std::string error;
  auto file = baton::GgufFile::parse(data, a.ByteLength(), &error);
  if (file) return info.Env().Null();
  return Napi::String::New(info.Env(), error);
}

// ---- the engine object -------------------------------------------------------------------------

struct AddonData {
  Napi::FunctionReference engine_constructor;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod<&EngineWrap::Info>("info"),
                           InstanceMethod<&EngineWrap::Forward>("forward"),
                           InstanceMethod<&EngineWrap::MeasureDecode>("measureDecode"),
                           InstanceMethod<&EngineWrap::Memory>("memory"),
                           InstanceMethod<&EngineWrap::KvAllocate>("kvAllocate"),
                           InstanceMethod<&EngineWrap::KvExtend>("kvExtend"),
                           InstanceMethod<&EngineWrap::KvFree>("kvFree"),
                           InstanceMethod<&EngineWrap::KvTruncate>("kvTruncate"),
                           InstanceMethod<&EngineWrap::KvCopyPrefix>("kvCopyPrefix"),
                           InstanceMethod<&EngineWrap::KvStats>("kvStats"),
                           InstanceMethod<&EngineWrap::Close>("close"),
                       });
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "engines are made by loadEngine()");
    engine_.reset(info[0].As<Napi::External<Engine>>().Data());
  }

  Engine* engine(Napi::Env env) {
    if (!engine_) throw Napi::Error::New(env, "this engine is closed");
    return engine_.get();
  }
  std::atomic<int> busy{0};

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine* e = engine(env);
    const baton::ModelConfig& c = e->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", e->options().path);
    o.Set("arch", c.arch_name);
    o.Set("layers", c.n_layers);
    o.Set("layerStart", e->layer_start());
    o.Set("layerEnd", e->layer_end());
    o.Set("embeddingLength", Napi::Number::New(env, static_cast<double>(c.n_embd)));
    o.Set("feedForwardLength", Napi::Number::New(env, static_cast<double>(c.n_ff)));
    o.Set("headCount", c.n_head);
    o.Set("headCountKv", c.n_head_kv);
    o.Set("headDim", Napi::Number::New(env, static_cast<double>(c.head_dim)));
    o.Set("vocabSize", Napi::Number::New(env, static_cast<double>(c.n_vocab)));
    o.Set("contextLength", Napi::Number::New(env, static_cast<double>(c.context_length)));
    o.Set("maxContext", Napi::Number::New(env, static_cast<double>(e->options().max_context)));
    o.Set("maxBatchTokens", Napi::Number::New(env, static_cast<double>(e->options().max_batch_tokens)));
    o.Set("kvTokens", Napi::Number::New(env, static_cast<double>(e->options().kv_tokens)));
    o.Set("kvDType", baton::kv_dtype_name(e->kv().dtype()));
    o.Set("threads", e->options().threads);
    o.Set("tiedEmbeddings", c.tied_embeddings);
    o.Set("ropeNeox", c.rope_neox);
    o.Set("kernels", baton::kernels_name());
    o.Set("weightBytesPerToken", make_number(env, e->weight_bytes_per_token()));
    return o;
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine* e = engine(env);
    std::lock_guard<std::mutex> lock(e->mutex());
    baton::MemoryReport r = e->memory();
    Napi::Object o = Napi::Object::New(env);
    o.Set("weightsMappedBytes", make_number(env, r.weights_mapped_bytes));
    o.Set("weightsResidentBytes", make_number(env, r.weights_resident_bytes));
    o.Set("kvPoolBytes", make_number(env, r.kv_pool_bytes));
    o.Set("scratchBytes", make_number(env, r.scratch_bytes));
    o.Set("fileBytes", make_number(env, r.file_bytes));
    return o;
  }

  template <typename Fn>
  Napi::Value kv_op(const Napi::CallbackInfo& info, Fn fn) {
    Engine* e = engine(info.Env());
    std::lock_guard<std::mutex> lock(e->mutex());
    std::string error;
    if (!fn(e, &error)) throw Napi::Error::New(info.Env(), error);
    return info.Env().Undefined();
  }
  Napi::Value KvAllocate(const Napi::CallbackInfo& info) {
    uint32_t seq = arg_u32(info, 0, "sequenceId");
    int64_t n = arg_count(info, 1, "tokens");
    return kv_op(info, [&](Engine* e, std::string* err) { e->reset_sequence(seq); return e->kv().allocate(seq, n, err); });
  }
  Napi::Value KvExtend(const Napi::CallbackInfo& info) {
    uint32_t seq = arg_u32(info, 0, "sequenceId");
    int64_t n = arg_count(info, 1, "tokens");
    return kv_op(info, [&](Engine* e, std::string* err) { return e->kv().extend(seq, n, err); });
  }
  Napi::Value KvFree(const Napi::CallbackInfo& info) {
    uint32_t seq = arg_u32(info, 0, "sequenceId");
    return kv_op(info, [&](Engine* e, std::string* err) { e->reset_sequence(seq); return e->kv().free(seq, err); });
  }
  Napi::Value KvTruncate(const Napi::CallbackInfo& info) {
    uint32_t seq = arg_u32(info, 0, "sequenceId");
    int64_t n = arg_count(info, 1, "tokens");
    return kv_op(info, [&](Engine* e, std::string* err) { e->reset_sequence(seq); return e->kv().truncate(seq, n, err); });
  }
  Napi::Value KvCopyPrefix(const Napi::CallbackInfo& info) {
    uint32_t dst = arg_u32(info, 0, "destination");
    uint32_t src = arg_u32(info, 1, "source");
    int64_t n = arg_count(info, 2, "tokens");
    return kv_op(info, [&](Engine* e, std::string* err) { e->reset_sequence(dst); return e->kv().copy_prefix(dst, src, n, err); });
  }
  Napi::Value KvStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine* e = engine(env);
    std::lock_guard<std::mutex> lock(e->mutex());
    baton::KvPoolStats st = e->kv().stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("dtype", baton::kv_dtype_name(e->kv().dtype()));
    o.Set("blockTokens", Napi::Number::New(env, static_cast<double>(st.block_tokens)));
    o.Set("blockBytes", Napi::Number::New(env, static_cast<double>(st.block_bytes)));
    o.Set("blocksTotal", Napi::Number::New(env, static_cast<double>(st.blocks_total)));
    o.Set("blocksUsed", Napi::Number::New(env, static_cast<double>(st.blocks_used)));
    o.Set("poolBytes", Napi::Number::New(env, static_cast<double>(st.pool_bytes)));
    Napi::Array seqs = Napi::Array::New(env, st.sequences.size());
    for (size_t i = 0; i < st.sequences.size(); ++i) {
      Napi::Object s = Napi::Object::New(env);
      s.Set("sequenceId", Napi::Number::New(env, st.sequences[i].sequence_id));
      s.Set("tokens", Napi::Number::New(env, static_cast<double>(st.sequences[i].tokens)));
      s.Set("capacity", Napi::Number::New(env, static_cast<double>(st.sequences[i].capacity)));
      s.Set("blocks", Napi::Number::New(env, static_cast<double>(st.sequences[i].blocks)));
      seqs.Set(static_cast<uint32_t>(i), s);
    }
    o.Set("sequences", seqs);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (busy.load() > 0) throw Napi::Error::New(info.Env(), "engine busy: wait for pending calls before close()");
    engine_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value MeasureDecode(const Napi::CallbackInfo& info);

  std::unique_ptr<Engine> engine_;
};

// Pins `this` engine object and the given typed arrays until the work settles.
class EngineWorker : public Napi::AsyncWorker {
 public:
  EngineWorker(Napi::Env env, EngineWrap* wrap, Engine* engine)
      : Napi::AsyncWorker(env), wrap_(wrap), engine_(engine), deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(wrap->Value());
    wrap_->busy.fetch_add(1);
  }
  ~EngineWorker() override { wrap_->busy.fetch_sub(1); }
  Napi::Promise promise() { return deferred_.Promise(); }
  void pin(const Napi::Value& v) {
    if (v.IsObject()) pins_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 protected:
  EngineWrap* wrap_;
  Engine* engine_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  std::vector<Napi::ObjectReference> pins_;
};

class ForwardWorker : public EngineWorker {
 public:
  using EngineWorker::EngineWorker;
  baton::ForwardRequest request;
  void Execute() override {
    std::lock_guard<std::mutex> lock(engine_->mutex());
    std::string error;
    try {
      if (!engine_->forward(request, &error)) SetError(error);
    } catch (const std::exception& e) {
      SetError(std::string("forward failed: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
};

template <typename T>
T* typed_data(const Napi::Value& v, napi_typedarray_type type, int64_t min_elements, const char* name) {
  Napi::Env env = v.Env();
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) throw Napi::TypeError::New(env, std::string(name) + " has the wrong array type");
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (static_cast<int64_t>(a.ElementLength()) < min_elements) {
    throw Napi::RangeError::New(env, std::string(name) + " holds " + std::to_string(a.ElementLength()) + " elements, needs " + std::to_string(min_elements));
  }
  return reinterpret_cast<T*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}

// forward(segments: Float64Array (13 per sequence), output: number, tokens, hidden, history,
//         hiddenOut, logitsOut, tokensOut) → Promise<void>
Napi::Value EngineWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = engine(env);
  constexpr int kStride = 13;
  if (info.Length() < 8) throw Napi::TypeError::New(env, "forward needs 8 arguments");
  const double* seg = typed_data<const double>(info[0], napi_float64_array, 0, "segments");
  if (seg == nullptr) throw Napi::TypeError::New(env, "segments must be a Float64Array");
  const size_t n_seg = info[0].As<Napi::TypedArray>().ElementLength() / kStride;
  if (n_seg == 0 || n_seg > 65536) throw Napi::RangeError::New(env, "forward needs between 1 and 65536 sequences");
  auto* w = new ForwardWorker(env, this, e);
  try {
    baton::ForwardRequest& req = w->request;
    int64_t total = 0;
    for (size_t i = 0; i < n_seg; ++i) {
      const double* s = seg + i * kStride;
      for (int k = 0; k < kStride; ++k) {
        if (!std::isfinite(s[k])) throw Napi::RangeError::New(env, "segment fields must be finite numbers");
      }
      if (s[0] < 0 || s[0] > 4294967295.0 || s[1] < 0 || s[1] > 1e12 || s[2] < 1 || s[2] > 1e9) throw Napi::RangeError::New(env, "bad sequence id, position or token count");
      baton::ForwardSegment fs;
      fs.sequence_id = static_cast<uint32_t>(s[0]);
      fs.first_position = static_cast<int64_t>(s[1]);
      fs.n_tokens = static_cast<int64_t>(s[2]);
      fs.sampling.temperature = static_cast<float>(s[3]);
      fs.sampling.top_k = static_cast<int32_t>(std::max(0.0, std::min(s[4], 2147483647.0)));
      fs.sampling.top_p = static_cast<float>(s[5]);
      fs.sampling.min_p = static_cast<float>(s[6]);
      fs.sampling.repetition_penalty = static_cast<float>(s[7]);
      fs.sampling.presence_penalty = static_cast<float>(s[8]);
      fs.sampling.frequency_penalty = static_cast<float>(s[9]);
      fs.sampling.penalty_last_n = static_cast<int32_t>(std::max(-1.0, std::min(s[10], 2147483647.0)));
      fs.sampling.seed = (static_cast<uint64_t>(s[12]) << 32) | static_cast<uint64_t>(s[11]);
      total += fs.n_tokens;
      req.segments.push_back(fs);
    }
    const int output = static_cast<int>(info[1].As<Napi::Number>().Int32Value());
    if (output < 0 || output > 3) throw Napi::RangeError::New(env, "bad output kind");
    req.output = static_cast<baton::OutputKind>(output);
    const int64_t dim = e->config().n_embd, vocab = e->config().n_vocab;
    req.tokens = typed_data<const int32_t>(info[2], napi_int32_array, total, "tokens");
    req.hidden_in = typed_data<const float>(info[3], napi_float32_array, total * dim, "hidden");
    req.history = typed_data<const int32_t>(info[4], napi_int32_array, total, "history");
    req.hidden_out = typed_data<float>(info[5], napi_float32_array, total * dim, "hiddenOut");
    int64_t logit_rows = req.output == baton::OutputKind::LOGITS_ALL ? total : static_cast<int64_t>(n_seg);
    req.logits_out = typed_data<float>(info[6], napi_float32_array, logit_rows * vocab, "logitsOut");
    req.tokens_out = typed_data<int32_t>(info[7], napi_int32_array, static_cast<int64_t>(n_seg), "tokensOut");
    if (req.output == baton::OutputKind::HIDDEN && req.hidden_out == nullptr) throw Napi::TypeError::New(env, "hiddenOut is required for hidden output");
    if ((req.output == baton::OutputKind::LOGITS_LAST || req.output == baton::OutputKind::LOGITS_ALL) && req.logits_out == nullptr)
      throw Napi::TypeError::New(env, "logitsOut is required for logits output");
    if (req.output == baton::OutputKind::SAMPLE && req.tokens_out == nullptr) throw Napi::TypeError::New(env, "tokensOut is required for sampling");
    for (size_t i = 2; i < 8; ++i) w->pin(info[i]);
  } catch (...) {
    delete w;
    throw;
  }
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

class MeasureWorker : public EngineWorker {
 public:
  using EngineWorker::EngineWorker;
  int steps = 8;
  double bytes_per_sec = 0, seconds_per_token = 0;
  void Execute() override {
    std::lock_guard<std::mutex> lock(engine_->mutex());
    std::string error;
    if (!engine_->measure_decode(steps, &bytes_per_sec, &seconds_per_token, &error)) SetError(error);
  }
  void OnOK() override {
    Napi::Object o = Napi::Object::New(Env());
    o.Set("bytesPerSec", bytes_per_sec);
    o.Set("secondsPerToken", seconds_per_token);
    deferred_.Resolve(o);
  }
};

Napi::Value EngineWrap::MeasureDecode(const Napi::CallbackInfo& info) {
  Engine* e = engine(info.Env());
  int64_t steps = arg_count(info, 0, "steps");
  auto* w = new MeasureWorker(info.Env(), this, e);
  w->steps = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(steps, 1000)));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, baton::EngineOptions options)
      : Napi::AsyncWorker(env), options_(std::move(options)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string error;
    try {
      engine_ = Engine::load(options_, &error);
    } catch (const std::exception& e) {
      error = std::string("load failed: ") + e.what();
    }
    if (!engine_) SetError(error);
  }
  void OnOK() override {
    Napi::Env env = Env();
    AddonData* data = env.GetInstanceData<AddonData>();
    Napi::Object obj = data->engine_constructor.New({Napi::External<Engine>::New(env, engine_.release())});
    deferred_.Resolve(obj);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  baton::EngineOptions options_;
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Engine> engine_;
};

// loadEngine({path, layerStart, layerEnd, threads, kvDType, kvTokens, maxBatchTokens, maxContext})
Napi::Value LoadEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "loadEngine(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  baton::EngineOptions opts;
  opts.path = get_string(o, "path");
  opts.layer_start = static_cast<int>(get_number(o, "layerStart", 0));
  opts.layer_end = static_cast<int>(get_number(o, "layerEnd", -1));
  opts.threads = static_cast<int>(get_number(o, "threads", 1));
  opts.kv_tokens = static_cast<int64_t>(get_number(o, "kvTokens", 0));
  opts.max_batch_tokens = static_cast<int64_t>(get_number(o, "maxBatchTokens", 512));
  opts.max_context = static_cast<int64_t>(get_number(o, "maxContext", 0));
  std::string kv = o.Has("kvDType") && o.Get("kvDType").IsString() ? get_string(o, "kvDType") : "f16";
  if (!baton::kv_dtype_parse(kv, &opts.kv_dtype)) throw Napi::TypeError::New(env, "kvDType must be f32, f16 or q8_0");
  auto* w = new LoadWorker(env, std::move(opts));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

class BandwidthWorker : public Napi::AsyncWorker {
 public:
  BandwidthWorker(Napi::Env env, size_t bytes, int passes, int threads)
      : Napi::AsyncWorker(env), bytes_(bytes), passes_(passes), threads_(threads), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string error;
    result_ = baton::measure_read_bandwidth(bytes_, passes_, threads_, &error);
    if (result_ <= 0) SetError(error.empty() ? "bandwidth test failed" : error);
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), result_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  size_t bytes_;
  int passes_, threads_;
  double result_ = 0;
  Napi::Promise::Deferred deferred_;
};

// measureReadBandwidth(bytes, passes, threads) → Promise<bytes per second>
Napi::Value MeasureReadBandwidth(const Napi::CallbackInfo& info) {
  const int64_t bytes = arg_count(info, 0, "bytes");
  const int64_t passes = arg_count(info, 1, "passes");
  const int64_t threads = arg_count(info, 2, "threads");
  if (bytes > (int64_t{1} << 34) || passes < 1 || passes > 1000 || threads < 1 || threads > 1024) {
    throw Napi::RangeError::New(info.Env(), "measureReadBandwidth: bytes up to 16 GiB, passes 1..1000, threads 1..1024");
  }
  auto* w = new BandwidthWorker(info.Env(), static_cast<size_t>(bytes), static_cast<int>(passes), static_cast<int>(threads));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value KernelsName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), baton::kernels_name()); }

Napi::Value ForceScalarKernels(const Napi::CallbackInfo& info) {
  bool scalar = info.Length() > 0 && info[0].ToBoolean().Value();
  return Napi::String::New(info.Env(), baton::kernels_force_scalar(scalar));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->engine_constructor = Napi::Persistent(EngineWrap::Define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("loadEngine", Napi::Function::New<LoadEngine>(env, "loadEngine"));
  exports.Set("readGguf", Napi::Function::New<ReadGguf>(env, "readGguf"));
  exports.Set("checkGgufBuffer", Napi::Function::New<CheckGgufBuffer>(env, "checkGgufBuffer"));
  exports.Set("measureReadBandwidth", Napi::Function::New<MeasureReadBandwidth>(env, "measureReadBandwidth"));
  exports.Set("kernelsName", Napi::Function::New<KernelsName>(env, "kernelsName"));
  exports.Set("forceScalarKernels", Napi::Function::New<ForceScalarKernels>(env, "forceScalarKernels"));
  return exports;
}

}  // namespace

NODE_API_MODULE(baton_engine, Init)
