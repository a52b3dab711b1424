// The host verbs' argument checks, output formatting and API client (against a fake
// nimbusd served by httplib on a temporary unix socket).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/host_args.h"
#include "cli/host_client.h"
#include "cli/host_output.h"

namespace nimbus::cli {
namespace {

// --- arguments -----------------------------------------------------------------------------

TEST(HostArgs, Names) {
  for (const char* good : {"web1", "a", "my-vm-2",
                           "x23456789012345678901234567890123456789012345678901234567890123"}) {
    EXPECT_TRUE(check_name(good).ok()) << good;
  }
  EXPECT_EQ(std::string("x23456789012345678901234567890123456789012345678901234567890123").size(),
            63u);
  struct Case {
    std::string name;
    const char* needle;
  };
  for (const Case& c : {Case{"", "empty"}, Case{"1vm", "start with a lowercase letter"},
                        Case{"-vm", "start with"}, Case{"Web", "start with"},
                        Case{"web_1", "may only contain"}, Case{"web.1", "may only contain"},
                        Case{"wEb", "may only contain"}, Case{"../etc", "start with"},
                        Case{"a/b", "may only contain"}, Case{std::string(64, 'a'), "too long"}}) {
    Status s = check_name(c.name);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_NE(s.message().find(c.needle), std::string::npos) << c.name << ": " << s.message();
  }
  EXPECT_NE(check_name("S1", "snapshot name").message().find("snapshot name 'S1'"),
            std::string::npos);
}

TEST(HostArgs, Sizes) {
  EXPECT_EQ(*parse_mib("512"), 512u);  // a plain number is MiB
  EXPECT_EQ(*parse_mib("256M"), 256u);
  EXPECT_EQ(*parse_mib("256MiB"), 256u);
  EXPECT_EQ(*parse_mib("2G"), 2048u);
  EXPECT_EQ(*parse_mib("1g"), 1024u);
  EXPECT_EQ(*parse_mib("1T"), 1024u * 1024);
  EXPECT_EQ(*parse_mib("2048K"), 2u);
  for (const char* bad : {"", "0", "0M", "1.5G", "256X", "-1", "M", "1000K", "12 M"}) {
    EXPECT_FALSE(parse_mib(bad).ok()) << bad;
  }
  EXPECT_NE(parse_mib("1000K").message().find("whole number of MiB"), std::string::npos);
}

// --- output --------------------------------------------------------------------------------

TEST(HostOutput, TableAlignsColumnsWithoutTrailingSpaces) {
  Table t({"Name", "State", "X"});
  t.add_row({"web1", "running", ""});
  t.add_row({"a-much-longer-name", "stopped", "1"});
  EXPECT_EQ(t.render(),
            "Name                State    X\n"
            "web1                running\n"
            "a-much-longer-name  stopped  1\n");
  Table u({"A", "B"});
  u.add_row({"\u2026x", "y"});  // widths count characters, not bytes
  EXPECT_EQ(u.render(), "A   B\n\u2026x  y\n");
}

TEST(HostOutput, Sizes) {
  EXPECT_EQ(format_mib(256), "256MiB");
  EXPECT_EQ(format_mib(1024), "1GiB");
  EXPECT_EQ(format_mib(1536), "1.5GiB");
  EXPECT_EQ(format_mib(40.2), "40.2MiB");
  EXPECT_EQ(format_mib(22976), "22.4GiB");
  EXPECT_EQ(format_mib(2 * 1024 * 1024), "2TiB");
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(512), "512B");
  EXPECT_EQ(format_bytes(1536), "1.5KiB");
  EXPECT_EQ(format_bytes(3.1 * 1024 * 1024), "3.1MiB");
}

json sample_vm() {
  return json::parse(
      R"({"name": "web1", "image": "default", "cpus": 1, "memory_mib": 256, "disk_mib": 1024,
    "forwards": [{"protocol": "tcp", "host_address": "0.0.0.0", "host_port": 8080, "guest_port": 80},
                 {"protocol": "udp", "host_address": "127.0.0.1", "host_port": 5353, "guest_port": 53}],
    "restart_policy": "no", "state": "running", "desired_state": "running",
    "pid": 12345, "uid": 200001, "created_at": "2026-11-22T10:00:00Z", "started_at": "2026-11-22T10:00:01Z",
    "ready": true, "restarts": 0, "last_exit": "",
    "addresses": {"user": "10.0.2.15", "host": "10.88.0.2"},
    "usage": {"cpu_seconds": 1.5, "memory_mib": 40.2, "disk_used_mib": 3.1,
              "disk_read_bytes": 1048576, "disk_write_bytes": 0, "net_rx_bytes": 2048, "net_tx_bytes": 0},
    "cgroup": "/sys/fs/cgroup/memory/nimbus/web1",
    "console_socket": "/var/lib/nimbus/vms/web1/console.sock",
    "console_log": "/var/lib/nimbus/vms/web1/console.log"})");
}

