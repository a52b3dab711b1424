// Nimbus's built-in firmware: the RISC-V Supervisor Binary Interface (SBI spec 1.0)
// implemented in the VMM. The kernel runs in S-mode; its ECALLs land here instead of in
// M-mode code. Extensions: base, legacy console/timer/shutdown, TIME, IPI, RFENCE, HSM,
// SRST.
#pragma once

#include <cstdint>

#include "cpu/hart.h"

namespace nimbus::machine::virt {

// SBI error codes (SBI spec 3.2).
enum SbiError : int64_t {
  kSbiSuccess = 0,
  kSbiErrFailed = -1,
  kSbiErrNotSupported = -2,
  kSbiErrInvalidParam = -3,
  kSbiErrDenied = -4,
  kSbiErrInvalidAddress = -5,
  kSbiErrAlreadyAvailable = -6,
  kSbiErrAlreadyStarted = -7,
  kSbiErrAlreadyStopped = -8,
};

// HSM hart states (SBI spec 9.1).
enum HartState : int64_t {
  kHartStarted = 0,
  kHartStopped = 1,
  kHartStartPending = 2,
  kHartStopPending = 3
};

// A remote SFENCE.VMA (RFENCE extension): the pages of [start, start + size) — the whole
// address space when start and size are 0 or size is all-ones — of one ASID (has_asid) or
// of every address space.
struct SfenceRequest {
  uint64_t start = 0;
  uint64_t size = ~0ULL;
  bool has_asid = false;
  uint64_t asid = 0;
};

// What the firmware needs from the board.
class SbiPlatform {
 public:
  virtual ~SbiPlatform() = default;
  virtual unsigned hart_count() const = 0;
  // Programs hart's timer: the S timer interrupt is pending once mtime >= value.
  virtual void set_timer(unsigned hart, uint64_t value) = 0;
  // Makes the S software interrupt pending on `hart`.
  virtual void send_ipi(unsigned hart) = 0;
  // Drops what `what` names from `hart`'s address translation caches; returns once the
  // hart will not use a stale translation of it again.
  virtual void remote_sfence(unsigned from_hart, unsigned hart, const SfenceRequest& what) = 0;
  virtual int64_t hart_start(unsigned hart, uint64_t start_addr, uint64_t opaque) = 0;
  virtual int64_t hart_stop(unsigned hart) = 0;
  virtual int64_t hart_status(unsigned hart) = 0;
  // type: 0 shutdown, 1 cold reboot, 2 warm reboot.
  virtual void system_reset(uint32_t type, uint32_t reason) = 0;
  virtual void console_putchar(uint8_t c) = 0;
  virtual int console_getchar() = 0;  // -1 when there is no input
};

// Handles the ECALL from S-mode that `hart` just executed (a7 = extension, a6 = function,
// a0..a5 = arguments); writes a0 (error) and a1 (value), or a0 alone for legacy calls.
void sbi_call(cpu::Hart& hart, SbiPlatform& platform);

// Spec version 1.0 and our implementation ID ("NIMB" in ASCII, not in the SBI registry).
constexpr uint64_t kSbiSpecVersion = 1ULL << 24;
constexpr uint64_t kSbiImplId = 0x4e494d42;
constexpr uint64_t kSbiImplVersion = 1;

}  // namespace nimbus::machine::virt
