#include "host/cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

namespace nimbus::host {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text << "\n";
}

// A temporary directory standing in for /sys/fs/cgroup. mkdir on it does not create
// the control files the kernel would, so tests lay out the groups they use.
class FakeCgroupRoot {
 public:
  FakeCgroupRoot() {
    root_ = fs::temp_directory_path() /
            ("nimbus-cgroup-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FakeCgroupRoot() { fs::remove_all(root_); }
  const fs::path& root() const { return root_; }
  std::string str() const { return root_.string(); }

  void files(const fs::path& dir, const std::map<std::string, std::string>& contents) {
    for (const auto& [name, text] : contents) put(root_ / dir / name, text);
  }
  // v1 group REL in each of the cpu, cpuacct and memory hierarchies (named as given).
  void v1_group(const std::string& cpu, const std::string& cpuacct, const std::string& memory,
                const std::string& rel, bool memsw = true) {
    files(fs::path(cpu) / rel,
          {{"cpu.cfs_quota_us", "-1"}, {"cpu.cfs_period_us", "100000"}, {"cgroup.procs", ""}});
    if (!cpuacct.empty())
      files(fs::path(cpuacct) / rel, {{"cpuacct.usage", "0"}, {"cgroup.procs", ""}});
    files(fs::path(memory) / rel,
          {{"memory.limit_in_bytes", "9223372036854771712"},
           {"memory.usage_in_bytes", "0"},
           {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0"},
           {"cgroup.procs", ""}});
    if (memsw)
      files(fs::path(memory) / rel, {{"memory.memsw.limit_in_bytes", "9223372036854771712"}});
  }
  void v2_group(const std::string& rel, bool swap = true) {
    files(rel, {{"cpu.max", "max 100000"},
                {"memory.max", "max"},
                {"memory.current", "0"},
                {"cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0"},
                {"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0"},
                {"cgroup.procs", ""},
                {"cgroup.subtree_control", ""}});
    if (swap) files(rel, {{"memory.swap.max", "max"}});
  }

 private:
  static inline int counter_ = 0;
  fs::path root_;
};

TEST(Cgroup, VersionNames) {
  EXPECT_STREQ(to_string(CgroupVersion::kNone), "none");
  EXPECT_STREQ(to_string(CgroupVersion::kV1), "v1");
  EXPECT_STREQ(to_string(CgroupVersion::kV2), "v2");
}

TEST(Cgroup, NoneWhenRootIsMissingOrEmpty) {
  CgroupManager missing = CgroupManager::detect("/nonexistent/cgroup");
  EXPECT_EQ(missing.version(), CgroupVersion::kNone);
  EXPECT_EQ(missing.describe(), "none: /nonexistent/cgroup does not exist");

  FakeCgroupRoot fake;
  fake.files("memory", {{"memory.limit_in_bytes", "1"}});
  CgroupManager m = CgroupManager::detect(fake.str());
  EXPECT_EQ(m.version(), CgroupVersion::kNone);
  EXPECT_TRUE(contains(m.describe(), "no cgroup v1 cpu")) << m.describe();
  Status s = m.create("web1", {1, 256 << 20});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "cgroups are not available: no cgroup v2")) << s.message();
  EXPECT_TRUE(m.procs_files("web1").empty());
  EXPECT_EQ(m.path("web1"), "");
  EXPECT_FALSE(m.usage("web1").ok());
}

TEST(Cgroup, V1SeparateHierarchies) {
  FakeCgroupRoot fake;
  fake.v1_group("cpu", "cpuacct", "memory", "");  // the hierarchies' roots
  fake.files("unified", {{"cgroup.procs", ""}});  // a hybrid layout's empty v2 mount
  fake.v1_group("cpu", "cpuacct", "memory", "nimbus/web1");
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV1) << m.describe();
  EXPECT_EQ(m.describe(), "v1 (cpu, cpuacct, memory)");
  EXPECT_EQ(m.path("web1"), fake.str() + "/memory/nimbus/web1");

