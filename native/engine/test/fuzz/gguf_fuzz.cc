// GGUF fuzz driver: mutates and truncates valid GGUF files thousands of times and feeds each
// result to the engine's reader (in memory, an exact-size heap copy, so AddressSanitizer sees any
// read past the end) and, every few cases, to a full engine load plus a small forward pass from a
// temporary file. A crash, a sanitizer report or a hang is a bug; an error string is the expected
// outcome for a broken file.
//
// Build and run (one command, from the repository root):
//   node native/engine/test/fuzz/run-fuzz.mjs [--cases N] [--seed S] [model.gguf ...]
// which compiles this file and the engine sources listed in native/engine/binding.gyp with
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
// into native/engine/build/fuzz/gguf_fuzz, makes small models if none are given, and runs
//   gguf_fuzz <cases> <seed> <model.gguf>...
// `npm test` runs a quicker parser-only build (-DGGUF_FUZZ_PARSER_ONLY: gguf.cc alone, which
// compiles in seconds) over a few hundred cases.
// Exit status 0 = no crash; the summary line counts accepted / refused / loaded files.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#ifndef GGUF_FUZZ_PARSER_ONLY
#include "engine.h"
#endif
#include "gguf.h"

namespace {

std::vector<uint8_t> read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uint64_t interesting(std::mt19937_64& rng, uint64_t size) {
  const uint64_t values[] = {0, 1, 2, 3, 4, 7, 8, 31, 32, 33, 255, 256, 0x7fff, 0xffff, 0x7fffffff, 0x80000000ull, 0xffffffffull,
                             0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull, ~0ull - 1, size, size - 1, size + 1, size / 2};
  if (rng() % 4 == 0) return rng();
  return values[rng() % (sizeof(values) / sizeof(values[0]))];
}

// One mutated copy of `base`. Most mutations hit the header (metadata and tensor infos), where
// the parser's checks live; some hit anywhere; some truncate.
std::vector<uint8_t> mutate(const std::vector<uint8_t>& base, uint64_t header_bytes, std::mt19937_64& rng) {
  std::vector<uint8_t> f = base;
  const int rounds = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < rounds && !f.empty(); ++k) {
    const uint64_t region = std::max<uint64_t>(1, std::min<uint64_t>(header_bytes, f.size()));
    switch (rng() % 6) {
      case 0:  // truncate
        f.resize(rng() % f.size());
        break;
      case 1: {  // flip bytes in the header
        const int n = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < n; ++i) f[rng() % region] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      }
      case 2: {  // an interesting 8-byte value at any header offset
        if (region < 8) break;
        uint64_t v = interesting(rng, f.size());
        std::memcpy(f.data() + rng() % (region - 7), &v, 8);
        break;
      }
      case 3: {  // an interesting 4-byte value at any header offset
        if (region < 4) break;
        uint32_t v = static_cast<uint32_t>(interesting(rng, f.size()));
        std::memcpy(f.data() + rng() % (region - 3), &v, 4);
        break;
      }
      case 4: {  // random bytes anywhere
        const int n = 1 + static_cast<int>(rng() % 16);
        for (int i = 0; i < n; ++i) f[rng() % f.size()] = static_cast<uint8_t>(rng());
        break;
      }
      case 5: {  // delete or duplicate a slice of the header
        const uint64_t at = rng() % region;
        const uint64_t len = 1 + rng() % 16;
        if (rng() % 2 == 0) {
          f.erase(f.begin() + at, f.begin() + std::min<uint64_t>(f.size(), at + len));
        } else {
          std::vector<uint8_t> slice(f.begin() + at, f.begin() + std::min<uint64_t>(f.size(), at + len));
          f.insert(f.begin() + at, slice.begin(), slice.end());
        }
        break;
      }
    }
  }
  return f;
}

