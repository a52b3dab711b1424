// The "virt" board: RAM, 1-8 harts each on its own host thread, CLINT, PLIC, a 16550 UART,
// a goldfish RTC, the sifive,test poweroff/reboot device, and either the built-in SBI
// firmware or a real M-mode firmware. Memory map and device tree as QEMU's virt machine.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/net/net_backend.h"
#include "common/state_io.h"
#include "common/status.h"
#include "cpu/hart.h"
#include "machine/virt/boot_image.h"
#include "machine/virt/fence_mailbox.h"
#include "machine/virt/sbi.h"
#include "mem/bus.h"

namespace nimbus::devices {
class Clint;
class Plic;
class Uart16550;
class GoldfishRtc;
class Finisher;
class VirtioDevice;
class VirtioMmio;
}  // namespace nimbus::devices

namespace nimbus::machine::virt {

struct VirtConfig {
  unsigned harts = 1;
  uint64_t ram_size = 256ull << 20;
  BootFiles boot;
  std::string bootargs;
  bool rng = true;  // a virtio-rng entropy source
  // Build the board without loading the kernel, initrd or device tree: the state and RAM
  // come from a snapshot (load_state and a RAM fill) before start().
  bool restoring = false;
};

// The host side of the virtio devices, opened by the VMM (vmm/machine_backends.h) and
// handed to the machine, which opens no host file itself. One field per kind in
// virtio_devices.cpp, whose table builds a device around each.
struct VirtBackends {
  std::vector<std::unique_ptr<backends::BlockBackend>> disks;  // virtio-blk: vda, vdb, ...
  struct Nic {
    std::unique_ptr<backends::NetBackend> backend;
    std::array<uint8_t, 6> mac{};
    uint16_t mtu = 0;  // told to the guest (VIRTIO_NET_F_MTU); 0: none
  };
  std::vector<Nic> nics;  // virtio-net: eth0, eth1, ...
  // A second console (virtio-console) whose output goes here: the VMM's guest-agent
  // channel, or a file. Its input goes to virtio_device_of<devices::VirtioConsole>()->push_input.
  // Empty: no virtio console.
  std::function<void(const uint8_t*, size_t)> virtio_console;
};

// The host's monotonic clock in nanoseconds.
uint64_t monotonic_now_ns();

// Why the machine stopped.
enum class ExitReason { kRunning, kPoweroff, kReboot, kFailure, kQuit };

class VirtMachine : public SbiPlatform {
 public:
  // Console output sink and how input reaches the guest are set before run().
  using OutputFn = std::function<void(const uint8_t*, size_t)>;

  // The backends are moved into the devices; on failure they are closed.
  static Result<std::unique_ptr<VirtMachine>> create(const VirtConfig& config,
                                                     VirtBackends backends, OutputFn output);
  // A machine without disks, NICs or virtio console.
  static Result<std::unique_ptr<VirtMachine>> create(const VirtConfig& config, OutputFn output) {
    return create(config, VirtBackends{}, std::move(output));
  }
  ~VirtMachine() override;

  // Runs the harts until the guest powers off or reboots, or stop() is called.
  ExitReason run() {
    start();
    return wait();
  }
  // The same in two steps: start() launches the hart threads and returns; wait() blocks
  // until the machine stops and joins them. `on_stop` (set before start) runs on the
  // thread that stops the machine, as soon as it does.
  void start();
  ExitReason wait();
  void set_on_stop(std::function<void()> on_stop) { on_stop_ = std::move(on_stop); }
  bool stopped() const { return stopping_.load(); }

  // Pause at an instruction boundary on every hart (any thread but a hart's; blocks until
  // every hart is parked and the devices are quiet). A paused machine uses no CPU and its
  // clock (mtime) stands still. Before start() a machine can be paused too: its harts
  // then park as soon as they start.
  void pause();
  void resume();
  bool paused() const { return pause_requested_.load(); }