  ASSERT_TRUE(m.create("web1", {2, 320ull << 20}).ok());
  const fs::path cpu = fake.root() / "cpu/nimbus/web1", mem = fake.root() / "memory/nimbus/web1";
  EXPECT_EQ(slurp(cpu / "cpu.cfs_quota_us"), "200000");
  EXPECT_EQ(slurp(cpu / "cpu.cfs_period_us"), "100000");
  EXPECT_EQ(slurp(mem / "memory.limit_in_bytes"), std::to_string(320ull << 20));
  EXPECT_EQ(slurp(mem / "memory.memsw.limit_in_bytes"), std::to_string(320ull << 20));
  auto lim = m.read_limits("web1");
  ASSERT_TRUE(lim.ok()) << lim.message();
  EXPECT_EQ(lim->quota_us, 200000u);
  EXPECT_EQ(lim->period_us, 100000u);
  EXPECT_EQ(lim->memory_limit_bytes, 320ull << 20);

  EXPECT_EQ(m.procs_files("web1"),
            (std::vector<std::string>{fake.str() + "/cpu/nimbus/web1/cgroup.procs",
                                      fake.str() + "/cpuacct/nimbus/web1/cgroup.procs",
                                      fake.str() + "/memory/nimbus/web1/cgroup.procs"}));

  // Unlimited.
  ASSERT_TRUE(m.set_limits("web1", {0, 0, 50000}).ok());
  EXPECT_EQ(slurp(cpu / "cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(slurp(cpu / "cpu.cfs_period_us"), "50000");
  EXPECT_EQ(slurp(mem / "memory.limit_in_bytes"), "-1");
  put(mem / "memory.limit_in_bytes", "9223372036854771712");  // what the kernel shows for -1
  lim = m.read_limits("web1");
  ASSERT_TRUE(lim.ok()) << lim.message();
  EXPECT_FALSE(lim->quota_us.has_value());
  EXPECT_FALSE(lim->memory_limit_bytes.has_value());

  put(fake.root() / "cpuacct/nimbus/web1/cpuacct.usage", "1500000000");
  put(mem / "memory.usage_in_bytes", "41943040");
  put(mem / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2");
  auto u = m.usage("web1");
  ASSERT_TRUE(u.ok()) << u.message();
  EXPECT_EQ(u->cpu_ns, 1500000000u);
  EXPECT_EQ(u->memory_bytes, 41943040u);
  EXPECT_EQ(u->oom_kills, 2u);

  put(fake.root() / "cpu/nimbus/web1/cgroup.procs", "42\n7");
  put(mem / "cgroup.procs", "42\n7");
  EXPECT_EQ(m.processes("web1"), (std::vector<pid_t>{7, 42}));
  Status s = m.remove("web1");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "cannot remove cgroup " + fake.str() +
                             "/memory/nimbus/web1: processes 7, 42 still in it");
}

TEST(Cgroup, GroupsListsTheVmGroupsOfEveryHierarchy) {
  FakeCgroupRoot fake;
  fake.v1_group("cpu", "cpuacct", "memory", "");
  fake.v1_group("cpu", "cpuacct", "memory", "nimbus/web1");
  // A group left in one hierarchy only (a crash between two mkdirs) is still listed.
  fake.files("memory/nimbus/orphan", {{"cgroup.procs", "5"}});
  fake.files("memory/nimbus", {{"notes", "a file is no group"}});
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV1) << m.describe();
  EXPECT_EQ(m.groups(), (std::vector<std::string>{"orphan", "web1"}));
  EXPECT_EQ(m.processes("orphan"), std::vector<pid_t>{5});
  EXPECT_TRUE(CgroupManager::detect("/nonexistent/cgroup").groups().empty());
}

TEST(Cgroup, V1CreatesTheParentGroups) {
  FakeCgroupRoot fake;
  fake.v1_group("cpu", "cpuacct", "memory", "");
  CgroupManager m = CgroupManager::detect(fake.str(), "vms");
  ASSERT_EQ(m.version(), CgroupVersion::kV1) << m.describe();
  EXPECT_TRUE(fs::is_directory(fake.root() / "cpu/vms"));
  EXPECT_TRUE(fs::is_directory(fake.root() / "cpuacct/vms"));
  EXPECT_TRUE(fs::is_directory(fake.root() / "memory/vms"));
  // A fake group directory gets no control files: setting limits fails, naming the file.
  Status s = m.create("web1", {1, 1 << 20});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), fake.str() + "/cpu/vms/web1/cpu.cfs_period_us")) << s.message();
  EXPECT_TRUE(fs::is_directory(fake.root() / "memory/vms/web1"));
  EXPECT_TRUE(m.remove("web1").ok());
  EXPECT_FALSE(fs::exists(fake.root() / "memory/vms/web1"));
  EXPECT_TRUE(m.remove("web1").ok());  // already gone
  EXPECT_TRUE(m.remove_parent().ok());
  EXPECT_FALSE(fs::exists(fake.root() / "cpu/vms"));
}

