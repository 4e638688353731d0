// The TCP / Unix-socket I/O loop; see io_loop.h.
#include "io_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace baton {

namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;  // bigger reads would copy more of a big payload twice
constexpr size_t kDirectReadThreshold = 64 * 1024;  // read big payload remainders straight into their buffer
constexpr size_t kReadBudgetPerWake = 8u << 20;     // fairness between connections
constexpr size_t kLowWaterBytes = 128 * 1024;       // SO_RCVLOWAT inside a big payload
constexpr int kMaxIov = 64;

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string errno_text(const char* what, int error) { return std::string(what) + ": " + std::strerror(error); }

const char* errno_code(int error) {
  switch (error) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    default: return "EIO";
  }
}

bool set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

void tune_socket(int fd, int family, const EndpointOptions& options) {
  int one = 1;
  if (family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#if defined(SO_NOSIGPIPE)
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (options.socket_buffer_bytes > 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options.socket_buffer_bytes, sizeof options.socket_buffer_bytes);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.socket_buffer_bytes, sizeof options.socket_buffer_bytes);
  }
}

// Fills `storage` from a numeric address; returns the length or 0.
socklen_t make_address(const std::string& host, int port, const std::string& unix_path, sockaddr_storage& storage,
                       std::string* error) {
  std::memset(&storage, 0, sizeof storage);
  if (!unix_path.empty()) {
    auto* address = reinterpret_cast<sockaddr_un*>(&storage);
    if (unix_path.size() >= sizeof address->sun_path) {
      *error = "unix socket path is longer than " + std::to_string(sizeof address->sun_path - 1) + " bytes";
      return 0;
    }
    address->sun_family = AF_UNIX;
    std::memcpy(address->sun_path, unix_path.data(), unix_path.size());
    return socklen_t(offsetof(sockaddr_un, sun_path) + unix_path.size() + 1);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(port));
    return sizeof(sockaddr_in);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(port));
    return sizeof(sockaddr_in6);
  }
  *error = "\"" + host + "\" is not a numeric IPv4 or IPv6 address";
  return 0;
}

std::string format_address(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (storage.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "unix";
}

struct OutChunk {
  std::unique_ptr<uint8_t[]> data;
  size_t length;
  size_t offset;
  size_t capacity = 0;  // > 0: the buffer came from the send-buffer pool and goes back to it
};

// Recycles the large buffers that hold unsent frame bytes, so a stream of big frames does not
// pay for fresh pages (mmap, page faults, zeroing) on every frame that the socket cannot take
// at once. Shared by all connections; keeps at most kPoolBytes.
class SendBufferPool {
 public:
  static constexpr size_t kMinPooled = 64 * 1024;
  static constexpr size_t kPoolBytes = 64u << 20;

  std::unique_ptr<uint8_t[]> take(size_t length, size_t* capacity) {
    if (length >= kMinPooled) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); i++) {
        if (free_[i].second >= length && free_[i].second <= 2 * length) {
          auto buffer = std::move(free_[i].first);
          *capacity = free_[i].second;
          bytes_ -= free_[i].second;
          free_.erase(free_.begin() + long(i));
          return buffer;
        }
      }
      *capacity = length;
    } else {
      *capacity = 0;
    }
    return std::unique_ptr<uint8_t[]>(new uint8_t[length]);
  }

  void give(std::unique_ptr<uint8_t[]> buffer, size_t capacity) {
    if (capacity < kMinPooled) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes_ + capacity > kPoolBytes) return;
    bytes_ += capacity;
    free_.emplace_back(std::move(buffer), capacity);
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::unique_ptr<uint8_t[]>, size_t>> free_;
  size_t bytes_ = 0;
};

class PayloadPool {
 public:
  static constexpr size_t kMinPooled = 64 * 1024;
  static constexpr size_t kPoolBytes = 128u << 20;

  static size_t size_class(size_t length) {
    size_t size = kMinPooled;
    while (size < length) size <<= 1;
    return size;
  }

  uint8_t* take(size_t length) {
    if (length < kMinPooled) return static_cast<uint8_t*>(std::malloc(length));
    size_t size = size_class(length);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = free_.find(size);
      if (found != free_.end() && !found->second.empty()) {
        uint8_t* data = found->second.back();
        found->second.pop_back();
        bytes_ -= size;
        return data;
      }
    }
    return static_cast<uint8_t*>(std::malloc(size));
  }

  void give(uint8_t* data, size_t length) {
    if (!data) return;
    if (length < kMinPooled) {
      std::free(data);
      return;
    }
    size_t size = size_class(length);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (bytes_ + size <= kPoolBytes) {
        bytes_ += size;
        free_[size].push_back(data);
        return;
      }
    }
    std::free(data);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<uint8_t*>> free_;
  size_t bytes_ = 0;
};

PayloadPool& payload_pool() {
  static PayloadPool* pool = new PayloadPool();  // process lifetime
  return *pool;
}

SendBufferPool& send_buffer_pool() {
  static SendBufferPool* pool = new SendBufferPool();  // process lifetime
  return *pool;
}

}  // namespace

