#include "host/console_relay.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "common/http_client.h"
#include "host/host_api_client.h"
#include "host/host_server.h"
#include "host/recording_host_ops.h"

namespace nimbus::host {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::seconds(10);

template <typename F>
bool eventually(F&& cond) {
  const auto end = Clock::now() + kWait;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

// A stand-in for the VMM's console hub (vmm/console_hub.cpp) on a unix socket: replays
// `history` to each client on connect, echoes every input byte to all clients (a guest's
// terminal echo) and records it, sends output() to all clients, close() ends everything.
class FakeConsole {
 public:
  FakeConsole(std::string path, std::string history)
      : path_(std::move(path)), history_(std::move(history)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 8), 0);
    EXPECT_EQ(::pipe2(wake_, O_CLOEXEC), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeConsole() { close(); }

  void output(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : clients_) (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  }
  size_t clients() {
    std::lock_guard<std::mutex> lock(mu_);
    return clients_.size();
  }
  std::string input() {
    std::lock_guard<std::mutex> lock(mu_);
    return input_;
  }
  // The VM stopped: every client and the socket go.
  void close() {
    if (!thread_.joinable()) return;
    (void)!::write(wake_[1], "x", 1);
    thread_.join();
    for (int fd : clients_) ::close(fd);
    clients_.clear();
    for (int fd : {listen_fd_, wake_[0], wake_[1]}) ::close(fd);
    ::unlink(path_.c_str());
  }

 private:
  void serve() {
    for (;;) {
      std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents) return;
      if (fds[1].revents & POLLIN) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          std::lock_guard<std::mutex> lock(mu_);
          (void)!::send(fd, history_.data(), history_.size(), MSG_NOSIGNAL);
          clients_.push_back(fd);
        }
      }
      for (size_t i = 2; i < fds.size(); i++) {
        if (!fds[i].revents) continue;
        char buf[512];
        const ssize_t n = ::recv(fds[i].fd, buf, sizeof(buf), 0);
        std::lock_guard<std::mutex> lock(mu_);
        if (n > 0) {
          input_.append(buf, static_cast<size_t>(n));
          for (int fd : clients_) (void)!::send(fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
          continue;
        }
        for (size_t k = 0; k < clients_.size(); k++) {
          if (clients_[k] == fds[i].fd) {
            ::close(clients_[k]);
            clients_.erase(clients_.begin() + static_cast<long>(k));
            break;
          }
        }
      }
    }
  }

  std::string path_, history_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  std::vector<int> clients_;
  std::string input_;
  std::thread thread_;
};

// What a viewer has seen: binary frames appended, a close remembered. A watchdog shuts
// the socket down when the wanted text does not come, so a broken relay fails the test
// rather than hang it.
struct Viewer {
  explicit Viewer(http::ws::Socket s = {}) : ws(std::move(s)) {}
  http::ws::Socket ws;
  std::string seen;
  bool closed = false;
  uint16_t close_code = 0;
  std::string close_reason;
  bool only_binary = true;

  bool read_until(const std::function<bool()>& done) {
    std::atomic<bool> finished{false};
    std::thread dog([&] {
      const auto end = Clock::now() + kWait;
      while (!finished && Clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!finished) ws.shutdown();
    });
    bool ok = done();
    while (!ok && !closed) {
      auto m = ws.read();
      if (!m.ok()) break;
      if (m->kind == http::ws::Message::kClose) {
        closed = true;
        close_code = m->close_code;
        close_reason = m->data;
      } else {
        only_binary = only_binary && m->kind == http::ws::Message::kBinary;
        seen += m->data;
      }
      ok = done();
    }
    finished = true;
    dog.join();
    return ok;
  }
  bool wait_for(const std::string& text) {
    return read_until([&] { return seen.find(text) != std::string::npos; });
  }
};

// A VM "web1" whose console is the fake's socket, and a stopped VM "off".
class ConsoleOps : public RecordingHostOps {
 public:
  std::string console_socket;
  ConsoleOps() { vms.insert("off"); }
  Result<VmInfo> get_vm(const std::string& n) override {
    auto i = RecordingHostOps::get_vm(n);
    if (!i.ok()) return i;
    i->console_socket = console_socket;
    if (n == "off") i->record.state = "stopped";
    return i;
  }
};

