#include "vmm/api.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "vmm/config_edits.h"
#include "vmm/recording_vmm.h"

namespace nimbus::vmm {
namespace {

using FakeVmm = RecordingVmm;

TEST(Api, ConfiguresDrivesAndNics) {
  FakeVmm vmm;
  EXPECT_EQ(
      handle_request(vmm, "PUT", "/machine-config", R"({"vcpu_count": 4, "mem_size_mib": 512})")
          .status,
      204);
  EXPECT_EQ(handle_request(vmm, "PATCH", "/machine-config", R"({"mem_size_mib": 1024})").status,
            204);
  EXPECT_EQ(vmm.config_.vcpus, 4u);
  EXPECT_EQ(vmm.config_.mem_mib, 1024u);
  EXPECT_EQ(
      handle_request(vmm, "PUT", "/drives/root",
                     R"({"drive_id": "root", "path_on_host": "/d.qcow2", "is_root_device": true})")
          .status,
      204);
  EXPECT_EQ(handle_request(vmm, "PUT", "/drives/root", R"({"path_on_host": "/e.qcow2"})").status,
            204);
  ASSERT_EQ(vmm.config_.drives.size(), 1u);  // replaced, not added
  EXPECT_EQ(vmm.config_.drives[0].path, "/e.qcow2");
  EXPECT_EQ(handle_request(vmm, "PUT", "/network-interfaces/eth0",
                           R"({"host_forwards": [{"host_port": 8080, "guest_port": 80}]})")
                .status,
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
  EXPECT_EQ(vmm.last, "shutdown 2.500000");
  handle_request(vmm, "PATCH", "/vm", R"({"state": "Paused"})");
  EXPECT_EQ(vmm.last, "pause");
  handle_request(vmm, "PUT", "/snapshot/load", R"({"snapshot_path": "/s", "resume_vm": true})");
  EXPECT_EQ(vmm.last, "load /s resume");
  handle_request(vmm, "PATCH", "/drives/root", R"({"size_mib": 2})");
  EXPECT_EQ(vmm.last, "resize root 2097152");
}

// Every route that reaches the VMM, with a body the edge accepts.
struct Route {
  std::string method, path, body, call;  // call: what the fake records
};

std::vector<Route> vmm_routes() {
  return {
      {"PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 128})", "machine-config"},
      {"PATCH", "/machine-config", R"({"mem_size_mib": 512})", "machine-config"},
      {"PUT", "/boot-source", R"({"boot_args": "console=ttyS0"})", "boot-source"},
      {"PUT", "/drives/a", R"({"drive_id": "a", "path_on_host": "/x"})", "put drive a"},
      {"PATCH", "/drives/a", R"({"size_mib": 8})", "resize a 8388608"},
      {"DELETE", "/drives/a", "", "delete drive a"},
      {"PUT", "/network-interfaces/n", R"({"iface_id": "n"})", "put nic n"},
      {"PUT", "/network-interfaces/n/forwards", R"({"forwards": []})", "forwards n 0"},
      {"DELETE", "/network-interfaces/n", "", "delete nic n"},
      {"PUT", "/actions", R"({"action_type": "InstanceStart"})", "start"},
      {"PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})", "ctrl-alt-del"},
      {"PUT", "/actions", R"({"action_type": "Shutdown"})", "shutdown 30.000000"},
      {"PUT", "/actions", R"({"action_type": "Stop"})", "stop"},
      {"PATCH", "/vm", R"({"state": "Paused"})", "pause"},
      {"PATCH", "/vm", R"({"state": "Resumed"})", "resume"},
      {"PUT", "/snapshot/create", R"({"snapshot_path": "/s"})", "create /s"},
      {"PUT", "/snapshot/load", R"({"snapshot_path": "/s"})", "load /s"},
      {"PUT", "/mmds", R"({"meta-data": {"instance-id": "i-1"}, "user-data": "aGk="})", "mmds 2"},
      {"PATCH", "/mmds/config", R"({"http_tokens": "required"})", "mmds config required"},
      {"PUT", "/mmds/config", R"({"hop_limit": 2})", "mmds config optional"},
      {"PUT", "/migration", R"({"destination": "tcp:127.0.0.1:7000", "max_rounds": 5})",
       "migrate tcp:127.0.0.1:7000 100 5"},
      {"DELETE", "/migration", "", "cancel migration"},
      {"PUT", "/migration/incoming", R"({"listen": "unix:/m.sock"})", "incoming unix:/m.sock"},
  };
}

TEST(Api, EveryRouteMapsEachErrorCodeToItsStatus) {
  const std::vector<std::pair<Code, int>> codes = {
      {Code::kInvalidArgument, 400},  {Code::kNotFound, 404},
      {Code::kConflict, 409},         {Code::kPermissionDenied, 403},
      {Code::kUnimplemented, 501},    {Code::kUnavailable, 503},
      {Code::kDeadlineExceeded, 504}, {Code::kInsufficientCapacity, 507},
      {Code::kInternal, 500},         {Code::kUnknown, 400},
  };
  for (const Route& route : vmm_routes()) {
    for (const auto& [code, status] : codes) {
      FakeVmm vmm;
      const json before = to_json(vmm.config_);
      const std::string message = fmt::format("refused with {}", code_name(code));
      vmm.refuse = Status(code, message);
      ApiResponse r = handle_request(vmm, route.method, route.path, route.body);
      EXPECT_EQ(vmm.last, route.call) << route.method << " " << route.path;
      EXPECT_EQ(r.status, status) << route.method << " " << route.path << " " << code_name(code);
      EXPECT_EQ(r.body, json({{"fault_message", message}})) << route.method << " " << route.path;
      EXPECT_EQ(to_json(vmm.config_), before) << route.method << " " << route.path;
    }
  }
}

TEST(Api, EveryRouteRepliesWithItsTypedResult) {
  FakeVmm vmm;
  vmm.config_.drives.push_back({"a", "/x"});
  NetConfig nic;
  nic.id = "n";
  vmm.config_.nics.push_back(nic);
  const std::map<std::string, json> bodies = {
      {"resize a 8388608", {{"drive_id", "a"}, {"size_bytes", 8388608}}},
      {"shutdown 30.000000", {{"graceful", true}, {"seconds", 0.5}, {"last_stop", "poweroff"}}},
      {"create /s",
       {{"snapshot_path", "/s"},
        {"bytes", 4096},
        {"pages_stored", 1},
        {"pages_total", 2},
        {"seconds", 0.25}}},
      {"load /s", {{"state", "Paused"}, {"seconds", 0.25}}},
      {"incoming unix:/m.sock", {{"listen", "unix:/m.sock"}}},
      {"migrate tcp:127.0.0.1:7000 100 5", migration::to_json(migration::Progress{})},
  };
  for (const Route& route : vmm_routes()) {
    ApiResponse r = handle_request(vmm, route.method, route.path, route.body);
    EXPECT_EQ(vmm.last, route.call);
    auto it = bodies.find(route.call);
    if (route.call.rfind("migrate ", 0) == 0) {
      // Accepted: the migration runs on; the body is its progress.
      EXPECT_EQ(r.status, 202);
      EXPECT_EQ(r.body, it->second);
    } else if (it == bodies.end()) {
      EXPECT_EQ(r.status, 204) << route.method << " " << route.path << " " << dump_json(r.body);
      EXPECT_TRUE(r.body.is_null()) << route.method << " " << route.path;
    } else {
      EXPECT_EQ(r.status, 200) << route.method << " " << route.path;
      EXPECT_EQ(r.body, it->second) << route.method << " " << route.path;
    }
  }
}

TEST(Api, RefusedAtTheEdgeNeverReachTheVmm) {
  // Malformed requests: the edge answers (400, 404, 405, 413) and makes no call.
  for (const auto& [method, path, body, status] :
       std::vector<std::tuple<std::string, std::string, std::string, int>>{
           {"PUT", "/machine-config", "", 400},
           {"PUT", "/machine-config", "[1]", 400},
           {"PUT", "/machine-config", R"({"vcpu_count": 0, "mem_size_mib": 128})", 400},
           {"PUT", "/boot-source", R"({"kernel": "/k"})", 400},
           {"PUT", "/drives/a", R"({"drive_id": "b", "path_on_host": "/x"})", 400},
           {"PATCH", "/drives/a", R"({"size_mib": 0})", 400},
           {"PATCH", "/drives/a", R"({"drive_id": "b", "size_mib": 1})", 400},
           {"PUT", "/network-interfaces/n", R"({"mode": "carrier-pigeon"})", 400},
           {"PUT", "/actions", R"({"action_type": "Explode"})", 400},
           {"PUT", "/actions", R"({"action_type": "Stop", "timeout_s": 1})", 400},
           {"PUT", "/actions", R"({"action_type": "Shutdown", "timeout_s": 4000})", 400},
           {"PATCH", "/vm", R"({"state": "Running"})", 400},
           {"PUT", "/snapshot/create", R"({"snapshot_path": ""})", 400},
           {"PUT", "/snapshot/load", R"({"snapshot_path": "/s", "resume_vm": 1})", 400},
           {"PUT", "/snapshot/create", R"({"snapshot_path": "/s", "resume_vm": true})", 400},
           {"PUT", "/drives/bad id", R"({})", 404},
           {"PUT", "/network-interfaces/n/forwards", "", 400},
           {"PUT", "/network-interfaces/n/forwards", "{}", 400},
           {"PUT", "/network-interfaces/n/forwards", R"({"forwards": {}})", 400},
           {"PUT", "/network-interfaces/n/forwards", R"({"forwards": [], "x": 1})", 400},
           {"PUT", "/network-interfaces/n/forwards", R"({"forwards": [{"host_port": 1}]})", 400},
           {"PUT", "/network-interfaces/bad id/forwards", R"({"forwards": []})", 404},
           {"POST", "/network-interfaces/n/forwards", R"({"forwards": []})", 405},
           {"GET", "/nope", "", 404},
           {"PUT", "/", "{}", 405},
           {"GET", "/actions", "", 405},
           {"POST", "/drives/a", "{}", 405},
           {"PATCH", "/network-interfaces/n", "{}", 405},
           {"PUT", "/vm", "{}", 405},
           {"PUT", "/actions", std::string(kMaxRequestBody + 1, ' '), 413},
           {"PUT", "/mmds", "", 400},
           {"PUT", "/mmds", "[]", 400},
           {"PUT", "/mmds", R"({"user-data": "not base64!"})", 400},
           {"PUT", "/mmds", R"({"meta-data": {"a": 1}})", 400},
           {"PATCH", "/mmds/config", R"({"http_tokens": "maybe"})", 400},
           {"PATCH", "/mmds/config", R"({"data": {}})", 400},
           {"PUT", "/mmds/config", R"({"hop_limit": 65})", 400},
           {"GET", "/mmds", "", 404},
           {"GET", "/mmds/config", "", 404},
           {"POST", "/mmds", "{}", 405},
           {"PATCH", "/mmds", "{}", 405},
           {"DELETE", "/mmds/config", "", 405},
       }) {
    FakeVmm vmm;
    ApiResponse r = handle_request(vmm, method, path, body);
    EXPECT_EQ(r.status, status) << method << " " << path << " " << body.substr(0, 80);
    EXPECT_TRUE(r.body.contains("fault_message")) << method << " " << path;
    EXPECT_EQ(vmm.last, "") << method << " " << path << " reached the VMM";
  }
}

TEST(Api, MetadataDataAndOptionsRoundTrip) {
  FakeVmm vmm;
  const json data = {{"meta-data", {{"instance-id", "i-1"}}}};
  ASSERT_EQ(handle_request(vmm, "PUT", "/mmds", data.dump()).status, 204);
  ApiResponse r = handle_request(vmm, "GET", "/mmds", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, data);
  r = handle_request(vmm, "GET", "/mmds/config", "");
  EXPECT_EQ(r.body,
            json({{"http_tokens", "optional"}, {"http_endpoint", "enabled"}, {"hop_limit", 1}}));
  // PATCH keeps what it does not name; PUT resets it to the defaults.
  ASSERT_EQ(handle_request(vmm, "PATCH", "/mmds/config", R"({"http_tokens": "required"})").status,
            204);
  ASSERT_EQ(handle_request(vmm, "PATCH", "/mmds/config", R"({"hop_limit": 3})").status, 204);
  EXPECT_EQ(handle_request(vmm, "GET", "/mmds/config", "").body,
            json({{"http_tokens", "required"}, {"http_endpoint", "enabled"}, {"hop_limit", 3}}));
  ASSERT_EQ(handle_request(vmm, "PUT", "/mmds/config", R"({"http_endpoint": "disabled"})").status,
            204);
  EXPECT_EQ(handle_request(vmm, "GET", "/mmds/config", "").body,
            json({{"http_tokens", "optional"}, {"http_endpoint", "disabled"}, {"hop_limit", 1}}));
  // The whole configuration carries it.
  EXPECT_EQ(handle_request(vmm, "GET", "/vm/config", "").body["metadata"]["data"], data);
  // Options without a metadata section: the VMM says NotFound.
  FakeVmm empty;
  EXPECT_EQ(handle_request(empty, "PATCH", "/mmds/config", R"({"hop_limit": 3})").status, 404);
}

TEST(Api, InstanceInfoKeepsItsWireShape) {
  InstanceInfo info;
  info.id = "web1";
  info.state = VmState::kPaused;
  info.vmm_pid = 42;
  info.boots = 2;
  info.last_stop = "reboot";
  info.uptime_s = 1.5;
  info.shape = {2, 512};
  info.vcpus = {{0, 1000, "paused"}, {1, 7, "paused"}};
  info.vmm_rss_kib = 9000;
  info.agent_ready = true;
  info.drives = {{"root", "/r.qcow2", DriveStats{1, 2, 3, 4, 5, 6}},
                 {"data", "/d.raw", std::nullopt}};
  info.nics = {{"eth0", "52:54:00:00:00:01", NicStats{1, 2, 3, 4, 5, 6}}};
  info.virtio = {{0, 2, 0x4f, true}};
  const json want = json::parse(R"({
    "id": "web1", "state": "Paused", "vmm_pid": 42, "boots": 2, "last_stop": "reboot", "uptime_s": 1.5,
    "machine-config": {"vcpu_count": 2, "mem_size_mib": 512},
    "vcpus": [{"index": 0, "instructions": 1000, "state": "paused"}, {"index": 1, "instructions": 7, "state": "paused"}],
    "memory": {"guest_mib": 512, "vmm_rss_kib": 9000},
    "agent": {"ready": true},
    "devices": {
      "drives": [{"drive_id": "root", "path_on_host": "/r.qcow2", "read_requests": 1, "write_requests": 2,
                  "flush_requests": 3, "bytes_read": 4, "bytes_written": 5, "errors": 6},
                 {"drive_id": "data", "path_on_host": "/d.raw"}],
      "network-interfaces": [{"iface_id": "eth0", "guest_mac": "52:54:00:00:00:01", "rx_packets": 1, "rx_bytes": 2,
                              "rx_dropped": 3, "tx_packets": 4, "tx_bytes": 5, "tx_dropped": 6}],
      "virtio": [{"slot": 0, "device_id": 2, "status": 79, "needs_reset": true}]}})");
  EXPECT_EQ(to_json(info), want) << to_json(info).dump(2);
  FakeVmm vmm;
  ApiResponse r = handle_request(vmm, "GET", "/", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["state"], "NotStarted");
  EXPECT_EQ(r.body["id"], "fake");
}

TEST(Api, NicForwardsAreReplacedInAnyState) {
  FakeVmm vmm;
  ASSERT_EQ(handle_request(vmm, "PUT", "/network-interfaces/eth0",
                           R"({"host_forwards": [{"host_port": 8080, "guest_port": 80}]})")
                .status,
            204);
  vmm.running = true;  // the one configuration change a running VM takes
  ApiResponse r = handle_request(vmm, "PUT", "/network-interfaces/eth0/forwards", R"({"forwards": [
      {"host_address": "127.100.1.5", "host_port": 80, "guest_port": 80},
      {"protocol": "udp", "host_port": 5353, "guest_port": 53}]})");
  EXPECT_EQ(r.status, 204) << dump_json(r.body);
  ASSERT_EQ(vmm.config_.nics[0].forwards.size(), 2u);
  EXPECT_EQ(vmm.config_.nics[0].forwards[0], (HostForward{"tcp", "127.100.1.5", 80, "", 80}));
  EXPECT_EQ(vmm.config_.nics[0].forwards[1], (HostForward{"udp", "", 5353, "", 53}));
  r = handle_request(vmm, "GET", "/network-interfaces/eth0/forwards", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, json::parse(R"({"forwards": [
      {"protocol": "tcp", "host_address": "127.100.1.5", "host_port": 80, "guest_port": 80},
      {"protocol": "udp", "host_port": 5353, "guest_port": 53}]})"));
  // The configuration shows them too (a snapshot and the next boot use it).
  EXPECT_EQ(
      handle_request(vmm, "GET", "/vm/config", "").body["network-interfaces"][0]["host_forwards"],
      r.body["forwards"]);
  EXPECT_EQ(
      handle_request(vmm, "PUT", "/network-interfaces/eth0/forwards", R"({"forwards": []})").status,
      204);
  EXPECT_TRUE(vmm.config_.nics[0].forwards.empty());
}

