#include "host/host_api.h"

#include <gtest/gtest.h>

#include "host/recording_host_ops.h"

namespace nimbus::host {
namespace {

struct Call {
  int status;
  json body;
};

Call call(RecordingHostOps& ops, const std::string& method, const std::string& path,
          const std::string& body = "") {
  HostResponse r = handle_host_request(ops, method, path, body);
  json j =
      r.content_type == "application/json" ? json::parse(r.body, nullptr, false) : json(r.body);
  return {r.status, j};
}

std::string message(const Call& c) { return c.body["error"]["message"].get<std::string>(); }

TEST(HostApi, RoutesEveryVerbToItsCall) {
  RecordingHostOps ops;
  struct Case {
    const char* method;
    const char* path;
    const char* body;
    const char* call;
  };
  const Case cases[] = {
      {"GET", "/v1/host", "", "host"},
      {"GET", "/v1/images", "", "images"},
      {"GET", "/v1/vms", "", "list"},
      {"GET", "/v1/vms/web1", "", "get web1"},
      {"DELETE", "/v1/vms/web1", "", "delete web1"},
      {"POST", "/v1/vms/web1/start", "", "start web1"},
      {"POST", "/v1/vms/web1/stop", "{}", "stop web1 force=0 timeout=30"},
      {"POST", "/v1/vms/web1/stop", R"({"force": true, "timeout_s": 5})",
       "stop web1 force=1 timeout=5"},
      {"POST", "/v1/vms/web1/restart", R"({"timeout_s": 0})", "restart web1 force=0 timeout=0"},
      {"POST", "/v1/vms/web1/pause", "", "pause web1"},
      {"POST", "/v1/vms/web1/resume", "{}", "resume web1"},
      {"POST", "/v1/vms/web1/resize", R"({"cpus": 2})", "resize web1"},
      {"GET", "/v1/vms/web1/snapshots", "", "snapshots web1"},
      {"POST", "/v1/vms/web1/snapshots", R"({"name": "s1"})", "snapshot web1 s1"},
      {"POST", "/v1/vms/web1/snapshots", "", "snapshot web1 "},
      {"POST", "/v1/vms/web1/restore", R"({"snapshot": "s1"})", "restore web1 s1"},
      {"DELETE", "/v1/vms/web1/snapshots/s1", "", "delete-snapshot web1 s1"},
      {"PUT", "/v1/vms/web1/forwards", R"({"forwards": []})", "forwards web1 0"},
      {"GET", "//v1//vms/web1/", "", "get web1"},
      {"GET", "/v1/network", "", "network"},
      {"GET", "/v1/network/peers", "", "network"},
      {"PUT", "/v1/network/peers", R"({"peers": []})", "peers 0"},
      {"PUT", "/v1/network/peers", R"({"peers": [{"host": "h2", "endpoint": "127.0.0.1:4789"}]})",
       "peers 1"},
  };
  for (const Case& c : cases) {
    ops.last.clear();
    Call r = call(ops, c.method, c.path, c.body);
    EXPECT_LT(r.status, 300) << c.method << " " << c.path << " " << r.body.dump();
    EXPECT_EQ(ops.last, c.call) << c.method << " " << c.path;
  }
}

TEST(HostApi, CreateRequestDefaultsAndFields) {
  RecordingHostOps ops;
  Call r = call(ops, "POST", "/v1/vms", "");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(ops.created.image, "default");
  EXPECT_EQ(ops.created.cpus, 1u);
  EXPECT_EQ(ops.created.memory_mib, 256u);
  EXPECT_EQ(ops.created.disk_mib, 0u);
  EXPECT_TRUE(ops.created.start);
  r = call(ops, "POST", "/v1/vms",
           R"({"name": "web2", "image": "default", "cpus": 2, "memory_mib": 512, "disk_mib": 2048,
               "forwards": [{"host_port": 8080, "guest_port": 80},
                            {"host_port": 5353, "guest_port": 53, "protocol": "udp", "host_address": "127.0.0.1"}],
               "restart_policy": "on-failure", "start": false})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  const CreateRequest& c = ops.created;
  EXPECT_EQ(c.name, "web2");
  EXPECT_EQ(c.cpus, 2u);
  EXPECT_EQ(c.memory_mib, 512u);
  EXPECT_EQ(c.disk_mib, 2048u);
  ASSERT_EQ(c.forwards.size(), 2u);
  EXPECT_EQ(c.forwards[0].protocol, "tcp");
  EXPECT_EQ(c.forwards[0].host_address, "0.0.0.0");
  EXPECT_EQ(c.forwards[1].protocol, "udp");
  EXPECT_EQ(c.forwards[1].host_address, "127.0.0.1");
  EXPECT_EQ(c.restart_policy, "on-failure");
  EXPECT_FALSE(c.start);
}

TEST(HostApi, CreateWithAPrivateNetwork) {
  RecordingHostOps ops;
  Call r = call(ops, "POST", "/v1/vms",
                R"({"name": "a", "network": {"vni": 100, "address": "172.31.16.5/20",
                    "gateway": "172.31.16.1", "mtu": 1450}})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  ASSERT_TRUE(ops.created.network);
  EXPECT_EQ(*ops.created.network, (VmNetwork{100, "172.31.16.5/20", "172.31.16.1", 1450}));
  r = call(ops, "POST", "/v1/vms", R"({"name": "b"})");
  ASSERT_EQ(r.status, 201);
  EXPECT_FALSE(ops.created.network);
}

