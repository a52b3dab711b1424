#include "cloud/console_events.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace nimbus::cloud {

namespace {

// Writes all of `data`, waiting at most 10 s for room (a client that stopped reading).
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, 10000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The peer closed (or sent something, which an event stream's client never does: its
// bytes are read and dropped).
bool peer_gone(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
  char buf[512];
  const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace

ConsoleEvents::ConsoleEvents(Source source, size_t max_streams, std::chrono::milliseconds poll,
                             std::chrono::milliseconds keepalive)
    : source_(std::move(source)), max_streams_(max_streams), poll_(poll), keepalive_(keepalive) {}

ConsoleEvents::~ConsoleEvents() { stop(); }

bool ConsoleEvents::reserve() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || streams_ >= max_streams_) return false;
  ++streams_;
  if (!poller_.joinable()) poller_ = std::thread([this] { poll_loop(); });
  return true;
}

void ConsoleEvents::release() {
  std::lock_guard<std::mutex> lock(mu_);
  if (streams_ > 0) --streams_;
  cv_.notify_all();
}

size_t ConsoleEvents::streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return streams_;
}

void ConsoleEvents::stop() {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  cv_.wait(lock, [this] { return streams_ == 0; });
  std::thread poller = std::move(poller_);
  lock.unlock();
  if (poller.joinable()) poller.join();
}

void ConsoleEvents::take_snapshot() {
  Snapshot s = source_();
  if (!s.ok) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (version_ != 0 && s.fingerprint == fingerprint_) return;
  data_ = std::move(s.data);
  fingerprint_ = std::move(s.fingerprint);
  ++version_;
  cv_.notify_all();
}

void ConsoleEvents::poll_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (streams_ == 0) {  // nobody listens: sleep until a stream comes
      version_ = 0;       // and take a fresh snapshot then
      cv_.wait(lock, [this] { return stopping_ || streams_ > 0; });
      continue;
    }
    lock.unlock();
    take_snapshot();
    lock.lock();
    cv_.wait_for(lock, poll_, [this] { return stopping_; });
  }
}

void ConsoleEvents::run(int fd, const std::function<bool()>& alive) {
  uint64_t sent = 0;
  auto last_write = std::chrono::steady_clock::now();
  // The retry hint for EventSource's reconnects, then the first snapshot (taken now if the
  // poller has none yet).
  bool ok = write_all(fd, "retry: 3000\n\n");
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (version_ == 0) {
      lock.unlock();
      take_snapshot();
    }
  }
  while (ok) {
    std::string out;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Wake at least every second to look at the session and the peer.
      cv_.wait_for(lock, std::chrono::seconds(1),
                   [&] { return stopping_ || (version_ != 0 && version_ != sent); });
      if (stopping_) break;
      if (version_ != 0 && version_ != sent) {
        out = "event: instances\ndata: " + data_ + "\n\n";
        sent = version_;
      }
    }
    if (!alive() || peer_gone(fd)) break;
    const auto now = std::chrono::steady_clock::now();
    if (out.empty() && now - last_write >= keepalive_) out = ": keepalive\n\n";
    if (out.empty()) continue;
    ok = write_all(fd, out);
    last_write = now;
  }
}

}  // namespace nimbus::cloud
