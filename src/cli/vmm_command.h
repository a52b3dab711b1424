// `nimbus vmm`: one VM process controlled over an API socket (Firecracker-style). The flags
// are declared here; the VMM itself is vmm::run_vmm (src/vmm/vmm_main.h).
#pragma once

#include <CLI/CLI.hpp>

#include "vmm/vmm_main.h"

namespace nimbus::cli {

struct VmmCommandOptions {
  vmm::VmmMainOptions main;
  // Install the VMM seccomp filter (sandbox/sandbox.h) once the sockets are open.
  bool sandbox = false;
};

void add_vmm_command(CLI::App& app, VmmCommandOptions& options);
int vmm_command(const VmmCommandOptions& options);

}  // namespace nimbus::cli