uint8_t* payload_alloc(size_t length) { return payload_pool().take(length); }
void payload_free(uint8_t* data, size_t length) { payload_pool().give(data, length); }

struct Listener {
  uint32_t id;
  int fd;
  EndpointOptions options;
  std::string unix_path;
  bool close_requested = false;
  uv_poll_t* poll = nullptr;  // uv driver only
  int64_t paused_until_ms = 0;  // accept() ran out of descriptors or memory: retry after this
};

struct Connection {
  enum class State { CONNECTING, HANDSHAKE, OPEN, CLOSED };

  uint32_t id;
  uint32_t listener_id;  // 0 for outgoing connections
  int family;
  EndpointOptions options;
  std::string remote;
  int64_t deadline_ms;  // connect + handshake must finish by then
  std::unique_ptr<Handshake> handshake;

  // Read side: I/O thread only.
  std::unique_ptr<uint8_t[]> read_buffer{new uint8_t[kReadBufferBytes]};
  size_t read_start = 0, read_end = 0;
  bool in_payload = false;
  uint8_t header[kFrameHeaderBytes];
  uint8_t* payload = nullptr;
  size_t payload_length = 0, payload_received = 0;
  std::atomic<size_t> undelivered{0};
  int receive_low_water = 1;  // SO_RCVLOWAT currently set (TCP, while inside a big payload)

  // Write side and state: guarded by `mutex`.
  std::mutex mutex;
  State state = State::CONNECTING;
  int fd = -1;
  std::deque<OutChunk> out_queue;
  size_t queued_bytes = 0;
  bool drain_wanted = false;
  bool close_requested = false;
  int write_error = 0;

  // uv driver only (main thread).
  uv_poll_t* poll = nullptr;
  int armed = 0;

  ~Connection() { payload_free(payload, payload_length); }
};

namespace {
struct PollContext {
  IoLoop* loop;
  uint32_t id;
  bool listener;
};

void free_poll_handle(uv_handle_t* handle) {
  delete static_cast<PollContext*>(handle->data);
  delete reinterpret_cast<uv_poll_t*>(handle);
}
}  // namespace

IoLoop::IoLoop(EventSink* sink, uv_loop_t* uv_loop) : sink_(sink), uv_(uv_loop) {
  if (uv_) {
    uv_async_ = new uv_async_t;
    uv_async_init(uv_, uv_async_, on_uv_async);
    uv_async_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(uv_async_));
    uv_timer_ = new uv_timer_t;
    uv_timer_init(uv_, uv_timer_);
    uv_timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(uv_timer_));
    return;
  }
  if (pipe(wake_pipe_) != 0) std::abort();
  set_nonblocking(wake_pipe_[0]);
  set_nonblocking(wake_pipe_[1]);
  thread_ = std::thread([this] { run(); });
}