TEST(HostOutput, Forwards) {
  const json vm = sample_vm();
  EXPECT_EQ(format_forwards(vm), "8080->80,127.0.0.1:5353->53/udp");
  EXPECT_EQ(format_forwards(json{{"forwards", json::array()}}), "--");
  EXPECT_EQ(format_forwards(json::object()), "--");
  EXPECT_EQ(format_ipv4(vm), "10.88.0.2");
  EXPECT_EQ(format_ipv4(json{{"addresses", {{"user", "10.0.2.15"}}}}), "10.0.2.15");
}

TEST(HostOutput, VmList) {
  json stopped = {{"name", "db"},     {"state", "stopped"},
                  {"cpus", 2},        {"memory_mib", 1536},
                  {"disk_mib", 4096}, {"addresses", {{"host", "10.88.0.3"}}}};
  EXPECT_EQ(format_vm_list(json::array({sample_vm(), stopped})),
            "Name  State    CPUs  Memory  Disk  IPv4       Forwards\n"
            "web1  running  1     256MiB  1GiB  10.88.0.2  8080->80,127.0.0.1:5353->53/udp\n"
            "db    stopped  2     1.5GiB  4GiB  --         --\n");
}

TEST(HostOutput, VmListSurvivesOddObjects) {
  // Missing and mistyped fields show as "--" rather than throwing.
  const std::string out =
      format_vm_list(json::array({json{{"name", 5}, {"cpus", "two"}}, json("junk")}));
  EXPECT_NE(out.find("?"), std::string::npos);
  EXPECT_NE(out.find("--"), std::string::npos);
}