  // Snapshot state (the machine must be paused, or not yet started): harts, interrupt
  // controllers, UART, RTC, virtio transports and devices, the clock. RAM is not in it:
  // it is guest_ram()/ram_size().
  void save_state(StateWriter& w);
  // Into a machine built with config.restoring and the same configuration, after its RAM
  // was filled and before start(). Validates as it reads; fails the stream on bad data.
  void load_state(StateReader& r);
  uint8_t* guest_ram() { return bus_->ram(); }
  uint64_t ram_size() const { return config_.ram_size; }

  // Dirty-page tracking for live migration (pre-copy). Any thread but a hart's; works
  // running, paused, stopped or before start(). Calls are serialised.
  //
  // start_dirty_log(): clears the log and logs every guest RAM write from its return on
  // (harts' stores, page-table A/D updates, virtio DMA). It drops every hart's cached
  // store translations and waits for that, so writes made while it runs may be missing:
  // copy all of RAM after it returns.
  void start_dirty_log();
  // Stops logging (the bits stay until the next start or take).
  void stop_dirty_log();
  bool dirty_log_enabled() const { return bus_->dirty_log().enabled(); }
  // The pages written since start_dirty_log() or the last take, cleared: ram_size()/4096
  // bits (rounded up), 64 per word, bit i of word w = page w*64+i (guest physical address
  // kRamBase + page*4096). Returns after every hart that can run guest code dropped its
  // cached store translations, so a page written after the take is in the next one; a
  // page written while it runs is in this one or the next. Copy the pages after it returns.
  void take_dirty_pages(std::vector<uint64_t>& bitmap);

  // Counters for the VMM's info endpoint.
  uint64_t hart_instret(unsigned hart) const { return harts_[hart]->instret; }
  bool hart_running(unsigned hart) const;
  devices::VirtioDevice* virtio_device(size_t index) {
    return index < virtio_devices_.size() ? virtio_devices_[index].get() : nullptr;
  }
  // The n-th virtio device of type T (e.g. devices::VirtioBlk) in slot order, or nullptr:
  // callers need not know where the table put a kind. T must be a complete type.
  template <typename T>
  T* virtio_device_of(size_t n = 0) {
    for (auto& d : virtio_devices_) {
      if (T* t = dynamic_cast<T*>(d.get()); t != nullptr && n-- == 0) return t;
    }
    return nullptr;
  }
  // The virtio-mmio Status register of slot `index` as the guest reads it (with
  // DEVICE_NEEDS_RESET, 0x40, once the guest broke a ring); 0 past the last slot.
  uint32_t virtio_status(size_t index);
  // Guest time in nanoseconds (mtime at 10 MHz = guest_ns / 100).
  uint64_t guest_ns() const;
  // Asks the machine to stop (any thread): run() returns `reason`.
  void stop(ExitReason reason);
  // A byte typed on the console (any thread).
  void console_input(uint8_t byte);
  // The code the guest failed with, for ExitReason::kFailure.
  uint32_t failure_code() const { return failure_code_; }

  // SbiPlatform
  unsigned hart_count() const override { return static_cast<unsigned>(harts_.size()); }
  void set_timer(unsigned hart, uint64_t value) override;
  void send_ipi(unsigned hart) override;
  void remote_sfence(unsigned from_hart, unsigned hart, const SfenceRequest& what) override;
  int64_t hart_start(unsigned hart, uint64_t start_addr, uint64_t opaque) override;
  int64_t hart_stop(unsigned hart) override;
  int64_t hart_status(unsigned hart) override;
  void system_reset(uint32_t type, uint32_t reason) override;
  void console_putchar(uint8_t c) override;
  int console_getchar() override { return -1; }

 private:
  struct HartSlot {
    std::unique_ptr<cpu::Hart> hart;
    std::atomic<int64_t> state{kHartStopped};
    uint64_t start_addr = 0, start_opaque = 0;
    std::atomic<uint32_t> wake_seq{0};  // futex word: bumped on every wake-up
    std::atomic<bool> sleeping{false};  // in (or about to enter) a futex wait on wake_seq
    FenceMailbox fences;                // remote SFENCE.VMAs waiting for this hart
    // Dirty-page log handshake: in_guest is set while the thread may run guest code (in
    // Hart::run); seen_dirty_epoch is the dirty_epoch_ whose flush the hart has done.
    std::atomic<bool> in_guest{false};
    std::atomic<uint64_t> seen_dirty_epoch{0};
    std::thread thread;
  };

