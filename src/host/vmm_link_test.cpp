#include "host/vmm_link.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/http_server.h"

namespace nimbus::host {
namespace {

using Clock = std::chrono::steady_clock;

std::string temp_dir() {
  char tmpl[] = "/tmp/nimbus-vmm-link-XXXXXX";
  return ::mkdtemp(tmpl);
}

// A VMM API look-alike: errors in the VMM's {"fault_message"} shape.
class FakeVmm {
 public:
  explicit FakeVmm(http::Handler handler) : dir_(temp_dir()) {
    auto sock = http::listen_unix("--api-sock", path(), 0600, "VMM");
    EXPECT_TRUE(sock.ok()) << sock.message();
    http::ServerOptions o;
    o.error_body = [](int, std::string_view, std::string_view m) {
      return nlohmann::json{{"fault_message", std::string(m)}}.dump();
    };
    server_ = std::make_unique<http::Server>(std::move(*sock), o);
    server_->serve(std::move(handler));
  }
  ~FakeVmm() {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string path() const { return dir_ + "/api.sock"; }

 private:
  std::string dir_;
  std::unique_ptr<http::Server> server_;
};

TEST(VmmLink, RepliesAndFaultMessages) {
  std::string seen;
  FakeVmm vmm([&](const http::Request& r) {
    seen = r.method + " " + r.path + " " + r.body;
    if (r.path == "/") return http::Reply{200, R"({"state": "Running"})"};
    if (r.path == "/vm") return http::Reply{400, R"({"fault_message": "the VM is not running"})"};
    if (r.path == "/actions") return http::Reply{200, R"({"graceful": true})"};
    return http::Reply{204, ""};
  });
  VmmLink link(vmm.path());
  auto info = link.info();
  ASSERT_TRUE(info.ok()) << info.message();
  EXPECT_EQ((*info)["state"], "Running");

  Status paused = link.pause();
  EXPECT_EQ(paused.code(), Code::kInvalidArgument);
  EXPECT_EQ(paused.message(), "the VM is not running");
  EXPECT_EQ(seen, R"(PATCH /vm {"state":"Paused"})");

  auto graceful = link.shutdown(5);
  ASSERT_TRUE(graceful.ok()) << graceful.message();
  EXPECT_TRUE(*graceful);
  EXPECT_EQ(seen, R"(PUT /actions {"action_type":"Shutdown","timeout_s":5})");

  EXPECT_TRUE(link.snapshot_create("/tmp/x").ok());  // 204 without a body
}

TEST(VmmLink, AGoneVmmIsUnavailable) {
  const std::string dir = temp_dir();
  EXPECT_EQ(VmmLink(dir + "/api.sock").info().code(), Code::kUnavailable);
  // A stale socket file: the VMM died without removing it.
  const std::string path = dir + "/stale.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ::close(fd);
  auto r = VmmLink(path).info();
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_EQ(r.message(), "cannot reach the VMM at " + path + ": Connection refused");
  std::filesystem::remove_all(dir);
}

TEST(VmmLink, AHungVmmIsDeadlineExceededWithinTheTimeout) {
  // Accepts (the kernel does, from the backlog) but never answers.
  const std::string dir = temp_dir();
  const std::string path = dir + "/api.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  const auto t0 = Clock::now();
  auto r = VmmLink(path).info(300);
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.code(), Code::kDeadlineExceeded) << r.message();
  EXPECT_GE(took, 0.25);
  EXPECT_LT(took, 1.5);
  ::close(fd);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nimbus::host
