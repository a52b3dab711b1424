#include "backends/net/switch_backend.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nimbus::backends {
namespace {

using Frame = std::vector<uint8_t>;
using namespace std::chrono_literals;

class FrameSink {
 public:
  bool receive(const uint8_t* frame, size_t len) {
    std::lock_guard lock(mu_);
    frames_.emplace_back(frame, frame + len);
    cv_.notify_all();
    return true;
  }
  // Waits until `count` frames have arrived (or the timeout) and returns them all.
  std::vector<Frame> wait(size_t count, std::chrono::milliseconds timeout = 1000ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return frames_.size() >= count; });
    return frames_;
  }
  std::vector<Frame> take() {
    std::lock_guard lock(mu_);
    return std::exchange(frames_, {});
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Frame> frames_;
};

Frame make_frame(uint8_t dst_last, uint8_t src_last, size_t len, uint8_t fill) {
  Frame f(len, fill);
  const uint8_t base[6] = {0x52, 0x54, 0x00, 0, 0, 0};
  std::copy(base, base + 6, f.begin());
  std::copy(base, base + 6, f.begin() + 6);
  f[5] = dst_last;
  f[11] = src_last;
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

Frame broadcast_from(uint8_t src_last, size_t len, uint8_t fill) {
  Frame f = make_frame(0, src_last, len, fill);
  std::fill(f.begin(), f.begin() + 6, 0xff);
  return f;
}

class SwitchBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus-switch-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ports_.clear();
    std::filesystem::remove_all(dir_);
  }

  struct Port {
    std::unique_ptr<SwitchBackend> backend;
    std::unique_ptr<FrameSink> sink = std::make_unique<FrameSink>();
  };

  Port& add_port(const std::string& name) {
    auto created = SwitchBackend::create(dir_ + "/" + name);
    EXPECT_TRUE(created.ok()) << created.message();
    auto port = std::make_unique<Port>();
    port->backend = std::move(*created);
    FrameSink* sink = port->sink.get();
    EXPECT_TRUE(
        port->backend->start([sink](const uint8_t* f, size_t n) { return sink->receive(f, n); })
            .ok());
    ports_.push_back(std::move(port));
    return *ports_.back();
  }

  std::string dir_;
  std::vector<std::unique_ptr<Port>> ports_;
};

TEST_F(SwitchBackendTest, BroadcastReachesTheOthersNotTheSender) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  Port& c = add_port("net0.sock");
  Port& other = add_port("net1.sock");        // another switch
  Frame f = broadcast_from(0xa, 1514, 0x5a);  // a full-size frame
  a.backend->send(f.data(), f.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{f});
  EXPECT_EQ(c.sink->wait(1), std::vector<Frame>{f});
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(a.sink->take().empty()) << "echoed back to the sender";
  EXPECT_TRUE(other.sink->take().empty()) << "crossed to another switch";
}

TEST_F(SwitchBackendTest, UnicastToALearnedMacReachesOnlyItsOwner) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  Port& c = add_port("net0.sock");
  // b speaks first, so a learns where b's MAC lives.
  Frame hello = broadcast_from(0xb, 60, 1);
  b.backend->send(hello.data(), hello.size());
  ASSERT_EQ(a.sink->wait(1).size(), 1u);
  ASSERT_EQ(c.sink->wait(1).size(), 1u);
  c.sink->take();

  Frame to_b = make_frame(0xb, 0xa, 100, 2);
  a.backend->send(to_b.data(), to_b.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{to_b});
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(c.sink->take().empty()) << "a learned unicast was flooded";

  // An unknown destination is flooded to everyone else.
  b.sink->take();
  Frame unknown = make_frame(0xee, 0xa, 80, 3);
  a.backend->send(unknown.data(), unknown.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{unknown});
  EXPECT_EQ(c.sink->wait(1), std::vector<Frame>{unknown});
}

