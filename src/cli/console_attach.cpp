#include "cli/console_attach.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

namespace nimbus::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The terminal state to restore, shared with the signal handler.
termios g_saved_termios{};
volatile sig_atomic_t g_raw_fd = -1;

void restore_terminal_on_signal(int sig) {
  if (g_raw_fd >= 0) {
    tcsetattr(g_raw_fd, TCSANOW, &g_saved_termios);
    const char nl[] = "\r\n";
    (void)!::write(STDERR_FILENO, nl, 2);
  }
  // SA_RESETHAND restored the default action; the signal is delivered again on return.
  raise(sig);
}

// Raw mode on a tty for the lifetime of the object, undone on destruction and on the
// signals that would otherwise leave the terminal raw.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) {
    if (tcgetattr(fd, &g_saved_termios) != 0) return;
    termios raw = g_saved_termios;
    cfmakeraw(&raw);
    struct sigaction sa {};
    sa.sa_handler = restore_terminal_on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, &old_[slot(sig)]);
    g_raw_fd = fd;
    if (tcsetattr(fd, TCSANOW, &raw) != 0) {
      restore();
      return;
    }
    active_ = true;
  }
  ~RawTerminal() { restore(); }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  bool active() const { return active_; }

 private:
  static size_t slot(int sig) {
    return sig == SIGINT ? 0 : sig == SIGTERM ? 1 : sig == SIGHUP ? 2 : 3;
  }
  void restore() {
    if (g_raw_fd >= 0) {
      tcsetattr(g_raw_fd, TCSANOW, &g_saved_termios);
      g_raw_fd = -1;
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &old_[slot(sig)], nullptr);
    }
    active_ = false;
  }
  struct sigaction old_[4]{};
  bool active_ = false;
};

