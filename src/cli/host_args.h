// Local validation of the host verbs' arguments, so a typo gets a clear message before any
// request goes to nimbusd (which checks everything again).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nimbus::cli {

// Names of VMs, images and snapshots: 1-63 characters of [a-z0-9-], starting with a
// letter. `what` names the thing in the message ("VM name", "snapshot name").
Status check_name(const std::string& name, const std::string& what = "VM name");

// A size in MiB: "256M", "2G", "1GiB", or a plain number of MiB ("512"). Must be a whole,
// non-zero number of MiB.
Result<uint64_t> parse_mib(const std::string& text);

}  // namespace nimbus::cli
