#include "cli/vmm_command.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "backends/console/stdio_console.h"
#include "cli/device_options.h"
#include "cli/signal_stopper.h"
#include "common/log.h"
#include "common/size.h"
#include "cpu/hart.h"
#include "host/sandbox.h"
#include "machine/virt/memory_map.h"
#include "vmm/api_server.h"
#include "vmm/vmm.h"

namespace nimbus::cli {

namespace {

constexpr int kExitUsage = 2;

int fail(const std::string& message) {
  std::fprintf(stderr, "nimbus vmm: %s\n", message.c_str());
  return kExitUsage;
}

// --net in `nimbus run`'s syntax to the API's network interface.
Result<vmm::NetConfig> net_from_flag(const std::string& text, size_t index) {
  auto opt = parse_net_option(text);
  if (!opt.ok()) return opt.status();
  vmm::NetConfig n;
  n.id = fmt::format("eth{}", index);
  n.mac = opt->mac_given ? format_mac(opt->mac) : format_mac(random_mac());
  std::stringstream parts(opt->spec);
  std::string part;
  std::getline(parts, part, ',');
  if (part == "switch") {
    n.mode = "switch";
    while (std::getline(parts, part, ',')) {
      if (part.rfind("path=", 0) != 0) return Status::error(fmt::format("--net '{}': unknown option '{}'", text, part));
      n.switch_path = part.substr(5);
    }
    if (n.switch_path.empty()) return Status::error(fmt::format("--net '{}': switch needs path=SOCKET_DIR", text));
    return n;
  }
  if (part != "user") return Status::error(fmt::format("--net '{}': the backend is user or switch", text));
  static const std::regex fwd(R"(hostfwd=(tcp|udp):([0-9.]*):([0-9]+)-([0-9.]*):([0-9]+))");
  while (std::getline(parts, part, ',')) {
    std::smatch m;
    if (!std::regex_match(part, m, fwd)) {
      return Status::error(
          fmt::format("--net '{}': '{}' is not hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT", text, part));
    }
    vmm::HostForward f;
    f.protocol = m[1];
    f.host_address = m[2];
    f.guest_address = m[4];
    const unsigned long hp = std::stoul(m[3]), gp = std::stoul(m[5]);
    if (hp < 1 || hp > 65535 || gp < 1 || gp > 65535) return Status::error(fmt::format("--net '{}': bad port", text));
    f.host_port = static_cast<uint16_t>(hp);
    f.guest_port = static_cast<uint16_t>(gp);
    n.forwards.push_back(f);
  }
  return n;
}

// The configuration from --config, then the machine flags over it.
Result<vmm::VmConfig> build_config(const VmmCommandOptions& o, bool& configured) {
  vmm::VmConfig c;
  configured = false;
  if (!o.config_file.empty()) {
    std::ifstream in(o.config_file);
    if (!in) return Status::error(fmt::format("--config: cannot read '{}'", o.config_file));
    const vmm::json j = vmm::json::parse(in, nullptr, false);
    if (j.is_discarded()) return Status::error(fmt::format("--config '{}' is not valid JSON", o.config_file));
    auto parsed = vmm::parse_vm_config(j);
    if (!parsed.ok()) return Status::error(fmt::format("--config '{}': {}", o.config_file, parsed.message()));
    c = *parsed;
    configured = true;
  }
  if (o.cpus != 0) {
    if (o.cpus > machine::virt::kMaxHarts) {
      return Status::error(fmt::format("--cpus {} is out of range (1 to {})", o.cpus, machine::virt::kMaxHarts));
    }
    c.vcpus = o.cpus;
    configured = true;
  }
  if (!o.memory.empty()) {
    auto ram = parse_size(o.memory);
    if (!ram.ok()) return Status::error("--memory: " + ram.message());
    if (*ram % (1 << 20) != 0 || (*ram >> 20) < vmm::kMinMemMib || (*ram >> 20) > vmm::kMaxMemMib) {
      return Status::error(fmt::format("--memory {}: a whole number of MiB from {}M to {}G", o.memory,
                                       vmm::kMinMemMib, vmm::kMaxMemMib / 1024));
    }
    c.mem_mib = *ram >> 20;
    configured = true;
  }
  for (const auto& [flag, value, field] : {std::tuple{"--kernel", &o.kernel, &c.kernel},
                                          std::tuple{"--initrd", &o.initrd, &c.initrd},
                                          std::tuple{"--append", &o.append, &c.boot_args},
                                          std::tuple{"--firmware", &o.firmware, &c.firmware}}) {
    if (!value->empty()) {
      *field = *value;
      configured = true;
    }
  }
  for (size_t i = 0; i < o.disks.size(); i++) {
    auto disk = parse_disk_option(o.disks[i]);
    if (!disk.ok()) return disk.status();
    vmm::DriveConfig d;
    d.id = fmt::format("disk{}", c.drives.size());
    d.path = disk->path;
    d.read_only = disk->read_only;
    d.format = disk->format == backends::DiskFormat::kRaw     ? "raw"
               : disk->format == backends::DiskFormat::kQcow2 ? "qcow2"
                                                              : "auto";
    // As `nimbus run`: with the bundled kernel and no initrd the first disk is the root.
    d.root = c.drives.empty() && c.kernel.empty() && c.initrd.empty();
    c.drives.push_back(d);
    configured = true;
  }
  for (size_t i = 0; i < o.nets.size(); i++) {
    auto nic = net_from_flag(o.nets[i], c.nics.size());
    if (!nic.ok()) return nic.status();
    c.nics.push_back(*nic);
    configured = true;
  }
  if (o.no_rng) {
    c.entropy = false;
    configured = true;
  }
  return c;
}

}  // namespace

void add_vmm_command(CLI::App& app, VmmCommandOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "vmm", "Run one VM as a process controlled over a REST API on a unix socket (Firecracker-style)");
  cmd->add_option("--api-sock", o.api_sock, "Serve the VM API on this unix socket");
  cmd->add_option("--config", o.config_file, "Configure the VM from this JSON file (the format of GET /vm/config) and start it");
  cmd->add_option("--restore", o.restore, "Restore this snapshot file and run it");
  cmd->add_flag("--paused", o.paused, "With --restore: leave the VM paused");
  cmd->add_flag("--no-start", o.no_start, "With --config or machine flags: configure only; start through the API");
  cmd->add_flag("--exit-on-stop", o.exit_on_stop, "Exit when the VM stops (default with no --api-sock)");
  cmd->add_option("--id", o.id, "A name for the VM (shown by the API)")->capture_default_str();
  cmd->add_option("--console", o.console, "Serial console on this process's stdin/stdout (stdio) or not (none)")
      ->check(CLI::IsMember({"stdio", "none"}))
      ->capture_default_str();
  cmd->add_option("--console-sock", o.console_sock, "Also serve the serial console on this unix socket");
  cmd->add_option("--exit-file", o.exit_file, "When the VMM exits, write 'STATUS REASON' to this file");
  cmd->add_option("--console-log", o.console_log, "Also append the serial console's output to this file");
  cmd->add_option("--kernel", o.kernel, "Linux kernel Image (default: the bundled images/Image)");
  cmd->add_option("--initrd", o.initrd, "Initial ramdisk");
  cmd->add_option("--append", o.append, "Kernel command line");
  cmd->add_option("--firmware", o.firmware, "M-mode firmware (e.g. OpenSBI fw_jump.elf) instead of the built-in SBI");
  cmd->add_option("-c,--cpus", o.cpus, "Number of vCPUs (1-8)");
  cmd->add_option("-m,--memory", o.memory, "Guest RAM, e.g. 256M");
  cmd->add_option("--disk", o.disks, "A virtio disk: PATH[,format=raw|qcow2][,readonly] (repeatable)");
  cmd->add_option("--net", o.nets, "A virtio NIC: user[,hostfwd=tcp::8080-:80]... or switch,path=DIR; [,mac=...]");
  cmd->add_option("--engine", o.engine, "How guest code runs: jit (the default) or interp")
      ->check(CLI::IsMember({"jit", "interp"}))
      ->capture_default_str();
  cmd->add_flag("--no-rng", o.no_rng, "No virtio entropy device");
  cmd->add_option("--log-level", o.log_level,
                  "What the VMM logs on stderr: " + std::string(log::kLevels) +
                      " (state changes, refused requests and failures at info and above)")
      ->capture_default_str();
  cmd->add_flag("--sandbox", o.sandbox,
                "Once the sockets are open, forbid with seccomp the syscalls a VMM never needs (exec, ptrace, "
                "mount, namespaces, module loading, set*id, ...)");
  cmd->footer(
      "The API: see docs/vmm.md (GET /, PUT /machine-config, PUT /boot-source, PUT /drives/ID,\n"
      "PUT /network-interfaces/ID, PUT /actions, PATCH /vm, PUT /snapshot/create, PUT /snapshot/load).\n"
      "Exit status: 0 after the VM stopped (with --exit-on-stop), 1 --sandbox failed, 2 bad input,\n"
      "4 quit with Ctrl-A X, "
      "128+N stopped by signal N.");
}

