#include "host/cgroup.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace nimbus::host {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMinPeriodUs = 1000, kMaxPeriodUs = 1000000;
constexpr unsigned kMaxVcpus = 4096;
// v1 reports "no limit" as the largest page-aligned long (9223372036854771712).
constexpr uint64_t kV1Unlimited = uint64_t{1} << 62;

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The file's contents without the trailing newline.
Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// cgroup files report errors on write(2), with an errno that says why.
Status write_file(const std::string& path, const std::string& value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return Status::error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  const ssize_t n = ::write(fd, value.data(), value.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return Status::error(fmt::format("cannot write '{}' to {}: {}", value, path,
                                     n < 0 ? std::strerror(err) : "short write"));
  }
  return {};
}

// A memory limit the kernel refused with EBUSY: it could not reclaim down to it.
Status memory_limit_error(const Status& s) {
  if (s.message().find(std::strerror(EBUSY)) == std::string::npos) return s;
  return Status::error(
      s.message() + " (the group uses more memory than that and the kernel could not reclaim it)");
}

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

Result<uint64_t> read_u64(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) return text.status();
  uint64_t v = 0;
  if (!parse_u64(*text, v))
    return Status::error(fmt::format("{}: '{}' is not a number", path, *text));
  return v;
}

// The value of "KEY VALUE" lines (cpu.stat, memory.events, memory.oom_control).
std::optional<uint64_t> read_keyed(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string k; in >> k;) {
    std::string value;
    if (!(in >> value)) break;
    uint64_t v = 0;
    if (k == key && parse_u64(value, v)) return v;
  }
  return std::nullopt;
}

// The words of a file such as cgroup.controllers, without a leading '+'.
std::set<std::string> read_words(const std::string& path) {
  std::set<std::string> words;
  std::ifstream in(path);
  for (std::string w; in >> w;) words.insert(w[0] == '+' ? w.substr(1) : w);
  return words;
}

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return {};
  return Status::error(fmt::format("cannot create cgroup {}: {}", path, std::strerror(errno)));
}

Status check_name(const std::string& vm) {
  if (vm.empty() || vm == "." || vm == ".." || vm.find('/') != std::string::npos ||
      vm.size() > 255 || vm.find('\0') != std::string::npos) {
    return Status::error(fmt::format("'{}' cannot name a cgroup", vm));
  }
  return {};
}

Status check_limits(const CgroupLimits& l) {
  if (l.period_us < kMinPeriodUs || l.period_us > kMaxPeriodUs) {
    return Status::error(fmt::format("CPU period {} us is out of range ({} to {})", l.period_us,
                                     kMinPeriodUs, kMaxPeriodUs));
  }
  if (l.vcpus > kMaxVcpus)
    return Status::error(fmt::format("a CPU quota of {} CPUs is out of range", l.vcpus));
  return {};
}

// Sets memory.limit_in_bytes and memory.memsw.limit_in_bytes (which must never be below
// it: raising both needs memsw first, lowering needs the limit first).
Status set_memory_v1(const std::string& dir, uint64_t bytes) {
  const std::string value = bytes == 0 ? "-1" : std::to_string(bytes);
  const std::string limit = dir + "/memory.limit_in_bytes",
                    memsw = dir + "/memory.memsw.limit_in_bytes";
  Status s = write_file(limit, value);
  if (exists(memsw)) {
    // Without swap accounting (swapaccount=0) this fails; the limit alone still holds RAM.
    if (Status m = write_file(memsw, value); !m.ok())
      spdlog::debug("{} (no swap accounting?)", m.message());
    if (!s.ok()) s = write_file(limit, value);
  }
  return s.ok() ? s : memory_limit_error(s);
}

std::string join_pids(const std::vector<pid_t>& pids) {
  return fmt::format("{}", fmt::join(pids, ", "));
}

}  // namespace

const char* to_string(CgroupVersion version) {
  switch (version) {
    case CgroupVersion::kV1:
      return "v1";
    case CgroupVersion::kV2:
      return "v2";
    case CgroupVersion::kNone:
      break;
  }
  return "none";
}

