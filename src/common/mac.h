// Ethernet MAC addresses as users write them: "52:54:00:12:34:56".
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace nimbus {

using MacAddress = std::array<uint8_t, 6>;

// Multicast addresses are refused (a NIC cannot own one).
Result<MacAddress> parse_mac(const std::string& text);
std::string format_mac(const MacAddress& mac);
// A random locally administered unicast MAC in QEMU's 52:54:00 range, so that VMs sharing
// a switch never clash by default.
MacAddress random_mac();

}  // namespace nimbus
