#include "common/http_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nimbus::http {

namespace {

void ip_and_port(const sockaddr_storage& ss, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &a.sin_addr, text, sizeof(text));
    port = ntohs(a.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof(text));
    port = ntohs(a.sin6_port);
  } else {
    port = 0;  // a unix socket
  }
  ip = text;
}

}  // namespace

bool ConnStream::wait(short events, Clock::time_point deadline) const {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return false;
    pollfd p{fd_, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

bool ConnStream::wait_request(int idle_ms) {
  if (failed_) return false;
  return pos_ < len_ || wait(POLLIN, Clock::now() + std::chrono::milliseconds(idle_ms));
}

void ConnStream::drain(int ms, size_t max_bytes) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(ms);
  size_t dropped = 0;
  char scrap[16384];
  while (dropped < max_bytes && wait(POLLIN, deadline)) {
    const ssize_t n = ::recv(fd_, scrap, sizeof(scrap), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
    if (n > 0) dropped += static_cast<size_t>(n);
  }
}

void ConnStream::begin_head() {
  in_head_ = true;
  head_bytes_ = 0;
  deadline_ = Clock::now() + std::chrono::milliseconds(head_ms_);
}

void ConnStream::begin_body() {
  in_head_ = false;
  deadline_ = Clock::now() + std::chrono::milliseconds(body_ms_);
}

bool ConnStream::is_readable() const { return pos_ < len_ || wait(POLLIN, deadline_); }

bool ConnStream::is_writable() const {
  return wait(POLLOUT, Clock::now() + std::chrono::milliseconds(write_ms_));
}

ssize_t ConnStream::read(char* ptr, size_t size) {
  if (failed_) return -1;
  if (pos_ == len_) {
    if (!wait(POLLIN, deadline_)) {
      failed_ = true;
      return -1;
    }
    ssize_t n;
    do {
      n = ::recv(fd_, buf_, sizeof(buf_), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return read(ptr, size);  // spurious wakeup
    if (n <= 0) {
      failed_ = n < 0;
      return n;
    }
    pos_ = 0;
    len_ = static_cast<size_t>(n);
  }
  const size_t k = std::min(size, len_ - pos_);
  if (in_head_ && (head_bytes_ += k) > kMaxHead) {
    failed_ = true;
    return -1;
  }
  std::memcpy(ptr, buf_ + pos_, k);
  pos_ += k;
  return static_cast<ssize_t>(k);
}

std::string ConnStream::take_buffered() {
  std::string out(buf_ + pos_, len_ - pos_);
  pos_ = len_ = 0;
  return out;
}

ssize_t ConnStream::write(const char* ptr, size_t size) {
  if (discard_writes_) return static_cast<ssize_t>(size);
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(write_ms_);
  size_t done = 0;
  while (done < size) {
    if (!wait(POLLOUT, deadline)) {
      failed_ = true;
      return -1;
    }
    const ssize_t n = ::send(fd_, ptr + done, size - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      failed_ = true;
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(size);
}

void ConnStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ss.ss_family = AF_UNSPEC;
  ip_and_port(ss, ip, port);
}

void ConnStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ss.ss_family = AF_UNSPEC;
  ip_and_port(ss, ip, port);
}

}  // namespace nimbus::http
