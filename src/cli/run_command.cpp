#include "cli/run_command.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/size.h"
#include "machine/bare_machine.h"

namespace nimbus::cli {

namespace {
// Exit statuses of `nimbus run --bare` besides the program's own verdict.
constexpr int kExitUsage = 2;
constexpr int kExitInsnLimit = 124;
constexpr int kExitStuck = 125;

int fail(const std::string& message) {
  std::fprintf(stderr, "nimbus: %s\n", message.c_str());
  return kExitUsage;
}
}  // namespace

void add_run_command(CLI::App& app, RunOptions& o) {
  CLI::App* run = app.add_subcommand("run", "Run a machine in the foreground");
  run->add_option("--bare", o.bare,
                  "Run a bare-metal RV64 ELF program in M-mode (RAM at 0x80000000); the exit "
                  "status is its verdict (HTIF tohost or the sifive,test finisher)")
      ->required();
  run->add_option("-m,--memory", o.memory, "Guest RAM size, e.g. 256M or 2G")->capture_default_str();
  run->add_option("--max-insns", o.max_insns, "Stop after this many instructions (exit status 124)");
  run->add_flag("--trace", o.trace, "Print one line per retired instruction on stderr");
  run->add_option("--trace-file", o.trace_file, "Write the trace to this file instead of stderr");
  run->add_option("--signature", o.signature,
                  "At the end, write memory between begin_signature and end_signature here");
  run->add_option("--signature-granularity", o.signature_granularity, "Bytes per signature line")
      ->check(CLI::IsMember({4u, 8u}))
      ->capture_default_str();
  run->add_flag("--stats", o.stats, "Print instructions, seconds and MIPS on stderr at the end");
}

int run_command(const RunOptions& o) {
  auto ram = parse_size(o.memory);
  if (!ram.ok()) return fail("--memory: " + ram.message());
  if (*ram < (1ull << 20) || *ram > (64ull << 30)) {
    return fail(fmt::format("--memory: {} is out of range (1M to 64G)", o.memory));
  }

  machine::BareOptions bare;
  bare.elf_path = o.bare;
  bare.ram_size = *ram;
  bare.max_insns = o.max_insns;
  bare.signature_path = o.signature;
  bare.signature_granularity = o.signature_granularity;
  std::FILE* trace_file = nullptr;
  if (!o.trace_file.empty()) {
    trace_file = std::fopen(o.trace_file.c_str(), "w");
    if (trace_file == nullptr) {
      return fail(fmt::format("cannot write trace to '{}': {}", o.trace_file, std::strerror(errno)));
    }
    bare.trace = trace_file;
  } else if (o.trace) {
    bare.trace = stderr;
  }

  auto result = machine::run_bare(bare);
  if (trace_file != nullptr) std::fclose(trace_file);
  if (!result.ok()) return fail(result.message());

  const machine::BareResult& r = *result;
  if (o.stats) {
    std::fprintf(stderr, "instructions: %lu\nseconds: %.6f\nMIPS: %.1f\n",
                 static_cast<unsigned long>(r.instructions), r.seconds,
                 r.seconds > 0 ? r.instructions / r.seconds / 1e6 : 0.0);
  }
  switch (r.end) {
    case machine::BareResult::End::kPass:
      return 0;
    case machine::BareResult::End::kFail:
      std::fprintf(stderr, "nimbus: program failed with code %lu\n", static_cast<unsigned long>(r.code));
      return r.code > 255 ? 255 : (r.code == 0 ? 1 : static_cast<int>(r.code));
    case machine::BareResult::End::kInsnLimit:
      std::fprintf(stderr, "nimbus: stopped at the instruction limit (%lu instructions)\n",
                   static_cast<unsigned long>(r.instructions));
      return kExitInsnLimit;
    case machine::BareResult::End::kStuck:
      std::fprintf(stderr, "nimbus: the hart waits (WFI) for an interrupt nothing can raise\n");
      return kExitStuck;
  }
  return 1;
}

}  // namespace nimbus::cli
