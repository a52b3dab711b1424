// The API edge of nimbusd: codes as HTTP statuses with the wire names docs/nimbusd.md
// lists, typed results as the JSON objects clients read, and the metrics text built from
// typed values.
#include "host/host_json.h"

#include <gtest/gtest.h>

#include "config/device_flags.h"
#include "host/host_api.h"
#include "host/metrics.h"
#include "host/recording_host_ops.h"

namespace nimbus::host {
namespace {

TEST(HostJson, CodesMapToTheDocumentedStatuses) {
  struct Case {
    Code code;
    int status;
    const char* name;
  };
  const Case cases[] = {
      {Code::kInvalidArgument, 400, "BadRequest"},
      {Code::kNotFound, 404, "NotFound"},
      {Code::kConflict, 409, "Conflict"},
      {Code::kInsufficientCapacity, 409, "InsufficientCapacity"},
      {Code::kInternal, 500, "Internal"},
      {Code::kUnknown, 500, "Internal"},
      {Code::kUnavailable, 500, "Internal"},
      {Code::kDeadlineExceeded, 500, "Internal"},
      {Code::kPermissionDenied, 500, "Internal"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(http_error(c.code).status, c.status) << code_name(c.code);
    EXPECT_EQ(http_error(c.code).name, c.name) << code_name(c.code);
  }
}

// A HostOps whose start fails with a given status: the router passes it on as JSON.
class FailingOps : public RecordingHostOps {
 public:
  Status fail;
  Result<VmInfo> start_vm(const std::string&) override { return fail; }
};

TEST(HostJson, TheRouterAnswersADaemonErrorWithItsCodeAndMessage) {
  FailingOps ops;
  for (auto [status, http, name] :
       {std::tuple{Status::insufficient_capacity("not enough vCPUs"), 409, "InsufficientCapacity"},
        std::tuple{Status::internal("the VMM exited"), 500, "Internal"},
        std::tuple{Status::invalid_argument("bad"), 400, "BadRequest"}}) {
    ops.fail = status;
    HostResponse r = handle_host_request(ops, "POST", "/v1/vms/web1/start", "");
    EXPECT_EQ(r.status, http);
    const nlohmann::json j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j["error"]["code"], name);
    EXPECT_EQ(j["error"]["message"], status.message());
  }
}

TEST(HostJson, AVmObject) {
  VmInfo v;
  v.record.name = "web1";
  v.record.state = "stopped";
  v.record.forwards.push_back(config::PortForward{.protocol = "udp",
                                                  .host_address = "127.0.0.1",
                                                  .host_port = 5353,
                                                  .guest_address = "",
                                                  .guest_port = 53});
  v.host_address = "10.88.0.2";
  nlohmann::json j = to_json(v);
  EXPECT_TRUE(j["pid"].is_null()) << "no process: pid is null";
  EXPECT_FALSE(j.contains("usage")) << "usage only where asked for";
  EXPECT_EQ(j["forwards"][0]["protocol"], "udp");
  EXPECT_EQ(j["forwards"][0]["host_port"], 5353);
  EXPECT_EQ(j["addresses"]["host"], "10.88.0.2");
  v.record.pid = 42;
  v.usage = VmUsage{};
  v.usage->net_rx_bytes = 7;
  j = to_json(v);
  EXPECT_EQ(j["pid"], 42);
  EXPECT_EQ(j["usage"]["net_rx_bytes"], 7);
}

// The CLI's -p flag, the API's JSON and the VM object all carry one PortForward: what the
// CLI sends is what nimbusd parses back, with nimbusd's 0.0.0.0 default made explicit.
TEST(HostJson, AForwardFromTheFlagReachesTheApiUnchanged) {
  for (const char* text : {"8080:80", "127.0.0.1:5353:53/udp"}) {
    auto flag = config::parse_forward_flag(text);
    ASSERT_TRUE(flag.ok()) << flag.message();
    const nlohmann::json sent = forward_json(*flag);
    EXPECT_EQ(sent.size(), 4u) << sent.dump();
    auto req =
        parse_create_request({{"name", "web1"}, {"forwards", nlohmann::json::array({sent})}});
    ASSERT_TRUE(req.ok()) << req.message();
    ASSERT_EQ(req->forwards.size(), 1u);
    EXPECT_EQ(req->forwards[0], *flag) << text;
  }
  EXPECT_EQ(forward_json(*config::parse_forward_flag("8080:80")),
            (nlohmann::json{{"host_port", 8080},
                            {"guest_port", 80},
                            {"protocol", "tcp"},
                            {"host_address", "0.0.0.0"}}));
  auto bare = parse_create_request(
      {{"name", "web1"},
       {"forwards", nlohmann::json::array({{{"host_port", 8080}, {"guest_port", 80}}})}});
  ASSERT_TRUE(bare.ok()) << bare.message();
  EXPECT_EQ(bare->forwards[0].host_address, "0.0.0.0") << "the API's default host address";
}

TEST(Metrics, BuiltFromTypedValues) {
  HostInfo h;
  h.capacity.cpus = ResourceLine{2, 0, 8, 3, 5};
  h.capacity.memory_mib = ResourceLine{4096, 1024, 3072, 320, 2752};
  h.vms_total = 2;
  h.vms_running = 1;
  VmInfo up;
  up.record.name = "web1";
  up.record.state = "running";
  up.record.pid = 99;
  up.record.cpus = 2;
  up.record.memory_mib = 256;
  up.record.restarts = 3;
  up.usage = VmUsage{};
  up.usage->cpu_seconds = 1.5;
  up.usage->disk_write_bytes = 4096;
  VmInfo down;
  down.record.name = "web2";
  down.record.state = "crashed";
  const std::string text = prometheus_text(h, {up, down});
  for (const char* line :
       {"nimbus_host_vcpus{kind=\"capacity\"} 8\n", "nimbus_host_vcpus{kind=\"allocated\"} 3\n",
        "nimbus_host_memory_bytes{kind=\"allocated\"} 335544320\n",
        "nimbus_host_vms{kind=\"total\"} 2\n", "nimbus_host_vms{kind=\"running\"} 1\n",
        "nimbus_vm_state{vm=\"web2\",state=\"crashed\"} 1\n", "nimbus_vm_up{vm=\"web1\"} 1\n",
        "nimbus_vm_up{vm=\"web2\"} 0\n", "nimbus_vm_vcpus{vm=\"web1\"} 2\n",
        "nimbus_vm_memory_limit_bytes{vm=\"web1\"} 268435456\n",
        "nimbus_vm_cpu_seconds_total{vm=\"web1\"} 1.5\n",
        "nimbus_vm_disk_written_bytes_total{vm=\"web1\"} 4096\n",
        "nimbus_vm_restarts_total{vm=\"web1\"} 3\n",
        "# TYPE nimbus_vm_cpu_seconds_total counter\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "in:\n" << text;
  }
}

}  // namespace
}  // namespace nimbus::host
