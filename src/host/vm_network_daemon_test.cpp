// A VM on a private network through nimbusd (fake VMM processes): eth1 on the network's
// switch STATE_DIR/net/vni-N with its address, what is saved and shown, refusals; the
// tunnel (--tunnel-listen) joins the networks of the VMs, now and after a restart, and
// takes its peers from PUT /v1/network/peers.
#include <fstream>

#include "config/vm_config.h"
#include "host/daemon_test_fixture.h"
#include "host/host_api.h"
#include "host/host_json.h"

namespace nimbus::host {
namespace {

using config::json;

config::VmConfig vm_config(const std::string& state_dir, const std::string& vm) {
  std::ifstream in(state_dir + "/vms/" + vm + "/config.json");
  auto c = config::parse_vm_config(json::parse(in));
  EXPECT_TRUE(c.ok()) << c.message();
  return c.ok() ? *c : config::VmConfig{};
}

class NetworkTest : public DaemonTest {
 protected:
  Result<VmInfo> create_on(const std::string& name, uint32_t vni, const std::string& address) {
    CreateRequest r;
    r.name = name;
    r.memory_mib = 128;
    r.network = VmNetwork{vni, address, "", 1450};
    return daemon->create_vm(r);
  }
  json api(const std::string& method, const std::string& path, const std::string& body,
           int* status) {
    HostResponse r = handle_host_request(*daemon, method, path, body);
    *status = r.status;
    return json::parse(r.body, nullptr, false);
  }
};

TEST_F(NetworkTest, Eth1JoinsTheNetworksSwitchWithItsAddress) {
  auto a = create_on("a", 100, "172.31.0.10/20");
  ASSERT_TRUE(a.ok()) << a.message();
  const config::VmConfig c = vm_config(options.state_dir, "a");
  ASSERT_EQ(c.nics.size(), 2u);
  EXPECT_EQ(c.nics[1].switch_path, options.state_dir + "/net/vni-100");
  EXPECT_EQ(c.nics[1].mac, "52:54:ac:1f:00:0a");
  EXPECT_TRUE(contains(c.boot_args, " ip=172.31.0.10::0.0.0.0:255.255.240.0:a:eth1:off"))
      << c.boot_args;
  EXPECT_TRUE(std::filesystem::is_directory(options.state_dir + "/net/vni-100.d"));
  // Shown, and kept across a restart of nimbusd.
  json j = to_json(*a);
  EXPECT_EQ(j["network"]["vni"], 100);
  EXPECT_EQ(j["network"]["address"], "172.31.0.10/20");
  EXPECT_EQ(j["network"]["mtu"], 1450);
  EXPECT_EQ(j["addresses"]["private"], "172.31.0.10");
  EXPECT_TRUE(j["addresses"]["host"].is_null());
  EXPECT_EQ(j["macs"]["host"], "52:54:ac:1f:00:0a");
  restart_daemon();
  auto again = daemon->get_vm("a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->record.network, (VmNetwork{100, "172.31.0.10/20", "", 1450}));
  // A VM without "network" is on the host network as before.
  VmInfo plain = create("plain");
  EXPECT_FALSE(plain.record.network);
  EXPECT_EQ(vm_config(options.state_dir, "plain").nics[1].switch_path,
            options.state_dir + "/net/hostnet");
  EXPECT_EQ(to_json(plain)["addresses"]["host"], plain.host_address);
}

TEST_F(NetworkTest, AnAddressIsOneVmsInItsNetwork) {
  ASSERT_TRUE(create_on("a", 100, "172.31.0.10/20").ok());
  auto dup = create_on("b", 100, "172.31.0.10/24");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.code(), Code::kConflict);
  EXPECT_FALSE(daemon->get_vm("b").ok()) << "nothing created";
  // The same address in another network is another VM's.
  EXPECT_TRUE(create_on("c", 200, "172.31.0.10/20").ok());
}

TEST_F(NetworkTest, BadNetworkIs400AndChangesNothing) {
  int status = 0;
  const auto before = daemon->list_vms()->size();
  json r = api("POST", "/v1/vms",
               R"({"name": "x", "network": {"vni": 100, "address": "10.0.2.20/24"}})", &status);
  EXPECT_EQ(status, 400) << r.dump();
  EXPECT_EQ(daemon->list_vms()->size(), before);
  EXPECT_FALSE(std::filesystem::exists(options.state_dir + "/vms/x"));
}

TEST_F(NetworkTest, WithoutATunnelPeersAreRefused) {
  int status = 0;
  json r = api("GET", "/v1/network", "", &status);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(r["tunnel"].is_null()) << r.dump();
  r = api("PUT", "/v1/network/peers", R"({"peers": []})", &status);
  EXPECT_EQ(status, 409) << r.dump();
}

TEST_F(NetworkTest, TheTunnelJoinsTheVmsNetworksAndTakesPeers) {
  options.tunnel_listen = "127.0.0.1:0";
  restart_daemon();
  ASSERT_TRUE(create_on("a", 100, "172.31.0.10/20").ok());
  int status = 0;
  json r = api("GET", "/v1/network", "", &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(r["tunnel"]["networks"], json::array({100})) << r.dump();
  EXPECT_EQ(r["tunnel"]["peers"], json::array());
  const std::string self = r["tunnel"]["endpoint"];
  EXPECT_EQ(self, r["tunnel"]["listen"]);
  EXPECT_EQ(daemon->tunnel_endpoint(), self);
  r = api("PUT", "/v1/network/peers",
          R"({"peers": [{"host": "h2", "endpoint": "127.0.0.1:4789"},
                        {"host": "me", "endpoint": ")" +
              self + R"("}]})",
          &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["tunnel"]["peers"], json::parse(R"([{"host": "h2", "endpoint": "127.0.0.1:4789"}])"));
  // A bad set is refused whole.
  r = api("PUT", "/v1/network/peers", R"({"peers": [{"host": "h3", "endpoint": "127.0.0.1:0"}]})",
          &status);
  EXPECT_EQ(status, 400) << r.dump();
  EXPECT_EQ(daemon->network_info()->peers.size(), 1u);
  // A new nimbusd joins the networks of the VMs it finds.
  restart_daemon();
  EXPECT_EQ(daemon->network_info()->vnis, std::vector<uint32_t>{100});
  EXPECT_TRUE(contains(daemon->metrics(), "nimbus_tunnel_packets_total{kind=\"rx_malformed\"} 0"));
}

}  // namespace
}  // namespace nimbus::host
