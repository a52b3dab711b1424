#include "common/mac.h"

#include <sys/random.h>
#include <unistd.h>

#include <cstdio>

namespace nimbus {

Result<MacAddress> parse_mac(const std::string& text) {
  MacAddress mac{};
  unsigned v[6];
  char tail;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5], &tail) != 6 ||
      text.size() != 17) {
    return Status::error("'" + text + "' is not a MAC address (like 52:54:00:12:34:56)");
  }
  for (int i = 0; i < 6; i++) mac[i] = static_cast<uint8_t>(v[i]);
  if (mac[0] & 1)
    return Status::error("'" + text + "' is a multicast MAC address; a card needs a unicast one");
  return mac;
}

std::string format_mac(const MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

MacAddress random_mac() {
  MacAddress mac = {0x52, 0x54, 0x00, 0, 0, 0};
  if (getrandom(&mac[3], 3, 0) != 3) {
    const uint32_t v = static_cast<uint32_t>(getpid()) * 2654435761u;
    mac[3] = static_cast<uint8_t>(v >> 16);
    mac[4] = static_cast<uint8_t>(v >> 8);
    mac[5] = static_cast<uint8_t>(v);
  }
  return mac;
}

}  // namespace nimbus
