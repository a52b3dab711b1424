// Daemon helpers that need no VMs (the daemon itself is driven by tests/host).
#include "host/daemon.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nimbus::host {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A TCP port on 127.0.0.1 bound (and listening) by this test.
class HeldPort {
 public:
  HeldPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~HeldPort() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(CheckHostPort, AnAddressOfAnotherHostIsNotAPortInUse) {
  for (const char* addr : {"8.8.8.8", "192.0.2.1"}) {
    const Status s = check_host_port(config::PortForward{.protocol = "tcp",
                                                         .host_address = addr,
                                                         .host_port = 18080,
                                                         .guest_address = "",
                                                         .guest_port = 80});
    ASSERT_FALSE(s.ok()) << addr;
    EXPECT_TRUE(contains(s.message(), "not an address of this host")) << s.message();
    EXPECT_FALSE(contains(s.message(), "in use")) << s.message();
    const Status u = check_host_port(config::PortForward{.protocol = "udp",
                                                         .host_address = addr,
                                                         .host_port = 18080,
                                                         .guest_address = "",
                                                         .guest_port = 80});
    ASSERT_FALSE(u.ok());
    EXPECT_TRUE(contains(u.message(), "not an address of this host")) << u.message();
  }
}

TEST(CheckHostPort, APortInUseSaysSoAndAFreeOneIsFine) {
  HeldPort held;
  const Status s = check_host_port(config::PortForward{.protocol = "tcp",
                                                       .host_address = "127.0.0.1",
                                                       .host_port = held.port(),
                                                       .guest_address = "",
                                                       .guest_port = 80});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "in use by another program")) << s.message();
  EXPECT_TRUE(contains(s.message(), std::to_string(held.port()))) << s.message();
  // The same port for UDP is another port.
  EXPECT_TRUE(check_host_port(config::PortForward{.protocol = "udp",
                                                  .host_address = "127.0.0.1",
                                                  .host_port = held.port(),
                                                  .guest_address = "",
                                                  .guest_port = 80})
                  .ok());
  EXPECT_FALSE(check_host_port(config::PortForward{.protocol = "tcp",
                                                   .host_address = "not-an-ip",
                                                   .host_port = 8080,
                                                   .guest_address = "",
                                                   .guest_port = 80})
                   .ok());
}

}  // namespace
}  // namespace nimbus::host
