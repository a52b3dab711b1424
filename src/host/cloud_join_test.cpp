#include "host/cloud_join.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "common/http_server.h"
#include "common/log_capture.h"
#include "host/daemon_test_fixture.h"
#include "host/host_api.h"

namespace nimbus::host {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

const std::string kJoinToken = "join-token-0123456789";

// A control plane's heartbeat endpoint on a real http::Server: checks the join token (the
// server answers 401 without it), records each heartbeat and answers {"interval_s": N}.
class FakeCloud {
 public:
  explicit FakeCloud(int port = 0, std::string token = kJoinToken) {
    auto sock = http::listen_tcp("--listen", "127.0.0.1:" + std::to_string(port));
    EXPECT_TRUE(sock.ok()) << sock.message();
    if (!sock.ok()) return;
    this->port = sock->port();
    http::ServerOptions o;
    o.token = std::move(token);
    server_ = std::make_unique<http::Server>(std::move(*sock), o);
    server_->serve([this](const http::Request& r) {
      std::unique_lock<std::mutex> lock(mu_);
      if (r.method != "POST" || r.path != kHeartbeatPath)
        return http::Reply{404, http::host_error_body(404, "NotFound", "no such path")};
      beats_.push_back({Clock::now(), json::parse(r.body, nullptr, false)});
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hold_; });
      return http::Reply{reply_status, reply};
    });
  }
  ~FakeCloud() {
    release();
    server_.reset();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  // Waits for `n` heartbeats in all (false after `timeout`).
  bool wait_beats(size_t n, milliseconds timeout = milliseconds(3000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return beats_.size() >= n; });
  }
  std::vector<std::pair<Clock::time_point, json>> beats() {
    std::lock_guard<std::mutex> lock(mu_);
    return beats_;
  }
  void hold() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = false;
    cv_.notify_all();
  }

  int port = 0;
  int reply_status = 200;
  std::string reply = R"({"interval_s": 1})";

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  std::vector<std::pair<Clock::time_point, json>> beats_;
  std::unique_ptr<http::Server> server_;
};

CloudJoinOptions options_for(const std::string& url, milliseconds second = milliseconds(40)) {
  CloudJoinOptions o;
  o.cloud_url = url;
  o.join_token = kJoinToken;
  o.host_id = "host-a";
  o.zone = "nimbus-1a";
  o.api_url = "http://127.0.0.1:7001";
  o.api_token = "api-token-0123456789";
  o.second = second;
  o.connect_timeout_ms = 500;
  o.request_timeout_ms = 3000;
  return o;
}

// A report that counts its calls.
struct Reports {
  std::atomic<int> calls{0};
  HeartbeatReport fn() {
    return [this]() -> Result<json> {
      calls++;
      return json{{"host", {{"hostname", "h"}}}, {"vms", json::array()}, {"images", json::array()}};
    };
  }
};

bool eventually(const std::function<bool()>& f, milliseconds timeout = milliseconds(3000)) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return f();
}

TEST(CloudJoin, BeatsAtOnceWithTheTokenAndEveryField) {
  FakeCloud cloud;
  Reports reports;
  const auto started = Clock::now();
  CloudJoin join(options_for(cloud.url(), milliseconds(1000)), reports.fn());
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(cloud.wait_beats(1, milliseconds(1500)));
  // Right at start, not after the first interval (2 "s" = 2000 ms here).
  EXPECT_LT(cloud.beats()[0].first - started, milliseconds(1500));
  const json b = cloud.beats()[0].second;
  EXPECT_EQ(b["host_id"], "host-a");
  EXPECT_EQ(b["zone"], "nimbus-1a");
  EXPECT_EQ(b["api_url"], "http://127.0.0.1:7001");
  EXPECT_EQ(b["api_token"], "api-token-0123456789");
  EXPECT_EQ(b["host"]["hostname"], "h");
  EXPECT_TRUE(b["vms"].is_array());
  EXPECT_TRUE(b["images"].is_array());
  EXPECT_TRUE(eventually([&] { return join.state().joined; }));
  EXPECT_EQ(join.state().interval_s, 1u);
  EXPECT_EQ(join.state().error, "");
}

