// The SiFive PLIC ("sifive,plic-1.0.0", "riscv,plic0") as on QEMU virt at 0xc000000:
// 96 interrupt sources (ids 1..95, `riscv,ndev` = 95), 3-bit priorities, and two contexts
// per hart in QEMU virt's order: context 2*h is hart h's M-mode (MEIP), context 2*h+1 its
// S-mode (SEIP). Register map (riscv-plic-spec):
//   0x000000 + 4*id        priority[id]          (id 0 reads 0)
//   0x001000 + 4*w         pending bits          (read-only)
//   0x002000 + 0x80*c      enable bits of context c
//   0x200000 + 0x1000*c    threshold of context c
//   0x200004 + 0x1000*c    claim (read) / complete (write) of context c
// Size 0x600000 (QEMU virt's DT "reg" size; room for 1024 contexts). Registers are 32-bit;
// an 8-byte access is two 32-bit accesses (low word first); 1- and 2-byte accesses are not
// decoded.
//
// Sources are level-triggered: a source is pending while its line is high and its gateway
// is open; lowering the line before a claim withdraws the request (as QEMU does). A claim
// closes the gateway until the id is completed by a context that has it enabled.
//
// Threading: every entry point may be called from any thread; one mutex guards the state.
// set_context_irq runs on the calling thread WHILE THE DEVICE LOCK IS HELD and only when a
// context's output changes; it must never call back into this Plic (that deadlocks).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "common/state_io.h"
#include "mem/bus.h"

namespace nimbus::devices {

class Plic : public mem::MmioDevice {
 public:
  static constexpr uint64_t kSize = 0x600000;
  static constexpr unsigned kNumSources = 96;  // ids 0..95; id 0 means "no interrupt"
  static constexpr unsigned kPriorityMask = 7;
  static constexpr unsigned kMaxContexts = 1024;  // what fits in kSize
  static constexpr uint64_t kPriorityBase = 0x000000;
  static constexpr uint64_t kPendingBase = 0x001000;
  static constexpr uint64_t kEnableBase = 0x002000;
  static constexpr uint64_t kEnableStride = 0x80;
  static constexpr uint64_t kContextBase = 0x200000;
  static constexpr uint64_t kContextStride = 0x1000;

  // Contexts = 2 * num_harts (clamped to kMaxContexts).
  Plic(unsigned num_harts, std::function<void(unsigned context, bool level)> set_context_irq);

  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

  // A device's interrupt line. Ids 0 and >= kNumSources are ignored.
  void set_source_level(unsigned source, bool level);

  unsigned num_contexts() const { return num_contexts_; }

  // Snapshots: section "plic" with priorities, line levels, pending and in-service
  // (claimed, not completed) bits, and each context's enables and threshold. load_state
  // checks the context count and every value, then recomputes the outputs and calls
  // set_context_irq for each that changed (on a fresh PLIC: each context that is high).
  // Devices that drive lines may be restored before or after the PLIC.
  void save_state(StateWriter& w) const;
  void load_state(StateReader& r);

 private:
  static constexpr unsigned kWords = (kNumSources + 31) / 32;
  using Bits = std::array<uint32_t, kWords>;

  struct Context {
    Bits enable{};
    uint32_t threshold = 0;
    bool output = false;
  };

  uint32_t read32(uint64_t offset);
  void write32(uint64_t offset, uint32_t value);
  unsigned claim(Context& ctx);
  void complete(Context& ctx, uint32_t id);
  void update_outputs();
  static bool test(const Bits& bits, unsigned id) { return (bits[id / 32] >> (id % 32)) & 1; }
  static void assign(Bits& bits, unsigned id, bool v) {
    if (v) {
      bits[id / 32] |= 1u << (id % 32);
    } else {
      bits[id / 32] &= ~(1u << (id % 32));
    }
  }

  const unsigned num_contexts_;
  std::function<void(unsigned, bool)> set_context_irq_;

  mutable std::mutex mu_;
  std::array<uint32_t, kNumSources> priority_{};
  Bits line_{};        // current device line levels
  Bits pending_{};     // requests waiting for a claim
  Bits in_service_{};  // claimed, not yet completed (gateway closed)
  std::vector<Context> contexts_;
};

}  // namespace nimbus::devices
