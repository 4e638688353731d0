#!/bin/sh
# Cross-compiles the kernel test for arm64 (NEON kernels) with Debian's aarch64 g++, twice — the
# widening-multiply path (-march=armv8-a) and the SDOT path (-march=armv8.2-a+dotprod) — and
# runs both under qemu-aarch64 when it is installed. Exits 0 and says so when the tools are
# missing; exits 1 if a build or a test fails.
#   apt-get install -y g++-aarch64-linux-gnu qemu-user
set -e
here=$(cd "$(dirname "$0")" && pwd)
k="$here/.."
cxx=${AARCH64_CXX:-aarch64-linux-gnu-g++}
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "cross-arm64: $cxx not found; install it with: apt-get install -y g++-aarch64-linux-gnu qemu-user (skipped)"
  exit 0
fi
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
out=${TMPDIR:-/tmp}/baton-kernels-arm64-$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
status=0
for march in armv8-a armv8.2-a+dotprod; do
  bin="$out/kernels_test-$(echo "$march" | tr '+.' '__')"
  "$cxx" -std=c++17 -O2 -static -pthread -march="$march" -Wall -o "$bin" "$here/kernels_test.cc" "$k/kernels.cc" \
    "$k/kernels_scalar.cc" "$k/kernels_avx2.cc" "$k/kernels_avx512.cc" "$k/kernels_neon.cc" "$k/thread_pool.cc"
  echo "cross-arm64: built for -march=$march"
  if [ -n "$qemu" ]; then
    if "$qemu" -cpu max "$bin" "$@"; then echo "cross-arm64: -march=$march passed under qemu"; else status=1; fi
  fi
done
if [ -z "$qemu" ]; then
  echo "cross-arm64: qemu-aarch64 not found; built only (install qemu-user to run the tests)"
fi
exit $status
