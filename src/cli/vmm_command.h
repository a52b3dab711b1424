// `nimbus vmm`: one VM process controlled over an API socket (Firecracker-style).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace nimbus::cli {

struct VmmCommandOptions {
  std::string api_sock;
  std::string config_file;
  std::string restore;
  bool paused = false;
  bool no_start = false;
  bool exit_on_stop = false;
  std::string id = "nimbus-vm";
  std::string console = "stdio";
  std::string console_sock, console_log;
  // The same machine flags as `nimbus run`.
  std::string kernel, initrd, append, firmware, memory;
  unsigned cpus = 0;
  std::vector<std::string> disks, nets;
  bool no_rng = false;
  std::string engine = "jit";  // --engine: jit or interp
  // Install the VMM seccomp filter (host/sandbox.h) once the sockets are open.
  bool sandbox = false;
  // When the process ends by itself, write "STATUS REASON" here (nimbusd's word on a VMM it
  // re-adopted and so cannot wait for).
  std::string exit_file;
  // --log-level (common/log.h). `nimbus run` should pass warn once it runs through the VMM,
  // so its console shows only the guest.
  std::string log_level = "info";
};

void add_vmm_command(CLI::App& app, VmmCommandOptions& options);
int vmm_command(const VmmCommandOptions& options);

}  // namespace nimbus::cli
