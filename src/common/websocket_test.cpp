#include "common/websocket.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/http_client.h"
#include "common/http_server.h"

namespace nimbus::http::ws {
namespace {

using Clock = std::chrono::steady_clock;

// A frame as a peer would send it (`mask`: masked with a fixed key, as a client must).
std::string frame(uint8_t opcode, std::string_view payload, bool fin = true, bool mask = true) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | opcode);
  const uint8_t m = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    f += static_cast<char>(m | payload.size());
  } else if (payload.size() <= 0xFFFF) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xFF);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; i--)
      f += static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xFF);
  }
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (mask) f.append(key, 4);
  for (size_t i = 0; i < payload.size(); i++)
    f += mask ? static_cast<char>(payload[i] ^ key[i & 3]) : payload[i];
  return f;
}

void send_raw(int fd, std::string_view s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads exactly `n` bytes (or what came before EOF / 5 s).
std::string recv_raw(int fd, size_t n) {
  std::string out;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (out.size() < n && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    char buf[4096];
    const ssize_t r = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// The close code of the (unmasked, server's) Close frame that `fd` receives next.
int close_code_received(int fd) {
  const std::string h = recv_raw(fd, 2);
  if (h.size() != 2 || static_cast<uint8_t>(h[0]) != 0x88) return -1;
  const std::string p = recv_raw(fd, static_cast<uint8_t>(h[1]) & 0x7F);
  if (p.size() < 2) return -2;
  return (static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]);
}

// A server Socket on one end of a socketpair, the test's raw end on the other.
struct Pair {
  Pair(size_t max_message = kDefaultMaxMessage) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    server = Socket(sv[0], Role::kServer, max_message);
    raw = sv[1];
  }
  ~Pair() { ::close(raw); }
  Socket server;
  int raw;
};

TEST(WebSocketHandshake, AcceptKeyIsRfc6455sExample) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Request upgrade_request() {
  Request r;
  r.method = "GET";
  r.path = "/ws";
  r.headers = {{"upgrade", "websocket"},
               {"connection", "keep-alive, Upgrade"},
               {"sec-websocket-version", "13"},
               {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  return r;
}

TEST(WebSocketHandshake, AcceptChecksTheRequest) {
  auto ok = accept(upgrade_request(), [](Socket&) {});
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(ok->status, 101);
  EXPECT_TRUE(ok->upgrade);
  auto it = ok->headers.find("Sec-WebSocket-Accept");
  ASSERT_NE(it, ok->headers.end());
  EXPECT_EQ(it->second, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

  auto bad = [](auto change) {
    Request r = upgrade_request();
    change(r);
    auto res = accept(r, [](Socket&) {});
    return res.ok() ? Code::kOk : res.code();
  };
  EXPECT_EQ(bad([](Request& r) { r.method = "POST"; }), Code::kInvalidArgument);
  EXPECT_EQ(bad([](Request& r) { r.headers.erase("upgrade"); }), Code::kInvalidArgument);
  EXPECT_EQ(bad([](Request& r) { r.headers.find("connection")->second = "keep-alive"; }),
            Code::kInvalidArgument);
  EXPECT_EQ(bad([](Request& r) { r.headers.find("sec-websocket-version")->second = "8"; }),
            Code::kInvalidArgument);
  EXPECT_EQ(bad([](Request& r) { r.headers.find("sec-websocket-key")->second = "c2hvcnQ="; }),
            Code::kInvalidArgument);
  EXPECT_EQ(bad([](Request& r) {
              r.headers.find("sec-websocket-key")->second = "!!!!!!!!!!!!!!!!!!!!!!==";
            }),
            Code::kInvalidArgument);
  EXPECT_EQ(bad([](Request& r) { r.headers.find("upgrade")->second = "WebSocket"; }), Code::kOk);
}

TEST(WebSocketFrames, RoundTripBothDirections) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Socket server(sv[0], Role::kServer), client(sv[1], Role::kClient);
  ASSERT_TRUE(client.send_text("h\xC3\xA9llo").ok());
  auto m = server.read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, Message::kText);
  EXPECT_EQ(m->data, "h\xC3\xA9llo");

  std::string big(70000, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 7);
  std::thread writer([&] { EXPECT_TRUE(server.send_binary(big).ok()); });
  m = client.read();
  writer.join();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, Message::kBinary);
  EXPECT_EQ(m->data, big);

  ASSERT_TRUE(client.send_binary(std::string(300, 'x')).ok());  // a 16-bit length
  m = server.read();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->data, std::string(300, 'x'));

  // The close handshake: the reader answers, both see the code.
  ASSERT_TRUE(client.send_close(4000, "bye").ok());
  m = server.read();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, Message::kClose);
  EXPECT_EQ(m->close_code, 4000);
  EXPECT_EQ(m->data, "bye");
  m = client.read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, Message::kClose);
  EXPECT_EQ(m->close_code, 4000);
  EXPECT_EQ(server.read().code(), Code::kConflict);
  EXPECT_FALSE(server.send_text("late").ok());
}