IoLoop::~IoLoop() {
  running_ = false;
  if (!uv_) {
    wake();
    if (thread_.joinable()) thread_.join();
  }
  std::lock_guard<std::mutex> lock(table_mutex_);
  for (auto& entry : connections_) {
    std::lock_guard<std::mutex> connection_lock(entry.second->mutex);
    detach(*entry.second);
    if (entry.second->fd >= 0) ::close(entry.second->fd);
    entry.second->fd = -1;
  }
  for (auto& entry : listeners_) {
    if (entry.second->poll) {
      uv_poll_stop(entry.second->poll);
      uv_close(reinterpret_cast<uv_handle_t*>(entry.second->poll), free_poll_handle);
    }
    if (entry.second->fd >= 0) ::close(entry.second->fd);
    if (!entry.second->unix_path.empty()) unlink(entry.second->unix_path.c_str());
  }
  for (auto& event : events_) payload_free(event.payload, event.payload_length);
  if (uv_) {
    // The environment is being torn down: close our handles (their memory is freed by the close
    // callbacks if the loop runs again, else left to process exit).
    uv_timer_stop(uv_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(uv_timer_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
    uv_close(reinterpret_cast<uv_handle_t*>(uv_async_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_async_t*>(handle); });
    return;
  }
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

void IoLoop::wake() {
  if (uv_) {
    uv_async_send(uv_async_);
    return;
  }
  if (wake_pending_.exchange(true)) return;
  uint8_t byte = 1;
  ssize_t ignored = ::write(wake_pipe_[1], &byte, 1);
  (void)ignored;
}

void IoLoop::push_event(Event&& event) {
  std::lock_guard<std::mutex> lock(event_mutex_);
  events_.push_back(std::move(event));
}

void IoLoop::take_events(std::vector<Event>& out) {
  std::lock_guard<std::mutex> lock(event_mutex_);
  if (out.empty()) {
    out.swap(events_);
  } else {
    for (auto& event : events_) out.push_back(std::move(event));
    events_.clear();
  }
}

uint32_t IoLoop::listen(const std::string& host, int port, const std::string& unix_path, const EndpointOptions& options,
                        int* bound_port, std::string* error) {
  sockaddr_storage address;
  socklen_t address_length = make_address(host, port, unix_path, address, error);
  if (address_length == 0) return 0;
  int fd = socket(address.ss_family, SOCK_STREAM, 0);
  if (fd < 0) {
    *error = errno_text("socket", errno);
    return 0;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.ss_family == AF_INET6) {
    int zero = 0;  // dual stack: "::" also accepts IPv4
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (!unix_path.empty()) {
    struct stat info;
    if (lstat(unix_path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode)) unlink(unix_path.c_str());  // stale socket
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), address_length) != 0) {
    int saved = errno;
    *error = "cannot listen on " + (unix_path.empty() ? host + ":" + std::to_string(port) : unix_path) + ": " +
             std::strerror(saved) + (saved == EADDRINUSE ? " (another process uses it; pick another port)" : "");
    ::close(fd);
    return 0;
  }
  if (::listen(fd, 512) != 0 || !set_nonblocking(fd)) {
    *error = errno_text("listen", errno);
    ::close(fd);
    return 0;
  }
  *bound_port = 0;
  if (unix_path.empty()) {
    sockaddr_storage bound;
    socklen_t bound_length = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
    *bound_port = bound.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                             : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  }
  auto listener = std::make_shared<Listener>();
  listener->fd = fd;
  listener->options = options;
  listener->unix_path = unix_path;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    listener->id = next_id_++;
    listeners_[listener->id] = listener;
  }
  if (uv_) watch_listener(listener);
  else wake();
  return listener->id;
}

uint32_t IoLoop::connect(const std::string& host, int port, const std::string& unix_path,
                         const EndpointOptions& options, std::string* error) {
  sockaddr_storage address;
  socklen_t address_length = make_address(host, port, unix_path, address, error);
  if (address_length == 0) return 0;
  int fd = socket(address.ss_family, SOCK_STREAM, 0);
  if (fd < 0 || !set_nonblocking(fd)) {
    *error = errno_text("socket", errno);
    if (fd >= 0) ::close(fd);
    return 0;
  }
  tune_socket(fd, address.ss_family, options);
  auto connection = std::make_shared<Connection>();
  connection->listener_id = 0;
  connection->family = address.ss_family;
  connection->options = options;
  connection->remote = unix_path.empty() ? format_address(address) : "unix:" + unix_path;
  connection->deadline_ms = now_ms() + options.handshake_timeout_ms;
  connection->fd = fd;
  int result = ::connect(fd, reinterpret_cast<sockaddr*>(&address), address_length);
  int saved = errno;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    connection->id = next_id_++;
    connections_[connection->id] = connection;
  }
  if (result != 0 && saved != EINPROGRESS && saved != EAGAIN) {
    // Reported asynchronously like any other connect failure, so callers have one path.
    connection->write_error = saved;
  }
  if (uv_) arm(connection, now_ms());
  wake();  // the result, an immediate failure included, is reported from the loop
  return connection->id;
}

void IoLoop::start_handshake(const std::shared_ptr<Connection>& connection) {
  connection->handshake = std::make_unique<Handshake>(connection->listener_id == 0, connection->options.secret,
                                                      connection->options.protocol_version, 0);
  std::vector<uint8_t> hello = connection->handshake->hello();
  std::lock_guard<std::mutex> lock(connection->mutex);
  connection->state = Connection::State::HANDSHAKE;
  OutChunk chunk{std::unique_ptr<uint8_t[]>(new uint8_t[hello.size()]), hello.size(), 0};
  std::memcpy(chunk.data.get(), hello.data(), hello.size());
  connection->queued_bytes += hello.size();
  connection->out_queue.push_back(std::move(chunk));
  flush_locked(*connection);
}

SendStatus IoLoop::send(uint32_t connection_id, const uint8_t* header, const uint8_t* payload, size_t payload_length) {
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    auto found = connections_.find(connection_id);
    if (found == connections_.end()) return SendStatus::NOT_OPEN;
    connection = found->second;
  }
  std::unique_lock<std::mutex> lock(connection->mutex);
  if (connection->state != Connection::State::OPEN || connection->close_requested || connection->write_error != 0) {
    return SendStatus::NOT_OPEN;
  }
  stats.frames_sent++;
  stats.bytes_sent += kFrameHeaderBytes + payload_length;
  size_t written = 0;
  size_t total = kFrameHeaderBytes + payload_length;
  if (connection->out_queue.empty()) {
    // Fast path: write from the caller's thread; nothing is copied if the socket takes it all.
    iovec parts[2] = {{const_cast<uint8_t*>(header), kFrameHeaderBytes}, {const_cast<uint8_t*>(payload), payload_length}};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = payload_length > 0 ? 2 : 1;
    ssize_t result = ::sendmsg(connection->fd, &message, kSendFlags);
    if (result < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        connection->write_error = errno;
        lock.unlock();
        wake();
        return SendStatus::NOT_OPEN;
      }
    } else {
      written = size_t(result);
    }
    if (written == total) return SendStatus::OK;
  }
  // Queue what the socket did not take (one copy), and let the I/O thread flush it.
  size_t rest = total - written;
  size_t capacity = 0;
  OutChunk chunk{send_buffer_pool().take(rest, &capacity), rest, 0, capacity};
  uint8_t* target = chunk.data.get();
  if (written < kFrameHeaderBytes) {
    std::memcpy(target, header + written, kFrameHeaderBytes - written);
    if (payload_length > 0) std::memcpy(target + kFrameHeaderBytes - written, payload, payload_length);
  } else {
    std::memcpy(target, payload + (written - kFrameHeaderBytes), rest);
  }
  bool was_empty = connection->out_queue.empty();
  connection->out_queue.push_back(std::move(chunk));
  connection->queued_bytes += rest;
  bool over = connection->queued_bytes >= connection->options.high_water_mark;
  if (over) {
    connection->drain_wanted = true;
    stats.sends_over_high_water++;
  }
  lock.unlock();
  if (was_empty) {
    if (uv_) arm(connection, now_ms());  // start watching for writability
    else wake();                         // the I/O thread starts watching POLLOUT
  }
  return over ? SendStatus::OVER_HIGH_WATER : SendStatus::OK;
}

