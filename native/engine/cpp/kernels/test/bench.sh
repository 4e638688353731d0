#!/bin/sh
# Builds and runs the kernel micro-benchmark (1 thread unless --threads N is given).
# Usage: native/engine/cpp/kernels/test/bench.sh [--threads N] [--mb M] [--batch B] [--types ...] [--scalar]
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/baton-kernels-bench-$$
${CXX:-g++} -std=c++17 -O3 -pthread -o "$out" "$here/bench.cc" "$here/../kernels.cc" "$here/../kernels_scalar.cc" \
  "$here/../kernels_avx2.cc" "$here/../kernels_avx512.cc" "$here/../kernels_neon.cc" "$here/../thread_pool.cc"
trap 'rm -f "$out"' EXIT
"$out" "$@"
