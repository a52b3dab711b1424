#include "backends/net/switch_backend.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>

namespace nimbus::backends {

namespace {

constexpr size_t kMinFrame = 14;

std::string errno_text(int err) { return std::strerror(err); }

uint64_t mac_key(const uint8_t* mac) {
  uint64_t key = 0;
  for (int i = 0; i < 6; ++i) key = key << 8 | mac[i];
  return key;
}

// Endpoint names are "<pid>-<n>"; anything else in the directory is not ours to touch.
bool parse_endpoint_name(const char* name, pid_t* pid) {
  const char* p = name;
  long value = 0;
  if (*p < '0' || *p > '9') return false;
  while (*p >= '0' && *p <= '9') {
    value = value * 10 + (*p - '0');
    if (value > 1'000'000'000) return false;
    ++p;
  }
  if (*p++ != '-' || *p < '0' || *p > '9') return false;
  while (*p >= '0' && *p <= '9') ++p;
  if (*p != '\0') return false;
  *pid = static_cast<pid_t>(value);
  return true;
}

bool fill_sockaddr(const std::string& path, sockaddr_un* addr) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

std::atomic<unsigned> endpoint_counter{0};

}  // namespace

Result<std::unique_ptr<SwitchBackend>> SwitchBackend::create(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return Status::error("switch: empty path");
  std::string dir = path + ".d";
  std::error_code ec;
  fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec)
    return Status::error("switch " + path + ": cannot create " + parent.string() + ": " +
                         ec.message());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::error("switch " + path + ": cannot create " + dir + ": " + errno_text(errno));
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::error("switch " + path + ": " + dir + " is not a directory");
  }
  // Peers compare sender paths with their own directory: use one spelling for everyone.
  fs::path canonical = fs::canonical(dir, ec);
  if (ec) return Status::error("switch " + path + ": " + dir + ": " + ec.message());