  VirtMachine(const VirtConfig& config, OutputFn output);
  Status build(VirtBackends& backends);
  Status add_virtio_devices(VirtBackends& backends);
  void hart_thread(unsigned index);
  void service_requests(HartSlot& slot);
  void sleep_until_interrupt(unsigned index);
  // Waits on slot.wake_seq while it still equals `seq`, at most timeout_ns.
  void sleep(HartSlot& slot, uint32_t seq, int64_t timeout_ns);
  void wake(unsigned index);
  void raise(unsigned hart, unsigned irq, bool level);
  void on_finisher(int event, uint32_t code);
  void park(HartSlot& slot);
  // Every hart drops its store translations before it next runs guest code; returns once
  // each hart that is running guest code has (the rest do on their way back in).
  void flush_harts_store_translations();
  // A hart dropped its store TLB or left guest code: wakes flush_harts_store_translations.
  void notify_dirty_waiters();
  // Console output (UART and SBI putchar) is collected here and handed to output_ in
  // runs: by the hart at the end of each slice (so before it sleeps, parks or stops),
  // when kOutputChunk bytes are waiting, and when the machine stops. One host write per
  // run instead of one per byte; a byte waits at most one slice.
  void emit_output(const uint8_t* data, size_t len);
  void flush_output();

  VirtConfig config_;
  OutputFn output_;
  std::mutex output_mu_;  // guards output_buf_ and serializes calls to output_
  std::vector<uint8_t> output_buf_;
  std::atomic<bool> output_pending_{false};
  bool builtin_sbi_ = true;
  std::unique_ptr<mem::Bus> bus_;
  std::vector<std::unique_ptr<HartSlot>> slots_;
  std::vector<cpu::Hart*> harts_;
  std::unique_ptr<devices::Clint> clint_;
  std::unique_ptr<devices::Plic> plic_;
  std::unique_ptr<devices::Uart16550> uart_;
  std::unique_ptr<devices::GoldfishRtc> rtc_;
  std::unique_ptr<devices::Finisher> finisher_;
  // virtio-mmio slots: transports before the devices they point at, so they go first.
  std::vector<std::unique_ptr<devices::VirtioDevice>> virtio_devices_;
  std::vector<std::unique_ptr<devices::VirtioMmio>> virtio_slots_;
  BootLayout layout_;

  std::function<void()> on_stop_;

  // Guest clock: guest_ns = host monotonic + offset, frozen while paused.
  std::atomic<int64_t> clock_offset_ns_{0};
  std::atomic<bool> clock_frozen_{false};
  std::atomic<uint64_t> frozen_ns_{0};

  // Pause: harts park in park() until resume().
  std::atomic<bool> pause_requested_{false};
  std::mutex park_mu_;
  std::condition_variable park_cv_;  // a hart parked, or a parked hart may go on
  unsigned parked_ = 0;
  bool started_ = false;

  // Dirty-page log: bumped by take/start; a hart entering guest code with an older
  // seen_dirty_epoch drops its store TLB first.
  std::atomic<uint64_t> dirty_epoch_{0};
  std::mutex dirty_mu_;                     // serialises start/stop/take
  std::atomic<uint32_t> dirty_waiters_{0};  // takes waiting for harts (0 or 1)
  std::atomic<uint32_t> dirty_ack_seq_{0};  // futex word: bumped when a hart acks

  std::atomic<bool> stopping_{false};
  std::atomic<ExitReason> exit_reason_{ExitReason::kRunning};
  std::atomic<uint32_t> failure_code_{0};
  std::mutex exit_mu_;
  std::condition_variable exit_cv_;
};

}  // namespace nimbus::machine::virt
