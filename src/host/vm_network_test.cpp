#include "host/vm_network.h"

#include <gtest/gtest.h>

namespace nimbus::host {
namespace {

using nlohmann::json;

TEST(VmNetwork, ParsesTheCreateBodysNetwork) {
  auto n = parse_vm_network(json::parse(
      R"({"vni": 100, "address": "172.31.16.5/20", "gateway": "172.31.16.1", "mtu": 1450})"));
  ASSERT_TRUE(n.ok()) << n.message();
  EXPECT_EQ(n->vni, 100u);
  EXPECT_EQ(n->address, "172.31.16.5/20");
  EXPECT_EQ(n->gateway, "172.31.16.1");
  EXPECT_EQ(n->mtu, 1450u);
  EXPECT_EQ(network_mac(*n), "52:54:ac:1f:10:05");
  EXPECT_EQ(network_host_address(*n), "172.31.16.5");
  EXPECT_EQ(network_ip_arg(*n, "web"), "ip=172.31.16.5::0.0.0.0:255.255.240.0:web:eth1:off");
  EXPECT_EQ(network_switch_path("/s", 100), "/s/net/vni-100");
  // Only vni and address are required; the largest VNI.
  auto m = parse_vm_network(json::parse(R"({"vni": 16777215, "address": "10.1.0.9/16"})"));
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->mtu, 1500u);
  EXPECT_EQ(m->gateway, "");
  // What the state database keeps reads back the same.
  EXPECT_EQ(network_from_text(network_to_text(*n)), *n);
  EXPECT_EQ(network_from_text(network_to_text(*m)), *m);
  EXPECT_FALSE(network_from_text(""));
  EXPECT_FALSE(network_from_text("{garbage"));
  EXPECT_FALSE(network_from_text(R"({"vni": 0, "address": "172.31.16.5/20"})"));
}

TEST(VmNetwork, RefusesBadValues) {
  for (const char* bad : {
           R"([])",
           R"("vni")",
           R"({})",
           R"({"address": "172.31.16.5/20"})",
           R"({"vni": 100})",
           R"({"vni": 0, "address": "172.31.16.5/20"})",
           R"({"vni": 16777216, "address": "172.31.16.5/20"})",
           R"({"vni": -1, "address": "172.31.16.5/20"})",
           R"({"vni": 1.5, "address": "172.31.16.5/20"})",
           R"({"vni": "100", "address": "172.31.16.5/20"})",
           R"({"vni": 100, "address": "172.31.16.5"})",
           R"({"vni": 100, "address": "172.31.16.5/"})",
           R"({"vni": 100, "address": "172.31.16.5/7"})",
           R"({"vni": 100, "address": "172.31.16.5/31"})",
           R"({"vni": 100, "address": "172.31.16.5/020"})",
           R"({"vni": 100, "address": "172.31.16.5/2x"})",
           R"({"vni": 100, "address": "172.31.16.256/20"})",
           R"({"vni": 100, "address": "172.031.16.5/20"})",
           R"({"vni": 100, "address": " 172.31.16.5/20"})",
           R"({"vni": 100, "address": "172.31.16.0/20"})",    // the network address
           R"({"vni": 100, "address": "172.31.31.255/20"})",  // broadcast
           R"({"vni": 100, "address": "127.0.0.5/8"})",
           R"({"vni": 100, "address": "169.254.1.5/16"})",
           R"({"vni": 100, "address": "224.0.0.5/24"})",
           R"({"vni": 100, "address": "0.1.2.3/8"})",
           R"({"vni": 100, "address": "10.0.2.20/24"})",  // eth0's user network
           R"({"vni": 100, "address": "10.0.9.20/16"})",  // a subnet around it
           R"({"vni": 100, "address": 5})",
           R"({"vni": 100, "address": "172.31.16.5/20", "gateway": "172.31.32.1"})",
           R"({"vni": 100, "address": "172.31.16.5/20", "gateway": "172.31.16.5"})",
           R"({"vni": 100, "address": "172.31.16.5/20", "gateway": "172.31.16.0"})",
           R"({"vni": 100, "address": "172.31.16.5/20", "gateway": 1})",
           R"({"vni": 100, "address": "172.31.16.5/20", "gateway": "gw"})",
           R"({"vni": 100, "address": "172.31.16.5/20", "mtu": 575})",
           R"({"vni": 100, "address": "172.31.16.5/20", "mtu": 9001})",
           R"({"vni": 100, "address": "172.31.16.5/20", "mtu": "1450"})",
           R"({"vni": 100, "address": "172.31.16.5/20", "vpc": "x"})",
       }) {
    auto n = parse_vm_network(json::parse(bad));
    EXPECT_FALSE(n.ok()) << bad;
    if (!n.ok()) {
      EXPECT_EQ(n.code(), Code::kInvalidArgument) << bad;
    }
  }
}

TEST(VmNetwork, ParsesPeerLists) {
  auto p = parse_tunnel_peers(json::parse(
      R"([{"host": "h2", "endpoint": "192.0.2.2:4789"}, {"host": "h3", "endpoint": "192.0.2.3:4789"}])"));
  ASSERT_TRUE(p.ok()) << p.message();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[1].host, "h3");
  EXPECT_EQ(to_json(*p), json::parse(R"([{"host": "h2", "endpoint": "192.0.2.2:4789"},
                                         {"host": "h3", "endpoint": "192.0.2.3:4789"}])"));
  for (const char* bad :
       {R"({})", R"("x")", R"([1])", R"([{"host": "h2"}])", R"([{"host": "h2", "endpoint": 4789}])",
        R"([{"host": "h2", "endpoint": "192.0.2.2:4789", "x": 1}])"}) {
    EXPECT_FALSE(parse_tunnel_peers(json::parse(bad)).ok()) << bad;
  }
}

}  // namespace
}  // namespace nimbus::host
