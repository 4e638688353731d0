// A STREAM-style read-bandwidth test: the rate at which this machine's cores can read a buffer
// much larger than the caches — the ceiling for a decode step, which streams every weight once.
#pragma once
#include <cstddef>
#include <string>

namespace baton {

// Reads a `bytes` buffer `passes` times with `threads` threads (each a contiguous slice) and
// returns the best pass's bytes per second; 0 and *error on failure.
double measure_read_bandwidth(size_t bytes, int passes, int threads, std::string* error);

}  // namespace baton
