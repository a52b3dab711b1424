// A progress indicator on stderr for host verbs that take a while: on a tty one line that
// is redrawn every second ("Launching web1 … starting (3s)") and erased at the end;
// otherwise one plain line per change of state ("Launching web1: starting").
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace nimbus::cli {

class Progress {
 public:
  // `action` like "Launching web1". `tty` defaults to whether stderr is a terminal.
  explicit Progress(std::string action, int tty = -1);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void set_state(const std::string& state);
  void set_action(const std::string& action);
  // Erases the tty line (idempotent); later output starts on a clean line.
  void finish();
  int elapsed_s() const;

 private:
  void draw_locked();
  std::string action_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string state_;
  bool finished_ = false;
  std::thread ticker_;
};

}  // namespace nimbus::cli
