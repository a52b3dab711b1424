#include "common/http_listen.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace nimbus::http {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/nimbus-http-XXXXXX";
  return ::mkdtemp(tmpl);
}

int connect_nonblocking(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  return fd;
}

TEST(HttpListen, BadTcpAddressesSayWhatIsWrong) {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {{"garbage", "use ADDRESS:PORT"},
               {":8080", "use ADDRESS:PORT"},
               {"127.0.0.1:-5", "a number from 0 to 65535"},
               {"127.0.0.1:65536", "a number from 0 to 65535"},
               {"127.0.0.1:", "a number from 0 to 65535"},
               {"127.0.0.1:80x", "a number from 0 to 65535"},
               {"garbage:80", "'garbage' is not an IP address"},
               {"::1:80", "in brackets"}};
  for (const Case& c : cases) {
    auto r = listen_tcp("--listen", c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.message().find(c.says), std::string::npos) << c.text << ": " << r.message();
    EXPECT_EQ(r.message().find("--listen '" + std::string(c.text) + "'"), 0u) << r.message();
  }
}

TEST(HttpListen, AnAddressOfAnotherHostIsNamedAsSuch) {
  auto r = listen_tcp("--listen", "1.2.3.4:8080");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("1.2.3.4 is not an address of this host"), std::string::npos)
      << r.message();
}

TEST(HttpListen, APortInUseSaysInUse) {
  auto first = listen_tcp("--listen", "127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.message();
  ASSERT_GT(first->port(), 0);
  const std::string again = "127.0.0.1:" + std::to_string(first->port());
  auto second = listen_tcp("--listen", again);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.message().find("is in use"), std::string::npos) << second.message();
}

TEST(HttpListen, ListeningSocketsAreNotInheritedByChildren) {
  auto s = listen_tcp("--listen", "[::1]:0");
  if (!s.ok()) s = listen_tcp("--listen", "localhost:0");  // no IPv6 here
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(::fcntl(s->fd(), F_GETFD) & FD_CLOEXEC);
}

// cpp-httplib listens with a backlog of 5: the 7th simultaneous connect waited for a SYN
// retry (a second or more) and clients gave up.
TEST(HttpListen, ABurstOfFiftyConnectsIsQueuedAtOnce) {
  auto s = listen_tcp("--listen", "127.0.0.1:0");
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<int> fds;
  for (int i = 0; i < 50; i++) fds.push_back(connect_nonblocking(s->port()));
  // Nobody accepts: the kernel's queue alone must hold them.
  int connected = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    int err = -1;
    socklen_t len = sizeof(err);
    if (::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0))) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      connected++;
    }
    ::close(fd);
  }
  EXPECT_EQ(connected, 50);
}

TEST(HttpListen, UnixSocketModeStaleAndLiveSockets) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/api.sock";
  {
    auto s = listen_unix("--socket", path, 0600, "nimbusd");
    ASSERT_TRUE(s.ok()) << s.message();
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // Someone serves there (answers the probe): refused, and the socket file stays.
    std::thread server([fd = s->fd()] {
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;
      const char reply[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      (void)!::write(c, reply, sizeof(reply) - 1);
      ::close(c);
    });
    auto again = listen_unix("--socket", path, 0600, "nimbusd");
    server.join();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.message(), "another nimbusd is serving on '" + path + "'");
    EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(path));  // removed with the socket
  // A stale socket file (its process died) is replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ::close(fd);
  }
  auto s = listen_unix("--socket", path, 0660, "nimbusd");
  ASSERT_TRUE(s.ok()) << s.message();
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  // Not a socket: left alone.
  const std::string file = dir + "/file";
  std::ofstream(file) << "data";
  auto f = listen_unix("--api-sock", file, 0600, "VMM");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.message().find("exists and is not a socket"), std::string::npos) << f.message();
  EXPECT_TRUE(std::filesystem::exists(file));
  auto longp = listen_unix("--socket", std::string(200, 'a'), 0600, "nimbusd");
  ASSERT_FALSE(longp.ok());
  EXPECT_NE(longp.message().find("1 to 107 bytes"), std::string::npos) << longp.message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nimbus::http

namespace nimbus::http {
namespace {

// After a kill -9 of nimbusd, a child it forked and that has not yet exec'd still holds the
// listening socket (close-on-exec): connects succeed but nobody ever answers. A restarted
// nimbusd must take the socket over instead of refusing to start.
TEST(HttpListen, ASocketHeldButNeverAnsweredIsReplaced) {
  const std::string path = temp_dir() + "/api.sock";
  auto held = listen_unix("--socket", path, 0600, "nimbusd");
  ASSERT_TRUE(held.ok()) << held.message();
  const auto t0 = std::chrono::steady_clock::now();
  auto s = listen_unix("--socket", path, 0600, "nimbusd");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  const int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  pollfd p{s->fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 1000), 1);  // the connection reached the new socket
  ::close(c);
}

}  // namespace
}  // namespace nimbus::http
