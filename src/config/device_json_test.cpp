#include "config/device_json.h"

#include <gtest/gtest.h>

#include "config/device_flags.h"

namespace nimbus::config {
namespace {

std::string nic_error(const std::string& text) {
  auto parsed = nic_from_json(json::parse(text), "");
  EXPECT_FALSE(parsed.ok()) << text << " should be refused";
  return parsed.ok() ? "" : parsed.message();
}

TEST(DeviceJson, DiskRoundTrip) {
  DiskSpec d{"rootfs", "/var/vm/disk.qcow2", true, false, "qcow2"};
  auto back = disk_from_json(to_json(d), "");
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, d);
  // The path's id fills an absent drive_id; a different one is refused.
  auto by_path = disk_from_json(json{{"path_on_host", "a.img"}}, "data");
  ASSERT_TRUE(by_path.ok()) << by_path.message();
  EXPECT_EQ(by_path->id, "data");
  EXPECT_EQ(by_path->format, "auto");
  EXPECT_NE(disk_from_json(json{{"drive_id", "x"}, {"path_on_host", "a"}}, "y")
                .message()
                .find("does not match"),
            std::string::npos);
}

TEST(DeviceJson, DiskErrorsNameTheField) {
  EXPECT_NE(
      disk_from_json(json{{"drive_id", "d"}}, "").message().find("'path_on_host' is required"),
      std::string::npos);
  EXPECT_NE(disk_from_json(json{{"drive_id", "d"}, {"path_on_host", "a"}, {"format", "vmdk"}}, "")
                .message()
                .find("format 'vmdk' is not auto, raw or qcow2"),
            std::string::npos);
  EXPECT_NE(disk_from_json(json{{"drive_id", "d"}, {"path_on_host", "a"}, {"cache", 1}}, "")
                .message()
                .find("unknown field 'cache'"),
            std::string::npos);
  EXPECT_NE(disk_from_json(json{{"drive_id", "a/b"}, {"path_on_host", "a"}}, "")
                .message()
                .find("drive_id 'a/b'"),
            std::string::npos);
}

TEST(DeviceJson, NicRoundTrip) {
  NicSpec n;
  n.id = "eth0";
  n.network = "192.168.76.0/24";
  n.forwards = {{"tcp", "127.0.0.1", 8080, "", 80}, {"udp", "", 5353, "192.168.76.20", 53}};
  n.mac = "52:54:00:12:34:56";
  auto back = nic_from_json(to_json(n), "");
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, n);
  NicSpec sw;
  sw.id = "eth1";
  sw.mode = "switch";
  sw.switch_path = "/run/sw";
  sw.mac = "52:54:00:80:00:02";
  back = nic_from_json(to_json(sw), "");
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, sw);
  EXPECT_FALSE(to_json(sw).contains("mtu"));
  sw.mtu = 1450;
  EXPECT_EQ(to_json(sw)["mtu"], 1450);
  back = nic_from_json(to_json(sw), "");
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, sw);
}

// What nimbusd writes (no "network" key for the default network) is what it always wrote.
TEST(DeviceJson, DefaultNetworkIsNotWritten) {
  NicSpec n;
  n.id = "eth0";
  n.mac = "52:54:00:80:00:02";
  n.forwards = {{"tcp", "0.0.0.0", 8080, "", 80}};
  EXPECT_EQ(to_json(n),
            json::parse(R"({"iface_id": "eth0", "mode": "user", "guest_mac": "52:54:00:80:00:02",
                            "host_forwards": [{"protocol": "tcp", "host_address": "0.0.0.0",
                                               "host_port": 8080, "guest_port": 80}]})"));
}

// A --net flag and its JSON form are the same NIC.
TEST(DeviceJson, FlagAndJsonAgree) {
  auto flag = parse_net_flag(
      "user,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,net=10.0.2.0/24,mac=52:54:00:00:00:07");
  ASSERT_TRUE(flag.ok()) << flag.message();
  flag->id = "eth0";
  auto json_form = nic_from_json(to_json(*flag), "");
  ASSERT_TRUE(json_form.ok()) << json_form.message();
  EXPECT_EQ(*json_form, *flag);
}

TEST(DeviceJson, NicErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"iface_id": "e", "mode": "tap"})", "mode 'tap' is not user or switch"},
      {R"({"iface_id": "e", "mode": "switch"})", "mode switch needs switch_path"},
      {R"({"iface_id": "e", "switch_path": "/x"})", "switch_path is only for mode switch"},
      {R"({"iface_id": "e", "mode": "switch", "switch_path": "/x", "network": "10.0.2.0/24"})",
       "network is only for mode user"},
      {R"({"iface_id": "e", "network": "10.0.2.1/24"})", "host bits set"},
      {R"({"iface_id": "e", "host_forwards": {}})", "host_forwards must be an array"},
      {R"({"iface_id": "e", "host_forwards": [{"host_port": 0, "guest_port": 80}]})",
       "host_forwards[0]: 'host_port'"},
      {R"({"iface_id": "e", "host_forwards": [{"host_port": 80}]})", "'guest_port' is required"},
      {R"({"iface_id": "e", "host_forwards": [{"protocol": "sctp", "host_port": 1, "guest_port": 1}]})",
       "protocol 'sctp' is not tcp or udp"},
      {R"({"iface_id": "e", "host_forwards": [{"host_address": "localhost", "host_port": 1, "guest_port": 1}]})",
       "host_address 'localhost' is not an IPv4 address"},
      {R"({"iface_id": "e", "guest_mac": "01:00:5e:00:00:01"})", "guest_mac"},
      {R"({"iface_id": "e", "mtu": 67})", "mtu must be"},
      {R"({"iface_id": "e", "mtu": 65536})", "mtu must be"},
      {R"({"iface_id": "e", "mtu": "1450"})", "mtu must be"},
      {R"({"iface_id": "e", "mtu": -1})", "mtu must be"},
  };
  for (const Case& c : cases) {
    const std::string message = nic_error(c.json);
    EXPECT_NE(message.find(c.message), std::string::npos) << c.json << " gave '" << message << "'";
  }
}

TEST(DeviceJson, ForwardsAreCheckedAgainstTheNetworkBeforeUse) {
  // The JSON form checks fields; the forwards against each other and the network are
  // checked where the backend is opened (check_user_forwards), with a message naming them.
  auto n = nic_from_json(json::parse(R"({"iface_id": "e", "host_forwards": [
      {"host_port": 8080, "guest_port": 80}, {"host_address": "127.0.0.1", "host_port": 8080, "guest_port": 81}]})"),
                         "");
  ASSERT_TRUE(n.ok()) << n.message();
  EXPECT_NE(check_user_forwards(*n).message().find("host port 8080 is forwarded twice"),
            std::string::npos);
  n->forwards = {{"tcp", "", 8080, "192.168.1.5", 80}};
  EXPECT_NE(check_user_forwards(*n).message().find(
                "guest address 192.168.1.5 is outside the user network 10.0.2.0/24"),
            std::string::npos);
  n->forwards = {{"tcp", "", 8080, "10.0.2.99", 80}};
  EXPECT_TRUE(check_user_forwards(*n).ok());
}

}  // namespace
}  // namespace nimbus::config
