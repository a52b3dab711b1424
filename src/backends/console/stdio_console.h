// The VM's console on the process's stdin/stdout. On a terminal it switches to raw mode
// (restored on exit) and reads an escape sequence like QEMU's: Ctrl-A X quits the VM,
// Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A H prints help. When stdin
// is not a terminal (scripts, tests), bytes pass through unchanged and end of input just
// stops reading.
#pragma once

#include <termios.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace nimbus::backends {

class StdioConsole {
 public:
  // `on_input` gets each byte the guest should receive; `on_quit` runs when the user
  // types the quit sequence. Both run on the console's reader thread.
  StdioConsole(std::function<void(uint8_t)> on_input, std::function<void()> on_quit);
  ~StdioConsole();
  StdioConsole(const StdioConsole&) = delete;
  StdioConsole& operator=(const StdioConsole&) = delete;

  // Starts the reader thread.
  void start();
  // Writes guest output; safe from any thread.
  void write(const uint8_t* data, size_t len);
  void write(uint8_t c) { write(&c, 1); }

 private:
  void reader();
  void handle(uint8_t c);

  std::function<void(uint8_t)> on_input_;
  std::function<void()> on_quit_;
  bool tty_ = false;
  bool raw_ = false;
  termios saved_{};
  bool escape_ = false;
  std::atomic<bool> stop_{false};
  int wake_pipe_[2] = {-1, -1};
  std::thread thread_;
  std::mutex out_mu_;
};

}  // namespace nimbus::backends
