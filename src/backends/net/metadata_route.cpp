#include "backends/net/metadata_route.h"

namespace nimbus::backends {

namespace {

constexpr size_t kEthHeader = 14;
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint8_t kProtoTcp = 6;
constexpr size_t kMinIpHeader = 20, kMinTcpHeader = 20;
constexpr uint32_t kLinkLocalNet = 0xa9fe0000, kLinkLocalMask = 0xffff0000;  // 169.254.0.0/16

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for each 16-bit word m that becomes m'.
uint16_t adjust(uint16_t check, uint16_t from, uint16_t to) {
  uint32_t sum = static_cast<uint16_t>(~check);
  sum += static_cast<uint16_t>(~from);
  sum += to;
  return static_cast<uint16_t>(~checksum_fold(sum));
}
uint16_t adjust32(uint16_t check, uint32_t from, uint32_t to) {
  check = adjust(check, static_cast<uint16_t>(from >> 16), static_cast<uint16_t>(to >> 16));
  return adjust(check, static_cast<uint16_t>(from), static_cast<uint16_t>(to));
}

// An IPv4 packet in a frame, its header checked against the frame's length.
struct Ipv4 {
  uint8_t* ip = nullptr;
  size_t header_len = 0, total_len = 0;
  uint8_t protocol() const { return ip[9]; }
  uint32_t src() const { return be32(ip + 12); }
  uint32_t dst() const { return be32(ip + 16); }
  bool fragment() const { return (be16(ip + 6) & 0x3fff) != 0; }  // MF or an offset
  // The TCP header, if the packet is a whole TCP segment with room for one.
  uint8_t* tcp() const {
    if (protocol() != kProtoTcp || fragment() || total_len < header_len + kMinTcpHeader)
      return nullptr;
    return ip + header_len;
  }
};

enum class Parse { kNotIpv4, kMalformed, kOk };

Parse parse_ipv4(uint8_t* frame, size_t len, Ipv4& out) {
  if (frame == nullptr || len < kEthHeader) return Parse::kMalformed;
  if (be16(frame + 12) != kEtherTypeIpv4) return Parse::kNotIpv4;
  if (len < kEthHeader + kMinIpHeader) return Parse::kMalformed;
  uint8_t* ip = frame + kEthHeader;
  const size_t header_len = size_t{ip[0] & 0x0fu} * 4;
  const size_t total_len = be16(ip + 2);
  if ((ip[0] >> 4) != 4 || header_len < kMinIpHeader || total_len < header_len ||
      total_len > len - kEthHeader) {
    return Parse::kMalformed;
  }
  out = Ipv4{ip, header_len, total_len};
  return Parse::kOk;
}

}  // namespace

uint32_t checksum_add(uint32_t sum, const uint8_t* data, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += be16(data + i);
  if (len % 2 != 0) sum += uint32_t{data[len - 1]} << 8;
  return sum;
}

uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint32_t metadata_internal_address(const config::UserNetwork& net) {
  const uint32_t host_mask = net.prefix_len >= 32 ? 0 : ~uint32_t{0} >> net.prefix_len;
  const uint32_t last = host_mask - 1;  // below the broadcast address
  return net.network | (last > 30 ? last : 14);
}

FrameVerdict route_from_guest(uint8_t* frame, size_t len, uint32_t internal, bool serving) {
  Ipv4 p;
  switch (parse_ipv4(frame, len, p)) {
    case Parse::kNotIpv4:
      return FrameVerdict::kPass;
    case Parse::kMalformed:
      return FrameVerdict::kDrop;
    case Parse::kOk:
      break;
  }
  const uint32_t dst = p.dst();
  // The stand-in address has one way in: through 169.254.169.254.
  if (dst == internal) return FrameVerdict::kDrop;
  if ((dst & kLinkLocalMask) != kLinkLocalNet) return FrameVerdict::kPass;
  uint8_t* tcp = p.tcp();
  if (!serving || dst != kMetadataAddress || tcp == nullptr || be16(tcp + 2) != kMetadataPort)
    return FrameVerdict::kDrop;
  put32(p.ip + 16, internal);
  put16(p.ip + 10, adjust32(be16(p.ip + 10), dst, internal));
  // The TCP checksum covers the addresses through its pseudo-header.
  put16(tcp + 16, adjust32(be16(tcp + 16), dst, internal));
  return FrameVerdict::kRewritten;
}

bool is_from_internal(const uint8_t* frame, size_t len, uint32_t internal) {
  return frame != nullptr && len >= kEthHeader + kMinIpHeader &&
         be16(frame + 12) == kEtherTypeIpv4 && be32(frame + kEthHeader + 12) == internal;
}

FrameVerdict route_to_guest(uint8_t* frame, size_t len, uint32_t internal, uint8_t hop_limit) {
  Ipv4 p;
  switch (parse_ipv4(frame, len, p)) {
    case Parse::kNotIpv4:
      return FrameVerdict::kPass;
    case Parse::kMalformed:
      return FrameVerdict::kDrop;
    case Parse::kOk:
      break;
  }
  const uint32_t src = p.src();
  if (src != internal) return FrameVerdict::kPass;
  uint8_t* tcp = p.tcp();
  if (tcp == nullptr || be16(tcp) != kMetadataPort) return FrameVerdict::kDrop;
  put32(p.ip + 12, kMetadataAddress);
  uint16_t ip_check = adjust32(be16(p.ip + 10), src, kMetadataAddress);
  const uint16_t ttl_word = be16(p.ip + 8);  // TTL, protocol
  const uint16_t new_ttl_word = static_cast<uint16_t>(hop_limit << 8 | (ttl_word & 0xff));
  put16(p.ip + 8, new_ttl_word);
  ip_check = adjust(ip_check, ttl_word, new_ttl_word);
  put16(p.ip + 10, ip_check);
  put16(tcp + 16, adjust32(be16(tcp + 16), src, kMetadataAddress));
  return FrameVerdict::kRewritten;
}

}  // namespace nimbus::backends
