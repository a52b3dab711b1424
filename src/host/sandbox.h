// Moved to sandbox/sandbox.h (the VMM and nimbusd both use it). This forwarder lasts until
// the VMM's entry point (issue 15 item 4) is committed with the new include; then it goes.
#pragma once

#include "sandbox/sandbox.h"

namespace nimbus::host {
using sandbox::drop_privileges_in_child;
using sandbox::install_vmm_seccomp_filter;
using sandbox::seccomp_supported;
}  // namespace nimbus::host
