// The VMM process's entry points. `nimbus vmm` (src/cli/vmm_command.cpp declares its
// flags) runs run_vmm; `nimbus run` is the same VMM with the console on stdio, no API
// socket and no guest-agent channel (run_console_vm). Both build the machine the same way:
// the typed configuration (vm_config.h, src/config), the backends opened by the VMM
// (machine_backends.h), the machine built by Vmm.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/vm_config.h"

namespace nimbus::vmm {

// The machine flags shared by `nimbus run` and `nimbus vmm`, as given (empty or 0: not
// given). --disk and --net go through config/device_flags.h: both commands accept exactly
// the same strings.
struct MachineFlags {
  std::string kernel, initrd, append, firmware, memory;
  unsigned cpus = 0;
  std::vector<std::string> disks, nets;
  bool no_rng = false;
  // --metadata FILE: the configuration's "metadata" section (config/metadata_config.h).
  std::string metadata;
};

// Applies the flags over `config`; `configured` tells whether any was given. The first
// disk is the root device when the bundled kernel boots without an initrd.
Status apply_machine_flags(const MachineFlags& flags, VmConfig& config, bool& configured);

struct VmmMainOptions {
  std::string api_sock;
  std::string config_file;
  std::string restore;
  bool paused = false;
  bool no_start = false;
  // tcp:ADDR:PORT or unix:PATH: configure (like --no-start), then wait there for the VM to
  // arrive by live migration (PUT /migration/incoming).
  std::string incoming;
  bool exit_on_stop = false;
  std::string id = "nimbus-vm";
  std::string console = "stdio";  // stdio or none
  std::string console_sock, console_log;
  MachineFlags machine;
  std::string engine = "jit";  // jit or interp
  // When the process ends by itself, write "STATUS REASON" here (nimbusd's word on a VMM it
  // re-adopted and so cannot wait for).
  std::string exit_file;
  std::string log_level = "info";
  // Run once the sockets are open, before the guest does (nimbus vmm --sandbox installs
  // its seccomp filter here). A failure ends the process with status 1.
  std::function<Status()> lock_down;
};

// Returns the process exit status: 0 after the VM stopped (with --exit-on-stop), 1 the
// lock-down failed, 2 bad input, 4 quit with Ctrl-A X, 128+N stopped by signal N.
int run_vmm(const VmmMainOptions& options);

struct ConsoleVmOptions {
  VmConfig config;
  std::string virtio_console_file;  // a second console appended to this file; empty: none
  bool no_reboot = false;
};

// `nimbus run`: boots `config` with the console on stdin/stdout until the guest ends.
// Returns 0 poweroff, 1 the guest reported a failure, 2 bad input, 3 a reboot with
// no_reboot, 4 quit with Ctrl-A X, 128+N stopped by signal N. Messages go to stderr as
// "nimbus: ..." (the VMM's log is off: the terminal shows the guest).
int run_console_vm(const ConsoleVmOptions& options);

}  // namespace nimbus::vmm