TEST(HostApi, RefusesBadInputWithoutCallingTheDaemon) {
  RecordingHostOps ops;
  struct Case {
    const char* method;
    const char* path;
    const char* body;
    int status;
    const char* text;
  };
  const Case cases[] = {
      {"POST", "/v1/vms", R"({"name": "A"})", 400, "name"},
      {"POST", "/v1/vms", R"({"name": "-x"})", 400, "name"},
      {"POST", "/v1/vms", R"({"name": 7})", 400, "name"},
      {"POST", "/v1/vms", R"({"cpus": 0})", 400, "cpus"},
      {"POST", "/v1/vms", R"({"cpus": 1.5})", 400, "cpus"},
      {"POST", "/v1/vms", R"({"cpus": -1})", 400, "cpus"},
      {"POST", "/v1/vms", R"({"memory_mib": 99999999})", 400, "memory_mib"},
      {"POST", "/v1/vms", R"({"disk_mib": 0})", 400, "disk_mib"},
      {"POST", "/v1/vms", R"({"forwards": [{"host_port": 1, "guest_port": 70000}]})", 400,
       "guest_port"},
      {"POST", "/v1/vms",
       R"({"forwards": [{"host_port": 1, "guest_port": 2, "host_address": "localhost"}]})", 400,
       "host_address"},
      {"POST", "/v1/vms",
       R"({"forwards": [{"host_port": 1, "guest_port": 2}, {"host_port": 1, "guest_port": 3}]})",
       400, "twice"},
      {"POST", "/v1/vms", R"({"forwards": [{"host_port": 1, "guest_port": 2, "x": 1}]})", 400,
       "unknown field"},
      {"POST", "/v1/vms", R"({"start": "yes"})", 400, "start"},
      {"POST", "/v1/vms", R"({"extra": null})", 400, "extra"},
      {"POST", "/v1/vms", "{", 400, "JSON"},
      {"POST", "/v1/vms", "42", 400, "object"},
      {"PATCH", "/v1/vms", "{}", 405, "PATCH"},
      {"POST", "/v1/vms/web1", "{}", 405, "POST"},
      {"GET", "/v1/vms/web1/start", "", 405, "GET"},
      {"POST", "/v1/vms/web1/fly", "{}", 404, "fly"},
      {"GET", "/v1/vms/Web1", "", 404, "Web1"},
      {"GET", "/v2/vms", "", 404, "no resource"},
      {"GET", "/", "", 404, "no resource"},
      {"POST", "/metrics", "", 405, "GET"},
      {"POST", "/v1/vms/web1/start", R"({"now": true})", 400, "now"},
      {"POST", "/v1/vms/web1/stop", R"({"force": 1})", 400, "force"},
      {"POST", "/v1/vms/web1/stop", R"({"timeout_s": 99999})", 400, "timeout_s"},
      {"POST", "/v1/vms/web1/resize", "{}", 400, "at least one"},
      {"POST", "/v1/vms/web1/resize", R"({"cpus": 9})", 400, "cpus"},
      {"POST", "/v1/vms/web1/restore", "{}", 400, "snapshot"},
      {"POST", "/v1/vms/web1/snapshots", R"({"name": "Bad Name"})", 400, "snapshot name"},
      {"DELETE", "/v1/vms/web1/snapshots/BAD", "", 404, "BAD"},
      {"PUT", "/v1/vms/web1/forwards", "{}", 400, "required"},
      {"PUT", "/v1/vms/web1/forwards", R"({"forwards": [], "more": 1})", 400, "more"},
      {"PUT", "/v1/vms/web1/forwards", R"({"forwards": {"host_port": 80}})", 400, "array"},
      {"PUT", "/v1/vms/web1/forwards", R"({"forwards": [{"host_port": 80}]})", 400,
       "guest_port is required"},
      {"PUT", "/v1/vms/web1/forwards", R"({"forwards": [{"host_port": 0, "guest_port": 80}]})", 400,
       "host_port"},
      {"PUT", "/v1/vms/web1/forwards",
       R"({"forwards": [{"host_port": 80, "guest_port": 80, "protocol": "sctp"}]})", 400,
       "protocol"},
      {"PUT", "/v1/vms/web1/forwards",
       R"({"forwards": [{"host_port": 80, "guest_port": 80, "host_address": "127.1"}]})", 400,
       "host_address"},
      // 0.0.0.0 (the default) is every address: 127.100.1.5:80 would be the same socket.
      {"PUT", "/v1/vms/web1/forwards",
       R"({"forwards": [{"host_port": 80, "guest_port": 80},
                        {"host_port": 80, "guest_port": 81, "host_address": "127.100.1.5"}]})",
       400, "given twice"},
      {"GET", "/v1/vms/web1/forwards", "", 405, "PUT"},
      {"POST", "/v1/vms/web1/forwards", R"({"forwards": []})", 405, "PUT"},
      {"PUT", "/v1/vms/web1/forwards/x", R"({"forwards": []})", 404, "no resource"},
      {"POST", "/v1/vms", R"({"network": {"vni": 0, "address": "172.31.0.10/20"}})", 400, "vni"},
      {"POST", "/v1/vms", R"({"network": {"vni": 100, "address": "172.31.0.10"}})", 400, "address"},
      {"POST", "/v1/vms", R"({"network": {"vni": 100, "address": "172.31.0.10/20", "mtu": 10}})",
       400, "mtu"},
      {"POST", "/v1/vms", R"({"network": "vpc-1"})", 400, "network"},
      {"PUT", "/v1/network/peers", "{}", 400, "required"},
      {"PUT", "/v1/network/peers", R"({"peers": {}})", 400, "array"},
      {"PUT", "/v1/network/peers", R"({"peers": [{"host": "h2"}]})", 400, "peers[0]"},
      {"PUT", "/v1/network/peers", R"({"peers": [], "x": 1})", 400, "unknown field"},
      {"POST", "/v1/network/peers", R"({"peers": []})", 405, "PUT"},
      {"PUT", "/v1/network", "{}", 405, "GET"},
      {"GET", "/v1/network/other", "", 404, "no resource"},
  };
  for (const Case& c : cases) {
    ops.last.clear();
    Call r = call(ops, c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body << " -> "
                                  << r.body.dump();
    ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.body.dump();
    EXPECT_NE(message(r).find(c.text), std::string::npos)
        << c.path << " " << c.body << ": " << message(r);
    EXPECT_EQ(ops.last, "") << "the daemon was called for " << c.method << " " << c.path << " "
                            << c.body;
  }
}

