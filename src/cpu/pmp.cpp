// Physical memory protection, Priv spec 1.12 section 3.7. 16 entries, granularity G = 0
// (4 bytes), so NA4 is available.
#include <cstdint>

#include "cpu/hart.h"

namespace nimbus::cpu {

namespace {

constexpr uint8_t kPmpR = 1, kPmpW = 2, kPmpX = 4, kPmpL = 0x80;
enum : unsigned { kOff = 0, kTor = 1, kNa4 = 2, kNapot = 3 };

using u128 = unsigned __int128;

// The byte range [lo, hi) matched by entry i; false if the entry is off or empty.
bool pmp_range(const uint8_t* cfg, const uint64_t* addr, unsigned i, u128& lo, u128& hi) {
  const unsigned a = (cfg[i] >> 3) & 3;
  switch (a) {
    case kTor:
      lo = i == 0 ? 0 : u128{addr[i - 1]} << 2;
      hi = u128{addr[i]} << 2;
      return lo < hi;
    case kNa4:
      lo = u128{addr[i]} << 2;
      hi = lo + 4;
      return true;
    case kNapot: {
      // pmpaddr = base>>2 with (t) trailing ones: a region of 2^(t+3) bytes.
      const unsigned t = ~addr[i] == 0 ? 64 : static_cast<unsigned>(__builtin_ctzll(~addr[i]));
      const u128 size = u128{8} << t;
      lo = (u128{addr[i]} << 2) & ~(size - 1);
      hi = lo + size;
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

bool Hart::pmp_allows(uint64_t paddr, unsigned size, Access access, Priv p) const {
  const u128 start = paddr;
  const u128 end = start + size;  // exclusive
  for (unsigned i = 0; i < 16; i++) {
    u128 lo, hi;
    if (!pmp_range(pmpcfg, pmpaddr, i, lo, hi)) continue;
    if (end <= lo || start >= hi) continue;  // no byte matches
    // The lowest-numbered matching entry decides; a partial match fails even in M-mode.
    if (start < lo || end > hi) return false;
    const uint8_t c = pmpcfg[i];
    if (p == kPrivM && !(c & kPmpL)) return true;
    switch (access) {
      case Access::kFetch:
        return (c & kPmpX) != 0;
      case Access::kLoad:
        return (c & kPmpR) != 0;
      case Access::kStore:
        return (c & kPmpW) != 0;
    }
    return false;
  }
  // No match: M-mode succeeds; S/U fail because PMP entries are implemented.
  return p == kPrivM;
}

bool Hart::pmp_page_uniform(uint64_t paddr, Priv p) const {
  const u128 page_lo = paddr & ~0xFFFULL;
  const u128 page_hi = page_lo + 0x1000;
  // Walk the entries in priority order. The first entry that overlaps the page must
  // cover all of it (then it decides for every byte); if it only partly overlaps, bytes
  // of the page get different verdicts (or straddling accesses fail).
  for (unsigned i = 0; i < 16; i++) {
    u128 lo, hi;
    if (!pmp_range(pmpcfg, pmpaddr, i, lo, hi)) continue;
    if (hi <= page_lo || lo >= page_hi) continue;
    return lo <= page_lo && hi >= page_hi;
  }
  return true;  // no entry touches the page: the "no match" verdict holds everywhere
}

}  // namespace nimbus::cpu
