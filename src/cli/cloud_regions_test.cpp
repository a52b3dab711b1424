// `nimbus cloud regions`: the pure parts (median, summary, order, choice, tables, export
// lines) and one measurement against small servers on 127.0.0.1.
#include "cli/cloud_regions.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <thread>

namespace nimbus::cli {
namespace {

using json = nlohmann::json;

RegionLatency lat(const std::string& name, std::vector<double> request,
                  std::vector<double> connect = {}, int failures = 0) {
  RegionLatency r;
  r.region = {name, "http://127.0.0.1:1/" + name};
  r.request_ms = std::move(request);
  r.connect_ms = connect.empty() ? std::vector<double>(r.request_ms.size(), 0.1) : connect;
  r.failures = failures;
  if (failures) r.error = "cannot connect: Connection refused";
  return r;
}

std::vector<std::string> names(const std::vector<RegionLatency>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.region.name);
  return out;
}

TEST(CloudRegions, Median) {
  EXPECT_FALSE(median({}).has_value());
  EXPECT_EQ(median({7}), 7);
  EXPECT_EQ(median({9, 1, 5}), 5);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median({100, 1, 2, 3, 1000}), 3);  // outliers do not move it
}

TEST(CloudRegions, Summary) {
  LatencySummary s = summarize(lat("a", {40, 42, 41, 90, 40.5}, {1, 2, 3, 4, 5}, 1));
  EXPECT_TRUE(s.reachable);
  EXPECT_EQ(s.median_ms, 41);
  EXPECT_EQ(s.min_ms, 40);
  EXPECT_EQ(s.max_ms, 90);
  EXPECT_EQ(s.connect_median_ms, 3);
  EXPECT_EQ(s.samples, 5);
  EXPECT_EQ(s.failures, 1);
  s = summarize(lat("b", {}, {}, 2));
  EXPECT_FALSE(s.reachable);
  EXPECT_EQ(s.samples, 0);
  EXPECT_EQ(s.failures, 2);
}

TEST(CloudRegions, SortsAndChoosesTheClosest) {
  std::vector<RegionLatency> v = {lat("west", {120, 121, 119}), lat("down", {}, {}, 2),
                                  lat("east", {5, 6, 90}), lat("central", {40, 41, 40})};
  ASSERT_EQ(closest_region(v), 2u);  // east: the median, not the mean (90 is an outlier)
  sort_by_latency(v);
  EXPECT_EQ(names(v), (std::vector<std::string>{"east", "central", "west", "down"}));
  EXPECT_EQ(closest_region(v), 0u);

  // Ties: the connect median, then the name.
  std::vector<RegionLatency> tie = {lat("b", {10}, {2}), lat("a", {10}, {2}), lat("c", {10}, {1})};
  EXPECT_EQ(closest_region(tie), 2u);
  tie.pop_back();
  EXPECT_EQ(closest_region(tie), 1u);

  std::vector<RegionLatency> none = {lat("x", {}, {}, 2), lat("y", {}, {}, 1)};
  EXPECT_FALSE(closest_region(none).has_value());
  EXPECT_FALSE(closest_region({}).has_value());
}