// With a tunnel: the heartbeat says its endpoint, and each reply's tunnel_peers goes to
// the handler (a bad list is the handler's to refuse: the heartbeat still counts).
TEST(CloudJoin, CarriesTheTunnelEndpointAndHandsOverThePeers) {
  FakeCloud cloud;
  cloud.reply =
      R"({"interval_s": 1, "tunnel_peers": [{"host": "h2", "endpoint": "192.0.2.2:4789"}]})";
  Reports reports;
  std::mutex mu;
  std::vector<json> lists;
  CloudJoinOptions o = options_for(cloud.url());
  o.tunnel_endpoint = "192.0.2.1:4789";
  o.on_tunnel_peers = [&](const json& list) -> Status {
    std::lock_guard<std::mutex> lock(mu);
    lists.push_back(list);
    return list.is_array() ? Status() : Status::invalid_argument("not a list");
  };
  CloudJoin join(o, reports.fn());
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(cloud.wait_beats(1));
  EXPECT_EQ(cloud.beats()[0].second["tunnel_endpoint"], "192.0.2.1:4789");
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return !lists.empty();
  }));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(lists[0], json::parse(R"([{"host": "h2", "endpoint": "192.0.2.2:4789"}])"));
  }
  cloud.reply = R"({"interval_s": 1, "tunnel_peers": "junk"})";
  const auto beats = cloud.beats().size();
  ASSERT_TRUE(cloud.wait_beats(beats + 2));
  EXPECT_TRUE(eventually([&] { return join.state().joined; }));
  join.stop();
  // Without a tunnel the field is not sent.
  FakeCloud plain;
  CloudJoin join2(options_for(plain.url()), reports.fn());
  ASSERT_TRUE(join2.start().ok());
  ASSERT_TRUE(plain.wait_beats(1));
  EXPECT_FALSE(plain.beats()[0].second.contains("tunnel_endpoint"));
}

TEST(CloudJoin, TheIntervalIsTheControlPlanesAndBounded) {
  FakeCloud cloud;
  cloud.reply = R"({"interval_s": 3})";
  Reports reports;
  CloudJoin join(options_for(cloud.url(), milliseconds(40)), reports.fn());  // 3 "s" = 120 ms
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(cloud.wait_beats(4));
  auto beats = cloud.beats();
  for (size_t i = 1; i < 4; i++) {
    const auto gap = beats[i].first - beats[i - 1].first;
    EXPECT_GE(gap, milliseconds(110)) << i;
    EXPECT_LT(gap, milliseconds(1000)) << i;
  }
  cloud.reply = R"({"interval_s": 100000})";
  EXPECT_TRUE(eventually([&] { return join.state().interval_s == kMaxHeartbeatS; }));
  join.stop();
  FakeCloud fast;
  fast.reply = R"({"interval_s": 0})";
  CloudJoin join2(options_for(fast.url(), milliseconds(20)), reports.fn());
  ASSERT_TRUE(join2.start().ok());
  EXPECT_TRUE(fast.wait_beats(3));
  EXPECT_EQ(join2.state().interval_s, kMinHeartbeatS);
}

TEST(CloudJoin, AWrongTokenOrABadReplyIsLoggedOnceAndRetried) {
  log::LogCapture logs;
  FakeCloud cloud(0, "another-token-0123456789");
  Reports reports;
  CloudJoin join(options_for(cloud.url(), milliseconds(10)), reports.fn());
  ASSERT_TRUE(join.start().ok());
  EXPECT_TRUE(eventually([&] { return join.state().sent >= 5; }));
  EXPECT_FALSE(join.state().joined);
  EXPECT_TRUE(contains(join.state().error, "401")) << join.state().error;
  join.stop();
  const std::string text = logs.text();
  size_t warnings = 0;
  for (size_t at = 0; (at = text.find("heartbeat failed", at)) != std::string::npos; at++)
    warnings++;
  EXPECT_EQ(warnings, 1u) << text;

  FakeCloud garbled;
  garbled.reply = "not json";
  CloudJoin join2(options_for(garbled.url(), milliseconds(10)), reports.fn());
  ASSERT_TRUE(join2.start().ok());
  EXPECT_TRUE(eventually([&] { return join2.state().sent >= 2; }));
  EXPECT_FALSE(join2.state().joined);
  EXPECT_TRUE(contains(join2.state().error, "interval_s")) << join2.state().error;
}