TEST(WebSocketFrames, FragmentsAreReassembledAndPingsAnswered) {
  Pair p;
  send_raw(p.raw, frame(0x1, "Hel", false) + frame(0x9, "abc") + frame(0x0, "lo ", false) +
                      frame(0xA, "unsolicited pong") + frame(0x0, "world"));
  auto m = p.server.read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, Message::kText);
  EXPECT_EQ(m->data, "Hello world");
  // The pong: unmasked (from a server), the ping's payload.
  EXPECT_EQ(recv_raw(p.raw, 5), std::string("\x8A\x03"
                                            "abc",
                                            5));
}

TEST(WebSocketFrames, OversizedMessageClosesWith1009BeforeItsPayload) {
  Pair p(100);
  std::string f = frame(0x2, std::string(101, 'x'));
  send_raw(p.raw, f.substr(0, 8));  // the header only: refused without waiting for the rest
  auto m = p.server.read();
  EXPECT_EQ(m.code(), Code::kInvalidArgument);
  EXPECT_EQ(close_code_received(p.raw), kCloseTooBig);

  // Fragments count together.
  Pair q(100);
  send_raw(q.raw, frame(0x2, std::string(60, 'x'), false) + frame(0x0, std::string(60, 'y')));
  EXPECT_FALSE(q.server.read().ok());
  EXPECT_EQ(close_code_received(q.raw), kCloseTooBig);

  // A 2^62 length (no payload follows): at once, no allocation.
  Pair r;
  send_raw(r.raw, std::string("\x82\xFF\x40\0\0\0\0\0\0\0\x01\x02\x03\x04", 14));
  EXPECT_FALSE(r.server.read().ok());
  EXPECT_EQ(close_code_received(r.raw), kCloseTooBig);

  // 2^63 and more: not a valid length at all.
  Pair s;
  send_raw(s.raw, std::string("\x82\xFF\x80\0\0\0\0\0\0\0\x01\x02\x03\x04", 14));
  EXPECT_FALSE(s.server.read().ok());
  EXPECT_EQ(close_code_received(s.raw), kCloseProtocolError);
}

TEST(WebSocketFrames, ProtocolViolationsCloseWith1002) {
  const std::vector<std::string> bad = {
      frame(0x1, "unmasked", true, false),
      frame(0x3, "opcode 3"),
      frame(0x0, "continuation first"),
      frame(0x9, "fragmented ping", false),
      frame(0x9, std::string(126, 'p')),
      frame(0x1, "a", false) + frame(0x1, "b"),  // a new message inside one
      std::string("\xC1\x80\0\0\0\0", 6),        // RSV1
      frame(0x8, "x"),                           // a 1-byte Close payload
      frame(0x8, std::string("\x03\xED", 2)),    // close code 1005 may not be sent
  };
  for (const std::string& f : bad) {
    Pair p;
    send_raw(p.raw, f);
    auto m = p.server.read();
    EXPECT_EQ(m.code(), Code::kInvalidArgument) << testing::PrintToString(f);
    EXPECT_EQ(close_code_received(p.raw), kCloseProtocolError) << testing::PrintToString(f);
    EXPECT_EQ(p.server.read().code(), Code::kConflict);
  }
}

TEST(WebSocketFrames, MaskedFrameFromAServerIs1002) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Socket client(sv[0], Role::kClient);
  send_raw(sv[1], frame(0x2, "masked"));
  EXPECT_EQ(client.read().code(), Code::kInvalidArgument);
  // The client's Close is masked.
  const std::string h = recv_raw(sv[1], 2);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(h[0]), 0x88);
  EXPECT_TRUE(static_cast<uint8_t>(h[1]) & 0x80);
  ::close(sv[1]);
}

