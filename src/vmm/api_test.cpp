#include "vmm/api.h"

#include <gtest/gtest.h>

#include "vmm/recording_vmm.h"

namespace nimbus::vmm {
namespace {

using FakeVmm = RecordingVmm;


TEST(Api, ConfiguresDrivesAndNics) {
  FakeVmm vmm;
  EXPECT_EQ(handle_request(vmm, "PUT", "/machine-config", R"({"vcpu_count": 4, "mem_size_mib": 512})").status, 204);
  EXPECT_EQ(handle_request(vmm, "PATCH", "/machine-config", R"({"mem_size_mib": 1024})").status, 204);
  EXPECT_EQ(vmm.config_.vcpus, 4u);
  EXPECT_EQ(vmm.config_.mem_mib, 1024u);
  EXPECT_EQ(handle_request(vmm, "PUT", "/drives/root", R"({"drive_id": "root", "path_on_host": "/d.qcow2", "is_root_device": true})").status, 204);
  EXPECT_EQ(handle_request(vmm, "PUT", "/drives/root", R"({"path_on_host": "/e.qcow2"})").status, 204);
  ASSERT_EQ(vmm.config_.drives.size(), 1u);  // replaced, not added
  EXPECT_EQ(vmm.config_.drives[0].path, "/e.qcow2");
  EXPECT_EQ(handle_request(vmm, "PUT", "/network-interfaces/eth0",
                           R"({"host_forwards": [{"host_port": 8080, "guest_port": 80}]})").status,
            204);
  ASSERT_EQ(vmm.config_.nics.size(), 1u);
  EXPECT_EQ(vmm.config_.nics[0].forwards[0].host_port, 8080);
  EXPECT_EQ(vmm.config_.nics[0].mac.substr(0, 8), "52:54:00");  // a random MAC was chosen
  ApiResponse list = handle_request(vmm, "GET", "/drives", "");
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.body[0]["path_on_host"], "/e.qcow2");
  EXPECT_EQ(handle_request(vmm, "DELETE", "/drives/root", "").status, 204);
  EXPECT_EQ(handle_request(vmm, "DELETE", "/drives/root", "").status, 404);
}

TEST(Api, TypedCalls) {
  FakeVmm vmm;
  handle_request(vmm, "PUT", "/actions", R"({"action_type": "Shutdown", "timeout_s": 2.5})");
  EXPECT_EQ(vmm.last, "action 2 2.500000");
  handle_request(vmm, "PATCH", "/vm", R"({"state": "Paused"})");
  EXPECT_EQ(vmm.last, "pause");
  handle_request(vmm, "PUT", "/snapshot/load", R"({"snapshot_path": "/s", "resume_vm": true})");
  EXPECT_EQ(vmm.last, "load /s resume");
  handle_request(vmm, "PATCH", "/drives/root", R"({"size_mib": 2})");
  EXPECT_EQ(vmm.last, "resize root 2097152");
}

TEST(Api, RefusesWhileRunningAndKeepsConfig) {
  FakeVmm vmm;
  vmm.running = true;
  EXPECT_EQ(handle_request(vmm, "PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 128})").status, 409);
  EXPECT_EQ(vmm.config_.vcpus, 1u);
}

TEST(Api, ErrorsAlwaysCarryAMessage) {
  FakeVmm vmm;
  for (const auto& [method, path, body] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"PUT", "/machine-config", "{"},
           {"PUT", "/machine-config", R"({"vcpu_count": -1, "mem_size_mib": 128})"},
           {"PUT", "/machine-config", R"({"vcpu_count": 1.5, "mem_size_mib": 128})"},
           {"PUT", "/drives/a", R"({"drive_id": "a", "path_on_host": "/x", "format": "vmdk"})"},
           {"PUT", "/network-interfaces/n", R"({"mode": "switch"})"},
           {"POST", "/vm", "{}"},
           {"GET", "/nope", ""},
           {"PUT", "/drives/\xff\xfe", "{}"},
       }) {
    ApiResponse r = handle_request(vmm, method, path, body);
    EXPECT_GE(r.status, 400) << method << " " << path << " " << body;
    EXPECT_TRUE(r.body.contains("fault_message")) << method << " " << path;
    EXPECT_FALSE(dump_json(r.body).empty());  // invalid UTF-8 in a message must not throw
  }
}

TEST(VmConfig, DocumentRoundTrip) {
  const char* text = R"({
    "machine-config": {"vcpu_count": 2, "mem_size_mib": 384},
    "boot-source": {"kernel_image_path": "/k", "boot_args": "console=ttyS0"},
    "drives": [{"drive_id": "root", "path_on_host": "/r.qcow2", "is_root_device": true, "format": "qcow2"}],
    "network-interfaces": [{"iface_id": "eth0", "guest_mac": "52:54:00:aa:bb:cc",
                            "host_forwards": [{"protocol": "udp", "host_port": 5353, "guest_port": 53}]}],
    "entropy": false})";
  auto c = parse_vm_config(json::parse(text));
  ASSERT_TRUE(c.ok()) << c.message();
  auto again = parse_vm_config(to_json(*c));
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(to_json(*again), to_json(*c));
  EXPECT_EQ(again->nics[0].mac, "52:54:00:aa:bb:cc");
  EXPECT_EQ(again->nics[0].forwards[0].protocol, "udp");
  EXPECT_FALSE(again->entropy);
  EXPECT_FALSE(parse_vm_config(json::parse(R"({"drives": [{"drive_id": "a", "path_on_host": "/x"},
                                                          {"drive_id": "a", "path_on_host": "/y"}]})"))
                   .ok());
}

}  // namespace
}  // namespace nimbus::vmm
