// Turns SIGINT, SIGTERM and SIGHUP into an orderly stop (so the terminal leaves raw mode
// and disks are closed), on a thread of its own: the signals are blocked everywhere else,
// so no handler runs in the middle of a vCPU. Create it before any other thread.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <ctime>
#include <functional>
#include <thread>

namespace nimbus {

class SignalStopper {
 public:
  explicit SignalStopper(std::function<void()> on_signal) : on_signal_(std::move(on_signal)) {
    sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, sig);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);  // inherited by every thread started later
    thread_ = std::thread([this] {
      while (!done_) {
        timespec timeout{0, 200'000'000};
        const int sig = sigtimedwait(&set_, nullptr, &timeout);
        if (sig > 0 && !done_) {
          signal_ = sig;
          on_signal_();
        }
      }
    });
  }
  ~SignalStopper() {
    done_ = true;
    // Wake the thread now rather than at its next timeout (up to 200 ms at every exit):
    // a signal sent to that thread only, which it takes as the end since done_ is set.
    pthread_kill(thread_.native_handle(), SIGHUP);
    thread_.join();
    pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  }
  SignalStopper(const SignalStopper&) = delete;
  SignalStopper& operator=(const SignalStopper&) = delete;
  int signal() const { return signal_; }

 private:
  std::function<void()> on_signal_;
  sigset_t set_;
  std::atomic<bool> done_{false};
  std::atomic<int> signal_{0};
  std::thread thread_;
};

}  // namespace nimbus