TEST(Api, NicForwardsRefusedChangeNothing) {
  FakeVmm vmm;
  NetConfig user;
  user.id = "eth0";
  user.forwards = {{"tcp", "", 8080, "", 80}};
  NetConfig sw;
  sw.id = "eth1";
  sw.mode = "switch";
  sw.switch_path = "/run/sw";
  vmm.config_.nics = {user, sw};
  const json before = to_json(vmm.config_);
  for (
      const auto& [path, body, status, text] :
      std::vector<std::tuple<std::string, std::string, int, std::string>>{
          {"/network-interfaces/eth0/forwards",
           R"({"forwards": [{"host_port": 1, "guest_port": 2}, {"host_port": 1, "guest_port": 3}]})",
           400, "forwarded twice"},
          {"/network-interfaces/eth0/forwards",
           R"({"forwards": [{"host_port": 1, "guest_port": 2, "guest_address": "10.9.9.9"}]})", 400,
           "outside the user network"},
          {"/network-interfaces/eth0/forwards",
           R"({"forwards": [{"host_port": 70000, "guest_port": 2}]})", 400, "forwards[0]"},
          {"/network-interfaces/eth0/forwards",
           R"({"forwards": [{"host_port": 1, "guest_port": 2, "host_address": "localhost"}]})", 400,
           "not an IPv4 address"},
          {"/network-interfaces/eth1/forwards", R"({"forwards": []})", 400,
           "only a user-mode NIC has forwards"},
          {"/network-interfaces/eth9/forwards", R"({"forwards": []})", 404,
           "no network interface 'eth9'"},
      }) {
    ApiResponse r = handle_request(vmm, "PUT", path, body);
    EXPECT_EQ(r.status, status) << path << " " << body;
    EXPECT_NE(r.body.value("fault_message", "").find(text), std::string::npos) << dump_json(r.body);
    EXPECT_EQ(to_json(vmm.config_), before) << path << " " << body;
  }
  EXPECT_EQ(handle_request(vmm, "GET", "/network-interfaces/eth9/forwards", "").status, 404);
  std::string many = R"({"forwards": [)";
  for (int i = 1; i <= 65; i++)
    many += fmt::format(R"({}{{"host_port": {}, "guest_port": 80}})", i == 1 ? "" : ",", i);
  many += "]}";
  ApiResponse r = handle_request(vmm, "PUT", "/network-interfaces/eth0/forwards", many);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["fault_message"].get<std::string>().find("at most 64"), std::string::npos);
}

