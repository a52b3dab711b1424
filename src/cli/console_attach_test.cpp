// `shell -c`: the marker line, finding the output in console transcripts, and a whole run
// against a fake console that echoes like a tty and runs the line in the host's /bin/sh.
#include "cli/console_attach.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

namespace nimbus::cli {
namespace {

const std::string kToken = "0123abcd";

// What the guest's console shows for a command: history, prompt, the echo of the typed
// line (the tty turns \n into \r\n), the output and the next prompt.
std::string transcript(const std::string& output, int status, const std::string& command = "ls /") {
  std::string line = make_shell_line(command, kToken);
  line.pop_back();  // the newline comes back as \r\n
  std::string t = "old boot messages\r\n__NIMBUS_RC_ffff=9\r\nroot@vm:~# ";
  t += "\x15" + line + "\r\n";
  t += "__NIMBUS_BEGIN_" + kToken + "\r\n";
  t += output;
  t += "__NIMBUS_RC_" + kToken + "=" + std::to_string(status) + "\r\n";
  t += "root@vm:~# ";
  return t;
}

struct Parsed {
  std::string output;
  bool done;
  int status;
};

Parsed parse_in_pieces(const std::string& text, size_t piece) {
  ShellOutputParser p(kToken);
  std::string out;
  for (size_t i = 0; i < text.size(); i += piece)
    out += p.feed(std::string_view(text).substr(i, piece));
  return {out, p.done(), p.status()};
}

TEST(ShellCommand, LineHidesTheMarkersFromTheEcho) {
  const std::string line = make_shell_line("echo 'hi there'; exit 3", kToken);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find("__NIMBUS_BEGIN_" + kToken), std::string::npos) << line;
  EXPECT_EQ(line.find("__NIMBUS_RC_" + kToken), std::string::npos) << line;
  EXPECT_NE(line.find(kToken), std::string::npos);
  EXPECT_NE(line.find("'echo '\\''hi there'\\''; exit 3'"), std::string::npos)
      << line;  // single-quoted for eval
}

TEST(ShellCommand, ParsesTranscriptWholeAndInPieces) {
  const std::string t = transcript("bin\r\netc\r\nusr\r\n", 0);
  for (size_t piece : {t.size(), size_t{1}, size_t{2}, size_t{7}, size_t{64}}) {
    Parsed p = parse_in_pieces(t, piece);
    EXPECT_TRUE(p.done) << piece;
    EXPECT_EQ(p.status, 0) << piece;
    EXPECT_EQ(p.output, "bin\netc\nusr\n") << piece;
  }
}

TEST(ShellCommand, StatusAndOutputWithoutTrailingNewline) {
  Parsed p = parse_in_pieces(transcript("no newline", 42), 3);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.status, 42);
  EXPECT_EQ(p.output, "no newline");
  Parsed empty = parse_in_pieces(transcript("", 127), 5);
  EXPECT_TRUE(empty.done);
  EXPECT_EQ(empty.status, 127);
  EXPECT_EQ(empty.output, "");
}

TEST(ShellCommand, OutputThatLooksLikeMarkersOfOtherRuns) {
  // An older run's marker in the history, and the command printing marker-like text.
  Parsed p =
      parse_in_pieces(transcript("__NIMBUS_RC_ffff=1\r\n__NIMBUS_BEGIN_x\r\n", 0, "cat log"), 4);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.status, 0);
  EXPECT_EQ(p.output, "__NIMBUS_RC_ffff=1\n__NIMBUS_BEGIN_x\n");
}

TEST(ShellCommand, IncompleteTranscript) {
  std::string t = transcript("a\r\nb\r\n", 0);
  t = t.substr(0, t.find("__NIMBUS_RC_" + kToken) + 14);  // cut inside the end marker
  ShellOutputParser p(kToken);
  EXPECT_EQ(p.feed(t), "a\nb\n");
  EXPECT_FALSE(p.done());
  EXPECT_TRUE(p.started());
  ShellOutputParser q(kToken);
  EXPECT_EQ(q.feed("root@vm:~# " + make_shell_line("true", kToken)), "");
  EXPECT_FALSE(q.started());
  // A status still arriving digit by digit.
  ShellOutputParser r(kToken);
  r.feed("__NIMBUS_BEGIN_" + kToken + "\r\nx\r\n__NIMBUS_RC_" + kToken + "=1");
  EXPECT_FALSE(r.done());
  r.feed("2");
  EXPECT_FALSE(r.done());
  EXPECT_EQ(r.feed("7\r\n# "), "");
  EXPECT_TRUE(r.done());
  EXPECT_EQ(r.status(), 127);
}

