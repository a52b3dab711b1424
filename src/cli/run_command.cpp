#include "cli/run_command.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/device_options.h"
#include "common/size.h"
#include "cpu/hart.h"
#include "machine/bare_machine.h"
#include "machine/virt/memory_map.h"
#include "vmm/vmm_main.h"

namespace nimbus::cli {

namespace {
// Exit statuses of `nimbus run`.
// (The Linux machine's statuses are vmm::run_console_vm's: 0 poweroff, 1 guest failure,
// 3 reboot with --no-reboot, 4 Ctrl-A X, 128+N signal N.)
constexpr int kExitUsage = 2;
constexpr int kExitInsnLimit = 124;

int fail(const std::string& message) {
  std::fprintf(stderr, "nimbus: %s\n", message.c_str());
  return kExitUsage;
}

int run_bare(const RunOptions& o, uint64_t ram) {
  machine::BareOptions bare;
  bare.elf_path = o.bare;
  bare.ram_size = ram;
  bare.max_insns = o.max_insns;
  bare.signature_path = o.signature;
  bare.signature_granularity = o.signature_granularity;
  std::FILE* trace_file = nullptr;
  if (!o.trace_file.empty()) {
    trace_file = std::fopen(o.trace_file.c_str(), "w");
    if (trace_file == nullptr) {
      return fail(
          fmt::format("cannot write trace to '{}': {}", o.trace_file, std::strerror(errno)));
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
      std::fprintf(stderr, "nimbus: program failed with code %lu\n",
                   static_cast<unsigned long>(r.code));
      return r.code > 255 ? 255 : (r.code == 0 ? 1 : static_cast<int>(r.code));
    case machine::BareResult::End::kInsnLimit:
      std::fprintf(stderr, "nimbus: stopped at the instruction limit (%lu instructions)\n",
                   static_cast<unsigned long>(r.instructions));
      return kExitInsnLimit;
  }
  return 1;
}

// The Linux machine: the VMM with the console on stdio and no API socket.
int run_linux(const RunOptions& o, uint64_t ram) {
  if (o.cpus < 1 || o.cpus > machine::virt::kMaxHarts) {
    return fail(
        fmt::format("--cpus {} is out of range (1 to {})", o.cpus, machine::virt::kMaxHarts));
  }
  if (o.trace || !o.trace_file.empty() || !o.signature.empty() || o.max_insns != 0) {
    return fail("--trace, --signature and --max-insns work with --bare programs only");
  }
  if ((o.check_reference || o.check_jit) && o.cpus != 1) {
    // Another hart's stores between a run and its replay would read as differences.
    return fail("--check-reference and --check-jit check one hart: use --cpus 1");
  }
  // The VM's configuration counts memory in MiB.
  if (ram % (1ull << 20) != 0)
    return fail(fmt::format("--memory {}: a whole number of MiB", o.memory));
  vmm::ConsoleVmOptions vm;
  vm.config.vcpus = o.cpus;
  vm.config.mem_mib = ram >> 20;
  vmm::MachineFlags flags;
  flags.kernel = o.kernel;
  flags.initrd = o.initrd;
  flags.firmware = o.firmware;
  flags.append = o.append;
  flags.disks = o.disks;
  flags.nets = o.nets;
  flags.no_rng = o.no_rng;
  flags.metadata = o.metadata;
  bool configured = false;
  if (Status s = vmm::apply_machine_flags(flags, vm.config, configured); !s.ok())
    return fail(s.message());
  vm.virtio_console_file = o.virtio_console;
  vm.no_reboot = o.no_reboot;
  return vmm::run_console_vm(vm);
}

}  // namespace

void add_run_command(CLI::App& app, RunOptions& o) {
  CLI::App* run = app.add_subcommand(
      "run", "Boot a virtual machine in the foreground (the bundled Linux guest by default)");
  run->add_option("--kernel", o.kernel, "Linux kernel Image (default: the bundled images/Image)");
  run->add_option("--initrd", o.initrd,
                  "Initial ramdisk (default with the bundled kernel: images/initramfs.cpio.gz)");
  run->add_option("--append", o.append, "Kernel command line")->each([&o](const std::string&) {
    o.append_given = true;
  });
  run->add_option(
      "--firmware", o.firmware,
      "Boot through this M-mode firmware (e.g. OpenSBI's fw_jump.elf) instead of the built-in SBI");
  run->add_option("-c,--cpus", o.cpus, "Number of harts (1-8)")->capture_default_str();
  run->add_option("-m,--memory", o.memory, "Guest RAM size, e.g. 256M or 2G")
      ->capture_default_str();
  run->add_option("--disk", o.disks, kDiskFlagHelp);
  run->add_option("--net", o.nets, kNetFlagHelp);
  run->add_flag("--no-rng", o.no_rng, "No virtio entropy device");
  run->add_option("--metadata", o.metadata, kMetadataFlagHelp);
  run->add_option("--virtio-console", o.virtio_console,
                  "A second console (virtio-console; /dev/hvc1 in the bundled guest, whose hvc0 is "
                  "the SBI console) whose output is appended to this file");
  run->add_flag("--no-reboot", o.no_reboot,
                "Exit (status 3) when the guest reboots instead of restarting it");
  run->add_option("--bare", o.bare,
                  "Run a bare-metal RV64 ELF program in M-mode (RAM at 0x80000000); the exit "
                  "status is its verdict (HTIF tohost or the sifive,test finisher)");
  run->add_option("--max-insns", o.max_insns,
                  "With --bare: stop after this many instructions (exit status 124)");
  run->add_flag("--trace", o.trace,
                "With --bare: print one line per retired instruction on stderr");
  run->add_option("--trace-file", o.trace_file, "With --bare: write the trace to this file");
  run->add_option(
      "--signature", o.signature,
      "With --bare: at the end, write memory between begin_signature and end_signature here");
  run->add_option("--signature-granularity", o.signature_granularity, "Bytes per signature line")
      ->check(CLI::IsMember({4u, 8u}))
      ->capture_default_str();
  run->add_flag("--stats", o.stats, "With --bare: print instructions, seconds and MIPS on stderr");
  run->add_option("--engine", o.engine,
                  "How guest code runs: jit (hot blocks compiled to host code, the default on "
                  "x86-64) or interp (the block interpreter alone)")
      ->check(CLI::IsMember({"jit", "interp"}))
      ->capture_default_str();
  run->add_flag("--check-reference", o.check_reference,
                "Check the fast interpreter against a plain reference path instruction by "
                "instruction; stop at the first difference with a report (exit status 1)");
  run->add_flag("--check-jit", o.check_jit,
                "Check the JIT against the same reference path: each run of compiled code "
                "(up to 1024 instructions) as a whole, the rest instruction by instruction; "
                "stop at the first difference with a report (exit status 1). With a VM: "
                "--cpus 1");
  run->footer(
      "Exit status: 0 the guest powered off (or a --bare program passed), 1 the guest reported a\n"
      "failure, 2 bad input, 3 the guest rebooted with --no-reboot, 4 quit with Ctrl-A X,\n"
      "128+N stopped by signal N (SIGINT, SIGTERM, SIGHUP);\n"
      "--bare: the program's code, or 124 at --max-insns.");
}

int run_command(const RunOptions& o) {
  cpu::Hart::set_default_engine(o.engine == "interp" ? cpu::EngineKind::kInterpreter
                                                     : cpu::EngineKind::kJit);
  if (o.check_reference && o.check_jit) return fail("--check-reference or --check-jit, not both");
  if (o.check_reference) cpu::Hart::set_default_engine(cpu::EngineKind::kCheckReference);
  if (o.check_jit) cpu::Hart::set_default_engine(cpu::EngineKind::kCheckJit);
  auto ram = parse_size(o.memory);
  if (!ram.ok()) return fail("--memory: " + ram.message());
  if (*ram < (1ull << 20) || *ram > (64ull << 30)) {
    return fail(fmt::format("--memory: {} is out of range (1M to 64G)", o.memory));
  }
  if (!o.bare.empty()) {
    if (!o.kernel.empty() || !o.initrd.empty() || !o.firmware.empty() || o.append_given ||
        !o.disks.empty() || !o.nets.empty()) {
      return fail(
          "--bare runs a program on its own: it does not take --kernel, --initrd, --append, "
          "--firmware, --disk or --net");
    }
    return run_bare(o, *ram);
  }
  return run_linux(o, *ram);
}

}  // namespace nimbus::cli
