#include "cli/host_progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace nimbus::cli {

Progress::Progress(std::string action, int tty)
    : action_(std::move(action)),
      tty_(tty < 0 ? isatty(STDERR_FILENO) == 1 : tty != 0),
      start_(std::chrono::steady_clock::now()) {
  if (!tty_) return;
  std::lock_guard<std::mutex> lock(mu_);
  draw_locked();
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!finished_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      if (!finished_) draw_locked();
    }
  });
}

Progress::~Progress() { finish(); }

int Progress::elapsed_s() const {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_)
          .count());
}

void Progress::draw_locked() {
  std::string line = "\r\x1b[K" + action_ + " \u2026";
  if (!state_.empty()) line += " " + state_;
  line += fmt::format(" ({}s)", elapsed_s());
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

void Progress::set_state(const std::string& state) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || state == state_) return;
  state_ = state;
  if (tty_) {
    draw_locked();
  } else {
    std::fprintf(stderr, "%s: %s\n", action_.c_str(), state.c_str());
    std::fflush(stderr);
  }
}

void Progress::set_action(const std::string& action) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || action == action_) return;
  action_ = action;
  if (tty_) draw_locked();
}

void Progress::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    if (tty_) {
      std::fputs("\r\x1b[K", stderr);
      std::fflush(stderr);
    }
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

}  // namespace nimbus::cli
