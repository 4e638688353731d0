// Fuzz driver for everything that parses bytes from the network: the frame header parser, the
// handshake parser, and (with BATON_FUZZ_IO_LOOP) the whole receive path of the I/O loop over
// real loopback sockets. Built with AddressSanitizer + UBSan by scripts/fuzz.mjs, so any
// out-of-bounds read or undefined behaviour aborts the run.
//
//   node native/transport/scripts/fuzz.mjs [iterations] [seed]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "frame.h"
#include "handshake.h"
#ifdef BATON_FUZZ_IO_LOOP
#include "io_loop.h"
#endif

using namespace baton;

namespace {

std::vector<uint8_t> valid_header(std::mt19937_64& rng) {
  FrameHeader header;
  header.kind = uint8_t(1 + rng() % 6);
  header.dtype = uint8_t(rng() % 5);
  header.token_count = uint32_t(rng() % 8);
  header.width = uint32_t(rng() % 64);
  size_t element = payload_dtype_bytes(header.dtype);
  header.payload_length = element ? header.token_count * header.width * uint32_t(element) : uint32_t(rng() % 4096);
  std::vector<uint8_t> bytes(kFrameHeaderBytes);
  encode_frame_header(header, bytes.data());
  return bytes;
}

void mutate(std::vector<uint8_t>& bytes, std::mt19937_64& rng) {
  int edits = int(rng() % 6);
  for (int i = 0; i < edits && !bytes.empty(); i++) {
    size_t at = rng() % bytes.size();
    switch (rng() % 4) {
      case 0: bytes[at] ^= uint8_t(1u << (rng() % 8)); break;
      case 1: bytes[at] = uint8_t(rng()); break;
      case 2: if (at + 4 <= bytes.size()) store_u32(bytes.data() + at, uint32_t(rng())); break;
      default: bytes.resize(at); break;
    }
  }
}

// Header and handshake parsers on exact-size heap buffers (ASan sees any over-read).
void fuzz_parsers(uint64_t iterations, std::mt19937_64& rng) {
  uint64_t accepted = 0;
  for (uint64_t i = 0; i < iterations; i++) {
    std::vector<uint8_t> bytes = valid_header(rng);
    mutate(bytes, rng);
    if (bytes.size() >= kFrameHeaderBytes) {
      uint8_t* exact = static_cast<uint8_t*>(std::malloc(kFrameHeaderBytes));
      std::memcpy(exact, bytes.data(), kFrameHeaderBytes);
      FrameHeader header;
      std::string message;
      if (parse_frame_header(exact, uint64_t(rng() % (1u << 20)), header, &message) == FrameParseError::NONE) accepted++;
      std::free(exact);
    }
    Handshake handshake(rng() % 2 == 0, std::vector<uint8_t>{1, 2, 3}, kProtocolVersion, 0);
    std::vector<uint8_t> stream = handshake.hello();
    std::vector<uint8_t> tail(size_t(rng() % 300));
    for (auto& b : tail) b = uint8_t(rng());
    stream.insert(stream.end(), tail.begin(), tail.end());
    mutate(stream, rng);
    size_t offset = 0;
    while (offset < stream.size()) {
      size_t take = 1 + rng() % (stream.size() - offset);
      uint8_t* exact = static_cast<uint8_t*>(std::malloc(take));
      std::memcpy(exact, stream.data() + offset, take);
      std::vector<uint8_t> out;
      HandshakeResult result = handshake.feed(exact, take, out);
      std::free(exact);
      if (result.status != HandshakeResult::CONTINUE) break;
      offset += result.consumed > 0 ? result.consumed : take;
    }
  }
  std::printf("fuzz: %llu header/handshake inputs, %llu headers accepted\n", (unsigned long long)iterations,
              (unsigned long long)accepted);
}

#ifdef BATON_FUZZ_IO_LOOP
struct DiscardingSink : EventSink {
  IoLoop* loop = nullptr;
  void notify() override {}
  void drain() {
    std::vector<Event> events;
    loop->take_events(events);
    for (auto& event : events) {
      if (event.type == EventType::FRAME) loop->delivered(event.id, event.payload_length);
      payload_free(event.payload, event.payload_length);
    }
  }
};

bool write_all(int fd, const uint8_t* data, size_t length) {
  while (length > 0) {
    ssize_t n = ::send(fd, data, length, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    length -= size_t(n);
  }
  return true;
}

// Streams of mutated frames into a real listener, one connection per case.
void fuzz_io_loop(uint64_t cases, std::mt19937_64& rng) {
  DiscardingSink sink;
  IoLoop loop(&sink, nullptr);
  sink.loop = &loop;
  EndpointOptions options;
  options.secret = {'f', 'u', 'z', 'z'};
  options.max_payload_bytes = 64 * 1024;
  options.handshake_timeout_ms = 2000;
  int port = 0;
  std::string error;
  if (loop.listen("127.0.0.1", 0, "", options, &port, &error) == 0) {
    std::fprintf(stderr, "fuzz: cannot listen: %s\n", error.c_str());
    std::exit(1);
  }
  for (uint64_t i = 0; i < cases; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(uint16_t(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      std::perror("connect");
      std::exit(1);
    }
    bool garbage_handshake = rng() % 8 == 0;
    Handshake client(true, options.secret, kProtocolVersion, 0);
    std::vector<uint8_t> hello = client.hello();
    if (garbage_handshake) mutate(hello, rng);
    write_all(fd, hello.data(), hello.size());
    bool open = false;
    if (!garbage_handshake) {
      std::vector<uint8_t> received;
      uint8_t buffer[512];
      while (!open) {
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        received.insert(received.end(), buffer, buffer + n);
        std::vector<uint8_t> out;
        HandshakeResult result = client.feed(received.data(), received.size(), out);
        received.erase(received.begin(), received.begin() + long(result.consumed));
        write_all(fd, out.data(), out.size());
        if (result.status == HandshakeResult::OPEN) open = true;
        if (result.status == HandshakeResult::FAILED) break;
      }
    }
    if (open) {
      std::vector<uint8_t> stream;
      int frames = 1 + int(rng() % 8);
      for (int f = 0; f < frames; f++) {
        std::vector<uint8_t> header = valid_header(rng);
        uint32_t length = load_u32(header.data() + 28);
        if (rng() % 4 == 0) {
          mutate(header, rng);  // a corrupt header mid-stream
          header.resize(kFrameHeaderBytes, 0);
        }
        stream.insert(stream.end(), header.begin(), header.end());
        for (uint32_t b = 0; b < length; b++) stream.push_back(uint8_t(b));
      }
      mutate(stream, rng);
      write_all(fd, stream.data(), stream.size());
    }
    ::close(fd);
    sink.drain();
  }
  usleep(200 * 1000);
  sink.drain();
  std::printf("fuzz: %llu connections; frames received %llu, malformed %llu, oversized %llu, truncated %llu, handshake failures %llu\n",
              (unsigned long long)cases, (unsigned long long)loop.stats.frames_received.load(),
              (unsigned long long)loop.stats.malformed_frames.load(), (unsigned long long)loop.stats.oversized_frames.load(),
              (unsigned long long)loop.stats.truncated_frames.load(), (unsigned long long)loop.stats.handshake_failures.load());
}
#endif

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  std::mt19937_64 rng(seed);
  fuzz_parsers(iterations, rng);
#ifdef BATON_FUZZ_IO_LOOP
  fuzz_io_loop(iterations / 500 + 1, rng);
#endif
  std::printf("fuzz: ok (seed %llu)\n", (unsigned long long)seed);
  return 0;
}