size_t IoLoop::queued_bytes(uint32_t connection_id) {
  std::lock_guard<std::mutex> lock(table_mutex_);
  auto found = connections_.find(connection_id);
  if (found == connections_.end()) return 0;
  std::lock_guard<std::mutex> connection_lock(found->second->mutex);
  return found->second->queued_bytes;
}

void IoLoop::close(uint32_t connection_id) {
  std::lock_guard<std::mutex> lock(table_mutex_);
  auto found = connections_.find(connection_id);
  if (found == connections_.end()) return;
  {
    std::lock_guard<std::mutex> connection_lock(found->second->mutex);
    found->second->close_requested = true;
  }
  wake_pending_ = false;  // force a wake even if one is pending
  wake();
}

void IoLoop::close_listener(uint32_t listener_id) {
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    auto found = listeners_.find(listener_id);
    if (found == listeners_.end()) return;
    found->second->close_requested = true;
  }
  wake_pending_ = false;
  wake();
}

void IoLoop::delivered(uint32_t connection_id, size_t bytes) {
  std::shared_ptr<Connection> connection;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    auto found = connections_.find(connection_id);
    if (found == connections_.end()) return;
    connection = found->second;
  }
  size_t before = connection->undelivered.fetch_sub(bytes);
  if (before >= connection->options.max_undelivered_bytes && before - bytes < connection->options.max_undelivered_bytes) {
    wake();  // reading was paused; resume
  }
}

// Writes queued chunks; returns false on a socket error (recorded in write_error).
bool IoLoop::flush_locked(Connection& connection) {
  while (!connection.out_queue.empty() && connection.fd >= 0) {
    iovec parts[kMaxIov];
    int count = 0;
    for (auto it = connection.out_queue.begin(); it != connection.out_queue.end() && count < kMaxIov; ++it, ++count) {
      parts[count].iov_base = it->data.get() + it->offset;
      parts[count].iov_len = it->length - it->offset;
    }
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = count;
    ssize_t result = ::sendmsg(connection.fd, &message, kSendFlags);
    if (result < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      connection.write_error = errno;
      return false;
    }
    size_t written = size_t(result);
    connection.queued_bytes -= written;
    while (written > 0) {
      OutChunk& front = connection.out_queue.front();
      size_t take = std::min(written, front.length - front.offset);
      front.offset += take;
      written -= take;
      if (front.offset == front.length) {
        if (front.capacity > 0) send_buffer_pool().give(std::move(front.data), front.capacity);
        connection.out_queue.pop_front();
      }
    }
  }
  return true;
}

void IoLoop::write_ready(const std::shared_ptr<Connection>& connection) {
  bool drain = false;
  {
    std::lock_guard<std::mutex> lock(connection->mutex);
    if (!flush_locked(*connection)) return;
    if (connection->drain_wanted && connection->queued_bytes <= connection->options.high_water_mark / 2) {
      connection->drain_wanted = false;
      drain = connection->state == Connection::State::OPEN;
    }
  }
  if (drain) {
    Event event(EventType::DRAIN);
    event.id = connection->id;
    push_event(std::move(event));
  }
}

