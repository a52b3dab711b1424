#include "machine/virt/sbi.h"

#include "cpu/hart.h"

namespace nimbus::machine::virt {

namespace {

// Extension IDs (SBI spec chapters 4-10).
constexpr uint64_t kExtBase = 0x10;
constexpr uint64_t kExtTime = 0x54494d45;
constexpr uint64_t kExtIpi = 0x735049;
constexpr uint64_t kExtRfence = 0x52464e43;
constexpr uint64_t kExtHsm = 0x48534d;
constexpr uint64_t kExtSrst = 0x53525354;
// Legacy extensions 0x00-0x08 (SBI v0.1).
constexpr uint64_t kLegacySetTimer = 0x00;
constexpr uint64_t kLegacyPutchar = 0x01;
constexpr uint64_t kLegacyGetchar = 0x02;
constexpr uint64_t kLegacyClearIpi = 0x03;
constexpr uint64_t kLegacyShutdown = 0x08;

struct Ret {
  int64_t error;
  uint64_t value = 0;
};

bool probe(uint64_t ext) {
  switch (ext) {
    case kExtBase:
    case kExtTime:
    case kExtIpi:
    case kExtRfence:
    case kExtHsm:
    case kExtSrst:
    case kLegacySetTimer:
    case kLegacyPutchar:
    case kLegacyGetchar:
    case kLegacyClearIpi:
    case kLegacyShutdown:
      return true;
    default:
      return false;
  }
}

// Calls `fn(hart)` for every hart selected by (hart_mask, hart_mask_base) (SBI spec 3.1):
// base = -1 selects every hart. Invalid hart numbers give SBI_ERR_INVALID_PARAM.
template <typename F>
int64_t for_each_hart(SbiPlatform& p, uint64_t mask, uint64_t base, F fn) {
  const unsigned n = p.hart_count();
  if (base == ~0ULL) {
    for (unsigned h = 0; h < n; h++) fn(h);
    return kSbiSuccess;
  }
  for (unsigned bit = 0; bit < 64; bit++) {
    if (((mask >> bit) & 1) == 0) continue;
    if (base >= n || bit >= n - base) return kSbiErrInvalidParam;
  }
  for (unsigned bit = 0; bit < 64; bit++) {
    if ((mask >> bit) & 1) fn(static_cast<unsigned>(base + bit));
  }
  return kSbiSuccess;
}

Ret base(uint64_t fid, uint64_t a0) {
  switch (fid) {
    case 0:
      return {kSbiSuccess, kSbiSpecVersion};
    case 1:
      return {kSbiSuccess, kSbiImplId};
    case 2:
      return {kSbiSuccess, kSbiImplVersion};
    case 3:
      return {kSbiSuccess, probe(a0) ? 1u : 0u};
    case 4:
    case 5:
    case 6:
      return {kSbiSuccess, 0};  // mvendorid, marchid, mimpid
    default:
      return {kSbiErrNotSupported};
  }
}

}  // namespace

void sbi_call(cpu::Hart& h, SbiPlatform& p) {
  const uint64_t ext = h.x[17], fid = h.x[16];
  const uint64_t a0 = h.x[10], a1 = h.x[11], a2 = h.x[12];
  const unsigned self = static_cast<unsigned>(h.hartid);

  // Legacy calls return one value in a0 and leave a1 alone.
  switch (ext) {
    case kLegacySetTimer:
      p.set_timer(self, a0);
      h.x[10] = 0;
      return;
    case kLegacyPutchar:
      p.console_putchar(static_cast<uint8_t>(a0));
      h.x[10] = 0;
      return;
    case kLegacyGetchar:
      h.x[10] = static_cast<uint64_t>(static_cast<int64_t>(p.console_getchar()));
      return;
    case kLegacyClearIpi:
      h.set_interrupt_pending(cpu::kIrqSSoft, false);
      h.x[10] = 0;
      return;
    case kLegacyShutdown:
      p.system_reset(0, 0);
      h.x[10] = 0;
      return;
    default:
      break;
  }

  Ret r{kSbiErrNotSupported};
  switch (ext) {
    case kExtBase:
      r = base(fid, a0);
      break;
    case kExtTime:
      if (fid == 0) {
        p.set_timer(self, a0);
        r = {kSbiSuccess};
      }
      break;
    case kExtIpi:
      if (fid == 0) r = {for_each_hart(p, a0, a1, [&](unsigned t) { p.send_ipi(t); })};
      break;
    case kExtRfence:
      // A remote FENCE.I is one for every hart (cpu::fence_i_all_harts). SFENCE.VMA drops
      // the range (fid 1) or the range of one ASID (fid 2).
      if (fid == 0) {
        r = {for_each_hart(p, a0, a1, [](unsigned) {})};
        if (r.error == kSbiSuccess) cpu::fence_i_all_harts();
      } else if (fid == 1 || fid == 2) {
        const SfenceRequest what{a2, h.x[13], fid == 2, h.x[14]};
        r = {for_each_hart(p, a0, a1, [&](unsigned t) { p.remote_sfence(self, t, what); })};
      }
      break;
    case kExtHsm:
      if (fid == 0) {
        r = {a0 < p.hart_count() ? p.hart_start(static_cast<unsigned>(a0), a1, a2)
                                 : kSbiErrInvalidParam};
      } else if (fid == 1) {
        r = {p.hart_stop(self)};
      } else if (fid == 2) {
        if (a0 < p.hart_count()) {
          r = {kSbiSuccess, static_cast<uint64_t>(p.hart_status(static_cast<unsigned>(a0)))};
        } else {
          r = {kSbiErrInvalidParam};
        }
      } else if (fid == 3) {
        // Retentive default suspend behaves like WFI: returning at once is a spurious
        // wake-up, which the spec allows. Non-retentive suspend is not offered.
        r = {a0 == 0 ? kSbiSuccess : kSbiErrNotSupported};
      }
      break;
    case kExtSrst:
      if (fid == 0) {
        if (a0 > 2 || a1 > 1) {
          r = {kSbiErrInvalidParam};
        } else {
          p.system_reset(static_cast<uint32_t>(a0), static_cast<uint32_t>(a1));
          r = {kSbiSuccess};
        }
      }
      break;
    default:
      break;
  }
  h.x[10] = static_cast<uint64_t>(r.error);
  h.x[11] = r.value;
}

}  // namespace nimbus::machine::virt