TEST(ShellCommand, StripsTerminalEscapes) {
  EXPECT_EQ(strip_terminal_escapes("\x1b[1;34mbin\x1b[m  \x1b[1;36mlinuxrc\x1b[m\n"),
            "bin  linuxrc\n");
  EXPECT_EQ(strip_terminal_escapes("a\x1b]0;title\ab\x1b]2;t\x1b\\c\x1b"
                                   "7d\x1b[6n"),
            "abcd");
  EXPECT_EQ(strip_terminal_escapes("plain\ttext\n"), "plain\ttext\n");
  EXPECT_EQ(strip_terminal_escapes("cut\x1b[1;3"), "cut");
  EXPECT_EQ(strip_terminal_escapes("cut\x1b"), "cut");
}

// A console socket whose "guest" echoes input and runs each line with /bin/sh -c.
class FakeConsole {
 public:
  explicit FakeConsole(std::string history, bool run_commands = true)
      : history_(std::move(history)), run_(run_commands) {
    char dir[] = "/tmp/nimbus-console-test-XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/console.sock";
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_, 4), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeConsole() {
    ::shutdown(listen_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  const std::string& received() const { return received_; }

 private:
  void send(int fd, const std::string& s) { (void)!::send(fd, s.data(), s.size(), MSG_NOSIGNAL); }
  static std::string crlf(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '\n') out += '\r';
      out += c;
    }
    return out;
  }
  void serve() {
    const int fd = ::accept(listen_, nullptr, nullptr);
    if (fd < 0) return;
    send(fd, history_);
    std::string line;
    char c;
    while (::read(fd, &c, 1) == 1) {
      received_ += c;
      if (c == '\x15') {
        send(fd, "^U");
        continue;
      }
      send(fd, c == '\n' ? std::string("\r\n") : std::string(1, c));  // the tty's echo
      if (c != '\n') {
        line += c;
        continue;
      }
      if (run_) {
        FILE* p = ::popen(line.c_str(), "r");
        char buf[512];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) send(fd, crlf(std::string(buf, n)));
        ::pclose(p);
      }
      send(fd, "root@vm:~# ");
      line.clear();
    }
    ::close(fd);
  }
  std::string history_, dir_, path_;
  bool run_;
  int listen_ = -1;
  std::thread thread_;
  std::string received_;
};

TEST(ShellCommand, RunsAgainstAFakeConsoleWithARealShell) {
  FakeConsole console("boot log\r\n__NIMBUS_RC_0123abcd=5\r\nroot@vm:~# ");
  ShellCommandOptions o;
  o.timeout_s = 20;
  o.token = kToken;
  std::string out;
  auto status = run_shell_command(console.path(), "echo one; echo 'two  words'; exit 3", o,
                                  [&](const std::string& s) { out += s; });
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(*status, 3);
  EXPECT_EQ(out, "one\ntwo  words\n");  // popen only captures stdout
  EXPECT_EQ(console.received().substr(0, 1), "\x15");
}

TEST(ShellCommand, TimesOutWhenNoShellAnswers) {
  FakeConsole console("login: ", /*run_commands=*/false);
  ShellCommandOptions o;
  o.timeout_s = 1;
  auto status = run_shell_command(console.path(), "true", o, [](const std::string&) {});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no result after 1 s"), std::string::npos) << status.message();
}

TEST(ShellCommand, RejectsOverlongCommandsAndMissingSockets) {
  ShellCommandOptions o;
  auto longer =
      run_shell_command("/nonexistent.sock", std::string(2000, 'x'), o, [](const std::string&) {});
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.message().find("too long"), std::string::npos);
  auto missing =
      run_shell_command("/nonexistent/console.sock", "true", o, [](const std::string&) {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot connect to the console at /nonexistent/console.sock"),
            std::string::npos)
      << missing.message();
}

TEST(ConsoleAttach, PipedInputThenIdleOutput) {
  FakeConsole console("history\r\n$ ", /*run_commands=*/false);
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  (void)!::write(in[1], "hello\n", 6);
  ::close(in[1]);
  const int status =
      attach_console("console", "web1", console.path(), /*fresh_prompt=*/true, in[0], out[1], 200);
  ::close(out[1]);
  ::close(in[0]);
  std::string shown;
  char buf[256];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof(buf))) > 0) shown.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(shown, "history\r\n$ \r\nroot@vm:~# hello\r\nroot@vm:~# ");
  EXPECT_EQ(console.received(), "\nhello\n");
}

}  // namespace
}  // namespace nimbus::cli
