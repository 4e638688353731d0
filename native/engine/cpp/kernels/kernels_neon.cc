// NEON kernels (arm64): placeholder until written; returns null so dispatch falls back.
#include "kernels_impl.h"
namespace baton {
namespace kern {
const KernelSet* neon_kernels() { return nullptr; }
}  // namespace kern
}  // namespace baton
