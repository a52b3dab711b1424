// The guest's way to the instance metadata service at 169.254.169.254:80 on a user-mode
// (slirp) network. libslirp forwards guest connections only to addresses inside its own
// network (check_guestfwd), so the service is registered at an unused address of the
// network (metadata_internal_address: 10.0.2.254 on the default /24) with slirp_add_unix,
// which opens a new connection to the VMM's own unix socket for each guest connection; and
// the frames between the guest and slirp are rewritten here:
//
//   guest -> slirp  TCP to 169.254.169.254:80     destination becomes INTERNAL:80
//                   anything else to 169.254.0.0/16 (other ports, UDP, ICMP, fragments),
//                   and anything to INTERNAL itself                          dropped
//   slirp -> guest  TCP from INTERNAL:80          source becomes 169.254.169.254:80,
//                                                 TTL the hop limit
//                   anything else from INTERNAL                              dropped
//
// So the guest reaches the VMM's metadata server and nothing else: never the host's own
// link-local services (a cloud host's metadata service included), never another VM's.
// Checksums are updated incrementally (RFC 1624), so a packet that arrived with a bad one
// keeps a bad one (and slirp or the guest drops it). IPv4 frames that are not well formed
// (short, bad header length or total length) are dropped; everything else passes untouched.
// Pure functions over one Ethernet frame: any bytes are safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/devices.h"

namespace nimbus::backends {

constexpr uint32_t kMetadataAddress = 0xa9fea9fe;  // 169.254.169.254
constexpr uint16_t kMetadataPort = 80;

// The network's address standing in for 169.254.169.254: the last host address below the
// broadcast (10.0.2.254 on 10.0.2.0/24) when that is above slirp's DHCP range (.15 to
// .30), else .14 (a /27).
uint32_t metadata_internal_address(const config::UserNetwork& net);

// The metadata service as the network backends see it, shared with the VMM that serves it
// (vmm/imds_server.h), which changes `serving` and `hop_limit` while the VM runs; the
// backends read them for each packet.
struct MetadataLink {
  std::string socket_path;  // the VMM's metadata server; slirp connects once per connection
  std::atomic<bool> serving{false};  // false: the guest's packets to the service are dropped
  std::atomic<uint8_t> hop_limit{1};
};

enum class FrameVerdict { kPass, kRewritten, kDrop };

// Guest -> slirp, in place. With `serving` false (no metadata service) TCP to the service
// is dropped too.
FrameVerdict route_from_guest(uint8_t* frame, size_t len, uint32_t internal, bool serving);

// Slirp -> guest, in place; `hop_limit` (1-255) becomes the TTL of the service's packets.
FrameVerdict route_to_guest(uint8_t* frame, size_t len, uint32_t internal, uint8_t hop_limit);

// Whether route_to_guest would look at this frame at all (an IPv4 packet from `internal`):
// lets the caller copy only those.
bool is_from_internal(const uint8_t* frame, size_t len, uint32_t internal);

// The Internet checksum (RFC 1071) of `len` bytes, folded, not complemented, added to
// `sum`; for tests and callers that build packets.
uint32_t checksum_add(uint32_t sum, const uint8_t* data, size_t len);
uint16_t checksum_fold(uint32_t sum);

}  // namespace nimbus::backends
