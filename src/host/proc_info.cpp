#include "host/proc_info.h"

#include <fmt/format.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace nimbus::host {

namespace {

// The whole of a /proc file, or an error naming the process.
Result<std::string> read_proc_file(pid_t pid, const char* name) {
  const std::string path = fmt::format("/proc/{}/{}", pid, name);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT || err == ESRCH) return Status::error(fmt::format("no process {}", pid));
    return Status::error(fmt::format("cannot read {}: {}", path, std::strerror(err)));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::error(fmt::format("cannot read {}", path));
  return text;
}

bool parse_u64(const std::string& s, uint64_t& out) {
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

}  // namespace

Result<ProcStat> read_proc_stat(pid_t pid) {
  if (pid <= 0) return Status::error(fmt::format("no process {}", pid));
  auto text = read_proc_file(pid, "stat");
  if (!text.ok()) return text.status();
  // "PID (COMM) S ppid ...": COMM is up to 15 bytes of anything, including ") ".
  const size_t close = text->rfind(')');
  if (close == std::string::npos || close + 2 >= text->size()) {
    return Status::error(fmt::format("/proc/{}/stat is malformed", pid));
  }
  std::istringstream rest(text->substr(close + 2));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  for (std::string f; rest >> f;) fields.push_back(f);
  // Field N of proc(5) is fields[N - 3].
  constexpr size_t kState = 3, kUtime = 14, kStime = 15, kStart = 22, kRss = 24;
  if (fields.size() < kRss - 2 || fields[0].size() != 1) {
    return Status::error(fmt::format("/proc/{}/stat is malformed", pid));
  }
  uint64_t utime = 0, stime = 0, start = 0, rss_pages = 0;
  if (!parse_u64(fields[kUtime - 3], utime) || !parse_u64(fields[kStime - 3], stime) ||
      !parse_u64(fields[kStart - 3], start) || !parse_u64(fields[kRss - 3], rss_pages)) {
    return Status::error(fmt::format("/proc/{}/stat is malformed", pid));
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  ProcStat st;
  st.state = fields[kState - 3][0];
  st.start_ticks = start;
  st.cpu_seconds =
      static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
  st.rss_bytes = rss_pages * static_cast<uint64_t>(page > 0 ? page : 4096);
  return st;
}

bool same_process(pid_t pid, uint64_t start_ticks) {
  auto st = read_proc_stat(pid);
  return st.ok() && st->state != 'Z' && st->state != 'X' && st->start_ticks == start_ticks;
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

Result<std::string> proc_cmdline(pid_t pid) {
  if (pid <= 0) return Status::error(fmt::format("no process {}", pid));
  auto text = read_proc_file(pid, "cmdline");
  if (!text.ok()) return text.status();
  std::string s = std::move(*text);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

}  // namespace nimbus::host
