#include "vmm/vmm_main.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "backends/console/stdio_console.h"
#include "common/log.h"
#include "common/signal_stopper.h"
#include "common/size.h"
#include "config/device_flags.h"
#include "cpu/hart.h"
#include "machine/virt/memory_map.h"
#include "vmm/api_server.h"
#include "vmm/vmm.h"

namespace nimbus::vmm {

namespace {

constexpr int kExitUsage = 2;

int fail(const std::string& message) {
  std::fprintf(stderr, "nimbus vmm: %s\n", message.c_str());
  return kExitUsage;
}

// The configuration from --config, then the machine flags over it.
Result<VmConfig> build_config(const VmmMainOptions& o, bool& configured) {
  VmConfig c;
  configured = false;
  if (!o.config_file.empty()) {
    std::ifstream in(o.config_file);
    if (!in) return Status::error(fmt::format("--config: cannot read '{}'", o.config_file));
    const json j = json::parse(in, nullptr, false);
    if (j.is_discarded())
      return Status::error(fmt::format("--config '{}' is not valid JSON", o.config_file));
    auto parsed = parse_vm_config(j);
    if (!parsed.ok())
      return Status::error(fmt::format("--config '{}': {}", o.config_file, parsed.message()));
    c = *parsed;
    configured = true;
  }
  if (Status s = apply_machine_flags(o.machine, c, configured); !s.ok()) return s;
  return c;
}

void write_exit_file(const VmmMainOptions& o, int status, const std::string& reason) {
  const std::string tmp = o.exit_file + ".tmp";
  // nimbusd's only word on how a re-adopted VMM ended: a failure to leave it is logged.
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    spdlog::error("vm {}: --exit-file: cannot write '{}': {}", o.id, tmp, std::strerror(errno));
    return;
  }
  std::fprintf(f, "%d %s\n", status, reason.empty() ? "stopped" : reason.c_str());
  if (std::fclose(f) != 0 || std::rename(tmp.c_str(), o.exit_file.c_str()) != 0) {
    spdlog::error("vm {}: --exit-file: cannot write '{}': {}", o.id, o.exit_file,
                  std::strerror(errno));
  }
}

}  // namespace

Status apply_machine_flags(const MachineFlags& f, VmConfig& c, bool& configured) {
  if (f.cpus != 0) {
    if (f.cpus > machine::virt::kMaxHarts) {
      return Status::error(
          fmt::format("--cpus {} is out of range (1 to {})", f.cpus, machine::virt::kMaxHarts));
    }
    c.vcpus = f.cpus;
    configured = true;
  }
  if (!f.memory.empty()) {
    auto ram = parse_size(f.memory);
    if (!ram.ok()) return Status::error("--memory: " + ram.message());
    if (*ram % (1 << 20) != 0 || (*ram >> 20) < kMinMemMib || (*ram >> 20) > kMaxMemMib) {
      return Status::error(fmt::format("--memory {}: a whole number of MiB from {}M to {}G",
                                       f.memory, kMinMemMib, kMaxMemMib / 1024));
    }
    c.mem_mib = *ram >> 20;
    configured = true;
  }
  for (const auto& [value, field] :
       {std::pair{&f.kernel, &c.kernel}, std::pair{&f.initrd, &c.initrd},
        std::pair{&f.append, &c.boot_args}, std::pair{&f.firmware, &c.firmware}}) {
    if (!value->empty()) {
      *field = *value;
      configured = true;
    }
  }
  for (const std::string& text : f.disks) {
    auto disk = config::parse_disk_flag(text);
    if (!disk.ok()) return disk.status();
    disk->id = fmt::format("disk{}", c.drives.size());
    // With the bundled kernel and no initrd the first disk is the root.
    disk->root = c.drives.empty() && c.kernel.empty() && c.initrd.empty();
    c.drives.push_back(*disk);
    configured = true;
  }
  for (const std::string& text : f.nets) {
    auto nic = config::parse_net_flag(text);
    if (!nic.ok()) return nic.status();
    nic->id = fmt::format("eth{}", c.nics.size());
    c.nics.push_back(*nic);
    configured = true;
  }
  if (f.no_rng) {
    c.entropy = false;
    configured = true;
  }
  if (!f.metadata.empty()) {
    std::ifstream in(f.metadata);
    if (!in) return Status::error(fmt::format("--metadata: cannot read '{}'", f.metadata));
    const json j = json::parse(in, nullptr, false);
    if (j.is_discarded())
      return Status::error(fmt::format("--metadata '{}' is not valid JSON", f.metadata));
    auto metadata = config::parse_metadata(j);
    if (!metadata.ok())
      return Status::error(fmt::format("--metadata '{}': {}", f.metadata, metadata.message()));
    c.metadata = std::move(*metadata);
    configured = true;
  }
  return {};
}

