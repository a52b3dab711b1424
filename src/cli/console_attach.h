// `nimbus console NAME` and `nimbus shell NAME [-c CMD]`: clients of a VM's serial console
// socket (vmm/console_hub.h). On connect the VMM replays up to 64 KiB of recent output and
// then streams; bytes written to the socket are the console's input. The guest runs a
// busybox `sh` on that console with echo on.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nimbus::cli {

inline constexpr unsigned char kDetachByte = 0x1d;  // Ctrl-]

// A connected unix stream socket, or an error naming the path.
Result<int> connect_console(const std::string& socket_path);

// Attaches `in_fd`/`out_fd` to the console. If `in_fd` is a tty: raw mode (restored on
// every exit, signals included), a banner on stderr, detach with Ctrl-]. Otherwise: copies
// in_fd to the console until EOF, then shows output until it has been idle for
// `idle_ms`. With `fresh_prompt` a newline is sent first (`nimbus shell`). Returns the
// exit status (0, or 1 with "nimbus: VERB NAME: ..." on stderr).
int attach_console(const std::string& verb, const std::string& name, const std::string& socket_path,
                   bool fresh_prompt, int in_fd = 0, int out_fd = 1, int idle_ms = 500);

// --- shell -c --------------------------------------------------------------------------

// The line typed on the console to run `command` (with a trailing newline). It prints a
// begin marker, runs the command in a subshell with stdin from /dev/null, then prints an
// end marker with the status. The markers are assembled by printf from separate words, so
// the echo of the typed line never contains them.
std::string make_shell_line(const std::string& command, const std::string& token);
// The longest line the guest shell's line editor takes (busybox: 1024 with the newline).
inline constexpr size_t kMaxShellLine = 1000;

// Finds the command's output in the console stream: drops everything up to the begin
// marker line (history, the echoed command, prompts), removes CRs, and stops at the end
// marker. Feed it the stream in pieces of any size.
class ShellOutputParser {
 public:
  explicit ShellOutputParser(const std::string& token);
  // Returns the output that is now known to be the command's (complete lines, or the rest
  // up to the end marker).
  std::string feed(std::string_view data);
  bool started() const { return state_ != State::kWaitBegin; }
  bool done() const { return state_ == State::kDone; }
  int status() const { return status_; }

 private:
  enum class State { kWaitBegin, kOutput, kDone };
  State state_ = State::kWaitBegin;
  std::string begin_, end_;
  std::string buf_;
  int status_ = -1;
};

// `text` without terminal escape sequences (colors, cursor movement: CSI, OSC and
// two-byte ESC sequences), for output that goes to a file or pipe.
std::string strip_terminal_escapes(const std::string& text);

// A random token for the markers (hex).
std::string random_token();

struct ShellCommandOptions {
  int timeout_s = 60;   // for the whole command
  int settle_ms = 200;  // history replay: read and drop until idle this long
  std::string token;    // "" = random
};
// Runs `command` on the console at `socket_path`; its output goes to `out` as it comes.
// The command's exit status, or an error (timeout, console closed).
Result<int> run_shell_command(const std::string& socket_path, const std::string& command,
                              const ShellCommandOptions& options,
                              const std::function<void(const std::string&)>& out);

}  // namespace nimbus::cli