class HostConsole : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus-console-relay-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ops_.console_socket = dir_ + "/console.sock";
    console_ = std::make_unique<FakeConsole>(ops_.console_socket, "HISTORY\r\n");
    auto s = HostServer::bind(dir_ + "/nimbusd.sock", "127.0.0.1:0", "secret-token");
    ASSERT_TRUE(s.ok()) << s.message();
    server_ = std::move(*s);
    server_->serve(ops_);
    tcp_ = "http://127.0.0.1:" + std::to_string(server_->tcp_port());
  }
  void TearDown() override {
    server_.reset();
    console_.reset();
    std::filesystem::remove_all(dir_);
  }

  Viewer open(const std::string& vm = "web1") {
    auto c = HostApiClient::create(tcp_, "secret-token");
    EXPECT_TRUE(c.ok());
    auto ws = c->open_console(vm);
    EXPECT_TRUE(ws.ok()) << ws.message();
    Viewer v;
    if (ws.ok()) v.ws = std::move(*ws);
    return v;
  }

  std::string dir_, tcp_;
  ConsoleOps ops_;
  std::unique_ptr<FakeConsole> console_;
  std::unique_ptr<HostServer> server_;
};

TEST_F(HostConsole, HistoryFirstThenInputAndOutput) {
  Viewer v = open();
  ASSERT_TRUE(v.wait_for("HISTORY\r\n"));
  EXPECT_EQ(v.seen.rfind("HISTORY\r\n", 0), 0u) << v.seen;  // the replay comes first
  // Input (text and binary frames alike) reaches the console.
  ASSERT_TRUE(v.ws.send_text("uname -m\n").ok());
  ASSERT_TRUE(v.ws.send_binary(std::string("\x03\x00", 2)).ok());
  EXPECT_TRUE(eventually([&] {
    return console_->input() == std::string("uname -m\n\x03\x00", 11);
  })) << console_->input();
  EXPECT_TRUE(v.wait_for("uname -m\n"));  // the console's echo
  console_->output("riscv64\r\n");
  EXPECT_TRUE(v.wait_for("riscv64\r\n"));
  EXPECT_TRUE(v.only_binary);
  EXPECT_FALSE(v.closed);
}

TEST_F(HostConsole, OverTheUnixSocketToo) {
  auto c = HostApiClient::create("unix:" + dir_ + "/nimbusd.sock");
  ASSERT_TRUE(c.ok());
  auto ws = c->open_console("web1");
  ASSERT_TRUE(ws.ok()) << ws.message();
  Viewer v(std::move(*ws));
  EXPECT_TRUE(v.wait_for("HISTORY"));
}

TEST_F(HostConsole, TwoViewersAndOneLeaving) {
  Viewer a = open(), b = open();
  ASSERT_TRUE(a.wait_for("HISTORY") && b.wait_for("HISTORY"));
  ASSERT_TRUE(eventually([&] { return console_->clients() == 2; }));
  console_->output("both see this\r\n");
  EXPECT_TRUE(a.wait_for("both see this"));
  EXPECT_TRUE(b.wait_for("both see this"));
  // One viewer closes: its console client goes, the other viewer and the console stay.
  ASSERT_TRUE(a.ws.send_close().ok());
  EXPECT_TRUE(a.read_until([&] { return a.closed; }));
  a.ws = http::ws::Socket();
  ASSERT_TRUE(eventually([&] { return console_->clients() == 1; }));
  console_->output("still here\r\n");
  EXPECT_TRUE(b.wait_for("still here"));
  ASSERT_TRUE(b.ws.send_text("ls\n").ok());
  EXPECT_TRUE(eventually([&] { return console_->input() == "ls\n"; }));
  // A viewer that vanishes without a close frame is let go as well.
  Viewer c = open();
  ASSERT_TRUE(c.wait_for("HISTORY"));
  ASSERT_TRUE(eventually([&] { return console_->clients() == 2; }));
  c.ws = http::ws::Socket();
  EXPECT_TRUE(eventually([&] { return console_->clients() == 1; }));
  console_->output("and still\r\n");
  EXPECT_TRUE(b.wait_for("and still"));
  EXPECT_FALSE(b.closed);
}

TEST_F(HostConsole, ConsoleClosingEndsTheSessionWithACloseFrame) {
  Viewer a = open(), b = open();
  ASSERT_TRUE(a.wait_for("HISTORY") && b.wait_for("HISTORY"));
  console_->close();
  for (Viewer* v : {&a, &b}) {
    EXPECT_TRUE(v->read_until([&] { return v->closed; }));
    EXPECT_EQ(v->close_code, http::ws::kCloseNormal);
    EXPECT_EQ(v->close_reason, "the console closed");
  }
  // No console now: a new viewer is refused with a clear error, nimbusd still serves.
  auto c = HostApiClient::create(tcp_, "secret-token");
  auto ws = c->open_console("web1");
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.code(), Code::kConflict) << ws.message();
  EXPECT_NE(ws.message().find("console is not available"), std::string::npos) << ws.message();
  EXPECT_TRUE(c->call("GET", "/v1/vms/web1").ok());
}