void IoLoop::accept_ready(const std::shared_ptr<Listener>& listener) {
  for (int i = 0; i < 64; i++) {
    sockaddr_storage address;
    socklen_t address_length = sizeof address;
    int fd = ::accept(listener->fd, reinterpret_cast<sockaddr*>(&address), &address_length);
    if (fd < 0) {
      int error = errno;
      if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
        // The pending connection stays in the backlog, so the socket stays readable: stop watching
        // it for a moment instead of spinning, and say why.
        listener->paused_until_ms = now_ms() + 100;
        if (listener->poll) {
          uv_poll_stop(listener->poll);
          uv_ref(reinterpret_cast<uv_handle_t*>(uv_timer_));  // the stopped listener no longer keeps the loop alive
          uv_timer_start(uv_timer_, on_uv_timer, 50, 50);
        }
        Event event(EventType::REJECTED);
        event.id = listener->id;
        event.code = errno_code(error);
        event.detail = std::string("cannot accept a connection: ") + std::strerror(error) + " (raise the open-file limit, ulimit -n)";
        push_event(std::move(event));
      }
      return;  // EAGAIN, or a transient error such as ECONNABORTED: try again next wake-up
    }
    if (!set_nonblocking(fd)) {
      ::close(fd);
      continue;
    }
    tune_socket(fd, address.ss_family, listener->options);
    auto connection = std::make_shared<Connection>();
    connection->listener_id = listener->id;
    connection->family = address.ss_family;
    connection->options = listener->options;
    connection->remote = address.ss_family == AF_UNIX ? "unix:" + listener->unix_path : format_address(address);
    connection->deadline_ms = now_ms() + listener->options.handshake_timeout_ms;
    connection->fd = fd;
    {
      std::lock_guard<std::mutex> lock(table_mutex_);
      connection->id = next_id_++;
      connections_[connection->id] = connection;
    }
    start_handshake(connection);
    if (uv_) arm(connection, now_ms());
  }
}

void IoLoop::on_connect_complete(const std::shared_ptr<Connection>& connection) {
  int error = 0;
  socklen_t length = sizeof error;
  getsockopt(connection->fd, SOL_SOCKET, SO_ERROR, &error, &length);
  if (error != 0) {
    fail(connection, errno_code(error), "cannot connect to " + connection->remote + ": " + std::strerror(error));
    return;
  }
  start_handshake(connection);
}

void IoLoop::fail(const std::shared_ptr<Connection>& connection, const std::string& code, const std::string& message) {
  finish_close(connection, code, message);
}

void IoLoop::finish_close(const std::shared_ptr<Connection>& connection, const std::string& code,
                          const std::string& message) {
  bool was_open;
  {
    std::lock_guard<std::mutex> lock(connection->mutex);
    if (connection->state == Connection::State::CLOSED) return;
    was_open = connection->state == Connection::State::OPEN;
    detach(*connection);
    if (connection->fd >= 0) ::close(connection->fd);
    connection->fd = -1;
    connection->state = Connection::State::CLOSED;
    connection->out_queue.clear();
    connection->queued_bytes = 0;
  }
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    connections_.erase(connection->id);
  }
  if (was_open) stats.connections_closed++;
  bool handshake_error = !was_open && !code.empty();
  if (handshake_error && code.rfind("BATON_", 0) == 0) stats.handshake_failures++;
  if (!code.empty() && code.rfind("BATON_", 0) != 0) stats.connection_errors++;
  if (handshake_error && connection->listener_id != 0) {
    // A refused incoming peer never became a connection JS knows about: report it on the listener.
    Event event(EventType::REJECTED);
    event.id = connection->listener_id;
    event.text = connection->remote;
    event.code = code;
    event.detail = message;
    push_event(std::move(event));
    return;
  }
  if (!was_open && connection->listener_id != 0) return;  // incoming peer went away during the handshake
  Event event(EventType::CLOSE);
  event.id = connection->id;
  event.code = code;
  event.text = message;
  push_event(std::move(event));
}

