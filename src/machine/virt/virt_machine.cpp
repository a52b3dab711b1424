#include "machine/virt/virt_machine.h"

#include <fmt/format.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <new>

#include "devices/clint/clint.h"
#include "devices/finisher/finisher.h"
#include "devices/plic/plic.h"
#include "devices/rtc/goldfish_rtc.h"
#include "devices/uart/uart16550.h"
#include "devices/virtio/virtio_mmio.h"
#include "machine/virt/device_tree.h"
#include "machine/virt/memory_map.h"
#include "machine/virt/virtio_devices.h"

namespace nimbus::machine::virt {

namespace {

// Instructions a hart runs between two looks at its timer and at requests from other
// threads: about 10-40 us with the JIT, 200-400 us at the interpreter's speed.
constexpr uint64_t kSlice = 40000;
// The longest a waiting hart sleeps before it looks around again on its own.
constexpr int64_t kMaxSleepNs = 100'000'000;
// Console output waiting for the end of a slice is written out once this much gathers.
constexpr size_t kOutputChunk = 4096;

}  // namespace

uint64_t monotonic_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

uint64_t monotonic_ns() { return monotonic_now_ns(); }

uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
              static_cast<long>(timeout_ns % 1'000'000'000)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr,
          0);
}

void futex_wake(std::atomic<uint32_t>* word, int count = 1) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr,
          0);
}

}  // namespace

VirtMachine::VirtMachine(const VirtConfig& config, OutputFn output)
    : config_(config), output_(std::move(output)), builtin_sbi_(config.boot.firmware.empty()) {}

VirtMachine::~VirtMachine() {
  stopping_ = true;
  for (unsigned i = 0; i < slots_.size(); i++) wake(i);
  for (auto& s : slots_) {
    if (s->thread.joinable()) s->thread.join();
  }
  flush_output();
  // Transports before the devices they drive.
  virtio_slots_.clear();
  virtio_devices_.clear();
}

Result<std::unique_ptr<VirtMachine>> VirtMachine::create(const VirtConfig& config,
                                                         VirtBackends backends, OutputFn output) {
  std::unique_ptr<VirtMachine> m(new VirtMachine(config, std::move(output)));
  if (Status s = m->build(backends); !s.ok()) return s;
  return m;
}

