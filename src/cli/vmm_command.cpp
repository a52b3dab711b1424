#include "cli/vmm_command.h"

#include <string>

#include "cli/device_options.h"
#include "common/log.h"
#include "sandbox/sandbox.h"

namespace nimbus::cli {

void add_vmm_command(CLI::App& app, VmmCommandOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "vmm",
      "Run one VM as a process controlled over a REST API on a unix socket (Firecracker-style)");
  cmd->add_option("--api-sock", o.main.api_sock, "Serve the VM API on this unix socket");
  cmd->add_option(
      "--config", o.main.config_file,
      "Configure the VM from this JSON file (the format of GET /vm/config) and start it");
  cmd->add_option("--restore", o.main.restore, "Restore this snapshot file and run it");
  cmd->add_flag("--paused", o.main.paused, "With --restore: leave the VM paused");
  cmd->add_flag("--no-start", o.main.no_start,
                "With --config or machine flags: configure only; start through the API");
  cmd->add_option("--incoming", o.main.incoming,
                  "With --config: wait at tcp:ADDR:PORT or unix:PATH for this VM to arrive by "
                  "live migration (PORT 0: any; GET /migration shows the address)");
  cmd->add_flag("--exit-on-stop", o.main.exit_on_stop,
                "Exit when the VM stops (default with no --api-sock)");
  cmd->add_option("--id", o.main.id, "A name for the VM (shown by the API)")->capture_default_str();
  cmd->add_option("--console", o.main.console,
                  "Serial console on this process's stdin/stdout (stdio) or not (none)")
      ->check(CLI::IsMember({"stdio", "none"}))
      ->capture_default_str();
  cmd->add_option("--console-sock", o.main.console_sock,
                  "Also serve the serial console on this unix socket");
  cmd->add_option("--exit-file", o.main.exit_file,
                  "When the VMM exits, write 'STATUS REASON' to this file");
  cmd->add_option("--console-log", o.main.console_log,
                  "Also append the serial console's output to this file");
  cmd->add_option("--kernel", o.main.machine.kernel,
                  "Linux kernel Image (default: the bundled images/Image)");
  cmd->add_option("--initrd", o.main.machine.initrd, "Initial ramdisk");
  cmd->add_option("--append", o.main.machine.append, "Kernel command line");
  cmd->add_option("--firmware", o.main.machine.firmware,
                  "M-mode firmware (e.g. OpenSBI fw_jump.elf) instead of the built-in SBI");
  cmd->add_option("-c,--cpus", o.main.machine.cpus, "Number of vCPUs (1-8)");
  cmd->add_option("-m,--memory", o.main.machine.memory, "Guest RAM, e.g. 256M");
  cmd->add_option("--disk", o.main.machine.disks, kDiskFlagHelp);
  cmd->add_option("--net", o.main.machine.nets, kNetFlagHelp);
  cmd->add_option("--engine", o.main.engine, "How guest code runs: jit (the default) or interp")
      ->check(CLI::IsMember({"jit", "interp"}))
      ->capture_default_str();
  cmd->add_flag("--no-rng", o.main.machine.no_rng, "No virtio entropy device");
  cmd->add_option("--metadata", o.main.machine.metadata, kMetadataFlagHelp);
  cmd->add_option("--log-level", o.main.log_level,
                  "What the VMM logs on stderr: " + std::string(log::kLevels) +
                      " (state changes, refused requests and failures at info and above)")
      ->capture_default_str();
  cmd->add_flag("--sandbox", o.sandbox,
                "Once the sockets are open, forbid with seccomp the syscalls a VMM never needs "
                "(exec, ptrace, "
                "mount, namespaces, module loading, set*id, ...)");
  cmd->footer(
      "The API: see docs/vmm.md (GET /, PUT /machine-config, PUT /boot-source, PUT /drives/ID,\n"
      "PUT /network-interfaces/ID, PUT /actions, PATCH /vm, PUT /snapshot/create, PUT "
      "/snapshot/load).\n"
      "Exit status: 0 after the VM stopped (with --exit-on-stop), 1 --sandbox failed, 2 bad "
      "input,\n"
      "4 quit with Ctrl-A X, "
      "128+N stopped by signal N.");
}

int vmm_command(const VmmCommandOptions& o) {
  vmm::VmmMainOptions main = o.main;
  if (o.sandbox) {
    main.lock_down = [] {
      Status s = sandbox::install_vmm_seccomp_filter();
      return s.ok() ? s : Status::error("--sandbox: " + s.message());
    };
  }
  return vmm::run_vmm(main);
}

}  // namespace nimbus::cli
