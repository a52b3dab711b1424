// The last bytes of a VM's serial console log, for `GET /v1/vms/NAME/console-output` (the
// control plane's GetConsoleOutput). Reads at most `max_bytes` from the end of the file,
// never the whole file: a guest can write gigabytes to its console.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace nimbus::host {

// EC2 returns the most recent 64 KiB of console output.
inline constexpr size_t kConsoleOutputBytes = 64 * 1024;

struct ConsoleTail {
  std::string output;      // raw bytes (the API edge replaces invalid UTF-8)
  bool truncated = false;  // the log is longer than what was read
};

// An absent log is empty output (the VM never started); other I/O errors are kInternal.
Result<ConsoleTail> read_console_tail(const std::string& path, size_t max_bytes);

}  // namespace nimbus::host
