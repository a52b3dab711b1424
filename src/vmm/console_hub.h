// The VM's serial console inside the VMM process, fanned out to wherever it is wanted:
// the process's stdout, a log file, and any number of clients of a unix socket
// (`nimbus console NAME` attaches through it). The last kHistory bytes are kept and
// replayed to a client when it connects, so an attach shows the current screen context.
// Input from any client (or stdin, fed by the owner) goes to the guest.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace nimbus::vmm {

class ConsoleHub {
 public:
  static constexpr size_t kHistory = 64 * 1024;

  // `vm_id` names the VM in log lines.
  ConsoleHub(std::string vm_id, std::function<void(const uint8_t*, size_t)> to_guest);
  ~ConsoleHub();
  ConsoleHub(const ConsoleHub&) = delete;
  ConsoleHub& operator=(const ConsoleHub&) = delete;

  // Guest output (any thread).
  void write(const uint8_t* data, size_t len);
  // Extra sinks, set before output starts.
  void add_sink(std::function<void(const uint8_t*, size_t)> sink) {
    sinks_.push_back(std::move(sink));
  }
  Status open_log(const std::string& path);
  // Serves the console on a unix stream socket at `path` (replacing a stale socket file).
  Status listen(const std::string& path);
  void input(const uint8_t* data, size_t len) { to_guest_(data, len); }
  size_t clients();

 private:
  void serve();
  void drop_client_locked(size_t index);
  void write_log_locked(const uint8_t* data, size_t len);

  std::string vm_id_;
  std::function<void(const uint8_t*, size_t)> to_guest_;
  std::vector<std::function<void(const uint8_t*, size_t)>> sinks_;
  std::mutex mu_;
  std::deque<uint8_t> history_;
  std::vector<int> clients_;
  int log_fd_ = -1;
  bool log_failed_ = false;  // a write to the log failed (said once, not per byte of output)
  int listen_fd_ = -1;
  std::string socket_path_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace nimbus::vmm
