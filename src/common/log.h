// One logger for Nimbus's programs (nimbusd, the VMM): spdlog's default logger, writing
// "TIME LEVEL PROGRAM: message" lines to stderr (nimbusd's terminal or journal; a VMM's
// vmm.log). Messages about one VM name it first ("vm web1: ..."), so a log can be grepped
// by VM. Use spdlog's functions directly: spdlog::info("vm {}: started", name).
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace nimbus::log {

// Installs the default logger for `program` at `level` ("trace", "debug", "info", "warn",
// "error", "off"). Safe to call again (tests); the last call wins.
Status init(std::string_view program, std::string_view level = "info");

// The level names init() accepts, for --log-level help texts.
constexpr std::string_view kLevels = "trace|debug|info|warn|error|off";

}  // namespace nimbus::log
