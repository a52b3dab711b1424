// VirtMachine's dirty-page tracking (start_dirty_log, take_dirty_pages): two harts run a
// bare-metal loop that keeps storing to 256 pages each (their store TLBs warm long before
// logging starts) while this thread does what a pre-copy migration does: copy all of RAM,
// then copy the pages each take reports, and at the end, paused, the copy must equal RAM.
// A store that went unreported leaves a stale page in the copy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cpu/hart.h"
#include "machine/virt/memory_map.h"
#include "machine/virt/virt_machine.h"

namespace nimbus::machine::virt {
namespace {

constexpr uint64_t kRam = 16ull << 20;
constexpr uint64_t kPage = 4096;
// Hart h stores to the 256 pages at RAM + 4 MiB + h MiB.
constexpr uint64_t kRegion = 4ull << 20;

// A RISC-V Linux Image whose code is the program below (built-in SBI: hart 0 enters at
// the Image's first byte in S-mode with a0 = 0, and starts hart 1 through SBI HSM).
//   start: bnez a0, work
//          li a7, 0x48534D; li a6, 0; li a0, 1; la a1, work; li a2, 0; ecall   (hart_start)
//          li a0, 0
//   work:  t2 = 0x80400000 + (a0 << 20); s0 = 0
//   loop:  t3 = t2 + ((s0 * 7) & 255) * 4096 + (s0 & 511) * 8
//          s0 += 1; sd s0, 0(t3); j loop
// (riscv64-linux-gnu-as -march=rv64gc, .option norvc)
std::vector<uint8_t> program_image() {
  const uint32_t code[] = {
      0x02051463, 0x004858b7, 0x34d8889b, 0x00000813, 0x00100513, 0x00000597, 0x01458593,
      0x00000613, 0x00000073, 0x00000513, 0x01451313, 0x2010039b, 0x01639393, 0x006383b3,
      0x00000413, 0x00341e13, 0x408e0e33, 0x0ffe7e13, 0x00ce1e13, 0x1ff47e93, 0x003e9e93,
      0x01de0e33, 0x007e0e33, 0x00140413, 0x008e3023, 0xfd9ff06f,
  };
  std::vector<uint8_t> b(64 + sizeof(code));
  const uint32_t jump_over_header = 0x0400006f;  // j 64
  const uint64_t text_offset = 2ull << 20, image_size = 1ull << 20;
  std::memcpy(b.data(), &jump_over_header, 4);
  std::memcpy(b.data() + 8, &text_offset, 8);
  std::memcpy(b.data() + 16, &image_size, 8);
  std::memcpy(b.data() + 56, "RSC\x05", 4);
  std::memcpy(b.data() + 64, code, sizeof(code));
  return b;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::vector<uint8_t>& bytes) {
    char tmpl[] = "/tmp/nimbus-dirty-tracking-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    path = tmpl;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

struct EngineScope {
  cpu::EngineKind saved = cpu::Hart::default_engine();
  explicit EngineScope(cpu::EngineKind k) { cpu::Hart::set_default_engine(k); }
  ~EngineScope() { cpu::Hart::set_default_engine(saved); }
};

std::unique_ptr<VirtMachine> make_machine(const TempFile& kernel, cpu::EngineKind engine) {
  EngineScope scope(engine);
  VirtConfig c;
  c.harts = 2;
  c.ram_size = kRam;
  c.rng = false;
  c.boot.kernel = kernel.path;
  auto m = VirtMachine::create(c, [](const uint8_t*, size_t) {});
  EXPECT_TRUE(m.ok()) << m.message();
  return m.ok() ? std::move(*m) : nullptr;
}

bool bit(const std::vector<uint64_t>& b, uint64_t page) {
  return (b[page / 64] >> (page % 64)) & 1;
}

bool in_regions(uint64_t page) {
  return page >= kRegion / kPage && page < (kRegion + (2ull << 20)) / kPage;
}

void copy_marked(const std::vector<uint64_t>& b, const uint8_t* ram, std::vector<uint8_t>& dest) {
  for (uint64_t p = 0; p < kRam / kPage; p++) {
    if (bit(b, p)) std::memcpy(dest.data() + p * kPage, ram + p * kPage, kPage);
  }
}

// Waits until both harts have stored somewhere in their regions (RAM starts zeroed).
void wait_for_both_harts(VirtMachine& m) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto wrote = [&](unsigned h) {
    const uint8_t* r = m.guest_ram() + kRegion + (uint64_t{h} << 20);
    for (uint64_t i = 0; i < (1u << 20); i += 8) {
      uint64_t v;
      std::memcpy(&v, r + i, 8);
      if (v != 0) return true;
    }
    return false;
  };
  while (!(wrote(0) && wrote(1)) && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(wrote(0) && wrote(1)) << "the program did not run on both harts";
}

void precopy(cpu::EngineKind engine) {
  TempFile kernel(program_image());
  auto m = make_machine(kernel, engine);
  ASSERT_NE(m, nullptr);
  m->start();
  wait_for_both_harts(*m);  // their store TLBs hold the pages from here on
  m->start_dirty_log();
  EXPECT_TRUE(m->dirty_log_enabled());
  const uint8_t* ram = m->guest_ram();
  std::vector<uint8_t> dest(ram, ram + kRam), prev(ram, ram + kRam), now(kRam);
  std::vector<uint64_t> b, prev_b;
  std::vector<uint64_t> changed_prev;  // pages that changed between the last two copies
  unsigned rounds_with_pages = 0;
  std::vector<double> take_us;
  for (int round = 0; round < 60; round++) {
    const auto t0 = std::chrono::steady_clock::now();
    m->take_dirty_pages(b);
    take_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_EQ(b.size(), kRam / kPage / 64);
    copy_marked(b, ram, dest);
    std::memcpy(now.data(), ram, kRam);
    unsigned marked = 0;
    for (uint64_t p = 0; p < kRam / kPage; p++) {
      if (!bit(b, p)) continue;
      marked++;
      EXPECT_TRUE(in_regions(p)) << "page " << p << " was not written";
    }
    rounds_with_pages += marked > 0;
    // A page that changed between the copies after takes k-1 and k was written after take
    // k-1 returned: take k reports it, or take k+1 if the write fell after take k's
    // exchange (the copy runs while the harts write).
    for (uint64_t p : changed_prev) {
      EXPECT_TRUE(bit(prev_b, p) || bit(b, p)) << "page " << p << " changed, never reported";
    }
    changed_prev.clear();
    for (uint64_t p = 0; p < kRam / kPage; p++) {
      if (std::memcmp(prev.data() + p * kPage, now.data() + p * kPage, kPage) != 0)
        changed_prev.push_back(p);
    }
    prev.swap(now);
    prev_b = b;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // let the guest write more
  }
  EXPECT_GT(rounds_with_pages, 30u);
  std::sort(take_us.begin(), take_us.end());
  std::printf("take_dirty_pages with two busy harts: median %.0f us, max %.0f us\n",
              take_us[take_us.size() / 2], take_us.back());
  // The last round, paused (as a migration's stop-and-copy): the copy is RAM exactly.
  m->pause();
  m->take_dirty_pages(b);
  copy_marked(b, ram, dest);
  for (uint64_t p = 0; p < kRam / kPage; p++) {
    EXPECT_EQ(std::memcmp(dest.data() + p * kPage, ram + p * kPage, kPage), 0)
        << "page " << p << " differs: a write was never reported";
  }
  // Paused, nothing runs: the next take is empty.
  m->take_dirty_pages(b);
  for (uint64_t w : b) EXPECT_EQ(w, 0u);
  // Stopped logging: the harts run on, nothing is marked.
  m->stop_dirty_log();
  EXPECT_FALSE(m->dirty_log_enabled());
  m->resume();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  m->take_dirty_pages(b);
  for (uint64_t w : b) EXPECT_EQ(w, 0u);
  m->stop(ExitReason::kQuit);
  EXPECT_EQ(m->wait(), ExitReason::kQuit);
  m->take_dirty_pages(b);  // a stopped machine: returns
}

TEST(DirtyTracking, PrecopyConvergesInterpreter) { precopy(cpu::EngineKind::kInterpreter); }
TEST(DirtyTracking, PrecopyConvergesJit) { precopy(cpu::EngineKind::kJit); }

TEST(DirtyTracking, WorksBeforeStartAndWhilePaused) {
  TempFile kernel(program_image());
  auto m = make_machine(kernel, cpu::EngineKind::kInterpreter);
  ASSERT_NE(m, nullptr);
  std::vector<uint64_t> b;
  m->start_dirty_log();  // before start: returns at once
  m->take_dirty_pages(b);
  for (uint64_t w : b) EXPECT_EQ(w, 0u);
  m->pause();
  m->start();  // harts park at once
  m->take_dirty_pages(b);
  for (uint64_t w : b) EXPECT_EQ(w, 0u);
  m->resume();
  wait_for_both_harts(*m);
  m->take_dirty_pages(b);
  unsigned h0 = 0, h1 = 0;
  for (uint64_t p = 0; p < kRam / kPage; p++) {
    if (!bit(b, p)) continue;
    EXPECT_TRUE(in_regions(p)) << p;
    (p < (kRegion + (1u << 20)) / kPage ? h0 : h1)++;
  }
  EXPECT_GT(h0, 0u);
  EXPECT_GT(h1, 0u);
  m->stop(ExitReason::kQuit);
  m->wait();
}

}  // namespace
}  // namespace nimbus::machine::virt
