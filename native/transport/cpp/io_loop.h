// The TCP / Unix-socket backend. Frames are length-prefixed by their 128-byte header; sends try a
// non-blocking writev straight from the caller's thread (no thread hop when the socket has room)
// and queue the rest; received frames are parsed in C++ and batched into events.
// Two drivers share all of that logic:
//  - thread: one native I/O thread per process polls every socket (poll(2)) and hands event
//    batches to JS through one ThreadSafeFunction call per wake-up (EventSink::notify);
//  - uv: each socket is a uv_poll_t on Node's own event loop, so frames are parsed and handed to
//    JS on the main thread with no thread hop (fewer context switches per round trip).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include "frame.h"
#include "handshake.h"

namespace baton {

struct EndpointOptions {
  std::vector<uint8_t> secret;
  uint64_t max_payload_bytes = 64ull << 20;
  size_t high_water_mark = 8u << 20;
  size_t max_undelivered_bytes = 256u << 20;  // stop reading a connection JS has not caught up with
  uint32_t handshake_timeout_ms = 5000;
  uint16_t protocol_version = kProtocolVersion;
  int socket_buffer_bytes = 0;  // SO_SNDBUF/SO_RCVBUF; 0 = kernel autotuning
};

// Received payloads come from here and go back here (never plain free()). Buffers of 64 KiB and
// more are recycled by size class (powers of two), so a stream of big frames does not pay for
// fresh pages — mmap, page faults, zeroing — on every frame.
uint8_t* payload_alloc(size_t length);
void payload_free(uint8_t* data, size_t length);

enum class EventType : uint8_t { CONNECTION = 1, CONNECTED = 2, FRAME = 3, DRAIN = 4, CLOSE = 5, REJECTED = 6, LISTENER_CLOSED = 7 };

struct Event {
  explicit Event(EventType event_type) : type(event_type) {}
  EventType type;
  uint32_t id = 0;        // connection id (listener id for REJECTED, LISTENER_CLOSED)
  uint32_t listener = 0;  // CONNECTION: the listener that accepted it
  uint8_t header[kFrameHeaderBytes];
  uint8_t* payload = nullptr;  // FRAME: from payload_alloc(); ownership passes to the consumer
  size_t payload_length = 0;
  std::string text;  // remote address (CONNECTION, CONNECTED, REJECTED) or error message (CLOSE)
  std::string code;  // error code (CLOSE, REJECTED); empty = clean close
  std::string detail;  // REJECTED: error message
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called on the I/O thread after events were queued; must be cheap and thread-safe.
  virtual void notify() = 0;
};

struct Stats {
  std::atomic<uint64_t> connections_accepted{0}, connections_opened{0}, connections_closed{0};
  std::atomic<uint64_t> handshake_failures{0}, auth_failures{0}, version_mismatches{0};
  std::atomic<uint64_t> malformed_frames{0}, oversized_frames{0}, truncated_frames{0}, connection_errors{0};
  std::atomic<uint64_t> frames_sent{0}, frames_received{0}, bytes_sent{0}, bytes_received{0};
  std::atomic<uint64_t> sends_over_high_water{0}, wakeups{0};
};

enum class SendStatus { OK = 0, OVER_HIGH_WATER = 1, NOT_OPEN = 2 };

struct Connection;
struct Listener;

class IoLoop {
 public:
  // `uv_loop` null: thread driver; otherwise the uv driver on that loop (calls from that thread only).
  IoLoop(EventSink* sink, uv_loop_t* uv_loop);
  ~IoLoop();

  // Binds and listens. `host` is a numeric IPv4/IPv6 address, or empty with `unix_path` set.
  // Returns the listener id (> 0) and the bound port, or 0 with `error` set.
  uint32_t listen(const std::string& host, int port, const std::string& unix_path, const EndpointOptions& options,
                  int* bound_port, std::string* error);
  // Starts a non-blocking connect; the result arrives as CONNECTED or CLOSE. Returns 0 and sets
  // `error` if the address is unusable.
  uint32_t connect(const std::string& host, int port, const std::string& unix_path, const EndpointOptions& options,
                   std::string* error);
  // `header` is 128 bytes already validated by the caller; `payload` may be null when empty.
  SendStatus send(uint32_t connection_id, const uint8_t* header, const uint8_t* payload, size_t payload_length);
  // Graceful: queued output is flushed, then the socket is closed and CLOSE follows.
  void close(uint32_t connection_id);
  void close_listener(uint32_t listener_id);
  // Moves all pending events into `out`.
  void take_events(std::vector<Event>& out);
  bool has_events() {
    std::lock_guard<std::mutex> lock(event_mutex_);
    return !events_.empty();
  }
  // JS consumed `bytes` of received payload from `connection_id`: reading may resume.
  void delivered(uint32_t connection_id, size_t bytes);
  size_t queued_bytes(uint32_t connection_id);

  Stats stats;

 private:
  void run();
  void wake();
  // Applies close requests, write errors and deadlines; returns the poll events the connection
  // wants, or -1 if it was closed.
  int prepare(const std::shared_ptr<Connection>& connection, int64_t now, int64_t* next_deadline);
  void handle(const std::shared_ptr<Connection>& connection, int revents);
  void close_requested_listeners();
  // uv driver
  void service();
  void arm(const std::shared_ptr<Connection>& connection, int64_t now);
  void watch_listener(const std::shared_ptr<Listener>& listener);
  void detach(Connection& connection);
  static void on_uv_poll(uv_poll_t* handle, int status, int events);
  static void on_uv_async(uv_async_t* handle);
  static void on_uv_timer(uv_timer_t* handle);
  void push_event(Event&& event);
  void accept_ready(const std::shared_ptr<Listener>& listener);
  void start_handshake(const std::shared_ptr<Connection>& connection);
  void on_connect_complete(const std::shared_ptr<Connection>& connection);
  void read_ready(const std::shared_ptr<Connection>& connection);
  bool process_input(const std::shared_ptr<Connection>& connection);
  void write_ready(const std::shared_ptr<Connection>& connection);
  void fail(const std::shared_ptr<Connection>& connection, const std::string& code, const std::string& message);
  void finish_close(const std::shared_ptr<Connection>& connection, const std::string& code, const std::string& message);
  bool flush_locked(Connection& connection);

  EventSink* sink_;
  uv_loop_t* uv_ = nullptr;
  uv_async_t* uv_async_ = nullptr;
  uv_timer_t* uv_timer_ = nullptr;
  std::thread thread_;
  std::atomic<bool> running_{true};
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> wake_pending_{false};

  std::mutex table_mutex_;
  std::unordered_map<uint32_t, std::shared_ptr<Connection>> connections_;
  std::unordered_map<uint32_t, std::shared_ptr<Listener>> listeners_;
  uint32_t next_id_ = 1;

  std::mutex event_mutex_;
  std::vector<Event> events_;
};

}  // namespace baton
