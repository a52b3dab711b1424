#include "common/http_client.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/http_server.h"

namespace nimbus::http {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kToken = "client-test-token-42";

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string temp_dir() {
  char tmpl[] = "/tmp/nimbus-http-client-XXXXXX";
  return ::mkdtemp(tmpl);
}

// Echoes what it received, so tests can see what the client sent.
Reply echo(const Request& r) {
  if (r.path == "/big") return Reply{200, std::string(5000, 'x'), "text/plain"};
  if (r.path == "/missing") {
    return Reply{404, host_error_body(404, "NotFound", "no VM named 'missing'"),
                 "application/json"};
  }
  return Reply{200, fmt::format(R"({{"method": "{}", "path": "{}", "body": "{}"}})", r.method,
                                r.path, r.body)};
}

// A real http::Server on a unix socket in a temp dir, or on 127.0.0.1:0.
class ServerFixture {
 public:
  explicit ServerFixture(bool tcp, std::string token = "") : dir_(temp_dir()) {
    ServerOptions o;
    o.token = std::move(token);
    o.max_body = 1024;
    auto sock = tcp ? listen_tcp("--listen", "127.0.0.1:0")
                    : listen_unix("--api-sock", dir_ + "/api.sock", 0600, "test server");
    EXPECT_TRUE(sock.ok()) << sock.message();
    target_ = tcp ? fmt::format("http://127.0.0.1:{}", sock->port()) : "unix:" + dir_ + "/api.sock";
    server_ = std::make_unique<Server>(std::move(*sock), o);
    server_->serve(echo);
  }
  ~ServerFixture() {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  const std::string& target() const { return target_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string target_;
  std::unique_ptr<Server> server_;
};

// A raw unix socket server that reads a request head and then does what the test says.
class RawServer {
 public:
  explicit RawServer(std::function<void(int fd)> behave) : dir_(temp_dir()) {
    path_ = dir_ + "/raw.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    thread_ = std::thread([this, behave = std::move(behave)] {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) return;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      behave(c);
      ::close(c);
    });
  }
  ~RawServer() {
    stop = true;
    thread_.join();
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  std::string target() const { return "unix:" + path_; }
  std::atomic<bool> stop{false};

 private:
  std::string dir_, path_;
  int fd_ = -1;
  std::thread thread_;
};

void send_text(int fd, const std::string& s) {
  [[maybe_unused]] ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
}

TEST(HttpTarget, ParsesUnixAndHttpTargets) {
  auto u = parse_target("unix:/run/nimbus/nimbusd.sock");
  ASSERT_TRUE(u.ok()) << u.message();
  EXPECT_TRUE(u->unix_socket);
  EXPECT_EQ(u->path, "/run/nimbus/nimbusd.sock");
  EXPECT_EQ(u->shown(), "/run/nimbus/nimbusd.sock");
  auto t = parse_target("http://10.0.0.5:7777/");
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_FALSE(t->unix_socket);
  EXPECT_EQ(t->host, "10.0.0.5");
  EXPECT_EQ(t->port, 7777);
  auto v6 = parse_target("http://[::1]:8000");
  ASSERT_TRUE(v6.ok()) << v6.message();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->shown(), "http://[::1]:8000");
  EXPECT_EQ(parse_target("http://example.org")->port, 80);
}

TEST(HttpTarget, BadTargetsAreInvalidArguments) {
  for (const char* bad :
       {"", "/run/nimbusd.sock", "unix:", "https://h:1", "http://", "http://h:0", "http://h:99999",
        "http://h:x", "http://h:", "http://[::1", "http://[::1]x", "http://[nope]:1",
        "http://h/path", "ftp://h", "http://u@h:1", "unix:/a\nb"}) {
    auto t = parse_target(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.code(), Code::kInvalidArgument) << bad;
    auto c = Client::create(bad);
    EXPECT_EQ(c.code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(parse_target("unix:/" + std::string(200, 'x')).code(), Code::kInvalidArgument);
}

TEST(HttpClient, RoundTripOnAUnixSocket) {
  ServerFixture s(false);
  auto c = Client::create(s.target());
  ASSERT_TRUE(c.ok()) << c.message();
  auto get = c->request("GET", "/v1/vms");
  ASSERT_TRUE(get.ok()) << get.message();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, R"({"method": "GET", "path": "/v1/vms", "body": ""})");
  EXPECT_EQ(get->content_type, "application/json");
  auto post = c->request("POST", "/v1/vms", "hello");
  ASSERT_TRUE(post.ok()) << post.message();
  EXPECT_EQ(post->body, R"({"method": "POST", "path": "/v1/vms", "body": "hello"})");
  auto empty_post = c->request("POST", "/v1/vms/a/stop");
  ASSERT_TRUE(empty_post.ok()) << empty_post.message();
  EXPECT_EQ(empty_post->status, 200);
}

TEST(HttpClient, SendsTheBearerTokenOverTcp) {
  ServerFixture s(true, kToken);
  EXPECT_EQ(s.target().rfind("http://127.0.0.1:", 0), 0u);
  ClientOptions o;
  o.token = kToken;
  auto ok = Client::create(s.target(), o)->request("GET", "/v1/host");
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(ok->status, 200);  // the server refuses without the token: it was sent

  o.token = "wrong";
  auto denied = Client::create(s.target(), o)->request("POST", "/v1/vms", "{}");
  ASSERT_TRUE(denied.ok()) << denied.message();  // a reply: 401
  EXPECT_EQ(denied->status, 401);
  std::string api_code;
  Status st = reply_error(*denied, &api_code);
  EXPECT_EQ(st.code(), Code::kPermissionDenied);
  EXPECT_EQ(api_code, "Unauthorized");
  EXPECT_NE(st.message().find("Bearer"), std::string::npos) << st.message();
}

TEST(HttpClient, NoSocketFileIsUnavailable) {
  const std::string dir = temp_dir();
  ClientOptions o;
  o.peer = "nimbusd";
  auto r = Client::create("unix:" + dir + "/nimbusd.sock", o)->request("GET", "/v1/vms");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_EQ(r.message(),
            "cannot reach nimbusd at " + dir + "/nimbusd.sock: No such file or directory");
  std::filesystem::remove_all(dir);
}

TEST(HttpClient, StaleSocketFileIsUnavailable) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/stale.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ::close(fd);  // the file stays, nobody listens
  auto r = Client::create("unix:" + path)->request("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_EQ(r.message(), "cannot reach " + path + ": Connection refused");
  std::filesystem::remove_all(dir);
}

TEST(HttpClient, ClosedTcpPortIsUnavailable) {
  int port = 0;
  {
    auto sock = listen_tcp("--listen", "127.0.0.1:0");
    ASSERT_TRUE(sock.ok());
    port = sock->port();
  }  // closed again: nobody listens there now
  auto r = Client::create(fmt::format("http://127.0.0.1:{}", port))->request("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_NE(r.message().find("Connection refused"), std::string::npos) << r.message();
}

TEST(HttpClient, AServerThatNeverAnswersIsDeadlineExceededWithinTheTimeout) {
  RawServer raw([](int fd) {  // silent until the client gives up and closes
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 5000);
  });
  ClientOptions o;
  o.read_timeout_ms = 400;
  o.peer = "the VMM";
  const auto t0 = Clock::now();
  auto r = Client::create(raw.target(), o)->request("GET", "/");
  const double took = seconds_since(t0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kDeadlineExceeded);
  EXPECT_NE(r.message().find("no reply from the VMM at"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("within 400 ms"), std::string::npos) << r.message();
  EXPECT_GE(took, 0.35);
  EXPECT_LT(took, 1.5);
}

TEST(HttpClient, ATricklingServerCannotStretchTheDeadline) {
  // A byte every 100 ms: a per-read timeout of 400 ms would never fire.
  RawServer raw([](int fd) {
    const std::string reply =
        "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'x');
    for (char c : reply) {
      if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  ClientOptions o;
  o.read_timeout_ms = 400;
  const auto t0 = Clock::now();
  auto r = Client::create(raw.target(), o)->request("GET", "/");
  const double took = seconds_since(t0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kDeadlineExceeded);
  EXPECT_LT(took, 1.5);
}

TEST(HttpClient, ABodyOverTheLimitIsRefused) {
  ServerFixture s(false);
  ClientOptions o;
  o.max_reply_body = 4999;
  auto r = Client::create(s.target(), o)->request("GET", "/big");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kInternal);
  EXPECT_NE(r.message().find("over 4999 bytes"), std::string::npos) << r.message();
  o.max_reply_body = 5000;
  auto fits = Client::create(s.target(), o)->request("GET", "/big");
  ASSERT_TRUE(fits.ok()) << fits.message();
  EXPECT_EQ(fits->body.size(), 5000u);
}

TEST(HttpClient, AChunkedOrUnframedBodyOverTheLimitIsRefused) {
  {
    RawServer raw([](int fd) {
      send_text(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 100; i++) send_text(fd, "10\r\n0123456789abcdef\r\n");
      send_text(fd, "0\r\n\r\n");
    });
    ClientOptions o;
    o.max_reply_body = 1000;
    auto r = Client::create(raw.target(), o)->request("GET", "/");
    EXPECT_EQ(r.code(), Code::kInternal);
  }
  {
    RawServer raw([](int fd) {
      send_text(fd, "HTTP/1.1 200 OK\r\n\r\n");  // until the end
      send_text(fd, std::string(3000, 'y'));
    });
    ClientOptions o;
    o.max_reply_body = 1000;
    auto r = Client::create(raw.target(), o)->request("GET", "/");
    EXPECT_EQ(r.code(), Code::kInternal);
  }
}

TEST(HttpClient, ReadsChunkedAndUnframedBodies) {
  {
    RawServer raw([](int fd) {
      send_text(fd,
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                "\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n");
    });
    auto r = Client::create(raw.target())->request("GET", "/");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->body, "hello world");
  }
  {
    RawServer raw([](int fd) { send_text(fd, "HTTP/1.0 200 OK\r\n\r\nto the end"); });
    auto r = Client::create(raw.target())->request("GET", "/");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->body, "to the end");
  }
}

TEST(HttpClient, APeerThatClosesOrBabblesIsAnError) {
  {
    RawServer raw([](int) {});  // reads the request, closes without a word
    auto r = Client::create(raw.target())->request("GET", "/");
    EXPECT_EQ(r.code(), Code::kUnavailable);
    EXPECT_NE(r.message().find("closed the connection"), std::string::npos) << r.message();
  }
  {
    RawServer raw(
        [](int fd) { send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"); });
    auto r = Client::create(raw.target())->request("GET", "/");
    EXPECT_EQ(r.code(), Code::kUnavailable);
  }
  for (const char* junk : {"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    RawServer raw([junk](int fd) { send_text(fd, junk); });
    auto r = Client::create(raw.target())->request("GET", "/");
    EXPECT_EQ(r.code(), Code::kInternal) << junk;
    EXPECT_NE(r.message().find("malformed"), std::string::npos) << r.message();
  }
  {
    RawServer raw([](int fd) {  // an endless head
      send_text(fd, "HTTP/1.1 200 OK\r\n");
      for (int i = 0; i < 2000; i++) send_text(fd, "X-Junk: " + std::string(100, 'j') + "\r\n");
    });
    auto r = Client::create(raw.target())->request("GET", "/");
    EXPECT_EQ(r.code(), Code::kInternal);
  }
}

TEST(HttpClient, RefusesRequestsThatWouldInjectHeaders) {
  ServerFixture s(false);
  auto c = Client::create(s.target());
  EXPECT_EQ(c->request("GET", "/x\r\nEvil: 1").code(), Code::kInvalidArgument);
  EXPECT_EQ(c->request("GET", "/x y").code(), Code::kInvalidArgument);
  EXPECT_EQ(c->request("GET", "relative").code(), Code::kInvalidArgument);
  EXPECT_EQ(c->request("G T", "/").code(), Code::kInvalidArgument);
  ClientOptions o;
  o.token = "a\r\nEvil: 1";
  EXPECT_EQ(Client::create(s.target(), o)->request("GET", "/").code(), Code::kInvalidArgument);
}

TEST(HttpClient, ErrorRepliesOfTheServerBecomeStatuses) {
  ServerFixture s(false);
  auto c = Client::create(s.target());
  auto missing = c->request("GET", "/missing");
  ASSERT_TRUE(missing.ok()) << missing.message();
  EXPECT_FALSE(is_success(*missing));
  std::string api_code;
  Status st = reply_error(*missing, &api_code);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "no VM named 'missing'");
  EXPECT_EQ(api_code, "NotFound");
  // The server's own refusal (a body over its 1024 bytes) has the same shape.
  auto big = c->request("POST", "/v1/vms", std::string(2000, 'b'));
  ASSERT_TRUE(big.ok()) << big.message();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(reply_error(*big, &api_code).code(), Code::kInvalidArgument);
  EXPECT_EQ(api_code, "PayloadTooLarge");
}

TEST(HttpReplyError, ParsesBothApiShapesAndPlainReplies) {
  std::string api_code = "stale";
  Status cap = reply_error(
      {409, R"({"error": {"code": "InsufficientCapacity", "message": "not enough memory"}})"},
      &api_code);
  EXPECT_EQ(cap.code(), Code::kInsufficientCapacity);
  EXPECT_EQ(cap.message(), "not enough memory");
  EXPECT_EQ(api_code, "InsufficientCapacity");

  Status conflict = reply_error({409, R"({"error": {"code": "Conflict", "message": "taken"}})"});
  EXPECT_EQ(conflict.code(), Code::kConflict);

  Status fault = reply_error({400, R"({"fault_message": "bad state 'Frozen'"})"}, &api_code);
  EXPECT_EQ(fault.code(), Code::kInvalidArgument);
  EXPECT_EQ(fault.message(), "bad state 'Frozen'");
  EXPECT_EQ(api_code, "");

  Status unknown_code =
      reply_error({503, R"({"error": {"code": "SomethingNew", "message": "later"}})"}, &api_code);
  EXPECT_EQ(unknown_code.code(), Code::kUnavailable);  // from the HTTP status
  EXPECT_EQ(api_code, "SomethingNew");

  Status text = reply_error({502, "upstream broke\n", "text/plain"});
  EXPECT_EQ(text.code(), Code::kUnavailable);
  EXPECT_EQ(text.message(), "HTTP 502 Bad Gateway: upstream broke");

  Status bare = reply_error({500, ""});
  EXPECT_EQ(bare.code(), Code::kInternal);
  EXPECT_EQ(bare.message(), "HTTP 500 Internal Server Error");

  Status odd_shape = reply_error({404, R"({"error": "just a string"})"});
  EXPECT_EQ(odd_shape.code(), Code::kNotFound);
  EXPECT_EQ(odd_shape.message(), "HTTP 404 Not Found");  // JSON, so not quoted as text
}

}  // namespace
}  // namespace nimbus::http
