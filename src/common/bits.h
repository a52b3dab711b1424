// Bit-field helpers used by decoders and CSR code.
#pragma once

#include <cstdint>

namespace nimbus {

// Bits [hi:lo] of v, right-aligned.
constexpr uint64_t bits(uint64_t v, unsigned hi, unsigned lo) {
  return (v >> lo) & ((hi - lo + 1 >= 64) ? ~0ULL : ((1ULL << (hi - lo + 1)) - 1));
}
constexpr uint64_t bit(uint64_t v, unsigned n) { return (v >> n) & 1; }

// Sign-extends the low `width` bits of v.
constexpr int64_t sext(uint64_t v, unsigned width) {
  return static_cast<int64_t>(v << (64 - width)) >> (64 - width);
}

}  // namespace nimbus