// Parses frames (or handshake messages) out of the read buffer. Returns false if the
// connection was closed.
bool IoLoop::process_input(const std::shared_ptr<Connection>& c) {
  uint8_t* buffer = c->read_buffer.get();
  while (true) {
    size_t available = c->read_end - c->read_start;
    if (c->state == Connection::State::HANDSHAKE) {
      std::vector<uint8_t> replies;
      HandshakeResult result = c->handshake->feed(buffer + c->read_start, available, replies);
      c->read_start += result.consumed;
      if (!replies.empty()) {
        std::lock_guard<std::mutex> lock(c->mutex);
        OutChunk chunk{std::unique_ptr<uint8_t[]>(new uint8_t[replies.size()]), replies.size(), 0};
        std::memcpy(chunk.data.get(), replies.data(), replies.size());
        c->queued_bytes += replies.size();
        c->out_queue.push_back(std::move(chunk));
        flush_locked(*c);
      }
      if (result.status == HandshakeResult::FAILED) {
        if (result.error_code == "BATON_AUTH_FAILED") stats.auth_failures++;
        if (result.error_code == "BATON_VERSION_MISMATCH") stats.version_mismatches++;
        fail(c, result.error_code, "handshake with " + c->remote + " failed: " + result.error_message);
        return false;
      }
      if (result.status == HandshakeResult::CONTINUE) break;
      {
        std::lock_guard<std::mutex> lock(c->mutex);
        c->state = Connection::State::OPEN;
      }
      c->handshake.reset();
      Event event(c->listener_id != 0 ? EventType::CONNECTION : EventType::CONNECTED);
      event.id = c->id;
      event.listener = c->listener_id;
      event.text = c->remote;
      push_event(std::move(event));
      if (c->listener_id != 0) stats.connections_accepted++;
      else stats.connections_opened++;
      continue;
    }
    if (!c->in_payload) {
      if (available < kFrameHeaderBytes) break;
      FrameHeader header;
      std::string message;
      FrameParseError error =
          parse_frame_header(buffer + c->read_start, c->options.max_payload_bytes, header, &message);
      if (error != FrameParseError::NONE) {
        if (error == FrameParseError::TOO_LARGE) stats.oversized_frames++;
        else stats.malformed_frames++;
        fail(c, error == FrameParseError::TOO_LARGE ? "BATON_FRAME_TOO_LARGE" : "BATON_FRAME_MALFORMED",
             "closed the connection from " + c->remote + ": " + message);
        return false;
      }
      std::memcpy(c->header, buffer + c->read_start, kFrameHeaderBytes);
      c->read_start += kFrameHeaderBytes;
      c->in_payload = true;
      c->payload_length = header.payload_length;
      c->payload_received = 0;
      c->payload = header.payload_length > 0 ? payload_alloc(header.payload_length) : nullptr;
      if (header.payload_length > 0 && c->payload == nullptr) {
        fail(c, "BATON_OUT_OF_MEMORY", "cannot allocate a " + std::to_string(header.payload_length) + "-byte frame");
        return false;
      }
      available = c->read_end - c->read_start;
    }
    size_t take = std::min(available, c->payload_length - c->payload_received);
    if (take > 0) {
      std::memcpy(c->payload + c->payload_received, buffer + c->read_start, take);
      c->payload_received += take;
      c->read_start += take;
    }
    if (c->payload_received < c->payload_length) break;
    Event event(EventType::FRAME);
    event.id = c->id;
    std::memcpy(event.header, c->header, kFrameHeaderBytes);
    event.payload = c->payload;
    event.payload_length = c->payload_length;
    c->payload = nullptr;
    c->in_payload = false;
    c->undelivered += c->payload_length;
    stats.frames_received++;
    stats.bytes_received += kFrameHeaderBytes + c->payload_length;
    push_event(std::move(event));
  }
  if (c->read_start == c->read_end) c->read_start = c->read_end = 0;
  return true;
}

// Called when a read found the socket drained. Inside a big payload, asks the kernel not to wake
// us for less than a useful chunk (fewer wake-ups per big frame); otherwise for any byte. Never
// more than the bytes this frame still needs, since the peer may send nothing after them.
static void update_receive_low_water(Connection& c) {
#if defined(__linux__)  // Linux also caps SO_RCVLOWAT to what the receive buffer can hold
  if (c.family == AF_UNIX) return;
  size_t remaining = c.in_payload ? c.payload_length - c.payload_received : 0;
  int want = remaining >= kDirectReadThreshold ? int(std::min(remaining, kLowWaterBytes)) : 1;
  if (want != c.receive_low_water) {
    setsockopt(c.fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want);
    c.receive_low_water = want;
  }
#else
  (void)c;
#endif
}

void IoLoop::read_ready(const std::shared_ptr<Connection>& c) {
  size_t budget = kReadBufferBytes > kReadBudgetPerWake ? kReadBufferBytes : kReadBudgetPerWake;
  while (budget > 0) {
    ssize_t result;
    size_t remaining = c->in_payload ? c->payload_length - c->payload_received : 0;
    bool direct = c->in_payload && c->read_start == c->read_end && remaining >= kDirectReadThreshold;
    if (direct) {
      // Large payload: read straight into its buffer, no intermediate copy.
      result = ::read(c->fd, c->payload + c->payload_received, remaining);

    } else {
      if (c->read_start > 0 && kReadBufferBytes - c->read_end < kFrameHeaderBytes * 4) {
        std::memmove(c->read_buffer.get(), c->read_buffer.get() + c->read_start, c->read_end - c->read_start);
        c->read_end -= c->read_start;
        c->read_start = 0;
      }
      result = ::read(c->fd, c->read_buffer.get() + c->read_end, kReadBufferBytes - c->read_end);
    }
    if (result == 0) {
      bool mid_frame = c->in_payload || c->read_end > c->read_start;
      if (c->state == Connection::State::HANDSHAKE) {
        fail(c, "BATON_HANDSHAKE_REFUSED", "handshake with " + c->remote + " failed: the peer closed the connection");
      } else if (mid_frame) {
        stats.truncated_frames++;
        std::string got = c->in_payload ? std::to_string(c->payload_received) + " of " +
                                              std::to_string(c->payload_length) + " payload bytes"
                                        : std::to_string(c->read_end - c->read_start) + " of 128 header bytes";
        fail(c, "BATON_FRAME_TRUNCATED", "the peer " + c->remote + " closed the connection mid-frame (" + got + ")");
      } else {
        finish_close(c, "", "");
      }
      return;
    }
    if (result < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        update_receive_low_water(*c);
        return;
      }
      if (errno == EINTR) continue;
      int saved = errno;
      fail(c, errno_code(saved), "connection to " + c->remote + " failed: " + std::strerror(saved));
      return;
    }
    budget = size_t(result) >= budget ? 0 : budget - size_t(result);
    if (direct) {
      c->payload_received += size_t(result);
      if (c->payload_received < c->payload_length) continue;
    } else {
      c->read_end += size_t(result);
    }
    if (!process_input(c)) return;
    if (c->undelivered >= c->options.max_undelivered_bytes) {
      update_receive_low_water(*c);
      return;
    }
    if (!direct && size_t(result) < kReadBufferBytes / 2 && !c->in_payload) {  // likely drained
      update_receive_low_water(*c);
      return;
    }
  }
  update_receive_low_water(*c);  // the read budget ran out: more is waiting
}

