#include "backends/net/switch_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
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

// Port directories are named after a uid in decimal, one spelling only (no leading zero).
bool parse_uid_name(const std::string& name, uid_t* uid) {
  if (name.empty() || name.size() > 10 || (name.size() > 1 && name[0] == '0')) return false;
  uint64_t value = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value >= UINT32_MAX) return false;  // (uid_t)-1 means "no uid"
  *uid = static_cast<uid_t>(value);
  return true;
}

// Only the owner (and root) can add, remove or rename entries.
bool closed_to_others(const struct stat& st) { return (st.st_mode & (S_IWGRP | S_IWOTH)) == 0; }

// "52:54:00:81:00:02" (hex digits in either case) to a key like mac_key's.
bool parse_mac(const std::string& text, uint64_t* key) {
  if (text.size() != 17) return false;
  uint64_t value = 0;
  for (size_t i = 0; i < 17; ++i) {
    char c = text[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
      continue;
    }
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
    if (digit < 0) return false;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  *key = value;
  return true;
}

// Reads a pin file: false when it exists but cannot be trusted (then the port is not
// either); true with `macs` empty when there is none.
bool read_pins(const std::string& file, uid_t dir_owner, std::vector<uint64_t>* macs) {
  macs->clear();
  const int fd = open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  struct stat st {};
  char buf[4096];
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_uid == dir_owner || st.st_uid == 0) &&
      closed_to_others(st) && st.st_size < static_cast<off_t>(sizeof buf)) {
    n = read(fd, buf, sizeof buf);
  }
  close(fd);
  if (n <= 0) return false;
  std::string text(buf, static_cast<size_t>(n));
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    uint64_t key;
    if (!parse_mac(text.substr(start, end - start), &key)) return false;
    macs->push_back(key);
    start = end + 1;
  }
  return !macs->empty();
}

// The endpoint names in a port directory, at most `limit` of them.
std::vector<std::string> list_endpoints(const std::string& port_dir, size_t limit) {
  std::vector<std::string> names;
  DIR* d = opendir(port_dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    pid_t pid;
    if (!parse_endpoint_name(e->d_name, &pid)) continue;
    names.emplace_back(e->d_name);
    if (names.size() >= limit) break;
  }
  closedir(d);
  return names;
}

// Unlinks `path` (an endpoint named "<pid>-<n>") when nobody is bound to it and its
// process is gone. A peer in the middle of bind() also refuses for an instant, hence the
// pid check; a directory we cannot write to keeps its leftovers (EACCES, harmless).
void unlink_if_dead(const std::string& path, const std::string& leaf) {
  pid_t pid;
  if (parse_endpoint_name(leaf.c_str(), &pid) && kill(pid, 0) != 0 && errno == ESRCH) {
    unlink(path.c_str());
  }
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

bool SwitchBackend::trusted_port_dir(const std::string& dir, const std::string& name) {
  uid_t uid;
  if (!parse_uid_name(name, &uid)) return false;
  struct stat st {};
  if (lstat((dir + "/" + name).c_str(), &st) != 0) return false;
  return S_ISDIR(st.st_mode) && st.st_uid == uid && closed_to_others(st);
}

Status SwitchBackend::prepare_port_dir(const std::string& path, uid_t uid, gid_t gid,
                                       const std::string& mac) {
  const std::string dir = path + ".d";
  const std::string name = std::to_string(uid);
  const std::string what = "switch " + path + ": port directory " + dir + "/" + name;
  uint64_t key;
  if (!mac.empty() && !parse_mac(mac, &key)) {
    return Status::error("switch " + path + ": '" + mac + "' is not a MAC address");
  }
  const int top = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) return Status::error("switch " + path + ": " + dir + ": " + errno_text(errno));
  // The pin first: the port must not be usable without it.
  const std::string pin = name + ".mac";
  if (mac.empty()) {
    if (unlinkat(top, pin.c_str(), 0) != 0 && errno != ENOENT) {
      Status s = Status::error(what + ": cannot remove " + pin + ": " + errno_text(errno));
      close(top);
      return s;
    }
  } else {
    const std::string tmp = pin + ".tmp";
    unlinkat(top, tmp.c_str(), 0);
    const int fd =
        openat(top, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    const std::string line = mac + "\n";
    bool ok = fd >= 0 && fchmod(fd, 0644) == 0 &&
              write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    if (fd >= 0) ok = close(fd) == 0 && ok;
    if (!ok || renameat(top, tmp.c_str(), top, pin.c_str()) != 0) {
      Status s = Status::error(what + ": cannot write " + pin + ": " + errno_text(errno));
      unlinkat(top, tmp.c_str(), 0);
      close(top);
      return s;
    }
  }
  Status result = Status::error(what + ": something keeps replacing it");
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (mkdirat(top, name.c_str(), 0750) != 0 && errno != EEXIST) {
      result = Status::error(what + ": " + errno_text(errno));
      break;
    }
    // openat + fchown/fchmod: whatever is there is never followed if it is a symlink.
    const int fd = openat(top, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      if (fchown(fd, uid, gid) != 0 || fchmod(fd, 0750) != 0) {
        result = Status::error(what + ": " + errno_text(errno));
      } else {
        result = Status();
      }
      close(fd);
      break;
    }
    if (errno != ENOTDIR && errno != ELOOP) {
      result = Status::error(what + ": " + errno_text(errno));
      break;
    }
    unlinkat(top, name.c_str(), 0);  // a symlink or a file in the way: not ours to keep
  }
  close(top);
  return result;
}

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
  // Whoever can write to PATH.d can replace port directories, and so endpoints.
  if (!closed_to_others(st)) {
    return Status::error(fmt::format(
        "switch {}: {} is writable by group or others (mode {:o}), so one VM could take over "
        "another's endpoint; make it 0700, 0750 or 0755 with a directory per uid inside",
        path, dir, st.st_mode & 07777));
  }
  // Peers compare sender paths with their own directory: use one spelling for everyone.
  fs::path canonical = fs::canonical(dir, ec);
  if (ec) return Status::error("switch " + path + ": " + dir + ": " + ec.message());

  std::unique_ptr<SwitchBackend> b(new SwitchBackend());
  b->dir_ = canonical.string();
  b->dir_owner_ = st.st_uid;
  const std::string port = std::to_string(geteuid());
  const std::string port_dir = b->dir_ + "/" + port;
  if (mkdir(port_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::error(
        "switch " + path + ": cannot create our port directory " + port_dir + ": " +
        errno_text(errno) +
        " (where VMs of several uids share a switch, its owner creates one per uid)");
  }
  if (!trusted_port_dir(b->dir_, port)) {
    return Status::error("switch " + path + ": " + port_dir + " must be a directory owned by uid " +
                         port + " and not writable by group or others");
  }
  // Leftovers of our uid's dead processes (a VMM that was killed, say).
  for (const std::string& leaf : list_endpoints(port_dir, 4 * kMaxEndpointsPerPortDir)) {
    unlink_if_dead(port_dir + "/" + leaf, leaf);
  }
  b->name_ =
      port + "/" + std::to_string(getpid()) + "-" + std::to_string(endpoint_counter.fetch_add(1));
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
  std::vector<std::string> ports;
  while (dirent* e = readdir(d)) {
    uid_t uid;
    if (parse_uid_name(e->d_name, &uid)) ports.emplace_back(e->d_name);
  }
  closedir(d);
  for (const std::string& port : ports) {
    // Only where a peer would accept frames from: a trusted port directory.
    if (!check_port(port).trusted) continue;
    for (const std::string& leaf : list_endpoints(dir_ + "/" + port, kMaxEndpointsPerPortDir)) {
      std::string endpoint = port + "/" + leaf;
      if (endpoint != name_) send_to(endpoint, frame, len);
    }
  }
}