bool write_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    // send() on sockets: no SIGPIPE when the peer went away, whatever the disposition.
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd pfd{fd, POLLOUT, 0};
      ::poll(&pfd, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool write_all(int fd, const std::string& s) { return write_all(fd, s.data(), s.size()); }

ssize_t read_some(int fd, char* buf, size_t len) {
  for (;;) {
    const ssize_t n = ::read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

int ms_until(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Copies the console to out_fd until it has been quiet for idle_ms. False when the
// console closed.
bool drain_until_idle(int sock, int out_fd, int idle_ms, int max_ms, bool show) {
  const auto stop = Clock::now() + std::chrono::milliseconds(max_ms);
  char buf[4096];
  for (;;) {
    pollfd pfd{sock, POLLIN, 0};
    const int r = ::poll(&pfd, 1, std::min(idle_ms, ms_until(stop)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return true;
    const ssize_t n = read_some(sock, buf, sizeof(buf));
    if (n <= 0) return false;
    if (show) write_all(out_fd, buf, static_cast<size_t>(n));
    if (ms_until(stop) == 0) return true;
  }
}

}  // namespace

Result<int> connect_console(const std::string& socket_path) {
  sockaddr_un addr{};
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return Status::error(fmt::format("console socket path '{}' is empty or too long", socket_path));
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::error(fmt::format("socket: {}", std::strerror(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::error(
        fmt::format("cannot connect to the console at {}: {}", socket_path, std::strerror(err)));
  }
  return fd;
}

int attach_console(const std::string& verb, const std::string& name, const std::string& socket_path,
                   bool fresh_prompt, int in_fd, int out_fd, int idle_ms) {
  auto connected = connect_console(socket_path);
  if (!connected.ok()) {
    std::fprintf(stderr, "nimbus: %s %s: %s\n", verb.c_str(), name.c_str(),
                 connected.message().c_str());
    return 1;
  }
  Fd sock(*connected);
  const bool tty = isatty(in_fd) == 1;
  std::unique_ptr<RawTerminal> raw;
  if (tty) {
    std::fprintf(stderr, "Connected to %s's console; detach with Ctrl-]\n", name.c_str());
    raw = std::make_unique<RawTerminal>(in_fd);
  }
  if (fresh_prompt && !write_all(sock.get(), "\n", 1)) {
    raw.reset();
    std::fprintf(stderr, "nimbus: %s %s: the console closed\n", verb.c_str(), name.c_str());
    return 1;
  }
  char buf[4096];
  bool stdin_open = true;
  int status = 0;
  for (;;) {
    pollfd fds[2] = {{sock.get(), POLLIN, 0}, {stdin_open ? in_fd : -1, POLLIN, 0}};
    const int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      status = 1;
      break;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = read_some(sock.get(), buf, sizeof(buf));
      if (n <= 0) {
        raw.reset();
        std::fprintf(stderr, "\nnimbus: %s's console closed (the VM stopped?)\n", name.c_str());
        return tty ? 0 : 1;
      }
      if (!write_all(out_fd, buf, static_cast<size_t>(n))) break;  // our output went away
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = read_some(in_fd, buf, sizeof(buf));
      if (n <= 0) {
        if (tty) break;  // the terminal went away
        // Input done: show what the guest still answers, then leave.
        stdin_open = false;
        drain_until_idle(sock.get(), out_fd, idle_ms, 10 * 60 * 1000, true);
        break;
      }
      size_t len = static_cast<size_t>(n);
      bool detach = false;
      if (tty) {
        if (void* p = std::memchr(buf, kDetachByte, len); p != nullptr) {
          len = static_cast<size_t>(static_cast<char*>(p) - buf);
          detach = true;
        }
      }
      if (len > 0 && !write_all(sock.get(), buf, len)) {
        raw.reset();
        std::fprintf(stderr, "\nnimbus: %s's console closed (the VM stopped?)\n", name.c_str());
        return tty ? 0 : 1;
      }
      if (detach) {
        raw.reset();
        std::fprintf(stderr, "\nDetached from %s's console\n", name.c_str());
        break;
      }
    }
  }
  return status;
}

// --- shell -c --------------------------------------------------------------------------

std::string make_shell_line(const std::string& command, const std::string& token) {
  std::string quoted = "'";
  for (char c : command) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += "'";
  return fmt::format(
      "printf '%s_%s\\n' __NIMBUS_BEGIN {0}; (eval {1}) </dev/null; printf '%s_%s=%d\\n' "
      "__NIMBUS_RC {0} \"$?\"\n",
      token, quoted);
}

ShellOutputParser::ShellOutputParser(const std::string& token)
    : begin_("__NIMBUS_BEGIN_" + token + "\n"), end_("__NIMBUS_RC_" + token + "=") {}

std::string ShellOutputParser::feed(std::string_view data) {
  if (state_ == State::kDone) return "";
  for (char c : data) {
    if (c != '\r') buf_ += c;
  }
  if (state_ == State::kWaitBegin) {
    const size_t at = buf_.find(begin_);
    if (at == std::string::npos) {
      // Keep only what could be the start of the marker.
      if (buf_.size() >= begin_.size()) buf_.erase(0, buf_.size() - (begin_.size() - 1));
      return "";
    }
    buf_.erase(0, at + begin_.size());
    state_ = State::kOutput;
  }
  const size_t at = buf_.find(end_);
  if (at != std::string::npos) {
    size_t digits = at + end_.size();
    while (digits < buf_.size() && buf_[digits] >= '0' && buf_[digits] <= '9') digits++;
    if (digits == buf_.size()) {  // the status may not be complete yet
      std::string out = buf_.substr(0, at);
      buf_.erase(0, at);
      return out;
    }
    const std::string number = buf_.substr(at + end_.size(), digits - (at + end_.size()));
    status_ = number.empty() || number.size() > 6 ? 255 : std::stoi(number);
    std::string out = buf_.substr(0, at);
    buf_.clear();
    state_ = State::kDone;
    return out;
  }
  // Hand out complete lines; a partial line may be the start of the end marker.
  const size_t nl = buf_.rfind('\n');
  if (nl == std::string::npos) return "";
  std::string out = buf_.substr(0, nl + 1);
  buf_.erase(0, nl + 1);
  return out;
}

std::string strip_terminal_escapes(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] != '\x1b') {
      out += text[i];
      continue;
    }
    if (i + 1 >= text.size()) break;
    const char kind = text[++i];
    if (kind == '[') {  // CSI: parameters and intermediates, then a final byte 0x40-0x7e
      while (i + 1 < text.size() && !(text[i + 1] >= 0x40 && text[i + 1] <= 0x7e)) i++;
      i++;
    } else if (kind == ']') {  // OSC: up to BEL or ESC backslash
      while (i + 1 < text.size() && text[i + 1] != '\a' && text[i + 1] != '\x1b') i++;
      i++;
      if (i < text.size() && text[i] == '\x1b') i++;
    }
    // Otherwise a two-byte sequence (ESC 7, ESC c, ...): both bytes dropped.
  }
  return out;
}

std::string random_token() {
  std::random_device rd;
  std::uniform_int_distribution<uint32_t> dist;
  return fmt::format("{:08x}{:08x}", dist(rd), dist(rd));
}

Result<int> run_shell_command(const std::string& socket_path, const std::string& command,
                              const ShellCommandOptions& options,
                              const std::function<void(const std::string&)>& out) {
  const std::string token = options.token.empty() ? random_token() : options.token;
  const std::string line = make_shell_line(command, token);
  if (line.size() > kMaxShellLine) {
    return Status::error(fmt::format(
        "the command is too long for the serial console ({} bytes with the wrapper; at most {})",
        line.size(), kMaxShellLine));
  }
  for (size_t start = 0; start < line.size();) {  // every line of a multi-line command
    size_t nl = line.find('\n', start);
    if (nl == std::string::npos) nl = line.size();
    if (nl - start > kMaxShellLine)
      return Status::error("a line of the command is too long for the serial console");
    start = nl + 1;
  }
  auto connected = connect_console(socket_path);
  if (!connected.ok()) return connected.status();
  Fd sock(*connected);
  const auto deadline = Clock::now() + std::chrono::seconds(options.timeout_s);
  // Skip the replayed history.
  if (!drain_until_idle(sock.get(), -1, options.settle_ms, 3000, false)) {
    return Status::error("the console closed (the VM stopped?)");
  }
  // Ctrl-U first: clears whatever half-typed line an interactive user left behind.
  if (!write_all(sock.get(), "\x15" + line))
    return Status::error("the console closed (the VM stopped?)");
  ShellOutputParser parser(token);
  char buf[4096];
  while (!parser.done()) {
    const int wait = ms_until(deadline);
    if (wait == 0) {
      return Status::error(fmt::format(
          "no result after {} s{}", options.timeout_s,
          parser.started() ? " (the command is still running)"
                           : " (is the console at a shell prompt? look with `nimbus console`)"));
    }
    pollfd pfd{sock.get(), POLLIN, 0};
    const int r = ::poll(&pfd, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::error(fmt::format("poll: {}", std::strerror(errno)));
    if (r == 0) continue;
    const ssize_t n = read_some(sock.get(), buf, sizeof(buf));
    if (n <= 0)
      return Status::error("the console closed before the command finished (the VM stopped?)");
    const std::string text = parser.feed(std::string_view(buf, static_cast<size_t>(n)));
    if (!text.empty()) out(text);
  }
  return parser.status();
}

}  // namespace nimbus::cli