CgroupManager CgroupManager::detect(std::string root, std::string parent) {
  CgroupManager m;
  m.root_ = std::move(root);
  m.parent_ = std::move(parent);
  auto none = [&m](std::string why) {
    m.version_ = CgroupVersion::kNone;
    m.why_ = std::move(why);
    return m;
  };
  if (Status s = check_name(m.parent_); !s.ok()) return none(s.message());
  if (!exists(m.root_)) return none(fmt::format("{} does not exist", m.root_));

  if (exists(m.root_ + "/cgroup.controllers")) {
    const std::set<std::string> available = read_words(m.root_ + "/cgroup.controllers");
    for (const char* c : {"cpu", "memory"}) {
      if (!available.count(c)) {
        return none(fmt::format(
            "cgroup v2: the {} controller is not available in {}/cgroup.controllers", c, m.root_));
      }
    }
    const std::string parent_dir = m.root_ + "/" + m.parent_;
    for (const std::string& dir : {m.root_, parent_dir}) {
      if (dir == parent_dir) {
        if (Status s = make_dir(dir); !s.ok()) return none("cgroup v2: " + s.message());
      }
      const std::string control = dir + "/cgroup.subtree_control";
      std::set<std::string> enabled = read_words(control);
      if (enabled.count("cpu") && enabled.count("memory")) continue;
      Status s = write_file(control, "+cpu +memory");
      enabled = read_words(control);
      if (!s.ok() || !enabled.count("cpu") || !enabled.count("memory")) {
        return none(
            fmt::format("cgroup v2: cannot enable the cpu and memory controllers in {}{}", control,
                        s.ok() ? ""
                               : fmt::format(" ({}; a group with processes of its own cannot "
                                             "delegate controllers: run nimbusd in a leaf group)",
                                             s.message())));
      }
    }
    m.version_ = CgroupVersion::kV2;
    return m;
  }

  // v1: each controller's hierarchy, mounted alone or joined ("cpu,cpuacct").
  auto find = [&m](std::initializer_list<const char*> names, const char* file) -> std::string {
    for (const char* name : names) {
      const std::string dir = m.root_ + "/" + name;
      if (exists(dir + "/" + file)) return dir;
    }
    return {};
  };
  m.cpu_ = find({"cpu", "cpu,cpuacct", "cpuacct,cpu"}, "cpu.cfs_quota_us");
  m.cpuacct_ = find({"cpuacct", "cpu,cpuacct", "cpuacct,cpu"}, "cpuacct.usage");
  m.memory_ = find({"memory"}, "memory.limit_in_bytes");
  if (m.cpu_.empty() || m.memory_.empty()) {
    return none(fmt::format(
        "no cgroup v2 ({}/cgroup.controllers) and no cgroup v1 {} hierarchy under {}", m.root_,
        m.cpu_.empty() ? "cpu (with CFS bandwidth control)" : "memory", m.root_));
  }
  std::error_code ec;
  if (!m.cpuacct_.empty() && fs::equivalent(m.cpuacct_, m.cpu_, ec)) m.cpuacct_ = m.cpu_;
  m.version_ = CgroupVersion::kV1;
  for (const std::string& dir : m.parent_dirs()) {
    if (Status s = make_dir(dir); !s.ok()) return none("cgroup v1: " + s.message());
  }
  return m;
}

std::string CgroupManager::describe() const {
  switch (version_) {
    case CgroupVersion::kV1:
      return cpuacct_.empty() ? "v1 (cpu, memory)" : "v1 (cpu, cpuacct, memory)";
    case CgroupVersion::kV2:
      return "v2";
    case CgroupVersion::kNone:
      break;
  }
  return "none: " + why_;
}

std::vector<std::string> CgroupManager::parent_dirs() const {
  std::vector<std::string> dirs;
  if (version_ == CgroupVersion::kV2) {
    dirs.push_back(root_ + "/" + parent_);
  } else if (version_ == CgroupVersion::kV1) {
    dirs.push_back(cpu_ + "/" + parent_);
    if (!cpuacct_.empty() && cpuacct_ != cpu_) dirs.push_back(cpuacct_ + "/" + parent_);
    dirs.push_back(memory_ + "/" + parent_);
  }
  return dirs;
}

std::vector<std::string> CgroupManager::group_dirs(const std::string& vm) const {
  std::vector<std::string> dirs = parent_dirs();
  for (std::string& d : dirs) d += "/" + vm;
  return dirs;
}