TEST(Cgroup, V1JoinedCpuCpuacctWithoutMemsw) {
  FakeCgroupRoot fake;
  fake.v1_group("cpu,cpuacct", "cpu,cpuacct", "memory", "", false);
  fs::create_directory_symlink("cpu,cpuacct", fake.root() / "cpu");
  fs::create_directory_symlink("cpu,cpuacct", fake.root() / "cpuacct");
  fake.v1_group("cpu,cpuacct", "cpu,cpuacct", "memory", "nimbus/web1", false);
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV1) << m.describe();
  EXPECT_EQ(m.describe(), "v1 (cpu, cpuacct, memory)");
  // One group per hierarchy: cpu and cpuacct are one.
  EXPECT_EQ(m.procs_files("web1"),
            (std::vector<std::string>{fake.str() + "/cpu/nimbus/web1/cgroup.procs",
                                      fake.str() + "/memory/nimbus/web1/cgroup.procs"}));
  ASSERT_TRUE(m.create("web1", {1, 64 << 20}).ok());
  EXPECT_EQ(slurp(fake.root() / "cpu,cpuacct/nimbus/web1/cpu.cfs_quota_us"), "100000");
  EXPECT_EQ(slurp(fake.root() / "memory/nimbus/web1/memory.limit_in_bytes"),
            std::to_string(64 << 20));
  EXPECT_FALSE(fs::exists(fake.root() / "memory/nimbus/web1/memory.memsw.limit_in_bytes"));
  put(fake.root() / "cpu,cpuacct/nimbus/web1/cpuacct.usage", "77");
  auto u = m.usage("web1");
  ASSERT_TRUE(u.ok()) << u.message();
  EXPECT_EQ(u->cpu_ns, 77u);
}

TEST(Cgroup, V1WithoutCpuacct) {
  FakeCgroupRoot fake;
  fake.v1_group("cpu", "", "memory", "");
  fake.v1_group("cpu", "", "memory", "nimbus/a");
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV1) << m.describe();
  EXPECT_EQ(m.describe(), "v1 (cpu, memory)");
  EXPECT_EQ(m.procs_files("a").size(), 2u);
  auto u = m.usage("a");
  ASSERT_TRUE(u.ok()) << u.message();
  EXPECT_EQ(u->cpu_ns, 0u);
}

