#include "cli/cloud_processes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/http_listen.h"

namespace nimbus::cli {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string read_small_file(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  std::string out(limit, '\0');
  in.read(out.data(), static_cast<std::streamsize>(limit));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

// Runs (not a zombie waiting for its parent).
bool running(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // /proc/PID/stat: "PID (COMM) STATE ..."; COMM may hold spaces and parentheses.
  const std::string stat = read_small_file(fmt::format("/proc/{}/stat", pid), 512);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  return stat[paren + 2] != 'Z';
}

std::string describe_wait_status(int st) {
  if (WIFEXITED(st)) return fmt::format("exit status {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("killed by signal {}", WTERMSIG(st));
  return "ended";
}

}  // namespace

std::string find_beside_self(const std::string& name) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const std::string path = (self.parent_path() / name).string();
  return ::access(path.c_str(), X_OK) == 0 ? path : "";
}

Result<pid_t> spawn_daemon(const std::string& exe, const std::vector<std::string>& args,
                           const std::string& log) {
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (log_fd < 0)
    return Status::error(fmt::format("cannot open the log {}: {}", log, std::strerror(errno)));
  // The child reports a failed exec through this pipe; a successful exec closes it.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(log_fd);
    return Status::error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  std::vector<std::string> argv_text = {exe};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log_fd);
    ::close(report[0]);
    ::close(report[1]);
    return Status::error(fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Dispositions set to ignore survive exec (the CLI ignores SIGPIPE); a daemon starts clean.
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int fd = 3; fd < 1024; fd++)
      if (fd != report[1]) ::close(fd);
    ::execv(exe.c_str(), argv.data());
    const int err = errno;
    (void)!::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(report[1]);
  int err = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof err)) {
    ::waitpid(pid, nullptr, 0);
    return Status::error(fmt::format("cannot run {}: {}", exe, std::strerror(err)));
  }
  return pid;
}

std::optional<std::string> child_exit(pid_t pid) {
  int st = 0;
  if (pid > 0 && ::waitpid(pid, &st, WNOHANG) == pid) return describe_wait_status(st);
  return std::nullopt;
}

bool child_running(pid_t pid) { return pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0; }

bool process_matches(pid_t pid, const std::string& needle) {
  if (!running(pid)) return false;
  std::string cmdline = read_small_file(fmt::format("/proc/{}/cmdline", pid), 64 * 1024);
  for (char& c : cmdline)
    if (c == '\0') c = ' ';
  return cmdline.find(needle) != std::string::npos;
}

std::string stop_process(pid_t pid, std::chrono::milliseconds grace) {
  (void)child_exit(pid);
  if (!running(pid)) return "gone";
  ::kill(pid, SIGTERM);
  const auto wait_gone = [pid](std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      (void)child_exit(pid);
      if (!running(pid)) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  if (wait_gone(grace)) return "stopped";
  ::kill(pid, SIGKILL);
  wait_gone(std::chrono::seconds(5));
  return "killed";
}

std::string last_log_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > 4096 ? size - 4096 : 0;
  in.seekg(from);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string last;
  for (std::string line; std::getline(ss, line);) {
    line = trim(line);
    if (!line.empty()) last = line;
  }
  if (last.size() > 300) {  // in place: GCC 12 -Warray-bounds misfires on substr() + "..."
    last.resize(300);
    last += "...";
  }
  return last;
}

Result<int> free_local_port() {
  auto sock = http::listen_tcp("port", "127.0.0.1:0");
  if (!sock.ok()) return sock.status();
  return sock->port();
}

Status write_token_file(const std::string& path) {
  unsigned char bytes[32];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes))
    return Status::error(fmt::format("no random bytes: {}", std::strerror(errno)));
  std::string token;
  for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
  token += "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  // An existing file keeps its mode through O_CREAT: make it the token's.
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, token.data(), token.size()) == static_cast<ssize_t>(token.size());
  const int err = errno;
  ::close(fd);
  if (!ok) return Status::error(fmt::format("cannot write {}: {}", path, std::strerror(err)));
  return {};
}

Result<std::string> read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return Status::invalid_argument(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::string line;
  std::getline(in, line);
  line = trim(line);
  if (line.empty()) return Status::invalid_argument(fmt::format("{} holds no token", path));
  return line;
}

}  // namespace nimbus::cli
