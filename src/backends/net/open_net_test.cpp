#include <gtest/gtest.h>

#include "backends/net/net_backend.h"

namespace nimbus::backends {
namespace {

UserNetOptions user(const std::string& spec) {
  auto parsed = parse_net_spec(spec);
  EXPECT_TRUE(parsed.ok()) << spec << ": " << parsed.message();
  if (!parsed.ok()) return {};
  EXPECT_TRUE(std::holds_alternative<UserNetOptions>(*parsed));
  return std::get<UserNetOptions>(*parsed);
}

std::string error_of(const std::string& spec) {
  auto parsed = parse_net_spec(spec);
  EXPECT_FALSE(parsed.ok()) << spec << " should be rejected";
  return parsed.ok() ? "" : parsed.message();
}

TEST(OpenNetTest, UserDefaults) {
  UserNetOptions o = user("user");
  EXPECT_EQ(o.network, 0x0a000200u);
  EXPECT_EQ(o.prefix_len, 24);
  EXPECT_TRUE(o.forwards.empty());
}

TEST(OpenNetTest, HostForwardDefaultsToLoopbackAndDhcpAddress) {
  UserNetOptions o = user("user,hostfwd=tcp::8080-:80");
  ASSERT_EQ(o.forwards.size(), 1u);
  EXPECT_FALSE(o.forwards[0].udp);
  EXPECT_EQ(o.forwards[0].host_addr, 0x7f000001u);
  EXPECT_EQ(o.forwards[0].host_port, 8080);
  EXPECT_EQ(o.forwards[0].guest_addr, 0x0a00020fu);
  EXPECT_EQ(o.forwards[0].guest_port, 80);
}

TEST(OpenNetTest, HostForwardExplicitAddressesAndUdp) {
  UserNetOptions o =
      user("user,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,hostfwd=tcp:127.0.0.2:2222-:22");
  ASSERT_EQ(o.forwards.size(), 2u);
  EXPECT_TRUE(o.forwards[0].udp);
  EXPECT_EQ(o.forwards[0].host_addr, 0u);
  EXPECT_EQ(o.forwards[0].host_port, 5353);
  EXPECT_EQ(o.forwards[0].guest_addr, 0x0a000214u);
  EXPECT_EQ(o.forwards[0].guest_port, 53);
  EXPECT_EQ(o.forwards[1].host_addr, 0x7f000002u);
  EXPECT_EQ(o.forwards[1].guest_port, 22);
}

TEST(OpenNetTest, CustomNetworkMovesTheDefaultGuestAddress) {
  // net= after hostfwd still applies to it.
  UserNetOptions o = user("user,hostfwd=tcp::8080-:80,net=192.168.76.0/24");
  EXPECT_EQ(o.network, 0xc0a84c00u);
  ASSERT_EQ(o.forwards.size(), 1u);
  EXPECT_EQ(o.forwards[0].guest_addr, 0xc0a84c0fu);
}

TEST(OpenNetTest, Switch) {
  auto parsed = parse_net_spec("switch,path=/run/nimbus/net0.sock");
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  ASSERT_TRUE(std::holds_alternative<SwitchNetOptions>(*parsed));
  EXPECT_EQ(std::get<SwitchNetOptions>(*parsed).path, "/run/nimbus/net0.sock");
}

TEST(OpenNetTest, BadSpecsNameTheBadPart) {
  struct Case {
    const char* spec;
    const char* message;
  };
  const Case cases[] = {
      {"", "missing network type"},
      {"tap,ifname=tap0", "unknown network type 'tap'"},
      {"user,foo=1", "unknown option 'foo' for user networking"},
      {"user,hostfwd", "option 'hostfwd' needs a value"},
      {"user,", "empty option"},
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
  };
  for (const Case& c : cases) {
    std::string message = error_of(c.spec);
    EXPECT_NE(message.find(c.message), std::string::npos)
        << "spec '" << c.spec << "' gave '" << message << "', expected it to contain '" << c.message
        << "'";
  }
}

TEST(OpenNetTest, OpenNetReportsParseErrors) {
  auto backend = open_net("user,hostfwd=tcp::0-:80");
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.message().find("bad host port '0'"), std::string::npos) << backend.message();
}

TEST(OpenNetTest, OpenNetCreatesUserBackend) {
  auto backend = open_net("user");
  ASSERT_TRUE(backend.ok()) << backend.message();
  EXPECT_NE(backend->get(), nullptr);
}

}  // namespace
}  // namespace nimbus::backends