TEST(Cgroup, V2) {
  FakeCgroupRoot fake;
  fake.files("", {{"cgroup.controllers", "cpuset cpu io memory hugetlb pids"},
                  {"cgroup.subtree_control", ""}});
  fake.v2_group("nimbus");
  fake.v2_group("nimbus/web1");
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV2) << m.describe();
  EXPECT_EQ(m.describe(), "v2");
  EXPECT_EQ(slurp(fake.root() / "cgroup.subtree_control"), "+cpu +memory");
  EXPECT_EQ(slurp(fake.root() / "nimbus/cgroup.subtree_control"), "+cpu +memory");
  EXPECT_EQ(m.path("web1"), fake.str() + "/nimbus/web1");
  EXPECT_EQ(m.procs_files("web1"),
            std::vector<std::string>{fake.str() + "/nimbus/web1/cgroup.procs"});

  ASSERT_TRUE(m.create("web1", {4, 1ull << 30, 20000}).ok());
  const fs::path dir = fake.root() / "nimbus/web1";
  EXPECT_EQ(slurp(dir / "cpu.max"), "80000 20000");
  EXPECT_EQ(slurp(dir / "memory.max"), std::to_string(1ull << 30));
  EXPECT_EQ(slurp(dir / "memory.swap.max"), "0");
  auto lim = m.read_limits("web1");
  ASSERT_TRUE(lim.ok()) << lim.message();
  EXPECT_EQ(lim->quota_us, 80000u);
  EXPECT_EQ(lim->period_us, 20000u);
  EXPECT_EQ(lim->memory_limit_bytes, 1ull << 30);

  ASSERT_TRUE(m.set_limits("web1", {0, 0}).ok());
  EXPECT_EQ(slurp(dir / "cpu.max"), "max 100000");
  EXPECT_EQ(slurp(dir / "memory.max"), "max");
  lim = m.read_limits("web1");
  ASSERT_TRUE(lim.ok()) << lim.message();
  EXPECT_FALSE(lim->quota_us.has_value());
  EXPECT_EQ(lim->period_us, 100000u);
  EXPECT_FALSE(lim->memory_limit_bytes.has_value());

  put(dir / "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500");
  put(dir / "memory.current", "1048576");
  put(dir / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1");
  auto u = m.usage("web1");
  ASSERT_TRUE(u.ok()) << u.message();
  EXPECT_EQ(u->cpu_ns, 2500000u);
  EXPECT_EQ(u->memory_bytes, 1048576u);
  EXPECT_EQ(u->oom_kills, 1u);

  put(dir / "cgroup.procs", "99");
  EXPECT_EQ(m.processes("web1"), std::vector<pid_t>{99});
  EXPECT_FALSE(m.remove("web1").ok());
}

TEST(Cgroup, V2WithoutSwapFile) {
  FakeCgroupRoot fake;
  fake.files("", {{"cgroup.controllers", "cpu memory"}, {"cgroup.subtree_control", "cpu memory"}});
  fake.v2_group("nimbus");
  fake.v2_group("nimbus/web1", false);
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV2) << m.describe();
  EXPECT_EQ(slurp(fake.root() / "cgroup.subtree_control"),
            "cpu memory");  // already enabled: untouched
  ASSERT_TRUE(m.create("web1", {1, 64 << 20}).ok());
  EXPECT_FALSE(fs::exists(fake.root() / "nimbus/web1/memory.swap.max"));
}

TEST(Cgroup, V2WithoutMemoryControllerIsNone) {
  FakeCgroupRoot fake;
  fake.files("", {{"cgroup.controllers", "cpuset cpu io pids"}, {"cgroup.subtree_control", ""}});
  CgroupManager m = CgroupManager::detect(fake.str());
  EXPECT_EQ(m.version(), CgroupVersion::kNone);
  EXPECT_EQ(m.describe(), "none: cgroup v2: the memory controller is not available in " +
                              fake.str() + "/cgroup.controllers");
}

TEST(Cgroup, V2ControllersThatCannotBeEnabledIsNone) {
  FakeCgroupRoot fake;
  fake.files("", {{"cgroup.controllers", "cpu memory"}, {"cgroup.subtree_control", ""}});
  // The parent's directory exists but has no cgroup.subtree_control to write.
  fs::create_directories(fake.root() / "nimbus");
  CgroupManager m = CgroupManager::detect(fake.str());
  EXPECT_EQ(m.version(), CgroupVersion::kNone);
  EXPECT_TRUE(contains(m.describe(), "cannot enable the cpu and memory controllers in " +
                                         fake.str() + "/nimbus/cgroup.subtree_control"))
      << m.describe();
}

TEST(Cgroup, RejectsBadNamesAndLimits) {
  FakeCgroupRoot fake;
  fake.files("", {{"cgroup.controllers", "cpu memory"}, {"cgroup.subtree_control", ""}});
  fake.v2_group("nimbus");
  CgroupManager m = CgroupManager::detect(fake.str());
  ASSERT_EQ(m.version(), CgroupVersion::kV2);
  for (const char* bad : {"", ".", "..", "a/b", "../x"}) {
    Status s = m.create(bad, {1, 1 << 20});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(contains(s.message(), "cannot name a cgroup")) << s.message();
    EXPECT_TRUE(m.procs_files(bad).empty());
  }
  Status s = m.create("web1", {1, 1 << 20, 10});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "CPU period 10 us is out of range (1000 to 1000000)");
  EXPECT_FALSE(fs::exists(fake.root() / "nimbus/web1"));
  EXPECT_EQ(CgroupManager::detect(fake.str(), "../etc").version(), CgroupVersion::kNone);
}

