// One accepted HTTP connection as an httplib::Stream, with the deadlines http::Server
// enforces: a request head must arrive whole within the head timeout (a client trickling a
// byte at a time does not restart a per-read clock) and be at most kMaxHead bytes; the body
// within the body timeout; each reply write within the write timeout.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <string>

namespace nimbus::http {

class ConnStream final : public httplib::Stream {
 public:
  static constexpr size_t kMaxHead = 64 * 1024;

  ConnStream(int fd, int head_timeout_ms, int body_timeout_ms, int write_timeout_ms)
      : fd_(fd),
        head_ms_(head_timeout_ms),
        body_ms_(body_timeout_ms),
        write_ms_(write_timeout_ms) {}

  // Waits up to `idle_ms` for the next request to begin (false: none, or the peer left).
  bool wait_request(int idle_ms);
  void begin_head();  // the request's first byte is here: the head deadline starts
  void begin_body();  // the head is read: the body deadline starts
  bool failed() const { return failed_; }  // a deadline or limit was hit, or the socket failed
  // Reads and drops input until the peer's end, `ms` or `max_bytes`, whichever first.
  void drain(int ms, size_t max_bytes);
  // While set, writes are dropped (reported as done): httplib's reply to a request the
  // server answers itself (an upgrade, http_message.h) goes nowhere.
  void set_discard_writes(bool discard) { discard_writes_ = discard; }
  // The bytes read from the socket but not yet consumed (read ahead past the request), which
  // the stream no longer holds. httplib reads a head a byte at a time and a body by its
  // length, so after a request this is exactly what the client sent behind it.
  std::string take_buffered();

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

 private:
  using Clock = std::chrono::steady_clock;
  // Waits for `events` until `deadline`; true when ready (or the peer hung up: the next
  // read or write says so).
  bool wait(short events, Clock::time_point deadline) const;

  int fd_;
  int head_ms_, body_ms_, write_ms_;
  Clock::time_point deadline_ = Clock::now();
  bool in_head_ = false;
  size_t head_bytes_ = 0;
  bool failed_ = false;
  bool discard_writes_ = false;
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
};

}  // namespace nimbus::http