TEST_F(HostConsole, Refusals) {
  auto good = HostApiClient::create(tcp_, "secret-token");
  auto ws = good->open_console("nope");
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.code(), Code::kNotFound) << ws.message();
  ws = good->open_console("off");
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.code(), Code::kConflict) << ws.message();
  EXPECT_NE(ws.message().find("stopped"), std::string::npos) << ws.message();

  auto bad = HostApiClient::create(tcp_, "wrong-token");
  ws = bad->open_console("web1");
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.code(), Code::kPermissionDenied) << ws.message();

  // A plain GET (no upgrade) gets a 400 that says what the route wants.
  http::ClientOptions o;
  o.token = "secret-token";
  auto plain = http::Client::create(tcp_, o);
  ASSERT_TRUE(plain.ok());
  auto r = plain->request("GET", "/v1/vms/web1/console");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("WebSocket"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("BadRequest"), std::string::npos) << r->body;
  r = plain->request("POST", "/v1/vms/web1/console");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 405);
  r = plain->request("GET", "/v1/vms/NOT..valid/console");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  // Nothing reached the console, and the other routes are as they were.
  EXPECT_EQ(console_->clients(), 0u);
  EXPECT_TRUE(good->call("GET", "/v1/vms/web1").ok());
}

TEST(HostConsolePath, OnlyTheConsoleRoute) {
  EXPECT_EQ(console_path_vm("/v1/vms/web1/console"), "web1");
  EXPECT_EQ(console_path_vm("/v1/vms/web1/console-output"), "");
  EXPECT_EQ(console_path_vm("/v1/vms//console"), "");
  EXPECT_EQ(console_path_vm("/v1/vms/a/b/console"), "");
  EXPECT_EQ(console_path_vm("/v1/vms/console"), "");
  EXPECT_EQ(console_path_vm("/v2/vms/web1/console"), "");
}

// The relay on socketpairs: a client that never reads cannot hold it (nor the console).
TEST(HostConsoleRelay, AClientThatNeverReadsIsDropped) {
  int con[2], net[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, net), 0);
  http::ws::Socket server(net[0], http::ws::Role::kServer);
  http::ws::Socket client(net[1], http::ws::Role::kClient);  // never read
  ConsoleRelayOptions o;
  o.send_timeout_ms = 200;
  std::atomic<bool> done{false};
  std::thread relay([&] {
    relay_console(con[0], server, "test", o);
    done = true;
  });
  // The console writes without waiting (like the hub: MSG_DONTWAIT) until the relay ends.
  const std::string chunk(4096, 'x');
  const auto end = Clock::now() + kWait;
  while (!done && Clock::now() < end) {
    (void)::send(con[1], chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(done.load());
  if (!done) {  // unblock it so that the test ends
    server.shutdown();
    ::shutdown(con[0], SHUT_RDWR);
  }
  relay.join();
  ::close(con[0]);
  ::close(con[1]);
}

// The relay on socketpairs: the client's close ends it, the console sees its input first.
TEST(HostConsoleRelay, ClientCloseEndsTheRelay) {
  int con[2], net[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, net), 0);
  http::ws::Socket server(net[0], http::ws::Role::kServer);
  Viewer v(http::ws::Socket(net[1], http::ws::Role::kClient));
  std::thread relay([&] { relay_console(con[0], server, "test"); });
  ASSERT_EQ(::send(con[1], "boot\r\n", 6, MSG_NOSIGNAL), 6);
  EXPECT_TRUE(v.wait_for("boot\r\n"));
  ASSERT_TRUE(v.ws.send_text("hi").ok());
  char buf[8] = {};
  ASSERT_EQ(::recv(con[1], buf, sizeof(buf), 0), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
  ASSERT_TRUE(v.ws.send_close().ok());
  EXPECT_TRUE(v.read_until([&] { return v.closed; }));
  relay.join();
  // The relay shut its console end: the console sees the viewer leave.
  EXPECT_EQ(::recv(con[1], buf, sizeof(buf), 0), 0);
  ::close(con[0]);
  ::close(con[1]);
}

}  // namespace
}  // namespace nimbus::host