TEST(CloudRegions, FindsARegionByName) {
  const std::vector<CloudRegion> list = {{"nimbus-west-1", "http://w"},
                                         {"nimbus-east-1", "http://e"}};
  auto r = find_region(list, "nimbus-east-1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->endpoint, "http://e");
  r = find_region(list, "us-east-1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.message(), "no region 'us-east-1' (the regions: nimbus-west-1, nimbus-east-1)");
}

TEST(CloudRegions, ReadsTheControlPlanesListAndRefusesBadOnes) {
  auto ok = regions_from_json(json::parse(
      R"({"region": "a", "regions": [{"name": "a", "endpoint": "http://127.0.0.1:1/"},
                                     {"name": "b", "endpoint": "https://b.example"}]})"));
  ASSERT_TRUE(ok.ok()) << ok.message();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0].endpoint, "http://127.0.0.1:1");
  EXPECT_EQ((*ok)[1].name, "b");
  for (
      const char* bad : {
          R"([])",
          R"({"regions": {}})",
          R"({"regions": []})",
          R"({"regions": [{"name": "A\u001b[31m", "endpoint": "http://x"}]})",
          R"({"regions": [{"name": "a", "endpoint": "http://x"}, {"name": "a", "endpoint": "http://y"}]})",
          R"({"regions": [{"name": "a", "endpoint": "javascript:x"}]})",
          R"({"regions": [{"name": "a"}]})",
          R"({"regions": [3]})",
      }) {
    auto r = regions_from_json(json::parse(bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.message().find("GET /nimbus/v1/regions"), std::string::npos) << r.message();
  }
}

TEST(CloudRegions, Tables) {
  EXPECT_EQ(format_ms(0.004), "0.01 ms");
  EXPECT_EQ(format_ms(5.234), "5.23 ms");
  EXPECT_EQ(format_ms(40.26), "40.3 ms");
  EXPECT_EQ(format_ms(120.4), "120 ms");
  EXPECT_EQ(format_ms(std::nan("")), "0.01 ms");

  EXPECT_EQ(format_cloud_regions({{"nimbus-west-1", "http://127.0.0.1:8773"},
                                  {"nimbus-east-1", "http://10.0.0.2:8773"}},
                                 "nimbus-east-1"),
            "Region           Endpoint\n"
            "nimbus-west-1    http://127.0.0.1:8773\n"
            "nimbus-east-1 *  http://10.0.0.2:8773\n");
  std::vector<RegionLatency> v = {lat("east", {5.2, 5.5, 6.1}, {0.1, 0.2, 0.1}),
                                  lat("west", {}, {}, 2)};
  EXPECT_EQ(format_region_latencies(v),
            "Region  Endpoint                 Median   Min      Max      Connect  Samples\n"
            "east    http://127.0.0.1:1/east  5.50 ms  5.20 ms  6.10 ms  0.10 ms  3/3\n"
            "west    http://127.0.0.1:1/west  --       --       --       --       0/2\n");
  EXPECT_EQ(format_region_export({"nimbus-east-1", "http://10.0.0.2:8773"}),
            "  export AWS_DEFAULT_REGION=nimbus-east-1\n"
            "  aws --endpoint-url http://10.0.0.2:8773 ec2 describe-instances\n");
  // Endpoints reach the terminal without control characters.
  EXPECT_EQ(
      format_region_export({"a", "http://x\x1b[2J"}),
      "  export AWS_DEFAULT_REGION=a\n  aws --endpoint-url http://x?[2J ec2 describe-instances\n");
}

TEST(CloudRegions, Json) {
  std::vector<RegionLatency> v = {lat("east", {5, 6}), lat("west", {}, {}, 2)};
  json j = regions_json("west", {v[0].region, v[1].region}, &v);
  EXPECT_EQ(j["region"], "west");
  EXPECT_EQ(j["closest"], "east");
  EXPECT_EQ(j["regions"][0]["latency"]["median_ms"], 5.5);
  EXPECT_EQ(j["regions"][0]["latency"]["samples"], 2);
  EXPECT_EQ(j["regions"][1]["latency"]["reachable"], false);
  EXPECT_FALSE(j["regions"][1]["latency"].contains("median_ms"));
  EXPECT_EQ(j["regions"][1]["latency"]["error"], "cannot connect: Connection refused");
  j = regions_json("west", {v[0].region}, nullptr);
  EXPECT_FALSE(j.contains("closest"));
  EXPECT_EQ(j["regions"], json::parse(R"([{"name":"east","endpoint":"http://127.0.0.1:1/east"}])"));
}

// A server on 127.0.0.1 that answers every connection with `reply` after `delay_ms`.
class TinyServer {
 public:
  TinyServer(std::string reply, int delay_ms) : reply_(std::move(reply)), delay_ms_(delay_ms) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) ::close(c);
          return;
        }
        char buf[4096];
        std::string got;
        while (got.find("\r\n\r\n") == std::string::npos) {
          const ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          got.append(buf, static_cast<size_t>(n));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
        (void)!::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~TinyServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    const int poke = ::socket(AF_INET, SOCK_STREAM, 0);  // wakes accept
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    (void)!::connect(poke, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(poke);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string reply_;
  int delay_ms_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string health(const std::string& region) {
  const std::string body = R"({"region":")" + region + R"(","zones":[]})";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(CloudRegions, MeasuresRoundTripsAndNamesFailures) {
  TinyServer fast(health("fast"), 0), slow(health("slow"), 30), liar(health("other"), 0),
      broken("HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n", 0);
  int closed_port;
  {
    TinyServer gone(health("x"), 0);
    closed_port = std::stoi(gone.url().substr(17));
  }
  const std::vector<CloudRegion> list = {
      {"slow", slow.url()},
      {"fast", fast.url()},
      {"liar", liar.url()},
      {"broken", broken.url()},
      {"closed", "http://127.0.0.1:" + std::to_string(closed_port)},
      {"tls", "https://127.0.0.1:1"}};
  std::vector<RegionLatency> m = measure_regions(list, 3);
  ASSERT_EQ(m.size(), list.size());
  EXPECT_EQ(m[0].request_ms.size(), 3u);
  EXPECT_EQ(m[1].request_ms.size(), 3u);
  const LatencySummary s = summarize(m[0]);
  EXPECT_GE(s.min_ms, 29.5);  // the server's 30 ms
  EXPECT_LT(summarize(m[1]).median_ms, s.median_ms);
  EXPECT_EQ(closest_region(m), 1u);
  EXPECT_EQ(m[2].error, "the endpoint answers for region 'other', not liar");
  EXPECT_EQ(m[3].error, "GET /nimbus/v1/health: HTTP 503");
  EXPECT_NE(m[4].error.find("cannot connect"), std::string::npos) << m[4].error;
  EXPECT_EQ(m[4].failures, 2);  // not tried a third time
  EXPECT_EQ(m[5].error, "https:// endpoints are not measured");
  for (size_t i = 2; i < m.size(); ++i) EXPECT_FALSE(summarize(m[i]).reachable) << i;
}

}  // namespace
}  // namespace nimbus::cli