int IoLoop::prepare(const std::shared_ptr<Connection>& c, int64_t now, int64_t* next_deadline) {
  int events = 0;
  bool close_now = false;
  int write_error = 0;
  Connection::State state;
  {
    std::lock_guard<std::mutex> lock(c->mutex);
    state = c->state;
    if (state == Connection::State::CLOSED) return -1;
    write_error = c->write_error;
    if (c->close_requested && c->out_queue.empty()) close_now = true;
    if (state == Connection::State::CONNECTING) {
      events = POLLOUT;
    } else {
      if (c->undelivered < c->options.max_undelivered_bytes) events |= POLLIN;
      if (!c->out_queue.empty()) events |= POLLOUT;
    }
  }
  if (write_error != 0) {
    fail(c, errno_code(write_error),
         (state == Connection::State::CONNECTING ? "cannot connect to " : "connection to ") + c->remote + ": " +
             std::strerror(write_error));
    return -1;
  }
  if (close_now) {
    finish_close(c, "", "");
    return -1;
  }
  if (state != Connection::State::OPEN) {
    if (now >= c->deadline_ms) {
      fail(c, "BATON_HANDSHAKE_TIMEOUT",
           (state == Connection::State::CONNECTING ? "connecting to " : "handshake with ") + c->remote +
               " timed out after " + std::to_string(c->options.handshake_timeout_ms) + " ms");
      return -1;
    }
    if (*next_deadline < 0 || c->deadline_ms < *next_deadline) *next_deadline = c->deadline_ms;
  }
  return events;
}

void IoLoop::handle(const std::shared_ptr<Connection>& c, int revents) {
  if (revents == 0) return;
  Connection::State state;
  {
    std::lock_guard<std::mutex> lock(c->mutex);
    state = c->state;
  }
  if (state == Connection::State::CLOSED) return;
  if (state == Connection::State::CONNECTING) {
    on_connect_complete(c);
    return;
  }
  if (revents & (POLLIN | POLLHUP | POLLERR)) read_ready(c);
  if (revents & POLLOUT) write_ready(c);
}

void IoLoop::close_requested_listeners() {
  std::vector<std::shared_ptr<Listener>> closed;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if (it->second->close_requested) {
        closed.push_back(it->second);
        it = listeners_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& listener : closed) {
    if (listener->poll) {
      uv_poll_stop(listener->poll);
      uv_close(reinterpret_cast<uv_handle_t*>(listener->poll), free_poll_handle);
      listener->poll = nullptr;
    }
    ::close(listener->fd);
    if (!listener->unix_path.empty()) unlink(listener->unix_path.c_str());
    Event event(EventType::LISTENER_CLOSED);
    event.id = listener->id;
    push_event(std::move(event));
  }
}

// ---- uv driver ----

void IoLoop::detach(Connection& c) {
  if (!c.poll) return;
  uv_poll_stop(c.poll);
  uv_close(reinterpret_cast<uv_handle_t*>(c.poll), free_poll_handle);
  c.poll = nullptr;
  c.armed = 0;
}

void IoLoop::arm(const std::shared_ptr<Connection>& c, int64_t now) {
  int64_t next_deadline = -1;
  int mask = prepare(c, now, &next_deadline);
  if (mask < 0) return;
  if (!c->poll) {
    c->poll = new uv_poll_t;
    if (uv_poll_init_socket(uv_, c->poll, c->fd) != 0) {
      delete c->poll;
      c->poll = nullptr;
      fail(c, "EIO", "cannot watch the socket for " + c->remote);
      return;
    }
    c->poll->data = new PollContext{this, c->id, false};
  }
  int wanted = ((mask & POLLIN) ? UV_READABLE : 0) | ((mask & POLLOUT) ? UV_WRITABLE : 0);
  if (wanted != c->armed || wanted == 0) {
    // UV_DISCONNECT is always asked for so a peer hang-up is seen even when reading is paused.
    uv_poll_start(c->poll, wanted | UV_DISCONNECT, on_uv_poll);
    c->armed = wanted;
  }
  if (next_deadline >= 0 && !uv_is_active(reinterpret_cast<uv_handle_t*>(uv_timer_))) {
    uv_timer_start(uv_timer_, on_uv_timer, 50, 50);
  }
}