TEST(WebSocketFrames, InvalidUtf8Is1007) {
  for (const std::string text :
       {"\xC3\x28", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "ab\xE2\x82"}) {
    Pair p;
    send_raw(p.raw, frame(0x1, text));
    EXPECT_EQ(p.server.read().code(), Code::kInvalidArgument);
    EXPECT_EQ(close_code_received(p.raw), kCloseInvalidData);
  }
  Pair p;  // a UTF-8 character split across fragments is fine
  send_raw(p.raw, frame(0x1, "\xE2\x82", false) + frame(0x0, "\xAC"));
  auto m = p.server.read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->data, "\xE2\x82\xAC");
  EXPECT_EQ(p.server.send_text("\xC3\x28").code(), Code::kInvalidArgument);
}

TEST(WebSocketFrames, StalledFrameEndsTheSessionButIdleDoesNot) {
  Pair p;
  p.server.set_frame_timeout_ms(200);
  std::atomic<bool> done{false};
  std::optional<Result<Message>> got;
  std::thread reader([&] {
    got.emplace(p.server.read());
    done = true;
  });
  // Idle for longer than the frame timeout, then a whole frame: read() still gets it.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE(done.load());
  send_raw(p.raw, frame(0x1, "late but whole"));
  reader.join();
  ASSERT_TRUE(got->ok()) << got->message();
  EXPECT_EQ((*got)->data, "late but whole");

  // A trickle: one byte every 50 ms never finishes the frame in 200 ms.
  const std::string f = frame(0x2, std::string(40, 'x'));
  const auto start = Clock::now();
  std::thread trickler([&] {
    for (char c : f) {
      if (::send(p.raw, &c, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto m = p.server.read();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(m.code(), Code::kDeadlineExceeded);
  EXPECT_LT(secs, 1.5);
  trickler.join();
}

TEST(WebSocketFrames, ShutdownUnblocksARead) {
  Pair p;
  std::optional<Result<Message>> got;
  std::thread reader([&] { got.emplace(p.server.read()); });
  p.server.shutdown();
  reader.join();
  EXPECT_EQ(got->code(), Code::kUnavailable);
}

TEST(WebSocketFrames, PeerGoneIsUnavailable) {
  Pair p;
  ::shutdown(p.raw, SHUT_RDWR);
  EXPECT_EQ(p.server.read().code(), Code::kUnavailable);
  EXPECT_FALSE(p.server.send_text("x").ok());
}

// ---------------------------------------------------------------------------------------
// Over http::Server.

class WebSocketServerTest : public ::testing::Test {
 public:
  void start(ServerOptions o = {}) {
    auto sock = listen_tcp("--listen", "127.0.0.1:0");
    ASSERT_TRUE(sock.ok()) << sock.message();
    server_ = std::make_unique<Server>(std::move(*sock), std::move(o));
    server_->serve([this](const Request& req) {
      if (req.path == "/plain") return Reply{200, R"({"plain": true})"};
      if (req.path != "/echo")
        return Reply{404, R"({"error": {"code": "NotFound", "message": "no"}})"};
      auto r = accept(req, [this](Socket& s) {
        sessions_++;
        for (;;) {
          auto m = s.read();
          if (!m.ok() || m->kind == Message::kClose) break;
          if (!(m->kind == Message::kText ? s.send_text(m->data) : s.send_binary(m->data)).ok())
            break;
        }
        sessions_ended_++;
      });
      if (!r.ok()) {
        return Reply{400,
                     R"({"error": {"code": "BadRequest", "message": ")" + r.message() + "\"}}"};
      }
      return std::move(*r);
    });
  }
  std::string url(const std::string& path = "/echo") {
    return "ws://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  bool connections_drop_to(size_t n) {
    for (int i = 0; i < 500; i++) {
      if (server_->connections() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::unique_ptr<Server> server_;
  std::atomic<int> sessions_{0}, sessions_ended_{0};
};

TEST_F(WebSocketServerTest, EchoOverTheServerAndOtherRoutesStillWork) {
  start();
  auto ws = connect(url());
  ASSERT_TRUE(ws.ok()) << ws.message();
  ASSERT_TRUE(ws->send_text("hi there").ok());
  auto m = ws->read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, Message::kText);
  EXPECT_EQ(m->data, "hi there");
  ASSERT_TRUE(ws->send_binary(std::string(200000, 'b')).ok());
  m = ws->read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->data.size(), 200000u);

  // The server's plain routes, on other connections, meanwhile.
  auto client = Client::create("http://127.0.0.1:" + std::to_string(server_->port()));
  ASSERT_TRUE(client.ok());
  auto r = client->request("GET", "/plain");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"plain": true})");
  EXPECT_TRUE(connections_drop_to(1));  // the plain one ends, the WebSocket still counts

  ASSERT_TRUE(ws->send_close(kCloseNormal, "done").ok());
  m = ws->read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, Message::kClose);
  EXPECT_TRUE(connections_drop_to(0));
  EXPECT_EQ(sessions_ended_.load(), 1);
}

TEST_F(WebSocketServerTest, FramesSentWithTheRequestAreNotLost) {
  start();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server_->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  // The handshake and two frames in one segment: the server reads past the head.
  send_raw(fd,
           "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
               frame(0x1, "first") + frame(0x1, "second"));
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    const std::string c = recv_raw(fd, 1);
    ASSERT_EQ(c.size(), 1u) << head;
    head += c;
  }
  EXPECT_EQ(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;  // httplib's reply dropped
  EXPECT_EQ(recv_raw(fd, 7), std::string("\x81\x05"
                                         "first"));
  EXPECT_EQ(recv_raw(fd, 8), std::string("\x81\x06"
                                         "second"));
  ::close(fd);
  EXPECT_TRUE(connections_drop_to(0));
}

TEST_F(WebSocketServerTest, RefusalsAndTokens) {
  ServerOptions o;
  o.token = "tok-123";
  start(o);
  auto no_token = connect(url());
  EXPECT_EQ(no_token.code(), Code::kPermissionDenied) << no_token.message();
  auto missing = connect(url("/nothing"), {{"Authorization", "Bearer tok-123"}});
  EXPECT_EQ(missing.code(), Code::kNotFound) << missing.message();
  auto ok = connect(url(), {{"Authorization", "Bearer tok-123"}});
  ASSERT_TRUE(ok.ok()) << ok.message();
  ASSERT_TRUE(ok->send_text("x").ok());
  EXPECT_TRUE(ok->read().ok());
  // A plain GET of the upgrade route: the handler's 400, the connection stays HTTP.
  ClientOptions co;
  co.token = "tok-123";
  auto client = Client::create("http://127.0.0.1:" + std::to_string(server_->port()), co);
  ASSERT_TRUE(client.ok());
  auto r = client->request("GET", "/echo");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(connect("http://127.0.0.1:1/x").code(), Code::kInvalidArgument);
}

TEST_F(WebSocketServerTest, StopEndsIdleSessions) {
  start();
  auto ws = connect(url());
  ASSERT_TRUE(ws.ok()) << ws.message();
  ASSERT_TRUE(ws->send_text("x").ok());
  ASSERT_TRUE(ws->read().ok());  // the session runs
  const auto start = Clock::now();
  server_->stop();  // returns: the session's read fails when its socket is shut down
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 5.0);
  EXPECT_EQ(sessions_ended_.load(), 1);
  EXPECT_FALSE(ws->read().ok());
}

TEST(WebSocketUnix, ConnectOverAUnixSocket) {
  const std::string path =
      std::filesystem::temp_directory_path() / ("ws-test-" + std::to_string(::getpid()) + ".sock");
  auto sock = listen_unix("--socket", path, 0600, "test");
  ASSERT_TRUE(sock.ok()) << sock.message();
  Server server(std::move(*sock), {});
  server.serve([](const Request& req) {
    auto r = accept(req, [](Socket& s) {
      auto m = s.read();
      if (m.ok()) (void)s.send_text("got " + m->data);
    });
    return r.ok() ? std::move(*r) : Reply{400, "{}"};
  });
  auto ws = connect("unix:" + path + ":/v1/vms/x/console");
  ASSERT_TRUE(ws.ok()) << ws.message();
  ASSERT_TRUE(ws->send_text("a").ok());
  auto m = ws->read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->data, "got a");
  EXPECT_EQ(ws->read().code(), Code::kUnavailable);  // the session returned: closed
}

}  // namespace
}  // namespace nimbus::http::ws