namespace {

// The metadata server, listening before the sandbox closes in: beside the API socket (the
// API may give the VM metadata later), else in a private directory when the VM has
// metadata or may bring some from a snapshot; none otherwise.
Result<std::unique_ptr<ImdsServer>> open_metadata_server(const std::string& api_sock, bool needed,
                                                         const std::string& id) {
  // sun_path holds 107 bytes and a NUL.
  if (!api_sock.empty() && api_sock.size() + 5 < 108)
    return ImdsServer::start(api_sock + ".imds", id);
  if (!api_sock.empty() || needed) return ImdsServer::start_private(id);
  return std::unique_ptr<ImdsServer>();
}

}  // namespace

int run_vmm(const VmmMainOptions& o) {
  if (Status s = log::init("nimbus vmm", o.log_level); !s.ok())
    return fail("--log-level: " + s.message());
  cpu::Hart::set_default_engine(o.engine == "interp" ? cpu::EngineKind::kInterpreter
                                                     : cpu::EngineKind::kJit);
  bool configured = false;
  auto config = build_config(o, configured);
  if (!config.ok()) return fail(config.message());
  if (o.api_sock.empty() && !configured && o.restore.empty()) {
    return fail(
        "nothing to run: give --api-sock PATH (and configure through the API), --config FILE, "
        "--restore FILE or "
        "machine flags");
  }
  if (!o.restore.empty() && configured) {
    return fail(
        "--restore takes its configuration from the snapshot; drop --config and machine flags");
  }
  if (o.paused && o.restore.empty()) return fail("--paused goes with --restore");
  if (o.api_sock.empty() && (o.no_start || o.paused))
    return fail("--no-start and --paused need --api-sock to go on");
  if (!o.incoming.empty() && (!configured || !o.restore.empty()))
    return fail("--incoming needs --config (or machine flags) describing the arriving VM");

  auto imds = open_metadata_server(o.api_sock, config->metadata || !o.restore.empty(), o.id);
  if (!imds.ok()) return fail(imds.message());

  VmmOptions vo;
  vo.id = o.id;
  vo.images_dir = bundled_images_dir();
  vo.exit_on_stop = o.exit_on_stop || o.api_sock.empty();
  vo.imds = imds->get();
  Vmm vm(vo, *config);

  SignalStopper signals([&vm] { vm.quit(128 + SIGTERM); });
  std::unique_ptr<backends::StdioConsole> stdio;
  if (o.console == "stdio") {
    stdio = std::make_unique<backends::StdioConsole>(
        [&vm](uint8_t c) { vm.console().input(&c, 1); }, [&vm] { vm.quit(4); });
    backends::StdioConsole* out = stdio.get();
    vm.console().add_sink([out](const uint8_t* data, size_t len) { out->write(data, len); });
  }
  if (!o.console_log.empty()) {
    if (Status s = vm.console().open_log(o.console_log); !s.ok()) return fail(s.message());
  }
  if (!o.console_sock.empty()) {
    if (Status s = vm.console().listen(o.console_sock); !s.ok()) return fail(s.message());
  }
  std::unique_ptr<ApiServer> api;
  if (!o.api_sock.empty()) {
    auto server = ApiServer::start(o.api_sock, vm);
    if (!server.ok()) return fail(server.message());
    api = std::move(*server);
  }
  // Bound before the sandbox closes in; the source connects whenever it is ready.
  if (!o.incoming.empty()) {
    auto started = vm.migrate_incoming(IncomingRequest{o.incoming, 600});
    if (!started.ok()) return fail("--incoming: " + started.message());
  }
  if (o.lock_down) {
    if (Status s = o.lock_down(); !s.ok()) {
      std::fprintf(stderr, "nimbus vmm: %s\n", s.message().c_str());
      return 1;
    }
  }
  if (!o.restore.empty()) {
    auto restored = vm.snapshot_load(o.restore, !o.paused);
    if (!restored.ok()) return fail(restored.message());
  } else if (configured && !o.no_start && o.incoming.empty()) {
    if (Status s = vm.start(); !s.ok()) return fail(s.message());
  }
  if (stdio) stdio->start();
  int status = vm.run();
  api.reset();
  if (signals.signal() != 0) status = 128 + signals.signal();
  if (!o.exit_file.empty()) {
    write_exit_file(
        o, status,
        signals.signal() != 0 ? fmt::format("signal {}", signals.signal()) : vm.last_stop());
  }
  return status;
}