Status CgroupManager::usable(const std::string& vm) const {
  if (version_ == CgroupVersion::kNone) return Status::error("cgroups are not available: " + why_);
  return check_name(vm);
}

Status CgroupManager::create(const std::string& vm, const CgroupLimits& limits) {
  if (Status s = usable(vm); !s.ok()) return s;
  if (Status s = check_limits(limits); !s.ok()) return s;
  for (const std::string& dir : group_dirs(vm)) {
    if (Status s = make_dir(dir); !s.ok()) return s;
  }
  return set_limits(vm, limits);
}

Status CgroupManager::set_limits(const std::string& vm, const CgroupLimits& limits) {
  if (Status s = usable(vm); !s.ok()) return s;
  if (Status s = check_limits(limits); !s.ok()) return s;
  const uint64_t quota = uint64_t{limits.vcpus} * limits.period_us;
  if (version_ == CgroupVersion::kV2) {
    const std::string dir = root_ + "/" + parent_ + "/" + vm;
    const std::string cpu_max =
        fmt::format("{} {}", limits.vcpus == 0 ? "max" : std::to_string(quota), limits.period_us);
    if (Status s = write_file(dir + "/cpu.max", cpu_max); !s.ok()) return s;
    const std::string mem = limits.memory_bytes == 0 ? "max" : std::to_string(limits.memory_bytes);
    if (Status s = write_file(dir + "/memory.max", mem); !s.ok()) return memory_limit_error(s);
    if (exists(dir + "/memory.swap.max")) {
      if (Status s = write_file(dir + "/memory.swap.max", limits.memory_bytes == 0 ? "max" : "0");
          !s.ok())
        return s;
    }
    return {};
  }
  const std::string cpu = cpu_ + "/" + parent_ + "/" + vm;
  if (Status s = write_file(cpu + "/cpu.cfs_period_us", std::to_string(limits.period_us)); !s.ok())
    return s;
  if (Status s =
          write_file(cpu + "/cpu.cfs_quota_us", limits.vcpus == 0 ? "-1" : std::to_string(quota));
      !s.ok()) {
    return s;
  }
  return set_memory_v1(memory_ + "/" + parent_ + "/" + vm, limits.memory_bytes);
}

std::vector<std::string> CgroupManager::procs_files(const std::string& vm) const {
  if (!usable(vm).ok()) return {};
  std::vector<std::string> files = group_dirs(vm);
  for (std::string& f : files) f += "/cgroup.procs";
  return files;
}

int CgroupManager::join_in_child(const std::vector<std::string>& files) noexcept {
  for (const std::string& file : files) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const ssize_t n = ::write(fd, "0", 1);
    const int err = errno;
    ::close(fd);
    if (n != 1) return n < 0 ? err : EIO;
  }
  return 0;
}

Status CgroupManager::add_process(const std::string& vm, pid_t pid) {
  if (Status s = usable(vm); !s.ok()) return s;
  for (const std::string& file : procs_files(vm)) {
    if (Status s = write_file(file, std::to_string(pid)); !s.ok()) {
      return Status::error(
          fmt::format("cannot move process {} into its cgroup: {}", pid, s.message()));
    }
  }
  return {};
}

Result<CgroupUsage> CgroupManager::usage(const std::string& vm) const {
  if (Status s = usable(vm); !s.ok()) return s;
  CgroupUsage u;
  if (version_ == CgroupVersion::kV2) {
    const std::string dir = root_ + "/" + parent_ + "/" + vm;
    auto mem = read_u64(dir + "/memory.current");
    if (!mem.ok()) return mem.status();
    u.memory_bytes = *mem;
    u.cpu_ns = read_keyed(dir + "/cpu.stat", "usage_usec").value_or(0) * 1000;
    u.oom_kills = read_keyed(dir + "/memory.events", "oom_kill");
    return u;
  }
  const std::string mem_dir = memory_ + "/" + parent_ + "/" + vm;
  auto mem = read_u64(mem_dir + "/memory.usage_in_bytes");
  if (!mem.ok()) return mem.status();
  u.memory_bytes = *mem;
  u.oom_kills = read_keyed(mem_dir + "/memory.oom_control", "oom_kill");
  if (!cpuacct_.empty()) {
    auto cpu = read_u64(cpuacct_ + "/" + parent_ + "/" + vm + "/cpuacct.usage");
    if (!cpu.ok()) return cpu.status();
    u.cpu_ns = *cpu;
  }
  return u;
}

