#include "host/console_relay.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "host/host_checks.h"
#include "host/host_json.h"

namespace nimbus::host {
namespace {

std::atomic<size_t> g_sessions{0};

http::Reply error_reply(int status, std::string_view code, const std::string& message) {
  return http::Reply{status, error_json(code, message).dump() + "\n", "application/json"};
}

void set_send_timeout(int fd, int ms) {
  if (ms <= 0) return;
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Writes all of `data`; false when the console is gone or stopped reading (the send timeout).
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool live(const std::string& state) {
  return state == "running" || state == "starting" || state == "paused" || state == "stopping";
}

// What a session holds while its reply or its relay lives: the console's fd and a place
// among the sessions. Released when the last copy of the upgrade callback goes, whether or
// not the server ever ran it.
struct Hold {
  std::string vm;
  int fd = -1;
  bool counted = false;
  ~Hold() {
    if (fd >= 0) ::close(fd);
    if (counted) g_sessions--;
  }
};

}  // namespace

Result<int> connect_console(const std::string& socket_path) {
  sockaddr_un addr{};
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path))
    return Status::invalid_argument(
        fmt::format("console socket path '{}' is not usable", socket_path));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::internal(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::unavailable(
        fmt::format("cannot connect to console socket '{}': {}", socket_path, std::strerror(e)));
  }
  return fd;
}

void relay_console(int console_fd, http::ws::Socket& ws, const std::string& vm,
                   const ConsoleRelayOptions& o) {
  // Neither peer may hold nimbusd: a client that stops reading, or a VMM that stops taking
  // input, fails the send after the timeout.
  if (o.send_timeout_ms > 0) ws.set_write_timeout_ms(o.send_timeout_ms);
  set_send_timeout(console_fd, o.send_timeout_ms);

  std::mutex mu;
  std::condition_variable cv;
  bool client_done = false;           // the reading side (this thread) ended
  std::atomic<bool> stopping{false};  // tells the console reader to end quietly

  std::thread out([&] {
    char buf[16 * 1024];
    for (;;) {
      pollfd p{console_fd, POLLIN, 0};
      const int r = ::poll(&p, 1, o.ping_interval_ms > 0 ? o.ping_interval_ms : -1);
      if (r < 0 && errno == EINTR) continue;
      if (stopping) return;
      if (r == 0) {
        if (!ws.send_ping().ok()) {
          if (!stopping) spdlog::info("vm {}: console: a viewer is gone (ping failed)", vm);
          ws.shutdown();
          return;
        }
        continue;
      }
      ssize_t n = r < 0 ? -1 : ::recv(console_fd, buf, sizeof(buf), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (stopping) return;
      if (n <= 0) break;  // the console closed (the VM stopped) or failed
      if (Status s = ws.send_binary(std::string_view(buf, static_cast<size_t>(n))); !s.ok()) {
        if (!stopping)
          spdlog::info("vm {}: console: dropping a viewer that does not take output: {}", vm,
                       s.message());
        ws.shutdown();
        return;
      }
    }
    // The console is gone: say so, let the client answer the close, then end the read.
    spdlog::info("vm {}: console: the console closed; ending a viewer's session", vm);
    (void)ws.send_close(http::ws::kCloseNormal, "the console closed");
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::milliseconds(o.close_wait_ms),
                     [&] { return client_done; })) {
      ws.shutdown();
    }
  });

  for (;;) {
    auto m = ws.read();
    if (!m.ok()) break;  // gone, a protocol error (the socket sent its close) or shut down
    if (m->kind == http::ws::Message::kClose) break;  // read() answered it
    if (!write_all(console_fd, m->data)) {
      spdlog::info("vm {}: console: input cannot be delivered; ending a viewer's session", vm);
      (void)ws.send_close(http::ws::kCloseInternal, "the console does not take input");
      break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    client_done = true;
  }
  cv.notify_all();
  stopping = true;
  ::shutdown(console_fd, SHUT_RDWR);  // ends the console reader's poll or recv
  ws.shutdown();                      // and a send of its that a slow client holds
  out.join();
}

std::string console_path_vm(const std::string& path) {
  static constexpr std::string_view kPrefix = "/v1/vms/", kSuffix = "/console";
  if (path.size() <= kPrefix.size() + kSuffix.size()) return "";
  if (path.compare(0, kPrefix.size(), kPrefix) != 0) return "";
  if (path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) return "";
  std::string name = path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size());
  if (name.find('/') != std::string::npos) return "";
  return name;
}

http::Reply console_route(HostOps& ops, const http::Request& req, const std::string& name) {
  if (req.method != "GET") {
    return error_reply(405, "MethodNotAllowed",
                       "the console is a WebSocket: GET with \"Upgrade: websocket\"");
  }
  if (!valid_name(name)) return error_reply(404, "NotFound", "no VM by that name");
  auto vm = ops.get_vm(name);
  if (!vm.ok()) {
    const HttpError e = http_error(vm.code());
    return error_reply(e.status, e.name, vm.message());
  }
  if (!live(vm->record.state) || vm->console_socket.empty()) {
    return error_reply(
        409, "Conflict",
        fmt::format("VM {} is {}: its console is there while it runs", name, vm->record.state));
  }
  auto hold = std::make_shared<Hold>();
  hold->vm = name;
  auto reply = http::ws::accept(
      req,
      [hold](http::ws::Socket& s) {
        relay_console(hold->fd, s, hold->vm);
        spdlog::info("vm {}: console: a viewer detached", hold->vm);
      },
      kMaxConsoleInputMessage);
  if (!reply.ok()) {
    return error_reply(
        400, "BadRequest",
        fmt::format("GET /v1/vms/{}/console is a WebSocket (a GET with \"Connection: Upgrade\", "
                    "\"Upgrade: websocket\", \"Sec-WebSocket-Version: 13\" and a "
                    "Sec-WebSocket-Key): {}",
                    name, reply.message()));
  }
  if (++g_sessions > kMaxConsoleSessions) {
    g_sessions--;
    return error_reply(
        503, "Unavailable",
        fmt::format("this host serves at most {} console sessions at once", kMaxConsoleSessions));
  }
  hold->counted = true;
  auto fd = connect_console(vm->console_socket);
  if (!fd.ok()) {
    return error_reply(409, "Conflict",
                       fmt::format("VM {}'s console is not available: {}", name, fd.message()));
  }
  hold->fd = *fd;
  spdlog::info("vm {}: console: a viewer attached over WebSocket", name);
  return std::move(*reply);
}

}  // namespace nimbus::host