int vmm_command(const VmmCommandOptions& o) {
  if (Status s = log::init("nimbus vmm", o.log_level); !s.ok()) return fail("--log-level: " + s.message());
  cpu::Hart::set_default_engine(o.engine == "interp" ? cpu::EngineKind::kInterpreter
                                                     : cpu::EngineKind::kJit);
  bool configured = false;
  auto config = build_config(o, configured);
  if (!config.ok()) return fail(config.message());
  if (o.api_sock.empty() && !configured && o.restore.empty()) {
    return fail("nothing to run: give --api-sock PATH (and configure through the API), --config FILE, --restore FILE or machine flags");
  }
  if (!o.restore.empty() && configured) return fail("--restore takes its configuration from the snapshot; drop --config and machine flags");
  if (o.paused && o.restore.empty()) return fail("--paused goes with --restore");
  if (o.api_sock.empty() && (o.no_start || o.paused)) return fail("--no-start and --paused need --api-sock to go on");

  vmm::VmmOptions vo;
  vo.id = o.id;
  vo.images_dir = vmm::bundled_images_dir();
  vo.exit_on_stop = o.exit_on_stop || o.api_sock.empty();
  vmm::Vmm vm(vo, *config);

  SignalStopper signals([&vm] { vm.quit(128 + SIGTERM); });
  std::unique_ptr<backends::StdioConsole> stdio;
  if (o.console == "stdio") {
    stdio = std::make_unique<backends::StdioConsole>([&vm](uint8_t c) { vm.console().input(&c, 1); },
                                                     [&vm] { vm.quit(4); });
    backends::StdioConsole* out = stdio.get();
    vm.console().add_sink([out](const uint8_t* data, size_t len) { out->write(data, len); });
  }
  if (!o.console_log.empty()) {
    if (Status s = vm.console().open_log(o.console_log); !s.ok()) return fail(s.message());
  }
  if (!o.console_sock.empty()) {
    if (Status s = vm.console().listen(o.console_sock); !s.ok()) return fail(s.message());
  }
  std::unique_ptr<vmm::ApiServer> api;
  if (!o.api_sock.empty()) {
    auto server = vmm::ApiServer::start(o.api_sock, vm);
    if (!server.ok()) return fail(server.message());
    api = std::move(*server);
  }
  if (o.sandbox) {
    if (Status s = host::install_vmm_seccomp_filter(); !s.ok()) {
      std::fprintf(stderr, "nimbus vmm: --sandbox: %s\n", s.message().c_str());
      return 1;
    }
  }
  if (!o.restore.empty()) {
    auto restored = vm.snapshot_load(o.restore, !o.paused);
    if (!restored.ok()) return fail(restored.message());
  } else if (configured && !o.no_start) {
    if (Status s = vm.start(); !s.ok()) return fail(s.message());
  }
  if (stdio) stdio->start();
  int status = vm.run();
  api.reset();
  if (signals.signal() != 0) status = 128 + signals.signal();
  if (!o.exit_file.empty()) {
    const std::string reason = signals.signal() != 0 ? fmt::format("signal {}", signals.signal()) : vm.last_stop();
    const std::string tmp = o.exit_file + ".tmp";
    // nimbusd's only word on how a re-adopted VMM ended: a failure to leave it is logged.
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      spdlog::error("vm {}: --exit-file: cannot write '{}': {}", o.id, tmp, std::strerror(errno));
    } else {
      std::fprintf(f, "%d %s\n", status, reason.empty() ? "stopped" : reason.c_str());
      if (std::fclose(f) != 0 || std::rename(tmp.c_str(), o.exit_file.c_str()) != 0) {
        spdlog::error("vm {}: --exit-file: cannot write '{}': {}", o.id, o.exit_file, std::strerror(errno));
      }
    }
  }
  return status;
}

}  // namespace nimbus::cli