// Reads everything a parsed file exposes, so out-of-bounds views would be caught.
uint64_t touch(const baton::GgufFile& file) {
  uint64_t sum = 0;
  for (const auto& key : file.keys()) {
    const baton::GgufValue* v = file.find(key);
    for (char ch : v->str) sum += static_cast<uint8_t>(ch);
    for (const auto& s : v->strings) for (char ch : s) sum += static_cast<uint8_t>(ch);
    for (uint64_t i = 0; i < v->array_count && v->array_data != nullptr; ++i) sum += static_cast<uint64_t>(v->array_number(i) != 0);
  }
  for (const auto& t : file.tensors()) {
    const uint8_t* p = file.data() + t.offset;
    for (uint64_t i = 0; i < t.bytes; i += 61) sum += p[i];
    if (t.bytes > 0) sum += p[t.bytes - 1];
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: gguf_fuzz <cases> <seed> <model.gguf>...\n");
    return 2;
  }
  const long cases = std::strtol(argv[1], nullptr, 10);
  std::mt19937_64 rng(std::strtoull(argv[2], nullptr, 10));
  std::vector<std::vector<uint8_t>> bases;
  std::vector<uint64_t> header_bytes;
  for (int i = 3; i < argc; ++i) {
    bases.push_back(read_file(argv[i]));
    std::string error;
    auto parsed = baton::GgufFile::parse(bases.back().data(), bases.back().size(), &error);
    if (!parsed) {
      std::fprintf(stderr, "%s is not a valid GGUF to start from: %s\n", argv[i], error.c_str());
      return 2;
    }
    header_bytes.push_back(parsed->data_offset());
  }
  const std::string tmp = "/tmp/baton-gguf-fuzz-" + std::to_string(getpid()) + ".gguf";
  long accepted = 0, refused = 0, loaded = 0, forwarded = 0;
  uint64_t sink = 0;
  for (long c = 0; c < cases; ++c) {
    const size_t which = rng() % bases.size();
    std::vector<uint8_t> bytes = mutate(bases[which], header_bytes[which], rng);
    // Exact-size heap copy: ASan flags any read past its end.
    uint8_t* exact = static_cast<uint8_t*>(std::malloc(bytes.empty() ? 1 : bytes.size()));
    if (!bytes.empty()) std::memcpy(exact, bytes.data(), bytes.size());
    std::string error;
    auto file = baton::GgufFile::parse(exact, bytes.size(), &error);
    if (file) {
      ++accepted;
      sink += touch(*file);
    } else {
      ++refused;
      if (error.empty()) {
        std::fprintf(stderr, "case %ld: refused without an error message\n", c);
        return 1;
      }
    }
    file.reset();
    std::free(exact);
#ifndef GGUF_FUZZ_PARSER_ONLY
    if (c % 8 == 0) {
      std::ofstream(tmp, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      baton::EngineOptions options;
      options.path = tmp;
      options.kv_tokens = 32;
      options.max_context = 32;
      options.max_batch_tokens = 4;
      options.kv_dtype = c % 16 == 0 ? baton::KvDType::F32 : baton::KvDType::F16;
      auto engine = baton::Engine::load(options, &error);
      if (engine) {
        ++loaded;
        baton::ForwardRequest req;
        baton::ForwardSegment seg;
        seg.n_tokens = 3;
        req.segments.push_back(seg);
        int32_t tokens[3] = {0, 1 % static_cast<int32_t>(engine->config().n_vocab), 0};
        std::vector<float> logits(static_cast<size_t>(engine->config().n_vocab));
        req.tokens = tokens;
        req.output = baton::OutputKind::LOGITS_LAST;
        req.logits_out = logits.data();
        if (engine->forward(req, &error)) ++forwarded;
      }
    }
#endif
  }
  unlink(tmp.c_str());
  std::printf("gguf_fuzz: %ld cases: %ld accepted, %ld refused with an error; %ld engine loads, %ld forwards (checksum %llu)\n", cases,
              accepted, refused, loaded, forwarded, static_cast<unsigned long long>(sink % 1000));
  return 0;
}
