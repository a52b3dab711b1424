#include "host/host_api_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "common/http_server.h"

namespace nimbus::host {
namespace {

using nlohmann::json;

// A nimbusd look-alike on a real http::Server (nimbusd's error shape).
class FakeNimbusd {
 public:
  FakeNimbusd(bool tcp, std::string token = "") {
    char tmpl[] = "/tmp/nimbus-host-api-client-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    auto sock = tcp ? http::listen_tcp("--listen", "127.0.0.1:0")
                    : http::listen_unix("--socket", dir_ + "/nimbusd.sock", 0600, "nimbusd");
    EXPECT_TRUE(sock.ok()) << sock.message();
    target_ =
        tcp ? "http://127.0.0.1:" + std::to_string(sock->port()) : "unix:" + dir_ + "/nimbusd.sock";
    http::ServerOptions o;
    o.token = std::move(token);
    server_ = std::make_unique<http::Server>(std::move(*sock), o);
    server_->serve([this](const http::Request& r) {
      last_body = r.body;
      if (r.path == "/v1/vms" && r.method == "POST") {
        return http::Reply{409, http::host_error_body(409, "InsufficientCapacity",
                                                      "not enough memory: 64 MiB free")};
      }
      if (r.path == "/v1/vms/nope") {
        return http::Reply{404, http::host_error_body(404, "NotFound", "no VM named 'nope'")};
      }
      if (r.path == "/v1/text") return http::Reply{200, "not json", "text/plain"};
      if (r.path == "/v1/empty") return http::Reply{200, ""};
      return http::Reply{200, R"({"vms": []})"};
    });
  }
  ~FakeNimbusd() {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  const std::string& target() const { return target_; }
  std::string last_body;

 private:
  std::string dir_, target_;
  std::unique_ptr<http::Server> server_;
};

TEST(HostApiClient, JsonRepliesAndTypedApiErrors) {
  FakeNimbusd fake(false);
  auto c = HostApiClient::create(fake.target());
  ASSERT_TRUE(c.ok()) << c.message();
  auto list = c->call("GET", "/v1/vms");
  ASSERT_TRUE(list.ok()) << list.message();
  EXPECT_TRUE((*list)["vms"].is_array());
  EXPECT_EQ(c->last_status(), 200);

  auto full = c->call("POST", "/v1/vms", json{{"name", "web1"}});
  EXPECT_EQ(fake.last_body, R"({"name":"web1"})");
  EXPECT_EQ(full.code(), Code::kInsufficientCapacity);
  EXPECT_EQ(full.message(), "not enough memory: 64 MiB free");
  EXPECT_EQ(c->last_status(), 409);
  EXPECT_EQ(c->last_code(), "InsufficientCapacity");

  auto missing = c->call("GET", "/v1/vms/nope");
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_EQ(c->last_code(), "NotFound");

  auto empty = c->call("POST", "/v1/empty");
  ASSERT_TRUE(empty.ok()) << empty.message();
  EXPECT_EQ(*empty, json::object());
  EXPECT_EQ(c->last_code(), "");

  auto text = c->call("GET", "/v1/text");
  EXPECT_EQ(text.code(), Code::kInternal);
  EXPECT_NE(text.message().find("not JSON"), std::string::npos) << text.message();
}

TEST(HostApiClient, TokenOverTcpAndTransportErrors) {
  FakeNimbusd fake(true, "tok-123");
  auto with = HostApiClient::create(fake.target(), "tok-123");
  ASSERT_TRUE(with.ok()) << with.message();
  EXPECT_TRUE(with->call("GET", "/v1/vms").ok());
  auto without = HostApiClient::create(fake.target());
  auto denied = without->call("GET", "/v1/vms");
  EXPECT_EQ(denied.code(), Code::kPermissionDenied);
  EXPECT_EQ(without->last_status(), 401);
  EXPECT_EQ(without->last_code(), "Unauthorized");

  EXPECT_EQ(HostApiClient::create("tcp://nope").code(), Code::kInvalidArgument);
  auto gone = HostApiClient::create("unix:/nonexistent/nimbusd.sock");
  auto r = gone->call("GET", "/v1/host");
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_EQ(r.message(),
            "cannot reach nimbusd at /nonexistent/nimbusd.sock: No such file or directory");
  EXPECT_EQ(gone->last_status(), 0);
}

}  // namespace
}  // namespace nimbus::host