TEST_F(SwitchBackendTest, ForgetsAStoppedPeer) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  Port& c = add_port("net0.sock");
  Frame hello = broadcast_from(0xb, 60, 1);
  b.backend->send(hello.data(), hello.size());
  ASSERT_EQ(a.sink->wait(1).size(), 1u);
  ASSERT_EQ(c.sink->wait(1).size(), 1u);  // the broadcast reaches c too; clear it below
  std::string b_path = b.backend->endpoint_path();
  b.backend->stop();
  EXPECT_FALSE(std::filesystem::exists(b_path)) << "stop() left its socket behind";
  c.sink->take();
  // b's MAC is now unreachable: the frame falls back to flooding and still reaches c.
  Frame to_b = make_frame(0xb, 0xa, 60, 2);
  a.backend->send(to_b.data(), to_b.size());
  EXPECT_EQ(c.sink->wait(1), std::vector<Frame>{to_b});
}

TEST_F(SwitchBackendTest, GarbageIsIgnored) {
  Port& a = add_port("net0.sock");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, a.backend->endpoint_path().c_str(), sizeof addr.sun_path - 1);
  auto* to = reinterpret_cast<sockaddr*>(&addr);

  // An unbound sender, a sender outside the switch directory, and a runt from inside it.
  Frame f = broadcast_from(0x66, 60, 9);
  int unbound = socket(AF_UNIX, SOCK_DGRAM, 0);
  EXPECT_EQ(sendto(unbound, f.data(), f.size(), 0, to, sizeof addr), 60);
  int outsider = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un out{};
  out.sun_family = AF_UNIX;
  std::string out_path = dir_ + "/outsider";
  std::strncpy(out.sun_path, out_path.c_str(), sizeof out.sun_path - 1);
  ASSERT_EQ(bind(outsider, reinterpret_cast<sockaddr*>(&out), sizeof out), 0);
  EXPECT_EQ(sendto(outsider, f.data(), f.size(), 0, to, sizeof addr), 60);
  int insider = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un in{};
  in.sun_family = AF_UNIX;
  std::string in_path = std::filesystem::canonical(dir_ + "/net0.sock.d").string() + "/" +
                        std::to_string(geteuid()) + "/1-999";
  std::strncpy(in.sun_path, in_path.c_str(), sizeof in.sun_path - 1);
  ASSERT_EQ(bind(insider, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
  EXPECT_EQ(sendto(insider, "xyz", 3, 0, to, sizeof addr), 3);
  std::vector<uint8_t> huge(SwitchBackend::kMaxFrame + 100, 0xff);
  sendto(insider, huge.data(), huge.size(), 0, to, sizeof addr);  // may fail: too big
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(a.sink->take().empty());

  // A proper frame from a proper endpoint still gets through.
  EXPECT_EQ(sendto(insider, f.data(), f.size(), 0, to, sizeof addr), 60);
  EXPECT_EQ(a.sink->wait(1), std::vector<Frame>{f});
  close(unbound);
  close(outsider);
  close(insider);
}

TEST_F(SwitchBackendTest, RemovesEndpointsOfDeadProcesses) {
  Port& a = add_port("net0.sock");
  std::string d =
      std::filesystem::canonical(dir_ + "/net0.sock.d").string() + "/" + std::to_string(geteuid());
  // A socket file nobody is bound to, named after a pid that cannot exist.
  std::string stale = d + "/999999999-0";
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(s);
  Frame f = broadcast_from(0xa, 60, 1);
  a.backend->send(f.data(), f.size());
  EXPECT_FALSE(std::filesystem::exists(stale));
}

TEST_F(SwitchBackendTest, TooLongPathIsAnError) {
  auto created = SwitchBackend::create(dir_ + "/" + std::string(100, 'x'));
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.message().find("too long"), std::string::npos) << created.message();
}

// A socket bound at `path`, playing an endpoint by hand; -1 if bind fails.
int bound_socket(const std::string& path) {
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (s >= 0) close(s);
    return -1;
  }
  return s;
}

