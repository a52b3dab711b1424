// An NS16550A UART as on QEMU virt at 0x10000000 ("ns16550a", reg-shift 0, 8-bit
// registers, size 0x100). Accesses of any size are accepted and use the low byte; offsets
// 8..0xff read 0 and ignore writes.
//
// Transmit is instant: a THR write hands the byte to `tx` at once, so LSR.THRE and TEMT
// are always set. Receive: the machine's console thread calls push_input(); bytes wait in
// a bounded FIFO (kRxCapacity) and are dropped (LSR.OE set) when it is full.
// Interrupts (IIR priority): received data (0x04) over THR empty (0x02); none = 0x01.
// The THR-empty interrupt follows the 16550: it is raised when ETBEI goes 0 -> 1 or a THR
// write completes (at once, TX being instant), and cleared by an IIR read that reports it.
// MCR loopback (bit 4) routes transmitted bytes to the RX FIFO and MCR outputs to MSR.
//
// Threading: every entry point may be called from any thread; one mutex guards the state.
// `tx` and `irq` run on the calling thread (a vCPU thread, or the console thread for irq
// from push_input) WHILE THE DEVICE LOCK IS HELD: they must never call back into this UART
// (that deadlocks). irq is called only when the line level changes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

#include "common/state_io.h"
#include "mem/bus.h"

namespace nimbus::devices {

class Uart16550 : public mem::MmioDevice {
 public:
  static constexpr uint64_t kSize = 0x100;
  static constexpr size_t kRxCapacity = 4096;

  // Register offsets.
  static constexpr uint64_t kRbrThrDll = 0, kIerDlm = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5,
                            kMsr = 6, kScr = 7;
  // Bits.
  static constexpr uint8_t kIerRxData = 0x01, kIerThre = 0x02;
  static constexpr uint8_t kIirNone = 0x01, kIirThre = 0x02, kIirRxData = 0x04, kIirFifos = 0xc0;
  static constexpr uint8_t kLcrDlab = 0x80;
  static constexpr uint8_t kMcrLoop = 0x10;
  static constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;

  Uart16550(std::function<void(uint8_t)> tx, std::function<void(bool level)> irq);

  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

  // Console input; returns false (and drops the byte) when the RX FIFO is full.
  bool push_input(uint8_t byte);
  // True when push_input would accept a byte (lets the console thread apply backpressure).
  bool has_input_space();

  // Snapshots: section "uart16550" with every register, the RX FIFO and the interrupt
  // conditions. load_state re-evaluates the interrupt line (calling irq if it changes).
  void save_state(StateWriter& w) const;
  void load_state(StateReader& r);

 private:
  uint8_t iir_locked() const;
  void rx_push_locked(uint8_t byte);
  void update_irq_locked();

  std::function<void(uint8_t)> tx_;
  std::function<void(bool)> irq_;

  mutable std::mutex mu_;
  std::array<uint8_t, kRxCapacity> rx_{};
  size_t rx_head_ = 0;  // index of the oldest byte
  size_t rx_count_ = 0;
  bool overrun_ = false;
  bool thre_pending_ = false;  // THR-empty interrupt condition (see header comment)
  bool irq_level_ = false;
  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 0, dlm_ = 0;
  bool fifos_enabled_ = false;
};

}  // namespace nimbus::devices