TEST(HostApi, ForwardsReplaceTheSetWithCreatesDefaults) {
  RecordingHostOps ops;
  Call r = call(ops, "PUT", "/v1/vms/web1/forwards", R"({"forwards": [
      {"host_port": 80, "guest_port": 80, "host_address": "127.100.1.5"},
      {"host_port": 80, "guest_port": 8080, "host_address": "127.100.1.6"},
      {"host_port": 5353, "guest_port": 53, "protocol": "udp"},
      {"host_port": 5353, "guest_port": 53}]})");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["name"], "web1");
  EXPECT_EQ(ops.last, "forwards web1 4");
  // One port on two addresses is two sockets; udp and tcp of one port too.
  EXPECT_EQ(ops.forwards, (std::vector<config::PortForward>{
                              {"tcp", "127.100.1.5", 80, "", 80},
                              {"tcp", "127.100.1.6", 80, "", 8080},
                              {"udp", "0.0.0.0", 5353, "", 53},
                              {"tcp", "0.0.0.0", 5353, "", 53},
                          }));
  r = call(ops, "PUT", "/v1/vms/ghost/forwards", R"({"forwards": []})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body["error"]["code"], "NotFound");
}

TEST(HostApi, OversizedBodyIs413AndInvalidUtf8IsEchoedSafely) {
  RecordingHostOps ops;
  Call r = call(ops, "POST", "/v1/vms", std::string(kMaxHostRequestBody + 1, ' '));
  EXPECT_EQ(r.status, 413);
  r = call(ops, "GET", "/v1/\xff\xfe", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(r.body.is_object()) << "a reply echoing invalid UTF-8 must still be JSON";
}

TEST(HostApi, MetricsAreText) {
  RecordingHostOps ops;
  HostResponse r = handle_host_request(ops, "GET", "/metrics", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u);
  EXPECT_NE(r.body.find("nimbus_host_vms"), std::string::npos);
}

TEST(HostApi, DaemonErrorsPassThrough) {
  RecordingHostOps ops;
  Call r = call(ops, "POST", "/v1/vms/ghost/start", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body["error"]["code"], "NotFound");
  r = call(ops, "POST", "/v1/vms", R"({"name": "web1"})");
  EXPECT_EQ(r.status, 409);
}

}  // namespace
}  // namespace nimbus::host