int run_console_vm(const ConsoleVmOptions& o) {
  constexpr int kExitPoweroff = 0, kExitGuestFailure = 1, kExitReboot = 3, kExitQuit = 4;
  auto fail_run = [](const std::string& message) {
    std::fprintf(stderr, "nimbus: %s\n", message.c_str());
    return kExitUsage;
  };
  // The terminal shows the guest and run's own messages only.
  if (Status s = log::init("nimbus", "off"); !s.ok()) return fail_run(s.message());
  VmmOptions vo;
  vo.images_dir = bundled_images_dir();
  vo.exit_on_stop = true;
  vo.no_reboot = o.no_reboot;
  vo.agent_channel = false;
  vo.virtio_console_file = o.virtio_console_file;
  auto imds = open_metadata_server("", o.config.metadata.has_value(), vo.id);
  if (!imds.ok()) return fail_run(imds.message());
  vo.imds = imds->get();
  Vmm vm(vo, o.config);

  SignalStopper signals([&vm] { vm.quit(kExitQuit); });
  backends::StdioConsole stdio([&vm](uint8_t c) { vm.console().input(&c, 1); },
                               [&vm] { vm.quit(kExitQuit); });
  vm.console().add_sink([&stdio](const uint8_t* data, size_t len) { stdio.write(data, len); });
  if (Status s = vm.start(); !s.ok()) {
    // `nimbus run` has flags, not the API's boot-source: its messages name the file alone.
    const std::string prefix = "boot-source: ";
    const std::string& m = s.message();
    return fail_run(m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : m);
  }
  stdio.start();
  const int status = vm.run();
  if (signals.signal() != 0) {
    std::fprintf(stderr, "\r\nnimbus: stopped by signal %d\r\n", signals.signal());
    return 128 + signals.signal();
  }
  if (status == kExitQuit) return kExitQuit;
  const std::string stop = vm.last_stop();
  if (stop == "poweroff") return kExitPoweroff;
  if (stop == "reboot") return kExitReboot;
  if (stop.rfind("failure", 0) == 0) {
    std::fprintf(stderr, "\r\nnimbus: the guest reported a %s\r\n", stop.c_str());
    return kExitGuestFailure;
  }
  if (stop.rfind("reboot failed: ", 0) == 0) return fail_run(stop.substr(15));
  return kExitQuit;
}

}  // namespace nimbus::vmm