TEST(CloudJoin, StopIsPromptInTheWaitAndDuringAHungHeartbeat) {
  FakeCloud cloud;
  cloud.reply = R"({"interval_s": 60})";
  Reports reports;
  CloudJoin join(options_for(cloud.url(), milliseconds(1000)), reports.fn());
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(eventually([&] { return join.state().joined; }));
  auto t0 = Clock::now();
  join.stop();
  EXPECT_LT(Clock::now() - t0, milliseconds(500));  // not the 60 s wait

  // The control plane takes the heartbeat and never answers (until the test ends).
  FakeCloud hung;
  hung.hold();
  auto o = options_for(hung.url(), milliseconds(1000));
  o.request_timeout_ms = 5000;
  CloudJoin join2(o, reports.fn());
  ASSERT_TRUE(join2.start().ok());
  ASSERT_TRUE(hung.wait_beats(1));
  const int calls = reports.calls;
  t0 = Clock::now();
  join2.stop();
  EXPECT_LT(Clock::now() - t0, milliseconds(1500));
  hung.release();
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(reports.calls, calls);  // the report is never built after stop()
}

TEST(CloudJoin, AControlPlaneDownThenUpIsJoinedLostAndRegained) {
  log::LogCapture logs;
  int port = 0;
  {
    auto sock = http::listen_tcp("--listen", "127.0.0.1:0");
    ASSERT_TRUE(sock.ok());
    port = sock->port();
  }  // closed: nobody listens there now
  Reports reports;
  CloudJoin join(options_for("http://127.0.0.1:" + std::to_string(port), milliseconds(20)),
                 reports.fn());
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(eventually([&] { return join.state().sent >= 3; }));
  EXPECT_FALSE(join.state().joined);
  EXPECT_TRUE(contains(join.state().error, "cannot reach")) << join.state().error;
  {
    FakeCloud cloud(port);
    ASSERT_EQ(cloud.port, port);
    ASSERT_TRUE(eventually([&] { return join.state().joined; }));
  }  // down again
  ASSERT_TRUE(eventually([&] { return !join.state().joined; }));
  FakeCloud again(port);
  ASSERT_TRUE(eventually([&] { return join.state().joined; }));
  join.stop();
  const std::string text = logs.text();
  EXPECT_TRUE(contains(text, "info joined cloud http://127.0.0.1:" + std::to_string(port) +
                                 " as host-a in nimbus-1a"))
      << text;
  EXPECT_TRUE(contains(text, "warning cloud http://127.0.0.1:" + std::to_string(port) + ": lost"))
      << text;
  EXPECT_TRUE(contains(text, ": regained")) << text;
  // Memory does not grow with failures: the state holds one error, whatever the count.
  EXPECT_LT(join.state().error.size(), 512u);
}

// Several replicas: a heartbeat the current one cannot answer (5xx, no connection) goes to
// the next at once, and the heartbeats stay with the one that answered.
TEST(CloudJoin, AReplicaThatFailsHandsTheHeartbeatsToTheNext) {
  FakeCloud a, b;
  a.reply_status = 503;
  a.reply = R"({"error": {"code": "Unavailable", "message": "etcd: no quorum"}})";
  Reports reports;
  CloudJoin join(options_for(a.url() + "," + b.url()), reports.fn());
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(b.wait_beats(3));
  EXPECT_EQ(a.beats().size(), 1u);  // tried once, then left
  EXPECT_TRUE(eventually([&] { return join.state().joined && join.state().url == b.url(); }));
  EXPECT_EQ(join.state().error, "");
  // Every heartbeat was answered: the failed try was not a lost heartbeat.
  EXPECT_EQ(join.state().sent, join.state().answered);
  // The one that answers fails in turn: back to the first, which answers now.
  a.reply_status = 200;
  a.reply = R"({"interval_s": 1})";
  b.reply_status = 500;
  ASSERT_TRUE(a.wait_beats(3));
  EXPECT_TRUE(eventually([&] { return join.state().url == a.url(); }));
  EXPECT_TRUE(join.state().joined);
}