SwitchBackend::SendResult SwitchBackend::send_to(const std::string& endpoint, const uint8_t* frame,
                                                 size_t len) {
  sockaddr_un addr;
  std::string path = dir_ + "/" + endpoint;
  if (!fill_sockaddr(path, &addr)) return SendResult::kGone;
  ssize_t n = sendto(sock_, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                     reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (n >= 0) return SendResult::kSent;
  if (errno == ENOENT) return SendResult::kGone;
  if (errno == ECONNREFUSED) {
    unlink_if_dead(path, endpoint.substr(endpoint.rfind('/') + 1));
    return SendResult::kGone;
  }
  return SendResult::kDropped;  // EAGAIN (peer's queue full), ENOBUFS...
}

SwitchBackend::PortDirVerdict SwitchBackend::check_port(const std::string& port) const {
  PortDirVerdict v{false, {}, std::chrono::steady_clock::now()};
  v.trusted =
      trusted_port_dir(dir_, port) && read_pins(dir_ + "/" + port + ".mac", dir_owner_, &v.macs);
  return v;
}

std::string SwitchBackend::endpoint_of(const std::string& sender, const uint8_t* src_mac) {
  if (sender.size() <= dir_.size() + 1 || sender.compare(0, dir_.size(), dir_) != 0 ||
      sender[dir_.size()] != '/') {
    return {};
  }
  std::string endpoint = sender.substr(dir_.size() + 1);  // "<uid>/<pid>-<n>"
  size_t slash = endpoint.find('/');
  if (slash == std::string::npos || endpoint == name_) return {};
  std::string port = endpoint.substr(0, slash);
  uid_t uid;
  pid_t pid;
  if (!parse_uid_name(port, &uid) || !parse_endpoint_name(endpoint.c_str() + slash + 1, &pid)) {
    return {};
  }
  // The directory's owner and mode, not its name, say who bound the sender (see the
  // header); checked (with the pin file) once a second per port, not once per frame.
  auto now = std::chrono::steady_clock::now();
  auto it = port_dirs_.find(port);
  if (it == port_dirs_.end() || now - it->second.checked >= kPortDirCheckAge) {
    if (port_dirs_.size() >= kMaxLearnedMacs) port_dirs_.clear();
    it = port_dirs_.insert_or_assign(port, check_port(port)).first;
  }
  const PortDirVerdict& v = it->second;
  if (!v.trusted) return {};
  if (!v.macs.empty() &&
      std::find(v.macs.begin(), v.macs.end(), mac_key(src_mac)) == v.macs.end()) {
    return {};  // another port's MAC (or a made-up one) from a pinned port
  }
  return endpoint;
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
    std::string endpoint = endpoint_of(sender, rx_buf_.data() + 6);
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