void IoLoop::watch_listener(const std::shared_ptr<Listener>& listener) {
  listener->poll = new uv_poll_t;
  uv_poll_init_socket(uv_, listener->poll, listener->fd);
  listener->poll->data = new PollContext{this, listener->id, true};
  uv_poll_start(listener->poll, UV_READABLE, on_uv_poll);
}

void IoLoop::service() {
  close_requested_listeners();
  bool listeners_paused = false;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    int64_t now = now_ms();
    for (auto& entry : listeners_) {
      Listener& listener = *entry.second;
      if (listener.paused_until_ms == 0) continue;
      if (listener.paused_until_ms <= now) {
        listener.paused_until_ms = 0;
        if (listener.poll) uv_poll_start(listener.poll, UV_READABLE, on_uv_poll);
      } else {
        listeners_paused = true;
      }
    }
  }
  std::vector<std::shared_ptr<Connection>> snapshot;
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    for (auto& entry : connections_) snapshot.push_back(entry.second);
  }
  int64_t now = now_ms();
  bool handshaking = false;
  for (auto& c : snapshot) {
    arm(c, now);
    std::lock_guard<std::mutex> lock(c->mutex);
    handshaking = handshaking || (c->state != Connection::State::OPEN && c->state != Connection::State::CLOSED);
  }
  if (!listeners_paused) uv_unref(reinterpret_cast<uv_handle_t*>(uv_timer_));
  if (!handshaking && !listeners_paused) uv_timer_stop(uv_timer_);
  sink_->notify();
}

void IoLoop::on_uv_async(uv_async_t* handle) { static_cast<IoLoop*>(handle->data)->service(); }
void IoLoop::on_uv_timer(uv_timer_t* handle) { static_cast<IoLoop*>(handle->data)->service(); }

void IoLoop::on_uv_poll(uv_poll_t* handle, int status, int events) {
  auto* context = static_cast<PollContext*>(handle->data);
  IoLoop* loop = context->loop;
  loop->stats.wakeups++;
  if (context->listener) {
    std::shared_ptr<Listener> listener;
    {
      std::lock_guard<std::mutex> lock(loop->table_mutex_);
      auto found = loop->listeners_.find(context->id);
      if (found != loop->listeners_.end()) listener = found->second;
    }
    if (listener) loop->accept_ready(listener);
    loop->sink_->notify();
    return;
  }
  std::shared_ptr<Connection> c;
  {
    std::lock_guard<std::mutex> lock(loop->table_mutex_);
    auto found = loop->connections_.find(context->id);
    if (found != loop->connections_.end()) c = found->second;
  }
  if (!c) return;
  int revents = status < 0 ? POLLERR
                           : ((events & UV_READABLE) ? POLLIN : 0) | ((events & UV_WRITABLE) ? POLLOUT : 0) |
                                 ((events & UV_DISCONNECT) ? POLLHUP : 0);
  loop->handle(c, revents);
  loop->arm(c, now_ms());
  loop->sink_->notify();
}

// ---- thread driver ----

void IoLoop::run() {
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<Connection>> polled_connections;
  std::vector<std::shared_ptr<Listener>> polled_listeners;
  std::vector<std::shared_ptr<Connection>> snapshot;
  while (running_) {
    fds.clear();
    polled_connections.clear();
    polled_listeners.clear();
    snapshot.clear();
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    close_requested_listeners();
    int64_t listener_deadline = -1;
    {
      std::lock_guard<std::mutex> lock(table_mutex_);
      for (auto& entry : listeners_) {
        if (entry.second->paused_until_ms > now_ms()) {
          listener_deadline = entry.second->paused_until_ms;
          continue;
        }
        fds.push_back({entry.second->fd, POLLIN, 0});
        polled_listeners.push_back(entry.second);
      }
      for (auto& entry : connections_) snapshot.push_back(entry.second);
    }
    int64_t now = now_ms();
    int64_t next_deadline = listener_deadline;
    for (auto& c : snapshot) {
      int events = prepare(c, now, &next_deadline);
      if (events < 0) continue;
      fds.push_back({c->fd, short(events), 0});
      polled_connections.push_back(c);
    }
    {
      std::lock_guard<std::mutex> lock(event_mutex_);
      if (!events_.empty()) sink_->notify();
    }
    int timeout = next_deadline < 0 ? -1 : int(std::max<int64_t>(1, next_deadline - now));
    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) continue;
    stats.wakeups++;
    if (fds[0].revents & POLLIN) {
      uint8_t scratch[64];
      wake_pending_ = false;
      while (::read(wake_pipe_[0], scratch, sizeof scratch) > 0) {
      }
    }
    size_t index = 1;
    for (auto& listener : polled_listeners) {
      if (fds[index++].revents & POLLIN) accept_ready(listener);
    }
    for (auto& c : polled_connections) handle(c, fds[index++].revents);
    std::lock_guard<std::mutex> lock(event_mutex_);
    if (!events_.empty()) sink_->notify();
  }
}

}  // namespace baton
