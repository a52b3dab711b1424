#include "backends/net/metadata_route.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace nimbus::backends {
namespace {

constexpr uint32_t kGuest = 0x0a00020f;     // 10.0.2.15
constexpr uint32_t kInternal = 0x0a0002fe;  // 10.0.2.254
constexpr uint32_t kOutside = 0x5db8d822;   // 93.184.216.34

struct Packet {
  uint32_t src = kGuest, dst = kMetadataAddress;
  uint8_t protocol = 6;  // TCP
  uint16_t sport = 40000, dport = 80;
  uint8_t ttl = 64;
  uint16_t frag = 0x4000;        // DF
  std::vector<uint8_t> options;  // IP options (a multiple of 4 bytes)
  std::string payload = "GET /latest/meta-data/ HTTP/1.0\r\n\r\n";
};

void put16(std::vector<uint8_t>& f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}
void put32(std::vector<uint8_t>& f, size_t at, uint32_t v) {
  put16(f, at, static_cast<uint16_t>(v >> 16));
  put16(f, at + 2, static_cast<uint16_t>(v));
}
uint16_t get16(const std::vector<uint8_t>& f, size_t at) {
  return static_cast<uint16_t>(f[at] << 8 | f[at + 1]);
}
uint32_t get32(const std::vector<uint8_t>& f, size_t at) {
  return uint32_t{get16(f, at)} << 16 | get16(f, at + 2);
}

// An Ethernet frame with correct IPv4 and TCP (or UDP) checksums.
std::vector<uint8_t> frame(const Packet& p) {
  const size_t ihl = 20 + p.options.size();
  const size_t l4 = (p.protocol == 17 ? 8 : 20) + p.payload.size();
  std::vector<uint8_t> f(14 + ihl + l4, 0);
  for (int i = 0; i < 6; i++) f[i] = 0x52, f[6 + i] = 0x54;
  put16(f, 12, 0x0800);
  const size_t ip = 14;
  f[ip] = static_cast<uint8_t>(0x40 | ihl / 4);
  put16(f, ip + 2, static_cast<uint16_t>(ihl + l4));
  put16(f, ip + 4, 0x1234);
  put16(f, ip + 6, p.frag);
  f[ip + 8] = p.ttl;
  f[ip + 9] = p.protocol;
  put32(f, ip + 12, p.src);
  put32(f, ip + 16, p.dst);
  std::copy(p.options.begin(), p.options.end(), f.begin() + ip + 20);
  put16(f, ip + 10, static_cast<uint16_t>(~checksum_fold(checksum_add(0, &f[ip], ihl))));
  const size_t t = ip + ihl;
  put16(f, t, p.sport);
  put16(f, t + 2, p.dport);
  if (p.protocol == 17) {
    put16(f, t + 4, static_cast<uint16_t>(l4));
  } else {
    put32(f, t + 4, 1000);  // seq
    f[t + 12] = 0x50;       // data offset 5
    f[t + 13] = 0x18;       // PSH ACK
    put16(f, t + 14, 65535);
  }
  std::copy(p.payload.begin(), p.payload.end(), f.begin() + t + (p.protocol == 17 ? 8 : 20));
  if (p.protocol == 6 || p.protocol == 17) {
    uint32_t sum = checksum_add(0, &f[ip + 12], 8);  // pseudo-header: addresses,
    sum += p.protocol + static_cast<uint32_t>(l4);   // protocol and length
    sum = checksum_add(sum, &f[t], l4);
    put16(f, t + (p.protocol == 17 ? 6 : 16), static_cast<uint16_t>(~checksum_fold(sum)));
  }
  return f;
}

bool ip_checksum_ok(const std::vector<uint8_t>& f) {
  const size_t ihl = size_t{f[14] & 0x0fu} * 4;
  return checksum_fold(checksum_add(0, &f[14], ihl)) == 0xffff;
}

bool tcp_checksum_ok(const std::vector<uint8_t>& f) {
  const size_t ihl = size_t{f[14] & 0x0fu} * 4;
  const size_t l4 = get16(f, 16) - ihl;
  uint32_t sum = checksum_add(0, &f[14 + 12], 8);
  sum += 6 + static_cast<uint32_t>(l4);
  sum = checksum_add(sum, &f[14 + ihl], l4);
  return checksum_fold(sum) == 0xffff;
}

FrameVerdict from_guest(std::vector<uint8_t>& f, bool serving = true) {
  return route_from_guest(f.data(), f.size(), kInternal, serving);
}

TEST(MetadataRoute, InternalAddressIsUnusedInsideTheNetwork) {
  EXPECT_EQ(metadata_internal_address({0x0a000200, 24}), kInternal);
  EXPECT_EQ(metadata_internal_address({0x0a000000, 8}), 0x0afffffeu);
  EXPECT_EQ(metadata_internal_address({0xc0a86400, 26}), 0xc0a8643eu);  // .62
  EXPECT_EQ(metadata_internal_address({0xc0a86400, 27}), 0xc0a8640eu);  // .14: DHCP uses .15-.30
}

TEST(MetadataRoute, GuestToServiceGoesToTheInternalAddressWithValidChecksums) {
  for (const std::vector<uint8_t>& options :
       {std::vector<uint8_t>{}, std::vector<uint8_t>{1, 1, 1, 0},  // NOPs, EOL
        std::vector<uint8_t>(40, 1)}) {                            // the longest header
    Packet p;
    p.options = options;
    auto f = frame(p);
    ASSERT_TRUE(ip_checksum_ok(f) && tcp_checksum_ok(f));
    const auto before = f;
    ASSERT_EQ(from_guest(f), FrameVerdict::kRewritten);
    const size_t ihl = 20 + options.size();
    EXPECT_EQ(get32(f, 14 + 16), kInternal);
    EXPECT_EQ(get32(f, 14 + 12), kGuest);
    EXPECT_EQ(get16(f, 14 + ihl + 2), 80);
    EXPECT_TRUE(ip_checksum_ok(f)) << options.size();
    EXPECT_TRUE(tcp_checksum_ok(f)) << options.size();
    // Only the address and the two checksums changed.
    size_t changed = 0;
    for (size_t i = 0; i < f.size(); i++) changed += f[i] != before[i];
    EXPECT_LE(changed, 8u);
  }
}

TEST(MetadataRoute, ServiceToGuestComesFrom169254169254WithTheHopLimit) {
  Packet p;
  p.src = kInternal;
  p.dst = kGuest;
  p.sport = 80;
  p.dport = 40000;
  p.payload = "HTTP/1.1 200 OK\r\n\r\ni-0123";
  for (uint8_t hops : {uint8_t{1}, uint8_t{2}, uint8_t{64}}) {
    auto f = frame(p);
    ASSERT_TRUE(is_from_internal(f.data(), f.size(), kInternal));
    ASSERT_EQ(route_to_guest(f.data(), f.size(), kInternal, hops), FrameVerdict::kRewritten);
    EXPECT_EQ(get32(f, 14 + 12), kMetadataAddress);
    EXPECT_EQ(get32(f, 14 + 16), kGuest);
    EXPECT_EQ(f[14 + 8], hops);
    EXPECT_EQ(f[14 + 9], 6);
    EXPECT_TRUE(ip_checksum_ok(f));
    EXPECT_TRUE(tcp_checksum_ok(f));
  }
}

TEST(MetadataRoute, RoundTripRestoresTheAddresses) {
  // Many random packets: the rewrite there and the rewrite back keep checksums valid.
  std::mt19937 rng(17);
  for (int i = 0; i < 500; i++) {
    Packet p;
    p.sport = static_cast<uint16_t>(rng());
    p.payload.assign(rng() % 300, '\0');
    for (char& c : p.payload) c = static_cast<char>(rng());
    p.ttl = static_cast<uint8_t>(rng() % 255 + 1);
    auto f = frame(p);
    ASSERT_EQ(from_guest(f), FrameVerdict::kRewritten);
    ASSERT_TRUE(ip_checksum_ok(f) && tcp_checksum_ok(f)) << i;
    Packet back = p;
    back.src = kInternal;
    back.dst = kGuest;
    back.sport = 80;
    back.dport = p.sport;
    auto g = frame(back);
    ASSERT_EQ(route_to_guest(g.data(), g.size(), kInternal, 1), FrameVerdict::kRewritten);
    ASSERT_TRUE(ip_checksum_ok(g) && tcp_checksum_ok(g)) << i;
  }
}

TEST(MetadataRoute, ABadChecksumStaysBad) {
  Packet p;
  auto f = frame(p);
  f[f.size() - 1] ^= 0x55;  // the payload changed after the checksum
  ASSERT_FALSE(tcp_checksum_ok(f));
  ASSERT_EQ(from_guest(f), FrameVerdict::kRewritten);
  EXPECT_FALSE(tcp_checksum_ok(f));
}

TEST(MetadataRoute, EverythingElseToLinkLocalIsDropped) {
  auto drop = [](Packet p, bool serving = true) {
    auto f = frame(p);
    const auto before = f;
    EXPECT_EQ(from_guest(f, serving), FrameVerdict::kDrop);
    EXPECT_EQ(f, before);  // untouched
  };
  Packet other_port;
  other_port.dport = 443;
  drop(other_port);
  Packet udp;
  udp.protocol = 17;
  drop(udp);
  Packet icmp;
  icmp.protocol = 1;
  drop(icmp);
  Packet other_link_local;
  other_link_local.dst = 0xa9fea9fd;  // 169.254.169.253 (a cloud's DNS)
  drop(other_link_local);
  Packet ecs;
  ecs.dst = 0xa9feaa02;  // 169.254.170.2
  drop(ecs);
  Packet first_fragment;
  first_fragment.frag = 0x2000;  // MF
  drop(first_fragment);
  Packet later_fragment;
  later_fragment.frag = 0x0010;
  drop(later_fragment);
  // No metadata service: even port 80 is dropped.
  drop(Packet{}, false);
  // The stand-in address is not reachable directly, whatever the protocol.
  Packet direct;
  direct.dst = kInternal;
  drop(direct);
  direct.protocol = 1;
  drop(direct);
}

TEST(MetadataRoute, OtherTrafficPassesUntouched) {
  Packet out;
  out.dst = kOutside;
  out.dport = 80;
  auto f = frame(out);
  const auto before = f;
  EXPECT_EQ(from_guest(f), FrameVerdict::kPass);
  EXPECT_EQ(f, before);
  // From outside to the guest: not the service.
  Packet in = out;
  in.src = kOutside;
  in.dst = kGuest;
  auto g = frame(in);
  EXPECT_FALSE(is_from_internal(g.data(), g.size(), kInternal));
  EXPECT_EQ(route_to_guest(g.data(), g.size(), kInternal, 1), FrameVerdict::kPass);
  // ARP and IPv6 frames.
  std::vector<uint8_t> arp(42, 0);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_EQ(route_from_guest(arp.data(), arp.size(), kInternal, true), FrameVerdict::kPass);
  EXPECT_EQ(route_to_guest(arp.data(), arp.size(), kInternal, 1), FrameVerdict::kPass);
  std::vector<uint8_t> v6(60, 0);
  v6[12] = 0x86, v6[13] = 0xdd;
  EXPECT_EQ(route_from_guest(v6.data(), v6.size(), kInternal, true), FrameVerdict::kPass);
}

TEST(MetadataRoute, OnlyTheServicePortLeavesTheInternalAddress) {
  Packet p;
  p.src = kInternal;
  p.dst = kGuest;
  p.sport = 81;
  auto f = frame(p);
  EXPECT_EQ(route_to_guest(f.data(), f.size(), kInternal, 1), FrameVerdict::kDrop);
  p.sport = 80;
  p.protocol = 17;
  auto u = frame(p);
  EXPECT_EQ(route_to_guest(u.data(), u.size(), kInternal, 1), FrameVerdict::kDrop);
}

TEST(MetadataRoute, MalformedFramesAreDroppedNeverRead) {
  auto good = frame(Packet{});
  // Every truncation of a good frame.
  for (size_t len = 0; len < good.size(); len++) {
    std::vector<uint8_t> f(good.begin(), good.begin() + static_cast<long>(len));
    const FrameVerdict v = route_from_guest(f.empty() ? nullptr : f.data(), len, kInternal, true);
    EXPECT_EQ(v, FrameVerdict::kDrop) << len;
    if (len > 0) (void)route_to_guest(f.data(), len, kInternal, 1);
  }
  auto mutate = [&](auto&& change) {
    auto f = good;
    change(f);
    return from_guest(f);
  };
  EXPECT_EQ(mutate([](auto& f) { f[14] = 0x45 + 0x10; }), FrameVerdict::kDrop);  // version 5
  EXPECT_EQ(mutate([](auto& f) { f[14] = 0x44; }), FrameVerdict::kDrop);         // IHL 16 bytes
  EXPECT_EQ(mutate([](auto& f) { f[14] = 0x4f; }), FrameVerdict::kDrop);  // options past the end
  EXPECT_EQ(mutate([](auto& f) { put16(f, 16, 0xffff); }), FrameVerdict::kDrop);  // too long
  EXPECT_EQ(mutate([](auto& f) { put16(f, 16, 10); }), FrameVerdict::kDrop);  // below the header
  EXPECT_EQ(mutate([](auto& f) { put16(f, 16, 30); }), FrameVerdict::kDrop);  // no whole TCP header
  // Ethernet padding after the packet is fine.
  auto padded = good;
  padded.resize(padded.size() + 20, 0);
  EXPECT_EQ(from_guest(padded), FrameVerdict::kRewritten);
  // Random bytes: never a crash, never a read past the end (ASan checks).
  std::mt19937 rng(4);
  for (int i = 0; i < 20000; i++) {
    std::vector<uint8_t> f(rng() % 120);
    for (auto& b : f) b = static_cast<uint8_t>(rng());
    if (f.size() >= 14 && rng() % 2) f[12] = 0x08, f[13] = 0x00;
    if (f.size() >= 15 && rng() % 2) f[14] = 0x45;
    if (f.size() >= 34 && rng() % 2) put32(f, 30, kMetadataAddress);
    (void)route_from_guest(f.data(), f.size(), kInternal, true);
    if (f.size() >= 30 && rng() % 2) put32(f, 26, kInternal);
    (void)route_to_guest(f.data(), f.size(), kInternal, 1);
  }
}

}  // namespace
}  // namespace nimbus::backends