ssize_t send_frame(int from, const std::string& to, const Frame& f) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, to.c_str(), sizeof addr.sun_path - 1);
  return sendto(from, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
}

TEST_F(SwitchBackendTest, FramesCountOnlyFromTrustedPortDirectories) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  const std::string d = std::filesystem::canonical(dir_ + "/net0.sock.d").string();
  const std::string own = d + "/" + std::to_string(geteuid());
  const std::string other = std::to_string(geteuid() == 4242 ? 4243 : 4242);
  Frame f = broadcast_from(0x66, 60, 9);
  // A directory named after a uid that does not own it; a symlink to our own port
  // directory under another uid's name; a second spelling of our uid.
  ASSERT_EQ(mkdir((d + "/" + other).c_str(), 0755), 0);
  int not_owner = bound_socket(d + "/" + other + "/1-1");
  ASSERT_EQ(symlink(own.c_str(), (d + "/4244").c_str()), 0);
  int via_symlink = bound_socket(d + "/4244/1-2");
  ASSERT_EQ(mkdir((d + "/0" + std::to_string(geteuid())).c_str(), 0755), 0);
  int second_spelling = bound_socket(d + "/0" + std::to_string(geteuid()) + "/1-3");
  for (int s : {not_owner, via_symlink, second_spelling}) {
    ASSERT_GE(s, 0);
    EXPECT_EQ(send_frame(s, a.backend->endpoint_path(), f), 60);
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(a.sink->take().empty()) << "a frame from an untrusted port directory got through";

  // A port directory that others can write to is not trusted either (its verdict is
  // cached for a second), and a flood skips it.
  int insider = bound_socket(own + "/1-4");
  ASSERT_GE(insider, 0);
  ASSERT_EQ(chmod(own.c_str(), 0775), 0);
  std::this_thread::sleep_for(SwitchBackend::kPortDirCheckAge + 100ms);
  EXPECT_EQ(send_frame(insider, a.backend->endpoint_path(), f), 60);
  a.backend->send(f.data(), f.size());
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(a.sink->take().empty()) << "a frame from a group-writable port directory got through";
  EXPECT_TRUE(b.sink->take().empty()) << "a flood went to a group-writable port directory";

  ASSERT_EQ(chmod(own.c_str(), 0755), 0);
  std::this_thread::sleep_for(SwitchBackend::kPortDirCheckAge + 100ms);
  EXPECT_EQ(send_frame(insider, a.backend->endpoint_path(), f), 60);
  EXPECT_EQ(a.sink->wait(1), std::vector<Frame>{f});
  a.backend->send(f.data(), f.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{f});
  for (int s : {not_owner, via_symlink, second_spelling, insider}) close(s);
}

TEST_F(SwitchBackendTest, RefusesDirectoriesOthersCanWrite) {
  for (mode_t mode : {0770, 0757, 01777}) {
    std::string path = dir_ + "/open" + std::to_string(mode);
    ASSERT_EQ(mkdir((path + ".d").c_str(), 0700), 0);
    ASSERT_EQ(chmod((path + ".d").c_str(), mode), 0);
    auto created = SwitchBackend::create(path);
    ASSERT_FALSE(created.ok()) << "mode " << std::oct << mode;
    EXPECT_NE(created.message().find("writable by group or others"), std::string::npos)
        << created.message();
  }
  std::string path = dir_ + "/openport";
  ASSERT_EQ(mkdir((path + ".d").c_str(), 0700), 0);
  std::string port = path + ".d/" + std::to_string(geteuid());
  ASSERT_EQ(mkdir(port.c_str(), 0700), 0);
  ASSERT_EQ(chmod(port.c_str(), 0777), 0);
  auto created = SwitchBackend::create(path);
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.message().find("not writable by group or others"), std::string::npos)
      << created.message();
}