TEST(HostOutput, VmInfo) {
  const std::string out = format_vm_info(sample_vm());
  EXPECT_NE(out.find("Name:            web1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("State:           running\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Memory:          40.2MiB used of 256MiB\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Disk:            3.1MiB used of 1GiB\n"), std::string::npos) << out;
  EXPECT_NE(out.find("IPv4:            10.88.0.2 (host network), 10.0.2.15 (user network)\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Forwards:        tcp 0.0.0.0:8080 -> 80, udp 127.0.0.1:5353 -> 53\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("CPU time:        1.5s\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Disk I/O:        1MiB read, 0B written\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Process:         pid 12345, uid 200001\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Console log:     /var/lib/nimbus/vms/web1/console.log\n"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("Last exit"), std::string::npos) << out;

  json crashed = sample_vm();
  crashed["state"] = "crashed";
  crashed["last_exit"] = "exit status 2: guest panic";
  const std::string c = format_vm_info(crashed);
  EXPECT_NE(c.find("State:           crashed (desired: running)\n"), std::string::npos) << c;
  EXPECT_NE(c.find("Memory:          256MiB\n"), std::string::npos)
      << c;  // no usage when not running
  EXPECT_NE(c.find("Last exit:       exit status 2: guest panic\n"), std::string::npos) << c;
}

TEST(HostOutput, Host) {
  const json host =
      json::parse(R"({"hostname": "h1", "version": "0.1.0", "state_dir": "/var/lib/nimbus",
    "cgroup": "v1", "sandbox": true,
    "cpus":      {"host": 2, "overcommit": 4.0, "capacity": 8, "allocated": 3, "available": 5},
    "memory_mib":{"host": 24000, "reserved": 1024, "capacity": 22976, "allocated": 640, "available": 22336},
    "disk_mib":  {"host": 250000, "reserved": 10240, "capacity": 239760, "allocated": 3072, "available": 236688},
    "vms": {"total": 3, "running": 2}})");
  EXPECT_EQ(format_host(host),
            "Host:       h1 (nimbusd 0.1.0)\n"
            "State dir:  /var/lib/nimbus\n"
            "Isolation:  cgroup v1, sandbox on\n"
            "VMs:        3 (2 running)\n"
            "\n"
            "Resource  Host      Reserved  Capacity     Allocated  Available\n"
            "CPUs      2         --        8 (4x over)  3          5\n"
            "Memory    23.4GiB   1GiB      22.4GiB      640MiB     21.8GiB\n"
            "Disk      244.1GiB  10GiB     234.1GiB     3GiB       231.1GiB\n");
}

TEST(HostOutput, ImagesAndSnapshots) {
  const json images = json::parse(
      R"([{"name": "default", "kernel": "/x/Image", "initrd": "", "disk": "/x/rootfs.ext4",
      "disk_format": "raw", "disk_mib": 64, "description": "the bundled guest", "created_at": "2026-11-22T10:00:00Z"},
      {"name": "alpine", "disk_mib": 2048}])");
  EXPECT_EQ(format_images(images),
            "Name     Disk   Format  Created               Description\n"
            "default  64MiB  raw     2026-11-22T10:00:00Z  the bundled guest\n"
            "alpine   2GiB   --      --\n");
  const json snaps = json::parse(
      R"([{"name": "s1", "vm": "web1", "created_at": "2026-11-22T10:00:00Z", "size_bytes": 13107200}])");
  EXPECT_EQ(format_snapshots(snaps),
            "Name  Created               Size\n"
            "s1    2026-11-22T10:00:00Z  12.5MiB\n");
}

// --- endpoint -----------------------------------------------------------------------------

class EnvGuard {
 public:
  EnvGuard() {
    for (const char* name : {"NIMBUS_HOST", "NIMBUS_TOKEN"}) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(name);
    }
  }
  ~EnvGuard() {
    for (const auto& [name, v] : saved_) {
      if (v) {
        setenv(name.c_str(), v->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(HostEndpoint, DefaultEnvAndFlag) {
  EnvGuard env;
  auto e = resolve_endpoint("", "");
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->tcp);
  EXPECT_EQ(e->host, "/run/nimbus/nimbusd.sock");
  setenv("NIMBUS_HOST", "/tmp/other.sock", 1);
  EXPECT_EQ(resolve_endpoint("", "")->host, "/tmp/other.sock");
  EXPECT_EQ(resolve_endpoint("/tmp/flag.sock", "")->host, "/tmp/flag.sock");  // the flag wins
}

TEST(HostEndpoint, TcpWithToken) {
  EnvGuard env;
  setenv("NIMBUS_TOKEN", "secret\n", 1);
  auto e = resolve_endpoint("http://10.0.0.5:7777/", "");
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_TRUE(e->tcp);
  EXPECT_EQ(e->host, "10.0.0.5");
  EXPECT_EQ(e->port, 7777);
  EXPECT_EQ(e->token, "secret");
  auto v6 = resolve_endpoint("http://[::1]:8000", "");
  ASSERT_TRUE(v6.ok()) << v6.message();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8000);
  EXPECT_EQ(resolve_endpoint("http://example.org", "")->port, 80);

  const std::string file = testing::TempDir() + "/nimbus-token-test";
  std::ofstream(file) << "  from-file  \n";
  EXPECT_EQ(resolve_endpoint("http://h:1", file)->token,
            "from-file");  // the file wins over the env
  std::filesystem::remove(file);
  EXPECT_FALSE(resolve_endpoint("http://h:1", file).ok());

  for (const char* bad : {"http://h:0", "http://h:65536", "http://h:x", "http://:80", "https://h:1",
                          "http://h:1/path"}) {
    EXPECT_FALSE(resolve_endpoint(bad, "").ok()) << bad;
  }
  EXPECT_FALSE(resolve_endpoint("/" + std::string(200, 'x'), "").ok());
}

// --- client against a fake nimbusd ---------------------------------------------------------

class FakeNimbusd {
 public:
  FakeNimbusd() {
    char dir[] = "/tmp/nimbus-cli-test-XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/nimbusd.sock";
    server_.set_address_family(AF_UNIX);
  }
  ~FakeNimbusd() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
    std::filesystem::remove_all(dir_);
  }
  httplib::Server& server() { return server_; }
  void start() {
    ASSERT_TRUE(server_.bind_to_port(path_, 80));
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }
  HostClient client() {
    HostEndpoint e;
    e.address = e.host = path_;
    return HostClient(e);
  }

 private:
  std::string dir_, path_;
  httplib::Server server_;
  std::thread thread_;
};

TEST(HostClient, RepliesAndErrors) {
  FakeNimbusd fake;
  json received;
  fake.server().Get("/v1/vms", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"vms": [{"name": "web1", "state": "running"}]})", "application/json");
  });
  fake.server().Post("/v1/vms", [&](const httplib::Request& req, httplib::Response& res) {
    received = json::parse(req.body);
    res.status = 201;
    res.set_content(json{{"name", received.value("name", "vm-1")}, {"state", "starting"}}.dump(),
                    "application/json");
  });
  fake.server().Get("/v1/vms/nope", [](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content(R"({"error": {"code": "NotFound", "message": "no VM named 'nope'"}})",
                    "application/json");
  });
  fake.server().Post("/v1/vms/web1/stop", [](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content("oops, not json", "text/plain");
  });
  fake.server().Delete("/v1/vms/web1", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"deleted": "web1"})", "application/json");
  });
  fake.server().Post("/v1/vms/web1/pause",
                     [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  fake.start();
  HostClient client = fake.client();

  auto list = client.request("GET", "/v1/vms");
  ASSERT_TRUE(list.ok()) << list.message();
  EXPECT_EQ((*list)["vms"][0]["name"], "web1");
  EXPECT_EQ(client.last_status(), 200);

  auto created = client.request("POST", "/v1/vms", json{{"name", "web2"}, {"cpus", 2}});
  ASSERT_TRUE(created.ok()) << created.message();
  EXPECT_EQ((*created)["name"], "web2");
  EXPECT_EQ(received, (json{{"name", "web2"}, {"cpus", 2}}));
  EXPECT_EQ(client.last_status(), 201);

  auto missing = client.request("GET", "/v1/vms/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.message(), "no VM named 'nope'");
  EXPECT_EQ(client.last_status(), 404);
  EXPECT_EQ(client.last_code(), "NotFound");

  auto broken = client.request("POST", "/v1/vms/web1/stop", json{{"force", true}});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.message().find("HTTP 500"), std::string::npos) << broken.message();
  EXPECT_NE(broken.message().find("oops, not json"), std::string::npos) << broken.message();

  auto deleted = client.request("DELETE", "/v1/vms/web1");
  ASSERT_TRUE(deleted.ok()) << deleted.message();
  EXPECT_EQ((*deleted)["deleted"], "web1");

  auto empty = client.request("POST", "/v1/vms/web1/pause");
  ASSERT_TRUE(empty.ok()) << empty.message();
  EXPECT_TRUE(empty->is_object());

  auto unrouted = client.request("GET", "/v1/elsewhere");
  ASSERT_FALSE(unrouted.ok());
  EXPECT_NE(unrouted.message().find("HTTP 404"), std::string::npos) << unrouted.message();
}

TEST(HostClient, BearerTokenOverTcp) {
  httplib::Server srv;
  std::string auth;
  srv.Get("/v1/host", [&](const httplib::Request& req, httplib::Response& res) {
    auth = req.get_header_value("Authorization");
    if (auth != "Bearer t0k") {
      res.status = 401;
      res.set_content(R"({"error": {"code": "Unauthorized", "message": "bad token"}})",
                      "application/json");
      return;
    }
    res.set_content(R"({"hostname": "h1"})", "application/json");
  });
  const int port = srv.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t([&] { srv.listen_after_bind(); });
  HostEndpoint e;
  e.tcp = true;
  e.host = "127.0.0.1";
  e.port = port;
  e.address = "http://127.0.0.1:" + std::to_string(port);
  e.token = "t0k";
  auto ok = HostClient(e).request("GET", "/v1/host");
  EXPECT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(auth, "Bearer t0k");
  e.token = "";
  auto denied = HostClient(e).request("GET", "/v1/host");
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.message().find("bad token"), std::string::npos) << denied.message();
  EXPECT_NE(denied.message().find("NIMBUS_TOKEN"), std::string::npos) << denied.message();
  srv.stop();
  t.join();
}

TEST(HostClient, NobodyListening) {
  char dir[] = "/tmp/nimbus-cli-test-XXXXXX";
  const std::string d = mkdtemp(dir);
  // No socket file at all.
  HostEndpoint e;
  e.address = e.host = d + "/nimbusd.sock";
  auto r = HostClient(e).request("GET", "/v1/vms");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "cannot reach nimbusd at " + e.host +
                             ": No such file or directory (is nimbusd running?)");
  // A stale socket file nobody listens on.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  e.address = e.host = d + "/stale.sock";
  std::strcpy(addr.sun_path, e.host.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  auto refused = HostClient(e).request("GET", "/v1/vms");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.message(),
            "cannot reach nimbusd at " + e.host + ": Connection refused (is nimbusd running?)");
  std::filesystem::remove_all(d);
}

TEST(HostClient, SlowReplyTimesOut) {
  FakeNimbusd fake;
  fake.server().Get("/v1/host", [](const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    res.set_content("{}", "application/json");
  });
  fake.start();
  HostClient client = fake.client();
  client.set_read_timeout(1);
  auto r = client.request("GET", "/v1/host");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("no reply from nimbusd"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace nimbus::cli