TEST(ConfigEdits, RemovingWhatIsNotThereIsNotFoundAndChangesNothing) {
  VmConfig c;
  apply_drive(c, {"a", "/x"});
  apply_drive(c, {"a", "/y"});
  ASSERT_EQ(c.drives.size(), 1u);
  EXPECT_EQ(c.drives[0].path, "/y");
  Status s = remove_drive(c, "b");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "there is no drive 'b'");
  EXPECT_EQ(c.drives.size(), 1u);
  EXPECT_EQ(remove_nic(c, "eth9").code(), Code::kNotFound);
  EXPECT_TRUE(remove_drive(c, "a").ok());
  EXPECT_TRUE(c.drives.empty());
  Status boot = apply_boot_source(c, BootSource{"/dev/zero", "", "", ""});
  EXPECT_EQ(boot.code(), Code::kInvalidArgument);
  EXPECT_TRUE(c.kernel.empty());
}

TEST(Api, RefusesWhileRunningAndKeepsConfig) {
  FakeVmm vmm;
  vmm.running = true;
  EXPECT_EQ(
      handle_request(vmm, "PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 128})")
          .status,
      409);
  EXPECT_EQ(vmm.config_.vcpus, 1u);
}

TEST(Api, ErrorsAlwaysCarryAMessage) {
  FakeVmm vmm;
  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
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

// Files for the boot-source tests, in a fresh directory: a small Image (text_offset
// 2 MiB), the same Image cut after its header (an EFI stub Image's PE/COFF header says
// how long it is), a FIFO, and a sparse file larger than any VM's memory.
class BootSourceFiles {
 public:
  BootSourceFiles() {
    char tmpl[] = "/tmp/nimbus_api_boot_XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::vector<uint8_t> image(8192, 0x13);
    const uint64_t text_offset = 2 << 20, image_size = 1 << 20;
    const uint32_t pe = 64, sections = 1, opt = 0, raw_size = 8192 - 4096, raw_at = 4096;
    image[0] = 'M';
    image[1] = 'Z';
    std::memcpy(image.data() + 8, &text_offset, 8);
    std::memcpy(image.data() + 16, &image_size, 8);
    std::memcpy(image.data() + 56, "RSC\x05", 4);
    std::memcpy(image.data() + 60, &pe, 4);
    std::memcpy(image.data() + 64, "PE\0\0", 4);
    std::memcpy(image.data() + 64 + 6, &sections, 2);
    std::memcpy(image.data() + 64 + 20, &opt, 2);
    std::memcpy(image.data() + 64 + 24 + 16, &raw_size, 4);
    std::memcpy(image.data() + 64 + 24 + 20, &raw_at, 4);
    write(kernel(), image);
    write(truncated(), std::vector<uint8_t>(image.begin(), image.begin() + 100));
    write(initrd(), std::vector<uint8_t>(4096, 7));
    write(huge(), {1});
    EXPECT_EQ(::truncate(huge().c_str(), off_t{128} << 30), 0);
    EXPECT_EQ(mkfifo(fifo().c_str(), 0600), 0);
  }
  ~BootSourceFiles() { std::filesystem::remove_all(dir_); }
  std::string kernel() const { return dir_ + "/Image"; }
  std::string truncated() const { return dir_ + "/Image.cut"; }
  std::string initrd() const { return dir_ + "/initrd"; }
  std::string huge() const { return dir_ + "/huge"; }
  std::string fifo() const { return dir_ + "/fifo"; }

 private:
  static void write(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  std::string dir_;
};

TEST(Api, BootSourceRefusesBadFilesAndKeepsTheConfiguration) {
  BootSourceFiles f;
  FakeVmm vmm;
  const json good = {{"kernel_image_path", f.kernel()}, {"initrd_path", f.initrd()}};
  ASSERT_EQ(handle_request(vmm, "PUT", "/boot-source", good.dump()).status, 204);
  EXPECT_EQ(vmm.config_.kernel, f.kernel());
  const json before = to_json(vmm.config_);
  for (const auto& [field, path, text] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"kernel_image_path", "/dev/zero", "kernel '/dev/zero' is a character device"},
           {"initrd_path", "/dev/zero", "initrd '/dev/zero' is a character device"},
           {"firmware_path", "/dev/zero", "firmware '/dev/zero' is a character device"},
           {"initrd_path", f.fifo(), "is a FIFO or pipe"},
           {"kernel_image_path", "/tmp", "is a directory"},
           {"initrd_path", f.huge(), "is larger than the VM's memory (256.0 MiB)"},
           {"kernel_image_path", f.truncated(), "is truncated"},
           {"kernel_image_path", "/nonexistent/Image", "cannot open kernel '/nonexistent/Image'"},
       }) {
    json body = good;
    body[field] = path;
    ApiResponse r = handle_request(vmm, "PUT", "/boot-source", body.dump());
    EXPECT_EQ(r.status, 400) << field << " " << path;
    const std::string message = r.body.value("fault_message", std::string());
    EXPECT_NE(message.find(text), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(to_json(vmm.config_), before) << field << " " << path;
  }
}

TEST(VmConfig, StartChecksTheBootFilesAgain) {
  // A file that went bad after PUT /boot-source (or a memory size made too small since)
  // is refused when the machine is configured for a start.
  BootSourceFiles f;
  VmConfig c;
  c.kernel = f.kernel();
  c.initrd = f.initrd();
  ASSERT_TRUE(to_virt_config(c, "/nonexistent").ok());
  c.initrd = f.fifo();
  auto fifo = to_virt_config(c, "/nonexistent");
  ASSERT_FALSE(fifo.ok());
  EXPECT_NE(fifo.message().find("boot-source: initrd '" + f.fifo() + "' is a FIFO or pipe"),
            std::string::npos);
  c.initrd = f.huge();
  c.mem_mib = kMinMemMib;
  auto huge = to_virt_config(c, "/nonexistent");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.message().find("is larger than the VM's memory (16.0 MiB)"), std::string::npos);
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
