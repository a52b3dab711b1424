// Parsing of `nimbus run`'s device flags:
//   --disk PATH[,format=raw|qcow2][,readonly]
//   --net SPEC[,mac=52:54:00:12:34:56]   (SPEC as backends::open_net takes it)
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "backends/block/block_backend.h"
#include "common/mac.h"
#include "common/status.h"

namespace nimbus::cli {

Result<backends::DiskOptions> parse_disk_option(const std::string& text);

struct NetOption {
  std::string spec;  // what open_net parses (without mac=)
  std::array<uint8_t, 6> mac{};
  bool mac_given = false;
};
Result<NetOption> parse_net_option(const std::string& text);

using ::nimbus::parse_mac;

}  // namespace nimbus::cli
