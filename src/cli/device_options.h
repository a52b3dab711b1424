// Parsing of `nimbus run`'s device flags:
//   --disk PATH[,format=raw|qcow2][,readonly]
//   --net SPEC[,mac=52:54:00:12:34:56]   (SPEC as backends::open_net takes it)
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "backends/block/block_backend.h"
#include "common/status.h"

namespace nimbus::cli {

Result<backends::DiskOptions> parse_disk_option(const std::string& text);

struct NetOption {
  std::string spec;  // what open_net parses (without mac=)
  std::array<uint8_t, 6> mac{};
  bool mac_given = false;
};
Result<NetOption> parse_net_option(const std::string& text);

// "52:54:00:12:34:56"; multicast addresses are refused (a NIC cannot own one).
Result<std::array<uint8_t, 6>> parse_mac(const std::string& text);

}  // namespace nimbus::cli