Status VirtMachine::build(VirtBackends& backends) {
  const unsigned n = config_.harts;
  try {
    bus_ = std::make_unique<mem::Bus>(kRamBase, config_.ram_size);
  } catch (const std::bad_alloc&) {
    return Status::insufficient_capacity(fmt::format(
        "cannot reserve {} MiB of guest RAM: this process is out of memory or address space",
        config_.ram_size >> 20));
  }
  for (unsigned i = 0; i < n; i++) {
    auto slot = std::make_unique<HartSlot>();
    slot->hart = std::make_unique<cpu::Hart>(*bus_, i);
    harts_.push_back(slot->hart.get());
    slots_.push_back(std::move(slot));
  }

  // mtime follows the host's monotonic clock at 10 MHz, from zero at machine creation,
  // standing still while the machine is paused.
  clock_offset_ns_ = -static_cast<int64_t>(monotonic_ns());
  auto mtime = [this] { return guest_ns() / (1'000'000'000 / kTimebaseHz); };
  clint_ = std::make_unique<devices::Clint>(
      n, mtime, [this](unsigned h, bool level) { raise(h, cpu::kIrqMSoft, level); },
      [this](unsigned h, bool level) {
        // With the built-in firmware the timer the kernel programs through SBI is the
        // supervisor timer.
        raise(h, builtin_sbi_ ? cpu::kIrqSTimer : cpu::kIrqMTimer, level);
      });
  plic_ = std::make_unique<devices::Plic>(n, [this](unsigned context, bool level) {
    raise(context / 2, context % 2 == 0 ? cpu::kIrqMExt : cpu::kIrqSExt, level);
  });
  uart_ = std::make_unique<devices::Uart16550>(
      [this](uint8_t c) { emit_output(&c, 1); },
      [this](bool level) { plic_->set_source_level(kUartIrq, level); });
  rtc_ = std::make_unique<devices::GoldfishRtc>(
      realtime_ns, [this](bool level) { plic_->set_source_level(kRtcIrq, level); });
  finisher_ =
      std::make_unique<devices::Finisher>([this](devices::Finisher::Event e, uint32_t code) {
        on_finisher(static_cast<int>(e), code);
      });

  bus_->map(kTest.base, kTest.size, finisher_.get());
  bus_->map(kRtc.base, kRtc.size, rtc_.get());
  bus_->map(kClint.base, kClint.size, clint_.get());
  bus_->map(kPlic.base, kPlic.size, plic_.get());
  bus_->map(kUart.base, kUart.size, uart_.get());

  if (Status s = add_virtio_devices(backends); !s.ok()) return s;

  if (config_.restoring) {
    // Registers, CSRs and RAM come from the snapshot; only what is not state is set here.
    for (unsigned i = 0; i < n; i++) {
      harts_[i]->time_source = mtime;
      if (builtin_sbi_) harts_[i]->sbi_handler = [this](cpu::Hart& hart) { sbi_call(hart, *this); };
    }
    return {};
  }

  auto layout = load_boot_files(config_.boot, *bus_);
  if (!layout.ok()) return layout.status();
  layout_ = *layout;

  DeviceTreeConfig dt;
  dt.harts = n;
  dt.ram_size = config_.ram_size;
  dt.bootargs = config_.bootargs;
  dt.initrd_start = layout_.initrd_start;
  dt.initrd_end = layout_.initrd_end;
  dt.virtio_slots = static_cast<unsigned>(virtio_slots_.size());
  auto blob = build_device_tree(dt);
  if (!blob.ok()) return blob.status();
  if (Status s = place_dtb(*blob, *bus_, layout_); !s.ok()) return s;

  for (unsigned i = 0; i < n; i++) {
    cpu::Hart& h = *harts_[i];
    h.time_source = mtime;
    if (builtin_sbi_) {
      // What OpenSBI would leave behind: interrupts and most exceptions delegated to S,
      // counters readable, one PMP entry opening all of memory to S and U.
      h.mideleg = (1u << cpu::kIrqSSoft) | (1u << cpu::kIrqSTimer) | (1u << cpu::kIrqSExt);
      h.medeleg =
          0xffff & ~((1u << cpu::kEcallFromS) | (1u << cpu::kEcallFromM) | (1u << 10) | (1u << 14));
      // cycle, time and instret readable by S and, as OpenSBI leaves scounteren, by U
      // (Linux never writes scounteren; its vDSO reads `time` from user mode).
      h.mcounteren = 7;
      h.scounteren = 7;
      h.pmpaddr[0] = ~0ull >> 10;
      h.pmpcfg[0] = 0x1f;  // NAPOT, R W X
      h.sbi_handler = [this](cpu::Hart& hart) { sbi_call(hart, *this); };
      h.x[10] = i;
      h.x[11] = layout_.dtb_addr;
      h.priv = cpu::kPrivS;
      h.pc = layout_.kernel_entry;
      // Only the boot hart starts; the kernel starts the others through SBI HSM.
      slots_[i]->state = i == 0 ? kHartStarted : kHartStopped;
    } else {
      // A real firmware gets every hart in M-mode at its entry, as after reset.
      h.reset(layout_.firmware_entry);
      h.time_source = mtime;
      h.x[10] = i;
      h.x[11] = layout_.dtb_addr;
      h.x[12] = layout_.fw_dynamic_info;
      slots_[i]->state = kHartStarted;
    }
  }
  return {};
}

Status VirtMachine::add_virtio_devices(VirtBackends& backends) {
  const size_t wanted = virtio_device_count(config_, backends);
  if (wanted > kVirtioSlots) {
    return Status::error(
        fmt::format("too many virtio devices ({}): the board has {} slots", wanted, kVirtioSlots));
  }
  for (const VirtioKind& kind : virtio_kinds()) {
    for (size_t i = 0; i < kind.count(config_, backends); i++) {
      auto device = kind.create(config_, backends, i);
      if (!device.ok()) return device.status();
      virtio_devices_.push_back(std::move(*device));
    }
  }
  for (size_t i = 0; i < virtio_devices_.size(); i++) {
    const unsigned irq = kVirtioIrqBase + static_cast<unsigned>(i);
    virtio_slots_.push_back(std::make_unique<devices::VirtioMmio>(
        *bus_, *virtio_devices_[i],
        [this, irq](bool level) { plic_->set_source_level(irq, level); }));
    bus_->map(kVirtio.base + i * kVirtio.size, kVirtio.size, virtio_slots_.back().get());
  }
  return {};
}

void VirtMachine::start() {
  {
    std::lock_guard<std::mutex> lock(park_mu_);
    if (started_) return;
    started_ = true;
  }
  for (unsigned i = 0; i < slots_.size(); i++) {
    slots_[i]->thread = std::thread([this, i] { hart_thread(i); });
  }
}

ExitReason VirtMachine::wait() {
  {
    std::unique_lock<std::mutex> lock(exit_mu_);
    exit_cv_.wait(lock, [this] { return stopping_.load(); });
  }
  for (unsigned i = 0; i < slots_.size(); i++) wake(i);
  for (auto& s : slots_) {
    if (s->thread.joinable()) s->thread.join();
  }
  flush_output();
  return exit_reason_.load();
}

void VirtMachine::stop(ExitReason reason) {
  {
    std::lock_guard<std::mutex> lock(exit_mu_);
    if (!stopping_) {
      exit_reason_ = reason;
      stopping_ = true;
    }
  }
  exit_cv_.notify_all();
  { std::lock_guard<std::mutex> lock(park_mu_); }
  park_cv_.notify_all();
  for (unsigned i = 0; i < slots_.size(); i++) {
    harts_[i]->stop_requested = true;
    wake(i);
  }
  if (on_stop_) on_stop_();
}

uint64_t VirtMachine::guest_ns() const {
  if (clock_frozen_.load(std::memory_order_acquire))
    return frozen_ns_.load(std::memory_order_relaxed);
  return static_cast<uint64_t>(static_cast<int64_t>(monotonic_ns()) +
                               clock_offset_ns_.load(std::memory_order_relaxed));
}

void VirtMachine::pause() {
  if (pause_requested_.exchange(true)) return;
  for (unsigned i = 0; i < slots_.size(); i++) {
    harts_[i]->stop_requested = true;
    wake(i);
  }
  {
    std::unique_lock<std::mutex> lock(park_mu_);
    // Harts that never started (or already left) have nothing to park.
    park_cv_.wait(lock, [this] { return !started_ || parked_ == slots_.size() || stopping_; });
  }
  frozen_ns_ = guest_ns();
  clock_frozen_.store(true, std::memory_order_release);
  for (auto& slot : virtio_slots_) slot->pause();
}

void VirtMachine::resume() {
  if (!pause_requested_.load()) return;
  for (auto& slot : virtio_slots_) slot->resume();
  clock_offset_ns_ = static_cast<int64_t>(frozen_ns_.load()) - static_cast<int64_t>(monotonic_ns());
  clock_frozen_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(park_mu_);
    pause_requested_ = false;
  }
  park_cv_.notify_all();
}

void VirtMachine::park(HartSlot& slot) {
  std::unique_lock<std::mutex> lock(park_mu_);
  parked_++;
  park_cv_.notify_all();
  while (pause_requested_ && !stopping_) {
    if (slot.fences.pending()) {
      lock.unlock();
      service_requests(slot);
      lock.lock();
      continue;
    }
    park_cv_.wait(lock);
  }
  parked_--;
}

bool VirtMachine::hart_running(unsigned hart) const {
  return slots_[hart]->state.load() == kHartStarted && !slots_[hart]->hart->waiting;
}

uint32_t VirtMachine::virtio_status(size_t index) {
  return index < virtio_slots_.size() ? virtio_slots_[index]->status() : 0;
}

void VirtMachine::console_input(uint8_t byte) { uart_->push_input(byte); }

void VirtMachine::sleep(HartSlot& slot, uint32_t seq, int64_t timeout_ns) {
  // Announce the wait before the kernel compares wake_seq with seq. A waker that bumps
  // wake_seq and then finds `sleeping` false did its bump before this store (both are
  // seq_cst), so the futex wait sees the new value and returns at once.
  slot.sleeping.store(true, std::memory_order_seq_cst);
  futex_wait(&slot.wake_seq, seq, timeout_ns);
  slot.sleeping.store(false, std::memory_order_relaxed);
}

void VirtMachine::wake(unsigned index) {
  HartSlot& s = *slots_[index];
  s.wake_seq.fetch_add(1, std::memory_order_seq_cst);
  // A running hart sees what changed at its next look; only a sleeping one needs the
  // syscall (most wakes are a hart raising its own timer or an IPI to a busy hart).
  if (s.sleeping.load(std::memory_order_seq_cst)) futex_wake(&s.wake_seq);
}

void VirtMachine::raise(unsigned hart, unsigned irq, bool level) {
  if (hart >= harts_.size()) return;
  cpu::Hart& h = *harts_[hart];
  const bool was = (h.mip.load(std::memory_order_relaxed) >> irq) & 1;
  h.set_interrupt_pending(irq, level);
  // Devices may repeat a level; only a new one can end a WFI sleep.
  if (level && !was) wake(hart);
}

void VirtMachine::service_requests(HartSlot& slot) {
  SfenceRequest what;
  uint64_t ticket;
  if (!slot.fences.take(what, ticket)) return;
  slot.hart->sfence_vma_range(what.start, what.size, what.has_asid, what.asid);
  slot.fences.finish(ticket);
}

void VirtMachine::sleep_until_interrupt(unsigned index) {
  HartSlot& s = *slots_[index];
  cpu::Hart& h = *s.hart;
  const uint32_t seq = s.wake_seq.load(std::memory_order_acquire);
  clint_->update_timer(index);
  if (h.interrupt_wakeup_pending() || stopping_ || s.fences.pending() || pause_requested_) return;
  int64_t timeout = kMaxSleepNs;
  // The timer bounds the sleep only if it can end it: Linux masks the timer interrupt
  // (sie.STIE) after it fires and leaves mtimecmp in the past while a hart idles with
  // its tick stopped. Counting that deadline would spin the hart instead of sleeping.
  const unsigned timer_irq = builtin_sbi_ ? cpu::kIrqSTimer : cpu::kIrqMTimer;
  if ((h.mie >> timer_irq) & 1) {
    const uint64_t deadline = clint_->timer_deadline(index), now = clint_->mtime();
    if (deadline > now) {
      const uint64_t ns = (deadline - now) * (1'000'000'000 / kTimebaseHz);
      if (ns < static_cast<uint64_t>(timeout)) timeout = static_cast<int64_t>(ns);
    } else {
      timeout = 0;  // due: update_timer below raises it
    }
  }
  if (timeout > 0) sleep(s, seq, timeout);
  clint_->update_timer(index);
}

void VirtMachine::hart_thread(unsigned index) {
  HartSlot& s = *slots_[index];
  cpu::Hart& h = *s.hart;
  while (!stopping_) {
    if (pause_requested_.load(std::memory_order_acquire)) {
      park(s);
      continue;
    }
    const int64_t state = s.state.load(std::memory_order_acquire);
    if (state == kHartStartPending) {
      // SBI HSM start: S-mode at start_addr with a0 = hartid, a1 = opaque, satp = 0.
      h.reset(s.start_addr);
      h.time_source = harts_[0]->time_source;
      h.mideleg = harts_[0]->mideleg;
      h.medeleg = harts_[0]->medeleg;
      h.mcounteren = 7;
      h.scounteren = 7;
      h.pmpaddr[0] = harts_[0]->pmpaddr[0];
      h.pmpcfg[0] = harts_[0]->pmpcfg[0];
      h.sbi_handler = harts_[0]->sbi_handler;
      h.priv = cpu::kPrivS;
      h.x[10] = index;
      h.x[11] = s.start_opaque;
      s.state.store(kHartStarted, std::memory_order_release);
      continue;
    }
    if (state != kHartStarted) {
      // Stopped: wait for hart_start (or the end).
      const uint32_t seq = s.wake_seq.load(std::memory_order_acquire);
      if (s.state.load() == kHartStopped && !stopping_ && !pause_requested_)
        sleep(s, seq, kMaxSleepNs);
      service_requests(s);
      continue;
    }
    service_requests(s);
    clint_->update_timer(index);
    // The dirty-page handshake (see flush_harts_store_translations): announce guest code,
    // then look at the epoch (both seq_cst, against the taker's bump-then-look).
    s.in_guest.store(true, std::memory_order_seq_cst);
    if (const uint64_t epoch = dirty_epoch_.load(std::memory_order_seq_cst);
        epoch != s.seen_dirty_epoch.load(std::memory_order_relaxed)) [[unlikely]] {
      h.drop_store_translations();
      s.seen_dirty_epoch.store(epoch, std::memory_order_seq_cst);
      notify_dirty_waiters();
    }
    h.run(kSlice);
    s.in_guest.store(false, std::memory_order_seq_cst);
    notify_dirty_waiters();
    flush_output();
    if (h.stop_requested.exchange(false)) continue;
    if (h.waiting) sleep_until_interrupt(index);
  }
  flush_output();
}

void VirtMachine::notify_dirty_waiters() {
  // One load per slice when nobody waits. A waiter counts itself before it looks at the
  // harts (both seq_cst): either it sees our store, or we see it and wake it.
  if (dirty_waiters_.load(std::memory_order_seq_cst) == 0) [[likely]]
    return;
  dirty_ack_seq_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(&dirty_ack_seq_, INT32_MAX);
}

void VirtMachine::flush_harts_store_translations() {
  const uint64_t epoch = dirty_epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  dirty_waiters_.fetch_add(1, std::memory_order_seq_cst);
  for (unsigned i = 0; i < slots_.size(); i++) {
    HartSlot& s = *slots_[i];
    // Not in guest code: it flushes before it enters again (it sets in_guest, then reads
    // the epoch; we bumped the epoch, then read in_guest). In guest code: cut its slice
    // short and wait for it to come round, on a futex rather than spinning (on a busy
    // host the spinner would take the CPU the hart needs to get there).
    auto done = [&] {
      return !s.in_guest.load(std::memory_order_seq_cst) ||
             s.seen_dirty_epoch.load(std::memory_order_seq_cst) >= epoch;
    };
    if (done()) continue;
    s.hart->stop_requested = true;
    wake(i);
    for (;;) {
      const uint32_t seq = dirty_ack_seq_.load(std::memory_order_seq_cst);
      if (done()) break;
      futex_wait(&dirty_ack_seq_, seq, 1'000'000);  // 1 ms: a safety net only
    }
  }
  dirty_waiters_.fetch_sub(1, std::memory_order_seq_cst);
}

void VirtMachine::start_dirty_log() {
  std::lock_guard<std::mutex> lock(dirty_mu_);
  mem::DirtyLog& log = bus_->dirty_log();
  // Clear, then enable, then flush: an entry filled after a hart's flush was marked in
  // the log the caller sees (fills before the flush were not, and are gone).
  log.clear();
  log.set_enabled(true);
  flush_harts_store_translations();
}

void VirtMachine::stop_dirty_log() {
  std::lock_guard<std::mutex> lock(dirty_mu_);
  bus_->dirty_log().set_enabled(false);
}

void VirtMachine::take_dirty_pages(std::vector<uint64_t>& bitmap) {
  std::lock_guard<std::mutex> lock(dirty_mu_);
  // Bits first, then the flush: an entry filled before the exchange (its mark taken now)
  // may still let writes through until its hart flushes, but those land before this
  // returns, so the caller's copy of the page has them. Entries filled after the flush
  // mark the next bitmap.
  bus_->dirty_log().take(bitmap);
  flush_harts_store_translations();
}

void VirtMachine::set_timer(unsigned hart, uint64_t value) { clint_->set_timecmp(hart, value); }

void VirtMachine::send_ipi(unsigned hart) { raise(hart, cpu::kIrqSSoft, true); }

void VirtMachine::remote_sfence(unsigned from_hart, unsigned hart, const SfenceRequest& what) {
  if (hart == from_hart) {
    harts_[hart]->sfence_vma_range(what.start, what.size, what.has_asid, what.asid);
    return;
  }
  HartSlot& target = *slots_[hart];
  if (target.state.load() != kHartStarted) return;  // starts with an empty TLB
  const uint64_t ticket = target.fences.post(what);
  wake(hart);
  {
    std::lock_guard<std::mutex> lock(park_mu_);  // a parked target flushes too
  }
  park_cv_.notify_all();
  // Synchronous, as the SBI requires: wait for the target, serving our own requests so
  // two harts fencing each other cannot deadlock.
  while (!target.fences.done(ticket) && !stopping_ && target.state.load() == kHartStarted) {
    service_requests(*slots_[from_hart]);
    std::this_thread::yield();
  }
}

int64_t VirtMachine::hart_start(unsigned hart, uint64_t start_addr, uint64_t opaque) {
  HartSlot& s = *slots_[hart];
  int64_t expected = kHartStopped;
  s.start_addr = start_addr;
  s.start_opaque = opaque;
  if (!s.state.compare_exchange_strong(expected, kHartStartPending)) return kSbiErrAlreadyAvailable;
  wake(hart);
  return kSbiSuccess;
}

int64_t VirtMachine::hart_stop(unsigned hart) {
  slots_[hart]->state.store(kHartStopped, std::memory_order_release);
  harts_[hart]->stop_requested = true;  // leave run() now
  return kSbiSuccess;
}

int64_t VirtMachine::hart_status(unsigned hart) { return slots_[hart]->state.load(); }

void VirtMachine::system_reset(uint32_t type, uint32_t reason) {
  if (type == 0) {
    stop(reason == 1 ? ExitReason::kFailure : ExitReason::kPoweroff);
  } else {
    stop(ExitReason::kReboot);
  }
}

void VirtMachine::console_putchar(uint8_t c) { emit_output(&c, 1); }

void VirtMachine::emit_output(const uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> lock(output_mu_);
  output_buf_.insert(output_buf_.end(), data, data + len);
  if (output_buf_.size() >= kOutputChunk) {
    output_(output_buf_.data(), output_buf_.size());
    output_buf_.clear();
    output_pending_.store(false, std::memory_order_relaxed);
    return;
  }
  output_pending_.store(true, std::memory_order_relaxed);
}

void VirtMachine::flush_output() {
  if (!output_pending_.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(output_mu_);
  output_pending_.store(false, std::memory_order_relaxed);
  if (output_buf_.empty()) return;
  output_(output_buf_.data(), output_buf_.size());
  output_buf_.clear();
}

void VirtMachine::on_finisher(int event, uint32_t code) {
  switch (static_cast<devices::Finisher::Event>(event)) {
    case devices::Finisher::Event::kPass:
      stop(ExitReason::kPoweroff);
      break;
    case devices::Finisher::Event::kReset:
      stop(ExitReason::kReboot);
      break;
    case devices::Finisher::Event::kFail:
      failure_code_ = code;
      stop(ExitReason::kFailure);
      break;
    case devices::Finisher::Event::kNone:
      break;
  }
}

}  // namespace nimbus::machine::virt
