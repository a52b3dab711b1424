#include "backends/console/stdio_console.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nimbus::backends {

namespace {
constexpr uint8_t kEscape = 0x01;  // Ctrl-A
const char kHelp[] =
    "\r\nC-a x    quit the VM\r\nC-a h    this help\r\nC-a C-a  send C-a to the guest\r\n";
}  // namespace

StdioConsole::StdioConsole(std::function<void(uint8_t)> on_input, std::function<void()> on_quit)
    : on_input_(std::move(on_input)), on_quit_(std::move(on_quit)) {
  tty_ = isatty(STDIN_FILENO) == 1;
  if (tty_ && tcgetattr(STDIN_FILENO, &saved_) == 0) {
    termios raw = saved_;
    cfmakeraw(&raw);
    raw_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  if (pipe(wake_pipe_) != 0) wake_pipe_[0] = wake_pipe_[1] = -1;
}

StdioConsole::~StdioConsole() {
  stop_ = true;
  if (wake_pipe_[1] >= 0) {
    char c = 0;
    (void)!::write(wake_pipe_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  if (raw_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  for (int fd : wake_pipe_) {
    if (fd >= 0) close(fd);
  }
}

void StdioConsole::start() {
  thread_ = std::thread([this] { reader(); });
}

void StdioConsole::write(const uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> lock(out_mu_);
  while (len > 0) {
    ssize_t n = ::write(STDOUT_FILENO, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stdout closed: the guest's output goes nowhere
    data += n;
    len -= static_cast<size_t>(n);
  }
}

void StdioConsole::handle(uint8_t c) {
  if (!tty_) {
    on_input_(c);
    return;
  }
  if (escape_) {
    escape_ = false;
    if (c == 'x' || c == 'X') {
      on_quit_();
    } else if (c == kEscape) {
      on_input_(c);
    } else if (c == 'h' || c == 'H' || c == '?') {
      write(reinterpret_cast<const uint8_t*>(kHelp), sizeof(kHelp) - 1);
    }
    return;
  }
  if (c == kEscape) {
    escape_ = true;
    return;
  }
  on_input_(c);
}

void StdioConsole::reader() {
  uint8_t buf[256];
  while (!stop_) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int rc = poll(fds, wake_pipe_[0] >= 0 ? 2 : 1, 200);
    if (rc < 0 && errno != EINTR) return;
    if (rc <= 0 || (fds[1].revents & POLLIN)) continue;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return;  // end of input: the guest just gets no more
      for (ssize_t i = 0; i < n; i++) handle(buf[i]);
    }
  }
}

}  // namespace nimbus::backends
