#include "config/device_flags.h"

#include <gtest/gtest.h>

namespace nimbus::config {
namespace {

NicSpec nic(const std::string& text) {
  auto parsed = parse_net_flag(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.message();
  return parsed.ok() ? *parsed : NicSpec{};
}

std::string error_of(const std::string& text) {
  auto parsed = parse_net_flag(text);
  EXPECT_FALSE(parsed.ok()) << text << " should be refused";
  return parsed.ok() ? "" : parsed.message();
}

TEST(DiskFlag, Parses) {
  auto d = parse_disk_flag("disk.qcow2,format=qcow2,readonly");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->path, "disk.qcow2");
  EXPECT_EQ(d->format, "qcow2");
  EXPECT_TRUE(d->read_only);
  d = parse_disk_flag("plain.img,readonly=on,format=raw");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->format, "raw");
  EXPECT_TRUE(d->read_only);
  d = parse_disk_flag("plain.img");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->format, "auto");
  EXPECT_FALSE(d->read_only);
  EXPECT_FALSE(d->root);  // the caller's, by position
}

TEST(DiskFlag, RefusesBadInput) {
  EXPECT_NE(parse_disk_flag("").message().find("no file given"), std::string::npos);
  EXPECT_NE(parse_disk_flag(",format=raw").message().find("no file given"), std::string::npos);
  EXPECT_NE(parse_disk_flag("a.img,format=vmdk").message().find("unknown format 'vmdk'"),
            std::string::npos);
  EXPECT_NE(parse_disk_flag("a.img,cache=none").message().find("unknown option 'cache=none'"),
            std::string::npos);
  EXPECT_EQ(parse_disk_flag("a.img,").message().rfind("--disk 'a.img,'", 0), 0u);
}

TEST(NetFlag, UserDefaults) {
  NicSpec n = nic("user");
  EXPECT_EQ(n.mode, "user");
  EXPECT_TRUE(n.network.empty());
  EXPECT_TRUE(n.forwards.empty());
  EXPECT_EQ(n.mac.substr(0, 9), "52:54:00:");  // a random MAC in QEMU's range
  const UserNetwork net = user_network_of(n);
  EXPECT_EQ(net.network, 0x0a000200u);
  EXPECT_EQ(net.prefix_len, 24);
}

TEST(NetFlag, HostForwardDefaultsToLoopbackAndDhcpAddress) {
  NicSpec n = nic("user,hostfwd=tcp::8080-:80");
  ASSERT_EQ(n.forwards.size(), 1u);
  const PortForward& f = n.forwards[0];
  EXPECT_EQ(f.protocol, "tcp");
  EXPECT_EQ(f.host_address, "");
  EXPECT_EQ(host_ipv4(f), 0x7f000001u);
  EXPECT_EQ(f.host_port, 8080);
  EXPECT_EQ(guest_ipv4(f, user_network_of(n)), 0x0a00020fu);
  EXPECT_EQ(f.guest_port, 80);
}

TEST(NetFlag, HostForwardExplicitAddressesAndUdp) {
  NicSpec n = nic("user,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,hostfwd=tcp:127.0.0.2:2222-:22");
  ASSERT_EQ(n.forwards.size(), 2u);
  EXPECT_EQ(n.forwards[0].protocol, "udp");
  EXPECT_EQ(host_ipv4(n.forwards[0]), 0u);
  EXPECT_EQ(n.forwards[0].host_port, 5353);
  EXPECT_EQ(guest_ipv4(n.forwards[0], user_network_of(n)), 0x0a000214u);
  EXPECT_EQ(n.forwards[0].guest_port, 53);
  EXPECT_EQ(host_ipv4(n.forwards[1]), 0x7f000002u);
  EXPECT_EQ(n.forwards[1].guest_port, 22);
}

TEST(NetFlag, CustomNetworkMovesTheDefaultGuestAddress) {
  // net= after hostfwd still applies to it.
  NicSpec n = nic("user,hostfwd=tcp::8080-:80,net=192.168.76.0/24");
  EXPECT_EQ(n.network, "192.168.76.0/24");
  EXPECT_EQ(user_network_of(n).network, 0xc0a84c00u);
  ASSERT_EQ(n.forwards.size(), 1u);
  EXPECT_EQ(guest_ipv4(n.forwards[0], user_network_of(n)), 0xc0a84c0fu);
}

TEST(NetFlag, SwitchAndMac) {
  NicSpec n = nic("switch,path=/run/nimbus/net0.sock,mac=52:54:00:AB:cd:ef");
  EXPECT_EQ(n.mode, "switch");
  EXPECT_EQ(n.switch_path, "/run/nimbus/net0.sock");
  EXPECT_EQ(n.mac, "52:54:00:ab:cd:ef");
  // mac= may come first.
  EXPECT_EQ(nic("mac=52:54:00:00:00:01,user").mac, "52:54:00:00:00:01");
}