TEST_F(SwitchBackendTest, PreparePortDirReplacesWhatIsInTheWay) {
  const std::string path = dir_ + "/sw";
  ASSERT_EQ(mkdir((path + ".d").c_str(), 0755), 0);
  const uid_t uid = geteuid() == 0 ? 4242 : geteuid();
  const gid_t gid = geteuid() == 0 ? 4241 : getegid();
  const std::string port = path + ".d/" + std::to_string(uid);
  // A symlink planted where the port directory goes must not be followed.
  const std::string elsewhere = dir_ + "/elsewhere";
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(symlink(elsewhere.c_str(), port.c_str()), 0);
  ASSERT_TRUE(SwitchBackend::prepare_port_dir(path, uid, gid).ok());
  struct stat st {};
  ASSERT_EQ(lstat(port.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(st.st_gid, gid);
  ASSERT_EQ(stat(elsewhere.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "followed the symlink";
  EXPECT_EQ(st.st_uid, geteuid()) << "followed the symlink";
  EXPECT_TRUE(SwitchBackend::trusted_port_dir(path + ".d", std::to_string(uid)));
  // Again on an existing directory with a wrong mode: fixed.
  ASSERT_EQ(chmod(port.c_str(), 0777), 0);
  ASSERT_TRUE(SwitchBackend::prepare_port_dir(path, uid, gid).ok());
  ASSERT_EQ(lstat(port.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(SwitchBackendTest, PinnedMacsAreEnforced) {
  const std::string path = dir_ + "/pin";
  const std::string top = path + ".d";
  ASSERT_EQ(mkdir(top.c_str(), 0755), 0);
  ASSERT_TRUE(
      SwitchBackend::prepare_port_dir(path, geteuid(), getegid(), "52:54:00:00:00:0a").ok());
  EXPECT_FALSE(SwitchBackend::prepare_port_dir(path, geteuid(), getegid(), "52:54:00:00:0a").ok());
  Port& a = add_port("pin");
  Port& b = add_port("pin");
  Frame good = broadcast_from(0xa, 60, 1);
  Frame spoofed = broadcast_from(0xc, 60, 2);
  a.backend->send(spoofed.data(), spoofed.size());
  a.backend->send(good.data(), good.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{good});
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(b.sink->take(), std::vector<Frame>{good})
      << "a frame with an unpinned source MAC got through";

  // A pin file others could write to, or one that does not parse, makes the port untrusted.
  const std::string pin = top + "/" + std::to_string(geteuid()) + ".mac";
  for (int variant = 0; variant < 2; ++variant) {
    ASSERT_TRUE(
        SwitchBackend::prepare_port_dir(path, geteuid(), getegid(), "52:54:00:00:00:0a").ok());
    if (variant == 0) {
      ASSERT_EQ(chmod(pin.c_str(), 0666), 0);
    } else {
      FILE* f = fopen(pin.c_str(), "w");
      ASSERT_NE(f, nullptr);
      fputs("52:54:00:00:00:0a\nnot a mac\n", f);
      fclose(f);
    }
    std::this_thread::sleep_for(SwitchBackend::kPortDirCheckAge + 100ms);
    a.backend->send(good.data(), good.size());
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(b.sink->take().empty()) << "variant " << variant;
  }

  // Without a pin, any source MAC goes.
  ASSERT_TRUE(SwitchBackend::prepare_port_dir(path, geteuid(), getegid()).ok());
  EXPECT_FALSE(std::filesystem::exists(pin));
  std::this_thread::sleep_for(SwitchBackend::kPortDirCheckAge + 100ms);
  a.backend->send(spoofed.data(), spoofed.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{spoofed});
}

// One VM's VMM (uid kAttacker) against another's (uid kVictim) on a switch laid out as
// nimbusd lays it out: it must not be able to take over the victim's endpoint (receive its
// frames, cut it off) nor bind in its place, while frames flow between honest endpoints.
constexpr gid_t kVmGid = 199990;
constexpr uid_t kVictim = 199991;
constexpr uid_t kAttacker = 199992;

struct Child {
  pid_t pid = -1;
  int cmd = -1;     // parent -> child: 'h' (victim: say hello), 'q' (quit)
  int status = -1;  // child -> parent: "R<endpoint path>\n" once joined
  int frames = -1;  // child -> parent: each frame received, one write each
};

// Forks a child that becomes uid:kVmGid with umask 007 (as nimbusd's VMMs) and runs
// `body(cmd, status, frames)`; its return value is the exit status.
Child fork_as(uid_t uid, const std::function<int(int, int, int)>& body) {
  int cmd[2], status[2], frames[2];
  Child c;
  if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0 || pipe2(frames, O_CLOEXEC) != 0)
    return c;
  c.pid = fork();
  if (c.pid == 0) {
    close(cmd[1]);
    close(status[0]);
    close(frames[0]);
    if (setgroups(0, nullptr) != 0 || setresgid(kVmGid, kVmGid, kVmGid) != 0 ||
        setresuid(uid, uid, uid) != 0) {
      _exit(100);
    }
    umask(007);
    _exit(body(cmd[0], status[1], frames[1]));
  }
  close(cmd[0]);
  close(status[1]);
  close(frames[1]);
  c.cmd = cmd[1];
  c.status = status[0];
  c.frames = frames[0];
  return c;
}

// Joins the switch, reports "R<path>\n", then obeys commands until 'q' or EOF.
int run_port(const std::string& path, int cmd, int status, int frames) {
  auto sw = SwitchBackend::create(path);
  if (!sw.ok()) {
    std::string msg = "E" + sw.message() + "\n";
    (void)!write(status, msg.data(), msg.size());
    return 101;
  }
  if (!(*sw)
           ->start([frames](const uint8_t* f, size_t n) {
             (void)!write(frames, f, n);
             return true;
           })
           .ok()) {
    return 102;
  }
  std::string ready = "R" + (*sw)->endpoint_path() + "\n";
  (void)!write(status, ready.data(), ready.size());
  char c;
  while (read(cmd, &c, 1) == 1 && c != 'q') {
    if (c == 'h') {
      Frame hello = broadcast_from(0xb, 60, 1);
      (*sw)->send(hello.data(), hello.size());
    }
  }
  (*sw)->stop();
  return 0;
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

// The next frame the child reports within `timeout`, or an empty frame.
Frame next_frame(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return {};
  Frame f(SwitchBackend::kMaxFrame);
  ssize_t n = read(fd, f.data(), f.size());
  f.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return f;
}

int exit_status(pid_t pid) {
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 200 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

TEST_F(SwitchBackendTest, AnotherUidCannotTakeOverAnEndpoint) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (two endpoints under two other uids)";
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);  // the children must reach the switch
  const std::string path = dir_ + "/sw";
  const std::string top = path + ".d";
  ASSERT_EQ(mkdir(top.c_str(), 0755), 0);
  ASSERT_TRUE(SwitchBackend::prepare_port_dir(path, kVictim, kVmGid, "52:54:00:00:00:0b").ok());
  ASSERT_TRUE(SwitchBackend::prepare_port_dir(path, kAttacker, kVmGid, "52:54:00:00:00:0c").ok());

  Child victim = fork_as(kVictim, [&](int cmd, int status, int frames) {
    return run_port(path, cmd, status, frames);
  });
  ASSERT_GT(victim.pid, 0);
  const std::string victim_ready = read_line(victim.status);
  ASSERT_EQ(victim_ready.substr(0, 1), "R") << victim_ready;
  const std::string victim_path = victim_ready.substr(1);
  const std::string victim_dir = victim_path.substr(0, victim_path.rfind('/'));

  // Everything a VMM's uid could try against the victim's endpoint; each one that works
  // sets a bit of the exit status.
  Child attacker = fork_as(kAttacker, [&](int cmd, int status, int frames) {
    const std::string canonical_top = victim_dir.substr(0, victim_dir.rfind('/'));
    const std::string own_dir = canonical_top + "/" + std::to_string(kAttacker);
    int worked = 0;
    if (unlink(victim_path.c_str()) == 0) worked |= 1;
    if (rename(victim_path.c_str(), (own_dir + "/1-1").c_str()) == 0) worked |= 2;
    if (rename(victim_dir.c_str(), (canonical_top + "/1").c_str()) == 0) worked |= 4;
    int s = bound_socket(victim_dir + "/1-2");  // an endpoint in the victim's name
    if (s >= 0) worked |= 8;
    if (mkdir((canonical_top + "/1").c_str(), 0755) == 0) worked |= 16;
    if (chmod(victim_dir.c_str(), 0777) == 0) worked |= 32;
    if (symlink(own_dir.c_str(), (victim_dir + "/1-3").c_str()) == 0) worked |= 64;
    // Then it joins as an honest port would, and listens.
    int rc = run_port(path, cmd, status, frames);
    return rc != 0 ? rc : worked;
  });
  ASSERT_GT(attacker.pid, 0);
  const std::string attacker_ready = read_line(attacker.status);
  ASSERT_EQ(attacker_ready.substr(0, 1), "R") << attacker_ready;

  // An honest root port; its socket must be writable by the VM uids, as a VMM's is by its
  // group.
  mode_t old_umask = umask(0);
  Port& host = add_port("sw");
  umask(old_umask);

  // The victim speaks: the host learns where its MAC lives, the attacker hears the
  // broadcast as any port would.
  ASSERT_EQ(write(victim.cmd, "h", 1), 1);
  Frame hello = broadcast_from(0xb, 60, 1);
  EXPECT_EQ(host.sink->wait(1), std::vector<Frame>{hello});
  host.sink->take();
  EXPECT_EQ(next_frame(attacker.frames, 1000), hello);

  // Unicast to the victim reaches the victim and only the victim.
  Frame to_victim = make_frame(0xb, 0xa, 100, 2);
  host.backend->send(to_victim.data(), to_victim.size());
  EXPECT_EQ(next_frame(victim.frames, 1000), to_victim);
  EXPECT_TRUE(next_frame(attacker.frames, 200).empty()) << "the attacker got the victim's frame";
  // The attacker says hello with the victim's MAC: nobody takes it (its port is pinned to
  // its own MAC), so unicast to the victim still goes to the victim alone.
  ASSERT_EQ(write(attacker.cmd, "h", 1), 1);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(host.sink->take().empty()) << "a frame with the victim's MAC from the attacker";
  EXPECT_TRUE(next_frame(victim.frames, 100).empty())
      << "a frame with its own MAC from the attacker";
  host.backend->send(to_victim.data(), to_victim.size());
  EXPECT_EQ(next_frame(victim.frames, 1000), to_victim);
  EXPECT_TRUE(next_frame(attacker.frames, 200).empty()) << "the attacker got the victim's frame";
  // Broadcasts still reach every honest port.
  Frame bc = broadcast_from(0xa, 60, 3);
  host.backend->send(bc.data(), bc.size());
  EXPECT_EQ(next_frame(victim.frames, 1000), bc);
  EXPECT_EQ(next_frame(attacker.frames, 1000), bc);
  EXPECT_TRUE(std::filesystem::exists(victim_path));

  for (Child* c : {&victim, &attacker}) {
    (void)!write(c->cmd, "q", 1);
    close(c->cmd);
  }
  EXPECT_EQ(exit_status(victim.pid), 0);
  EXPECT_EQ(exit_status(attacker.pid), 0)
      << "attacks that worked (bits): 1 unlink, 2 rename the socket, 4 rename the port "
         "directory, 8 bind in it, 16 add a port directory, 32 chmod it, 64 symlink in it";
  for (Child* c : {&victim, &attacker}) {
    close(c->status);
    close(c->frames);
  }
}

}  // namespace
}  // namespace nimbus::backends