TEST(CloudJoin, AnUnreachableReplicaIsSkippedAndA4xxIsTheAnswer) {
  int dead_port;
  {
    FakeCloud gone;
    dead_port = gone.port;
  }
  FakeCloud b;
  Reports reports;
  CloudJoin join(options_for("http://127.0.0.1:" + std::to_string(dead_port) + "," + b.url()),
                 reports.fn());
  ASSERT_TRUE(join.start().ok());
  ASSERT_TRUE(b.wait_beats(2));
  EXPECT_TRUE(eventually([&] { return join.state().joined && join.state().url == b.url(); }));
  join.stop();
  // A refusal (4xx) is the control plane's answer, not a replica down: no failover.
  FakeCloud c, d;
  c.reply_status = 400;
  c.reply = R"({"error": {"code": "InvalidParameterValue", "message": "bad zone"}})";
  CloudJoin join2(options_for(c.url() + "," + d.url()), reports.fn());
  ASSERT_TRUE(join2.start().ok());
  ASSERT_TRUE(c.wait_beats(3));
  EXPECT_TRUE(d.beats().empty());
  EXPECT_FALSE(join2.state().joined);
  EXPECT_NE(join2.state().error.find("bad zone"), std::string::npos) << join2.state().error;
}

TEST(CloudJoin, ValidatesIdsZonesAndUrls) {
  EXPECT_TRUE(valid_host_id("host-a"));
  EXPECT_TRUE(valid_host_id("h1"));
  EXPECT_FALSE(valid_host_id("1host"));
  EXPECT_FALSE(valid_host_id("Host"));
  EXPECT_FALSE(valid_host_id("host.example"));
  EXPECT_FALSE(valid_host_id(std::string(64, 'a')));
  EXPECT_TRUE(valid_zone("us-east-1a"));
  EXPECT_TRUE(valid_zone("nimbus-1b"));
  EXPECT_FALSE(valid_zone("us-east-1"));
  EXPECT_FALSE(valid_zone("US-EAST-1A"));
  EXPECT_FALSE(valid_zone(""));
  EXPECT_FALSE(valid_zone("a_b"));
  EXPECT_TRUE(check_cloud_url("http://127.0.0.1:8773").ok());
  EXPECT_TRUE(check_cloud_url("http://cloud.local:8773/").ok());
  EXPECT_FALSE(check_cloud_url("https://127.0.0.1:8773").ok());
  EXPECT_FALSE(check_cloud_url("unix:/run/cloud.sock").ok());
  EXPECT_FALSE(check_cloud_url("http://127.0.0.1:8773/api").ok());
  EXPECT_FALSE(check_cloud_url("http://127.0.0.1:99999").ok());
  // Several replicas, comma-separated: each must be a URL.
  EXPECT_TRUE(check_cloud_url("http://127.0.0.1:8773,http://127.0.0.2:8773").ok());
  EXPECT_FALSE(check_cloud_url("http://127.0.0.1:8773,").ok());
  EXPECT_FALSE(check_cloud_url(",http://127.0.0.1:8773").ok());
  EXPECT_FALSE(check_cloud_url("http://127.0.0.1:8773,ftp://127.0.0.2:21").ok());
  EXPECT_EQ(split_cloud_urls("http://a:1,http://b:2"),
            (std::vector<std::string>{"http://a:1", "http://b:2"}));
  CloudJoin bad(options_for("ftp://x"), Reports().fn());
  EXPECT_EQ(bad.start().code(), Code::kInvalidArgument);
}

// The report is the API's own JSON: exactly what GET /v1/host, /v1/vms and /v1/images say.
TEST_F(DaemonTest, HeartbeatReportIsTheApisJson) {
  create("web1");
  auto report = host_report(*daemon);
  ASSERT_TRUE(report.ok()) << report.message();
  auto get = [&](const std::string& path) {
    return json::parse(handle_host_request(*daemon, "GET", path, "").body);
  };
  EXPECT_EQ((*report)["host"], get("/v1/host"));
  EXPECT_EQ((*report)["vms"], get("/v1/vms")["vms"]);
  EXPECT_EQ((*report)["images"], get("/v1/images")["images"]);
  ASSERT_EQ((*report)["vms"].size(), 1u);
  EXPECT_EQ((*report)["vms"][0]["name"], "web1");
  EXPECT_TRUE((*report)["vms"][0].contains("usage"));
}

}  // namespace
}  // namespace nimbus::host