Result<CgroupLimitsRead> CgroupManager::read_limits(const std::string& vm) const {
  if (Status s = usable(vm); !s.ok()) return s;
  CgroupLimitsRead r;
  if (version_ == CgroupVersion::kV2) {
    const std::string dir = root_ + "/" + parent_ + "/" + vm;
    auto cpu_max = read_file(dir + "/cpu.max");
    if (!cpu_max.ok()) return cpu_max.status();
    std::istringstream words(*cpu_max);
    std::string quota, period;
    uint64_t q = 0;
    if (!(words >> quota >> period) || !parse_u64(period, r.period_us) ||
        (quota != "max" && !parse_u64(quota, q))) {
      return Status::error(fmt::format("{}/cpu.max: '{}' is not 'QUOTA PERIOD'", dir, *cpu_max));
    }
    if (quota != "max") r.quota_us = q;
    auto mem = read_file(dir + "/memory.max");
    if (!mem.ok()) return mem.status();
    if (*mem != "max") {
      uint64_t m = 0;
      if (!parse_u64(*mem, m))
        return Status::error(fmt::format("{}/memory.max: '{}' is not a number", dir, *mem));
      r.memory_limit_bytes = m;
    }
    return r;
  }
  const std::string cpu = cpu_ + "/" + parent_ + "/" + vm;
  auto period = read_u64(cpu + "/cpu.cfs_period_us");
  if (!period.ok()) return period.status();
  r.period_us = *period;
  auto quota = read_file(cpu + "/cpu.cfs_quota_us");
  if (!quota.ok()) return quota.status();
  if (*quota != "-1") {
    uint64_t q = 0;
    if (!parse_u64(*quota, q))
      return Status::error(fmt::format("{}/cpu.cfs_quota_us: '{}' is not a number", cpu, *quota));
    r.quota_us = q;
  }
  auto mem = read_u64(memory_ + "/" + parent_ + "/" + vm + "/memory.limit_in_bytes");
  if (!mem.ok()) return mem.status();
  if (*mem < kV1Unlimited) r.memory_limit_bytes = *mem;
  return r;
}

std::string CgroupManager::path(const std::string& vm) const {
  if (!usable(vm).ok()) return {};
  return version_ == CgroupVersion::kV2 ? root_ + "/" + parent_ + "/" + vm
                                        : memory_ + "/" + parent_ + "/" + vm;
}

std::vector<pid_t> CgroupManager::processes(const std::string& vm) const {
  std::set<pid_t> pids;
  for (const std::string& file : procs_files(vm)) {
    std::ifstream in(file);
    for (long pid; in >> pid;) pids.insert(static_cast<pid_t>(pid));
  }
  return {pids.begin(), pids.end()};
}

std::vector<std::string> CgroupManager::groups() const {
  std::set<std::string> names;
  for (const std::string& dir : parent_dirs()) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec) && check_name(it->path().filename().string()).ok()) {
        names.insert(it->path().filename().string());
      }
    }
  }
  return {names.begin(), names.end()};
}

Status CgroupManager::remove(const std::string& vm) {
  if (Status s = usable(vm); !s.ok()) return s;
  if (std::vector<pid_t> pids = processes(vm); !pids.empty()) {
    return Status::error(fmt::format("cannot remove cgroup {}: process{} {} still in it", path(vm),
                                     pids.size() == 1 ? "" : "es", join_pids(pids)));
  }
  Status first;
  for (const std::string& dir : group_dirs(vm)) {
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && first.ok()) {
      first =
          Status::error(fmt::format("cannot remove cgroup {}: {}{}", dir, std::strerror(errno),
                                    errno == EBUSY ? " (processes or child groups remain)" : ""));
    }
  }
  return first;
}

Status CgroupManager::remove_parent() {
  if (version_ == CgroupVersion::kNone) return Status::error("cgroups are not available: " + why_);
  Status first;
  for (const std::string& dir : parent_dirs()) {
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && first.ok()) {
      first = Status::error(fmt::format("cannot remove cgroup {}: {}", dir, std::strerror(errno)));
    }
  }
  return first;
}

}  // namespace nimbus::host