  std::unique_ptr<SwitchBackend> b(new SwitchBackend());
  b->dir_ = canonical.string();
  b->name_ = std::to_string(getpid()) + "-" + std::to_string(endpoint_counter.fetch_add(1));
  b->endpoint_path_ = b->dir_ + "/" + b->name_;
  sockaddr_un addr;
  if (!fill_sockaddr(b->endpoint_path_, &addr)) {
    return Status::error("switch " + path + ": socket path " + b->endpoint_path_ +
                         " is too long (at most " + std::to_string(sizeof(addr.sun_path) - 1) +
                         " bytes)");
  }
  b->sock_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (b->sock_ < 0) return Status::error("switch " + path + ": socket: " + errno_text(errno));
  // A leftover from an earlier process with our pid: nobody can be using it.
  unlink(b->endpoint_path_.c_str());
  if (bind(b->sock_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::error("switch " + path + ": cannot bind " + b->endpoint_path_ + ": " +
                         errno_text(errno));
  }
  int buf = 1 << 20;
  setsockopt(b->sock_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(b->sock_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  b->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b->wake_fd_ < 0) return Status::error("switch " + path + ": eventfd: " + errno_text(errno));
  b->rx_buf_.resize(kMaxFrame + 1);
  return b;
}

SwitchBackend::~SwitchBackend() {
  stop();
  if (sock_ >= 0) close(sock_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status SwitchBackend::start(Receiver receiver) {
  if (started_ || stopped_) return Status::error("switch: already started");
  started_ = true;
  receiver_ = std::move(receiver);
  thread_ = std::thread([this] { run(); });
  return Status();
}

void SwitchBackend::stop() {
  stopping_.store(true);
  wake();
  if (thread_.joinable()) thread_.join();
  if (stopped_) return;
  stopped_ = true;
  // The socket stays open until destruction: a send() racing with stop() must not hit a
  // closed (or reused) descriptor. Unlinking it already takes us off the switch.
  if (sock_ >= 0) unlink(endpoint_path_.c_str());
}

void SwitchBackend::resume_receive() {
  resume_.store(true);
  wake();
}

void SwitchBackend::wake() {
  if (wake_fd_ < 0) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void SwitchBackend::send(const uint8_t* frame, size_t len) {
  if (len < kMinFrame || len > kMaxFrame || stopping_.load()) return;
  const uint8_t* dst = frame;
  if ((dst[0] & 1) == 0) {  // unicast
    std::string endpoint;
    {
      std::lock_guard lock(table_mu_);
      auto it = table_.find(mac_key(dst));
      if (it != table_.end()) {
        if (std::chrono::steady_clock::now() - it->second.seen < kMacAge) {
          endpoint = it->second.endpoint;
        } else {
          table_.erase(it);
        }
      }
    }
    if (!endpoint.empty()) {
      SendResult r = send_to(endpoint, frame, len);
      if (r != SendResult::kGone) return;
      std::lock_guard lock(table_mu_);
      auto it = table_.find(mac_key(dst));
      if (it != table_.end() && it->second.endpoint == endpoint) table_.erase(it);
    }
  }
  flood(frame, len);
}

void SwitchBackend::flood(const uint8_t* frame, size_t len) {
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    pid_t pid;
    if (!parse_endpoint_name(e->d_name, &pid) || name_ == e->d_name) continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  for (const std::string& name : names) send_to(name, frame, len);
}

SwitchBackend::SendResult SwitchBackend::send_to(const std::string& name, const uint8_t* frame,
                                                 size_t len) {
  sockaddr_un addr;
  std::string path = dir_ + "/" + name;
  if (!fill_sockaddr(path, &addr)) return SendResult::kGone;
  ssize_t n = sendto(sock_, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                     reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (n >= 0) return SendResult::kSent;
  if (errno == ENOENT) return SendResult::kGone;
  if (errno == ECONNREFUSED) {
    // Nobody is bound there. Unlink only when its process is gone: a peer that is in the
    // middle of bind() also refuses for an instant.
    pid_t pid;
    if (parse_endpoint_name(name.c_str(), &pid) && kill(pid, 0) != 0 && errno == ESRCH) {
      unlink(path.c_str());
    }
    return SendResult::kGone;
  }
  return SendResult::kDropped;  // EAGAIN (peer's queue full), ENOBUFS...
}

std::string SwitchBackend::endpoint_of(const std::string& sender) const {
  if (sender.size() <= dir_.size() + 1 || sender.compare(0, dir_.size(), dir_) != 0 ||
      sender[dir_.size()] != '/') {
    return {};
  }
  std::string name = sender.substr(dir_.size() + 1);
  pid_t pid;
  if (name == name_ || !parse_endpoint_name(name.c_str(), &pid)) return {};
  return name;
}

void SwitchBackend::learn(const uint8_t* src_mac, const std::string& endpoint) {
  if (src_mac[0] & 1) return;  // a group address is never a source
  std::lock_guard lock(table_mu_);
  // Random source MACs from a misbehaving peer must not grow the table without bound.
  if (table_.size() >= kMaxLearnedMacs) table_.clear();
  table_[mac_key(src_mac)] = Learned{endpoint, std::chrono::steady_clock::now()};
}

void SwitchBackend::run() {
  pollfd fds[2] = {{sock_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stopping_.load()) {
    int rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof count);
    }
    if (stopping_.load()) return;
    if (resume_.exchange(false)) flush_pending();
    if (fds[0].revents & POLLIN) receive_all();
  }
}

void SwitchBackend::receive_all() {
  for (int i = 0; i < 64; ++i) {  // bounded, so a flood cannot starve resume/stop
    sockaddr_un from{};
    iovec iov{rx_buf_.data(), rx_buf_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = recvmsg(sock_, &msg, MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN: drained
    if ((msg.msg_flags & MSG_TRUNC) || n < static_cast<ssize_t>(kMinFrame) ||
        static_cast<size_t>(n) > kMaxFrame) {
      continue;
    }
    size_t path_len = msg.msg_namelen > offsetof(sockaddr_un, sun_path)
                          ? msg.msg_namelen - offsetof(sockaddr_un, sun_path)
                          : 0;
    if (path_len == 0 || from.sun_path[0] == '\0') continue;  // unbound or abstract sender
    std::string sender(from.sun_path, strnlen(from.sun_path, path_len));
    std::string endpoint = endpoint_of(sender);
    if (endpoint.empty()) continue;
    learn(rx_buf_.data() + 6, endpoint);
    deliver(rx_buf_.data(), static_cast<size_t>(n));
  }
}

void SwitchBackend::deliver(const uint8_t* frame, size_t len) {
  if (rx_pending_.empty() && receiver_(frame, len)) return;
  if (rx_pending_.size() < kMaxQueuedFrames) rx_pending_.emplace_back(frame, frame + len);
}

void SwitchBackend::flush_pending() {
  while (!rx_pending_.empty()) {
    const auto& frame = rx_pending_.front();
    if (!receiver_(frame.data(), frame.size())) return;
    rx_pending_.pop_front();
  }
}

}  // namespace nimbus::backends
