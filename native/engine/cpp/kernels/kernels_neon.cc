// NEON kernels (arm64: Apple Silicon, Graviton, Raspberry Pi 4/5). Same scheme as the x86 set:
// activations quantized once per matmul (Q8_0 for Q8_0/Q4_0 weights, Q8_K for the K-quants),
// integer dot products per block, one float multiply-add per block, tiles of R weight rows x C
// activation columns sharing their loads. Two builds of the same code (kernels_neon.inc): one
// with SDOT (vdotq_s32, ARMv8.2 dot product: Apple M1+, Graviton 2+, Cortex-A76+) and one with
// widening multiplies (vmull_s8 + vpadalq_s16) for older cores; the first runs when the CPU
// has the extension (HWCAP_ASIMDDP on Linux; always on Apple Silicon).
#include <algorithm>
#include <cstring>

#include "kernels_impl.h"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

namespace baton {
namespace kern {

#if defined(__ARM_FEATURE_DOTPROD)
// The whole build targets a CPU with SDOT (e.g. Apple clang's default -mcpu=apple-m1).
#define BATON_NEON_DOT_SET_AVAILABLE 1
namespace neon_dot {
#define BATON_NEON_DOTPROD 1
#define BATON_NEON_SET_DETAIL "neon+dotprod"
#include "kernels_neon.inc"
#undef BATON_NEON_DOTPROD
#undef BATON_NEON_SET_DETAIL
}  // namespace neon_dot
#else
namespace neon_plain {
#define BATON_NEON_DOTPROD 0
#define BATON_NEON_SET_DETAIL "neon"
#include "kernels_neon.inc"
#undef BATON_NEON_DOTPROD
#undef BATON_NEON_SET_DETAIL
}  // namespace neon_plain
// The SDOT build for a baseline ARMv8.0 target, selected at run time.
// (GCC only: older clang headers declare vdotq_s32 only when the whole build has +dotprod.)
#if !defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10
#define BATON_NEON_DOT_SET_AVAILABLE 1
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
#if defined(BATON_NEON_DOT_SET_AVAILABLE)
namespace neon_dot {
#define BATON_NEON_DOTPROD 1
#define BATON_NEON_SET_DETAIL "neon+dotprod"
#include "kernels_neon.inc"
#undef BATON_NEON_DOTPROD
#undef BATON_NEON_SET_DETAIL
}  // namespace neon_dot
#pragma GCC pop_options
#endif
#endif

namespace {
bool cpu_has_dotprod() {
#if defined(__ARM_FEATURE_DOTPROD) || defined(__APPLE__)
  return true;  // every Apple Silicon core has it
#elif defined(__linux__)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}
}  // namespace

const KernelSet* neon_plain_kernels() {
#if defined(__ARM_FEATURE_DOTPROD)
  return nullptr;  // this build has no non-SDOT variant
#else
  return &neon_plain::kSet;
#endif
}

const KernelSet* neon_kernels() {
#if defined(BATON_NEON_DOT_SET_AVAILABLE)
  if (cpu_has_dotprod()) return &neon_dot::kSet;
#endif
  return neon_plain_kernels();
}

}  // namespace kern
}  // namespace baton

#else  // not arm64

namespace baton {
namespace kern {
const KernelSet* neon_kernels() { return nullptr; }
const KernelSet* neon_plain_kernels() { return nullptr; }
}  // namespace kern
}  // namespace baton

#endif
