// The metadata server on its unix socket: what a guest's connection gets, limits included.
#include "vmm/imds_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace nimbus::vmm {
namespace {

class ImdsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = ImdsServer::start_private("vm1");
    ASSERT_TRUE(server.ok()) << server.message();
    server_ = std::move(*server);
    config::MetadataConfig m;
    m.data = config::json::parse(R"({"meta-data": {"instance-id": "i-0123"}})");
    server_->set(m);
  }

  // One raw request on its own connection; the whole reply.
  std::string exchange(const std::string& request) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string& sock = server_->socket_path();
    std::memcpy(a.sun_path, sock.c_str(), sock.size() + 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string reply;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
      reply.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return reply;
  }
  std::string simple(const std::string& method, const std::string& path,
                     const std::string& headers = "") {
    return exchange(method + " " + path + " HTTP/1.0\r\nHost: 169.254.169.254\r\n" + headers +
                    "\r\n");
  }
  static int status(const std::string& reply) {
    return reply.size() > 12 ? std::atoi(reply.substr(9, 3).c_str()) : 0;
  }
  static std::string body(const std::string& reply) {
    const size_t at = reply.find("\r\n\r\n");
    return at == std::string::npos ? "" : reply.substr(at + 4);
  }

  std::unique_ptr<ImdsServer> server_;
};

TEST_F(ImdsServerTest, ServesV1AndV2OverTheSocket) {
  std::string r = simple("GET", "/latest/meta-data/instance-id");
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_EQ(body(r), "i-0123");
  EXPECT_NE(r.find("Server: EC2ws"), std::string::npos);
  r = simple("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 30\r\n");
  ASSERT_EQ(status(r), 200) << r;
  const std::string token = body(r);
  EXPECT_EQ(token.size(), 40u);
  EXPECT_NE(r.find("X-aws-ec2-metadata-token-ttl-seconds: 30"), std::string::npos);
  r = simple("GET", "/latest/meta-data/", "X-aws-ec2-metadata-token: " + token + "\r\n");
  EXPECT_EQ(status(r), 200);
  EXPECT_EQ(body(r), "instance-id");
  EXPECT_EQ(status(simple("GET", "/latest/meta-data/", "X-aws-ec2-metadata-token: x\r\n")), 401);
  EXPECT_EQ(status(simple("GET", "/latest/user-data")), 404);
  EXPECT_EQ(status(simple("POST", "/latest/meta-data/")), 405);
  EXPECT_EQ(status(simple("DELETE", "/latest/meta-data/")), 405);
}

TEST_F(ImdsServerTest, OptionsChangeLiveAndTokensSurvive) {
  const std::string token =
      body(simple("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n"));
  config::MetadataConfig m;
  m.data = config::json::parse(R"({"meta-data": {"instance-id": "i-4567"}})");
  m.options.tokens_required = true;
  m.options.hop_limit = 3;
  server_->set(m);
  EXPECT_EQ(server_->link()->hop_limit.load(), 3);
  EXPECT_TRUE(server_->link()->serving.load());
  EXPECT_EQ(status(simple("GET", "/latest/meta-data/instance-id")), 401);
  std::string r =
      simple("GET", "/latest/meta-data/instance-id", "X-aws-ec2-metadata-token: " + token + "\r\n");
  EXPECT_EQ(body(r), "i-4567");
  m.options.endpoint_enabled = false;
  server_->set(m);
  EXPECT_EQ(status(simple("GET", "/latest/meta-data/instance-id",
                          "X-aws-ec2-metadata-token: " + token + "\r\n")),
            403);
  server_->set(std::nullopt);
  EXPECT_FALSE(server_->link()->serving.load());
}

TEST_F(ImdsServerTest, HugeRequestsAreRefusedAndTheServerGoesOn) {
  // A head over 64 KiB, a body over the limit, garbage: refused, never served.
  std::string huge = "GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 2000; i++)
    huge += "X-Pad-" + std::to_string(i) + ": " + std::string(50, 'a') + "\r\n";
  huge += "\r\n";
  EXPECT_NE(status(exchange(huge)), 200);
  const std::string big_body = std::string(4096, 'x');
  const int s =
      status(exchange("PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
                      "X-aws-ec2-metadata-token-ttl-seconds: 5\r\nContent-Length: " +
                      std::to_string(big_body.size()) + "\r\n\r\n" + big_body));
  EXPECT_EQ(s, 413);
  EXPECT_EQ(status(exchange("\x01\x02 garbage\r\n\r\n")), 400);
  EXPECT_EQ(body(simple("GET", "/latest/meta-data/instance-id")), "i-0123");
}

TEST_F(ImdsServerTest, TheSocketIsTheVmmsAlone) {
  struct stat st {};
  ASSERT_EQ(::stat(server_->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string dir = std::filesystem::path(server_->socket_path()).parent_path();
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace nimbus::vmm
