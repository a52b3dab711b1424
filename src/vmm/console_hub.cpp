#include "vmm/console_hub.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nimbus::vmm {

ConsoleHub::ConsoleHub(std::string vm_id, std::function<void(const uint8_t*, size_t)> to_guest)
    : vm_id_(std::move(vm_id)), to_guest_(std::move(to_guest)) {}

ConsoleHub::~ConsoleHub() {
  stop_ = true;
  if (wake_[1] >= 0) {
    // One byte wakes the server thread; a blocking pipe only fails on a signal (retried).
    const char c = 0;
    ssize_t n;
    do {
      n = ::write(wake_[1], &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
      spdlog::error("vm {}: console: cannot wake the console server: {}", vm_id_,
                    std::strerror(errno));
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : clients_) ::close(fd);
  for (int fd : {listen_fd_, log_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

void ConsoleHub::write(const uint8_t* data, size_t len) {
  for (auto& sink : sinks_) sink(data, len);
  std::lock_guard<std::mutex> lock(mu_);
  if (log_fd_ >= 0) write_log_locked(data, len);
  history_.insert(history_.end(), data, data + len);
  if (history_.size() > kHistory)
    history_.erase(history_.begin(), history_.begin() + (history_.size() - kHistory));
  for (size_t i = 0; i < clients_.size();) {
    // Non-blocking: a client that does not keep up loses output rather than stall the guest.
    const ssize_t n = ::send(clients_[i], data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      drop_client_locked(i);
      continue;
    }
    i++;
  }
}

void ConsoleHub::write_log_locked(const uint8_t* data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(log_fd_, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The guest goes on (a full disk must not stop it); the log says once that output is lost.
      if (!log_failed_) {
        spdlog::error("vm {}: console log: write failed, output is being lost: {}", vm_id_,
                      n < 0 ? std::strerror(errno) : "no progress");
      }
      log_failed_ = true;
      return;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  if (log_failed_) spdlog::info("vm {}: console log: writing again", vm_id_);
  log_failed_ = false;
}

Status ConsoleHub::open_log(const std::string& path) {
  log_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd_ < 0)
    return Status::error(
        fmt::format("cannot write console log '{}': {}", path, std::strerror(errno)));
  return {};
}

Status ConsoleHub::listen(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::error(fmt::format("console socket path '{}' is too long (at most {} bytes)",
                                     path, sizeof(addr.sun_path) - 1));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::error(std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 8) != 0) {
    return Status::error(
        fmt::format("cannot listen on console socket '{}': {}", path, std::strerror(errno)));
  }
  socket_path_ = path;
  if (::pipe2(wake_, O_CLOEXEC) != 0)
    return Status::error(std::string("pipe: ") + std::strerror(errno));
  thread_ = std::thread([this] { serve(); });
  return {};
}

size_t ConsoleHub::clients() {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_.size();
}

void ConsoleHub::drop_client_locked(size_t index) {
  ::close(clients_[index]);
  clients_.erase(clients_.begin() + static_cast<long>(index));
}

void ConsoleHub::serve() {
  std::vector<pollfd> fds;
  while (!stop_) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("vm {}: console: the console socket stops serving: poll: {}", vm_id_,
                    std::strerror(errno));
      return;
    }
    if (stop_) return;
    if (fds[1].revents & POLLIN) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        std::lock_guard<std::mutex> lock(mu_);
        const std::vector<uint8_t> replay(history_.begin(), history_.end());
        // Non-blocking like all output: a client whose buffer cannot take the history gets
        // what fits; one that is already gone is not kept.
        const ssize_t n = ::send(fd, replay.data(), replay.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          spdlog::info("vm {}: console: a client left during the replay: {}", vm_id_,
                       std::strerror(errno));
          ::close(fd);
        } else {
          if (static_cast<size_t>(n < 0 ? 0 : n) < replay.size()) {
            spdlog::debug("vm {}: console: replayed {} of {} history bytes", vm_id_, n < 0 ? 0 : n,
                          replay.size());
          }
          clients_.push_back(fd);
        }
      }
    }
    for (size_t i = 2; i < fds.size(); i++) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      uint8_t buf[512];
      const ssize_t n = ::recv(fds[i].fd, buf, sizeof(buf), 0);
      if (n > 0) {
        to_guest_(buf, static_cast<size_t>(n));
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t k = 0; k < clients_.size(); k++) {
        if (clients_[k] == fds[i].fd) {
          drop_client_locked(k);
          break;
        }
      }
    }
  }
}

}  // namespace nimbus::vmm
