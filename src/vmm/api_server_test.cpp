// The VM API over its unix socket: replies keep their shape, and every refused request is
// logged once, on one line, with the VM's id.
#include "vmm/api_server.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/log_capture.h"
#include "vmm/recording_vmm.h"

namespace nimbus::vmm {
namespace {

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_api_server_XXXXXX";
    dir_ = mkdtemp(tmpl);
    log_ = std::make_unique<log::LogCapture>(spdlog::level::info);
    auto server = ApiServer::start(dir_ + "/api.sock", vmm_);
    ASSERT_TRUE(server.ok()) << server.message();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One request on its own connection; the whole reply.
  std::string request(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string sock = dir_ + "/api.sock";
    std::memcpy(a.sun_path, sock.c_str(), sock.size() + 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
    const std::string req = method + " " + path +
                            " HTTP/1.1\r\nHost: vm\r\nConnection: close\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    EXPECT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    std::string reply;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
      reply.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return reply;
  }

  std::string dir_;
  RecordingVmm vmm_;
  std::unique_ptr<log::LogCapture> log_;
  std::unique_ptr<ApiServer> server_;
};

TEST_F(ApiServerTest, RefusedRequestsAreLoggedOnceWithTheVm) {
  EXPECT_EQ(request("PUT", "/actions", R"({"action_type": "Pause"})").rfind("HTTP/1.1 400", 0), 0u);
  vmm_.refuse = Status::conflict("the VM is Running");
  const std::string conflict = request("PUT", "/actions", R"({"action_type": "InstanceStart"})");
  EXPECT_EQ(conflict.rfind("HTTP/1.1 409", 0), 0u) << conflict;
  EXPECT_NE(conflict.find(R"({"fault_message":"the VM is Running"})"), std::string::npos)
      << conflict;
  vmm_.refuse = Status::internal("the VM did not stop");
  EXPECT_EQ(request("PUT", "/actions", R"({"action_type": "Stop"})").rfind("HTTP/1.1 500", 0), 0u);
  // Control characters decoded from the path (an escape sequence, a tab) are not written
  // to the log as they are. (A newline never reaches the handler: httplib's router does
  // not match it and answers 404 itself.)
  EXPECT_EQ(request("GET", "/no%1B[31mred%09x", "").rfind("HTTP/1.1 404", 0), 0u);
  vmm_.refuse.reset();
  EXPECT_EQ(
      request("PUT", "/actions", R"({"action_type": "InstanceStart"})").rfind("HTTP/1.1 204", 0),
      0u);
  EXPECT_EQ(request("GET", "/").rfind("HTTP/1.1 200", 0), 0u);

  server_.reset();  // every handler has finished
  const std::string text = log_->text();
  EXPECT_NE(text.find("warning vm fake: PUT /actions refused (400): unknown action_type 'Pause'"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("warning vm fake: PUT /actions refused (409): the VM is Running\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("error vm fake: PUT /actions refused (500): the VM did not stop\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "warning vm fake: GET /no?[31mred?x refused (404): there is no resource /no?[31mred?x\n"),
      std::string::npos)
      << text;
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 4u) << "one line per refused request, none for the others:\n" << text;
}

}  // namespace
}  // namespace nimbus::vmm