TEST(NetFlag, BadSpecsNameTheBadPart) {
  struct Case {
    const char* spec;
    const char* message;
  };
  const Case cases[] = {
      {"", "no backend given"},
      {"mac=52:54:00:ab:cd:ef", "no backend given"},
      {",user", "missing network type"},
      {"tap,ifname=tap0", "unknown network type 'tap'"},
      {"user,foo=1", "unknown option 'foo' for user networking"},
      {"user,hostfwd", "option 'hostfwd' needs a value"},
      {"user,", "empty option"},
      {"user,,hostfwd=tcp::80-:80", "empty option"},
      {"user,hostfwd=sctp::80-:80", "unknown protocol 'sctp'"},
      {"user,hostfwd=tcp", "expected PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"},
      {"user,hostfwd=tcp::8080", "expected PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"},
      {"user,hostfwd=tcp::0-:80", "bad host port '0' (expected 1-65535)"},
      {"user,hostfwd=tcp::65536-:80", "bad host port '65536'"},
      {"user,hostfwd=tcp::80x-:80", "bad host port '80x'"},
      {"user,hostfwd=tcp::-:80", "bad host port ''"},
      {"user,hostfwd=tcp::8080-:0", "bad guest port '0'"},
      {"user,hostfwd=tcp::8080-:99999", "bad guest port '99999'"},
      {"user,hostfwd=tcp:1.2.3:8080-:80", "bad host address '1.2.3'"},
      {"user,hostfwd=tcp:localhost:8080-:80", "bad host address 'localhost'"},
      {"user,hostfwd=tcp::8080-10.0.2.256:80", "bad guest address '10.0.2.256'"},
      {"user,hostfwd=tcp::8080-8080", "guest part '8080' is not [ADDR]:PORT"},
      {"user,hostfwd=tcp::8080-192.168.1.5:80",
       "guest address 192.168.1.5 is outside the user network 10.0.2.0/24"},
      {"user,hostfwd=tcp::8080-:80,hostfwd=tcp::8080-:81", "host port 8080 is forwarded twice"},
      // 127.0.0.1 is the default host address: the same listener.
      {"user,hostfwd=tcp::8080-:80,hostfwd=tcp:127.0.0.1:8080-:81",
       "host port 8080 is forwarded twice"},
      {"user,net=10.0.2.0", "net=10.0.2.0: expected ADDR/PREFIX"},
      {"user,net=10.0.2.0/30", "bad prefix length '30'"},
      {"user,net=10.0.2.0/x", "bad prefix length 'x'"},
      {"user,net=10.0.2.1/24", "host bits set (did you mean 10.0.2.0/24?)"},
      {"user,net=300.0.2.0/24", "bad address '300.0.2.0'"},
      {"user,net=10.0.2.0/24,net=10.0.3.0/24", "net= given twice"},
      {"switch", "switch needs path=SOCKET"},
      {"switch,path=", "switch path is empty"},
      {"switch,path=/a,path=/b", "path= given twice"},
      {"switch,path=/a,mode=hub", "unknown option 'mode' for a switch"},
      {"user,mac=52:54:00:ab:cd", "--net: "},
      {"user,mac=52:54:00:ab:cd:zz", "--net: "},
      {"user,mac=01:00:5e:00:00:01", "--net: "},  // multicast
  };
  for (const Case& c : cases) {
    const std::string message = error_of(c.spec);
    EXPECT_NE(message.find(c.message), std::string::npos)
        << "spec '" << c.spec << "' gave '" << message << "', expected it to contain '" << c.message
        << "'";
    EXPECT_EQ(message.rfind("--net", 0), 0u) << message;  // every error names the flag
  }
}

TEST(ForwardFlag, ForwardHostAndGuestPort) {
  auto f = parse_forward_flag("8080:80");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->host_port, 8080);
  EXPECT_EQ(f->guest_port, 80);
  EXPECT_EQ(f->protocol, "tcp");
  EXPECT_EQ(f->host_address, "0.0.0.0");
  EXPECT_EQ(f->guest_address, "");  // the guest's DHCP address
}

TEST(ForwardFlag, ForwardAddressAndProtocol) {
  auto f = parse_forward_flag("127.0.0.1:5353:53/udp");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->host_address, "127.0.0.1");
  EXPECT_EQ(f->host_port, 5353);
  EXPECT_EQ(f->guest_port, 53);
  EXPECT_EQ(f->protocol, "udp");
  ASSERT_TRUE(parse_forward_flag("1:65535/tcp").ok());
}

TEST(ForwardFlag, ForwardErrors) {
  struct Case {
    const char* text;
    const char* needle;
  };
  for (const Case& c :
       {Case{"8080", "is not [ADDRESS:]HOST_PORT:GUEST_PORT"},
        Case{"8080:", "guest port '' is not a number"}, Case{":80", "host port '' is not a number"},
        Case{"0:80", "out of range"}, Case{"8080:65536", "out of range"},
        Case{"8080:99999999999", "out of range"},
        Case{"http:80", "host port 'http' is not a number"}, Case{"8080:80/sctp", "tcp or udp"},
        Case{"localhost:8080:80", "not an IPv4 address"},
        Case{"1.2.3:8080:80", "not an IPv4 address"}, Case{":8080:80", "not an IPv4 address"},
        Case{"-1:80", "not a number"}}) {
    auto f = parse_forward_flag(c.text);
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_NE(f.message().find(c.needle), std::string::npos) << c.text << ": " << f.message();
    EXPECT_NE(f.message().find(c.text), std::string::npos)
        << "the message quotes the flag: " << f.message();
  }
}

}  // namespace
}  // namespace nimbus::config