bool host_has_swap() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    uint64_t kib = 0;
    if (key == "SwapTotal:" && in >> kib) return kib > 0;
  }
  return false;
}

// The real thing, where this process may create cgroups (root on a host with cgroups).
TEST(Cgroup, RealHierarchy) {
  const std::string parent = "nimbus-test-" + std::to_string(::getpid());
  CgroupManager m = CgroupManager::detect("/sys/fs/cgroup", parent);
  if (m.version() == CgroupVersion::kNone) GTEST_SKIP() << "no usable cgroups: " << m.describe();
  const std::string vm = "vm1";
  const CgroupLimits limits{2, 64ull << 20, 100000};
  Status s = m.create(vm, limits);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(m.create(vm, limits).ok());  // idempotent

  auto lim = m.read_limits(vm);
  ASSERT_TRUE(lim.ok()) << lim.message();
  EXPECT_EQ(lim->quota_us, 200000u);
  EXPECT_EQ(lim->period_us, 100000u);
  EXPECT_EQ(lim->memory_limit_bytes, 64ull << 20);

  const std::vector<std::string> files = m.procs_files(vm);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    const int err = CgroupManager::join_in_child(files);
    // 16 MiB charged to the group.
    static char ballast[16 << 20];
    for (size_t i = 0; i < sizeof(ballast); i += 4096) static_cast<volatile char*>(ballast)[i] = 1;
    (void)!::write(ready[1], &err, sizeof(err));
    for (;;) ::pause();
  }
  ::close(ready[1]);
  int child_err = -1;
  ASSERT_EQ(::read(ready[0], &child_err, sizeof(child_err)),
            static_cast<ssize_t>(sizeof(child_err)));
  ::close(ready[0]);
  EXPECT_EQ(child_err, 0) << std::strerror(child_err);
  EXPECT_EQ(m.processes(vm), std::vector<pid_t>{child});
  s = m.remove(vm);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), std::to_string(child))) << s.message();

  auto u = m.usage(vm);
  ASSERT_TRUE(u.ok()) << u.message();

  // Raising and lowering the memory limit (v1: memsw must move in step).
  ASSERT_TRUE(m.set_limits(vm, {1, 128ull << 20}).ok());
  lim = m.read_limits(vm);
  ASSERT_TRUE(lim.ok());
  EXPECT_EQ(lim->memory_limit_bytes, 128ull << 20);
  EXPECT_EQ(lim->quota_us, 100000u);
  ASSERT_TRUE(m.set_limits(vm, {1, 32ull << 20}).ok());
  EXPECT_EQ(m.read_limits(vm)->memory_limit_bytes, 32ull << 20);
  EXPECT_GE(m.usage(vm)->memory_bytes, 16ull << 20);
  if (m.version() == CgroupVersion::kV1 && !host_has_swap()) {
    // v1 refuses a limit below what it cannot reclaim (v2 would OOM-kill instead; with
    // swap, v1 could swap the ballast out).
    s = m.set_limits(vm, {1, 4ull << 20});
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains(s.message(), "could not reclaim")) << s.message();
    EXPECT_EQ(m.read_limits(vm)->memory_limit_bytes, 32ull << 20);
  }

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  for (int i = 0; i < 200 && !m.processes(vm).empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(m.processes(vm).empty());

  // add_process moves a running process.
  const pid_t second = ::fork();
  if (second == 0) {
    for (;;) ::pause();
  }
  EXPECT_TRUE(m.add_process(vm, second).ok());
  EXPECT_EQ(m.processes(vm), std::vector<pid_t>{second});
  ::kill(second, SIGKILL);
  ::waitpid(second, nullptr, 0);
  for (int i = 0; i < 200 && !m.processes(vm).empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));

  s = m.remove(vm);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(m.processes(vm).empty());
  s = m.remove_parent();
  EXPECT_TRUE(s.ok()) << s.message();
}

}  // namespace
}  // namespace nimbus::host
