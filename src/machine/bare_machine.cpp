#include "machine/bare_machine.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "cpu/hart.h"
#include "devices/finisher/finisher.h"
#include "machine/elf.h"
#include "mem/bus.h"

namespace nimbus::machine {

namespace {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kFinisherBase = 0x100000;
// How many instructions run between two looks at tohost (a run's last few instructions,
// fewer than a block, go one by one: with compiled code at a few thousand MIPS, 4096 made
// that a third of the time).
constexpr uint64_t kPollInterval = 65536;

// HTIF (Spike's host-target interface): tohost holds device<<56 | command<<48 | payload.
// Device 0 with an odd payload is "exit with status payload>>1"; device 1 command 1 is
// "print the character in the low byte".
class Htif {
 public:
  Htif(mem::Bus& bus, uint64_t tohost, uint64_t fromhost)
      : bus_(bus), tohost_(tohost), fromhost_(fromhost) {}

  // Returns true with `code` set when the program asked to exit.
  bool poll(uint64_t& code) {
    uint64_t v;
    if (!bus_.read(tohost_, 8, v) || v == 0) return false;
    const uint64_t device = v >> 56, command = (v >> 48) & 0xff;
    if (device == 0 && (v & 1)) {
      code = (v & ((1ULL << 48) - 1)) >> 1;
      return true;
    }
    if (device == 1 && command == 1) {
      std::fputc(static_cast<int>(v & 0xff), stdout);
      std::fflush(stdout);
    }
    // Acknowledge: clear tohost, answer in fromhost.
    bus_.write(tohost_, 8, 0);
    if (fromhost_ != 0) bus_.write(fromhost_, 8, (device << 56) | (command << 48) | 1);
    return false;
  }

 private:
  mem::Bus& bus_;
  uint64_t tohost_, fromhost_;
};

Status write_signature(const ElfImage& img, mem::Bus& bus, const BareOptions& o) {
  auto b = img.symbols.find("begin_signature");
  auto e = img.symbols.find("end_signature");
  if (b == img.symbols.end() || e == img.symbols.end() || e->second < b->second) {
    return Status::error(
        fmt::format("'{}' has no begin_signature/end_signature symbols", o.elf_path));
  }
  std::FILE* out = std::fopen(o.signature_path.c_str(), "w");
  if (out == nullptr) {
    return Status::error(
        fmt::format("cannot write signature to '{}': {}", o.signature_path, std::strerror(errno)));
  }
  const unsigned g = o.signature_granularity;
  for (uint64_t addr = b->second; addr < e->second; addr += g) {
    // Spike prints each granule as a number: its highest-addressed byte first.
    for (unsigned j = g; j > 0; j--) {
      uint64_t byte = 0;
      if (addr + j - 1 < e->second) bus.read(addr + j - 1, 1, byte);
      std::fprintf(out, "%02x", static_cast<unsigned>(byte));
    }
    std::fputc('\n', out);
  }
  if (std::fclose(out) != 0)
    return Status::error(fmt::format("cannot write signature to '{}'", o.signature_path));
  return {};
}

}  // namespace

Result<BareResult> run_bare(const BareOptions& o) {
  auto img = read_elf(o.elf_path);
  if (!img.ok()) return img.status();

  mem::Bus bus(kRamBase, o.ram_size);
  if (Status s = load_elf(*img, bus, o.elf_path); !s.ok()) return s;

  cpu::Hart hart(bus, 0);
  BareResult result;
  bool finished = false;
  devices::Finisher finisher([&](devices::Finisher::Event e, uint32_t code) {
    if (e == devices::Finisher::Event::kNone) return;
    finished = true;
    result.end =
        e == devices::Finisher::Event::kFail ? BareResult::End::kFail : BareResult::End::kPass;
    result.code = code;
    hart.stop_requested = true;
  });
  bus.map(kFinisherBase, devices::Finisher::kSize, &finisher);

  std::unique_ptr<Htif> htif;
  if (auto t = img->symbols.find("tohost"); t != img->symbols.end()) {
    auto f = img->symbols.find("fromhost");
    htif = std::make_unique<Htif>(bus, t->second, f == img->symbols.end() ? 0 : f->second);
  }

  hart.reset(img->entry);
  hart.trace_out = o.trace;
  const auto start = std::chrono::steady_clock::now();
  while (!finished) {
    uint64_t budget = kPollInterval;
    if (o.max_insns != 0) {
      if (result.instructions >= o.max_insns) {
        result.end = BareResult::End::kInsnLimit;
        break;
      }
      budget = std::min(budget, o.max_insns - result.instructions);
    }
    result.instructions += hart.run(budget);
    uint64_t code;
    if (htif && htif->poll(code)) {
      result.end = code == 0 ? BareResult::End::kPass : BareResult::End::kFail;
      result.code = code;
      break;
    }
    // Nothing in this machine raises interrupts on its own, so a WFI would wait forever:
    // it returns at once instead (the spec lets WFI complete at any time, as a NOP).
    hart.waiting = false;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!o.signature_path.empty()) {
    if (Status s = write_signature(*img, bus, o); !s.ok()) return s;
  }
  return result;
}

}  // namespace nimbus::machine
