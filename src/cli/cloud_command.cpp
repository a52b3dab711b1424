#include "cli/cloud_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include "cli/cloud_output.h"
#include "cli/cloud_processes.h"
#include "cli/cloud_regions.h"
#include "cli/host_args.h"
#include "cli/host_client.h"
#include "cli/host_output.h"
#include "cli/host_progress.h"
#include "common/http_client.h"
#include "common/http_listen.h"

namespace nimbus::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr auto kStopGrace = std::chrono::seconds(10);
constexpr auto kCleanupGrace = std::chrono::seconds(5);
constexpr auto kPoll = std::chrono::milliseconds(200);

int fail(const std::string& verb, const std::string& message, int status = kExitFailed) {
  std::fprintf(stderr, "nimbus: cloud %s: %s\n", verb.c_str(), message.c_str());
  return status;
}

void warn(const std::string& message) { std::fprintf(stderr, "warning: %s\n", message.c_str()); }

// " --state-dir DIR" for commands shown to the user, unless DIR is the default.
std::string state_dir_flag(const std::string& dir) {
  return dir == kDefaultCloudStateDir ? "" : " --state-dir " + dir;
}

std::string absolute_dir(const std::string& dir) {
  std::error_code ec;
  std::string out = fs::absolute(dir, ec).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// The control plane's JSON paths and the unsigned EC2 call `up` makes.
class CloudApi {
 public:
  static Result<CloudApi> create(const std::string& url, const std::string& token) {
    http::ClientOptions o;
    o.token = token;
    o.connect_timeout_ms = 2000;
    o.read_timeout_ms = 15000;
    o.peer = "the control plane";
    auto c = http::Client::create(url, o);
    if (!c.ok()) return c.status();
    if (c->target().unix_socket) return Status::invalid_argument("give an http:// URL");
    return CloudApi(std::move(*c));
  }

  Result<json> get(const std::string& path) const { return call("GET", path, ""); }
  Result<json> post(const std::string& path, const json& body) const {
    return call("POST", path, body.dump());
  }

  // One request whose reply must be a JSON object.
  Result<json> call(const std::string& method, const std::string& path,
                    const std::string& body) const {
    auto reply = client_.request(method, path, body);
    if (!reply.ok()) return hint(reply.status());
    if (!http::is_success(*reply)) return http::reply_error(*reply);
    json j = json::parse(reply->body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return Status::internal(
          fmt::format("{} {} did not answer JSON", client_.target().shown(), path));
    return j;
  }

  // DescribeImages without a signature: the control plane accepts that when it has no
  // credentials configured (and `up` starts it without).
  Result<std::string> describe_images() const {
    auto reply = client_.request("POST", "/", "Action=DescribeImages&Version=2016-11-15",
                                 "application/x-www-form-urlencoded");
    if (!reply.ok()) return hint(reply.status());
    if (!http::is_success(*reply))
      return Status::error(fmt::format("DescribeImages: HTTP {}", reply->status));
    return reply->body;
  }

 private:
  explicit CloudApi(http::Client c) : client_(std::move(c)) {}
  static Status hint(const Status& s) {
    if (s.message().rfind("cannot reach ", 0) != 0) return s;
    return Status(s.code(), s.message() + " (is it up? start it with `nimbus cloud up`)");
  }
  http::Client client_;
};

// An exclusive lock on STATE_DIR/cloud.lock for as long as it lives: two `up`s (or an
// `up` and a `down`) of one directory never interleave.
class StateLock {
 public:
  static Result<StateLock> take(const std::string& dir) {
    const std::string path = dir + "/cloud.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Status::error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Status::conflict(
          fmt::format("another `nimbus cloud up` or `down` is running on {}", dir));
    }
    return StateLock(fd);
  }
  StateLock(StateLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  StateLock(const StateLock&) = delete;
  ~StateLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_;
};

// STATE_DIR/cloud.json: nullopt when there is none.
Result<std::optional<CloudPlan>> load_record(const std::string& state_dir) {
  const std::string path = state_dir + "/cloud.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<CloudPlan>();
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  auto p = cloud_plan_from_json(json::parse(ss.str(), nullptr, false));
  if (!p.ok()) return Status::error(fmt::format("{}: {}", path, p.message()));
  if (p->state_dir != state_dir)
    return Status::error(
        fmt::format("{} describes the cloud of {}, not of this directory", path, p->state_dir));
  return std::optional<CloudPlan>(*p);
}

Status write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) return Status::error(fmt::format("cannot write {}", tmp));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::error(fmt::format("cannot write {}: {}", path, ec.message()));
  return {};
}

Status save_record(const CloudPlan& p) {
  return write_file_atomically(p.record_file(), to_json(p).dump(2) + "\n");
}

void remove_files(const CloudPlan& p) {
  std::error_code ec;
  fs::remove(p.record_file(), ec);
  fs::remove(p.cloud_pid_file(), ec);
  for (const CloudHost& h : p.hosts) fs::remove(h.pid_file, ec);
}

bool cloud_running(const CloudPlan& p) {
  return p.cloud_pid > 0 && process_matches(p.cloud_pid, p.state_dir);
}

bool host_running(const CloudHost& h) { return h.pid > 0 && process_matches(h.pid, h.dir); }

// ------------------------------------------------------------------------------------------
// up

int say_already_up(const CloudPlan& p) {
  std::printf(
      "Nimbus Cloud is already up: region %s, endpoint %s (control plane pid %d, %zu "
      "host%s; state in %s)\n",
      p.region.c_str(), p.url.c_str(), p.cloud_pid, p.hosts.size(), p.hosts.size() == 1 ? "" : "s",
      p.state_dir.c_str());
  for (const CloudHost& h : p.hosts) {
    if (!host_running(h)) {
      warn(fmt::format(
          "{}'s nimbusd (pid {}) is not running; see {}. Restart the cloud with "
          "`nimbus cloud down{}` and `nimbus cloud up{}`",
          h.id, h.pid, h.log, state_dir_flag(p.state_dir), state_dir_flag(p.state_dir)));
    }
  }
  return 0;
}

// Stops what `p` records as started (hosts first: they only heartbeat to the control
// plane). For the leftovers of a failed or abandoned `up`. Our own children are ours
// whatever their command line says.
void stop_started(CloudPlan& p, std::chrono::milliseconds grace) {
  for (CloudHost& h : p.hosts) {
    if (child_running(h.pid) || host_running(h)) stop_process(h.pid, grace);
    (void)child_exit(h.pid);  // reaps one that died on its own
  }
  if (child_running(p.cloud_pid) || cloud_running(p)) stop_process(p.cloud_pid, grace);
  (void)child_exit(p.cloud_pid);
  remove_files(p);
}

// Ctrl-C (or SIGTERM) during `up`: what started is stopped, as for any failure, rather than
// left running half-joined.
volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) ::sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~InterruptGuard() {
    for (int i = 0; i < 3; i++) ::sigaction(kSignals[i], &old_[i], nullptr);
  }

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_[3];
};

// One wait between polls; an error once interrupted.
Status pause() {
  if (!g_interrupted) std::this_thread::sleep_for(kPoll);
  if (g_interrupted) return Status::error("interrupted");
  return {};
}

std::string died_message(const std::string& what, const std::string& how, const std::string& log) {
  const std::string last = last_log_line(log);
  return fmt::format("{} exited ({}){}; see {}", what, how, last.empty() ? "" : ": " + last, log);
}

// Waits for GET /nimbus/v1/health; an error when the control plane exits first.
Status wait_health(const CloudPlan& p, const CloudApi& api, SteadyClock::time_point deadline,
                   int timeout_s) {
  for (;;) {
    if (auto how = child_exit(p.cloud_pid))
      return Status::error(died_message("nimbus-cloud", *how, p.cloud_log()));
    auto health = api.get("/nimbus/v1/health");
    if (health.ok()) {
      if (json_str(*health, "region") != p.region)
        return Status::error(fmt::format("{} answers for region '{}', not {}", p.url,
                                         json_str(*health, "region"), p.region));
      return {};
    }
    if (SteadyClock::now() >= deadline)
      return Status::error(
          fmt::format("the control plane did not answer at {} within {} s ({}); "
                      "see {}",
                      p.url, timeout_s, health.message(), p.cloud_log()));
    if (Status s = pause(); !s.ok()) return s;
  }
}

Result<std::string> wait_join_token(const CloudPlan& p, SteadyClock::time_point deadline) {
  for (;;) {
    auto token = read_token(p.join_token_file());
    if (token.ok()) return token;
    if (SteadyClock::now() >= deadline)
      return Status::error(
          fmt::format("the control plane made no join token ({})", token.message()));
    if (Status s = pause(); !s.ok()) return s;
  }
}

// Waits until every host of the plan is alive in GET /nimbus/v1/hosts; returns that list.
Result<json> wait_hosts(const CloudPlan& p, const CloudApi& api, SteadyClock::time_point deadline,
                        int timeout_s, Progress& progress) {
  for (;;) {
    for (const CloudHost& h : p.hosts) {
      if (auto how = child_exit(h.pid))
        return Status::error(died_message(h.id + "'s nimbusd", *how, h.log));
    }
    if (auto how = child_exit(p.cloud_pid))
      return Status::error(died_message("nimbus-cloud", *how, p.cloud_log()));
    auto list = api.get("/nimbus/v1/hosts");
    std::vector<const CloudHost*> waiting;
    if (list.ok()) {
      const json hosts = list->value("hosts", json());
      for (const CloudHost& h : p.hosts) {
        bool up = false;
        if (hosts.is_array()) {
          for (const json& j : hosts)
            if (json_str(j, "id") == h.id && cloud_host_state(j) == "up") up = true;
        }
        if (!up) waiting.push_back(&h);
      }
      if (waiting.empty()) return hosts;
      progress.set_state(
          fmt::format("{} of {} hosts joined", p.hosts.size() - waiting.size(), p.hosts.size()));
    }
    if (SteadyClock::now() >= deadline) {
      if (!list.ok()) return list.status();
      const CloudHost& h = *waiting.front();
      const std::string last = last_log_line(h.log);
      return Status::error(fmt::format("{} did not join within {} s{}; see {}", h.id, timeout_s,
                                       last.empty() ? "" : " (its log: " + last + ")", h.log));
    }
    if (Status s = pause(); !s.ok()) return s;
  }
}

Status start_host(CloudPlan& p, CloudHost& h, const std::string& nimbusd) {
  std::error_code ec;
  fs::create_directories(h.dir, ec);
  if (ec) return Status::error(fmt::format("cannot create {}: {}", h.dir, ec.message()));
  if (Status s = write_token_file(h.token_file); !s.ok()) return s;
  auto port = free_local_port();
  if (!port.ok()) return port.status().with_context("a port for " + h.id);
  h.port = *port;
  auto pid = spawn_daemon(nimbusd, host_argv(p, h), h.log);
  if (!pid.ok()) return pid.status();
  h.pid = *pid;
  if (Status s = write_file_atomically(h.pid_file, fmt::format("{}\n", h.pid)); !s.ok()) return s;
  return save_record(p);
}

int cmd_up(const CloudCommandOptions& o) {
  auto planned = plan_cloud(o.up);
  if (!planned.ok()) return fail("up", planned.message(), kExitUsage);
  if (o.timeout_s < 1 || o.timeout_s > 3600)
    return fail("up", "--timeout must be 1 to 3600 seconds", kExitUsage);
  CloudPlan p = *planned;
  const std::string cloud_exe = find_beside_self("nimbus-cloud");
  const std::string nimbusd_exe = find_beside_self("nimbusd");
  for (const auto& [name, path] :
       {std::pair{"nimbus-cloud", cloud_exe}, std::pair{"nimbusd", nimbusd_exe}}) {
    if (path.empty()) {
      std::error_code ec;
      const auto dir = fs::read_symlink("/proc/self/exe", ec).parent_path().string();
      return fail("up", fmt::format("{} is not installed beside nimbus (no executable {}/{}): "
                                    "build it (target {}) or install it there",
                                    name, dir, name, name));
    }
  }
  std::error_code ec;
  fs::create_directories(p.state_dir, ec);
  if (ec) {
    return fail("up", fmt::format("cannot create {}: {}{}", p.state_dir, ec.message(),
                                  ec == std::errc::permission_denied
                                      ? " (run as root, or give --state-dir DIR)"
                                      : ""));
  }
  auto lock = StateLock::take(p.state_dir);
  if (!lock.ok()) return fail("up", lock.message());
  auto previous = load_record(p.state_dir);
  if (!previous.ok())
    return fail("up", previous.message() + " (stop what it started by hand and remove it)");
  if (*previous) {
    CloudPlan& old = **previous;
    if (cloud_running(old)) return say_already_up(old);
    // A cloud whose control plane is gone (killed, or the machine restarted): its hosts
    // would heartbeat to nobody, and hold the ports and cgroups the new ones want.
    std::fprintf(stderr,
                 "The control plane recorded in %s is not running: stopping what is "
                 "left of it first.\n",
                 old.record_file().c_str());
    stop_started(old, kStopGrace);
  }
  if (auto sock = http::listen_tcp("--listen", p.listen); !sock.ok()) {
    return fail("up", sock.message() + (sock.message().find("in use") != std::string::npos
                                            ? " (another nimbus-cloud? give --listen ADDR:PORT)"
                                            : ""));
  }

  InterruptGuard interrupt_guard;
  const auto deadline = SteadyClock::now() + std::chrono::seconds(o.timeout_s);
  Progress progress("Starting Nimbus Cloud");
  // From here on a failure stops whatever started.
  const auto abandon = [&](const std::string& message) {
    progress.finish();
    stop_started(p, kCleanupGrace);
    return fail("up", message);
  };
  progress.set_state("control plane");
  auto cloud_pid = spawn_daemon(cloud_exe, cloud_argv(p), p.cloud_log());
  if (!cloud_pid.ok()) return abandon(cloud_pid.message());
  p.cloud_pid = *cloud_pid;
  if (Status s = write_file_atomically(p.cloud_pid_file(), fmt::format("{}\n", p.cloud_pid));
      !s.ok())
    return abandon(s.message());
  if (Status s = save_record(p); !s.ok()) return abandon(s.message());
  auto anonymous = CloudApi::create(p.url, "");
  if (!anonymous.ok()) return abandon(anonymous.message());
  if (Status s = wait_health(p, *anonymous, deadline, o.timeout_s); !s.ok())
    return abandon(s.message());
  auto token = wait_join_token(p, deadline);
  if (!token.ok()) return abandon(token.message());
  auto api = CloudApi::create(p.url, *token);
  if (!api.ok()) return abandon(api.message());

  progress.set_state(
      fmt::format("starting {} host{}", p.hosts.size(), p.hosts.size() == 1 ? "" : "s"));
  for (CloudHost& h : p.hosts) {
    if (Status s = start_host(p, h, nimbusd_exe); !s.ok())
      return abandon(fmt::format("{}: {}", h.id, s.message()));
  }
  auto hosts = wait_hosts(p, *api, deadline, o.timeout_s, progress);
  if (!hosts.ok()) return abandon(hosts.message());
  auto images = anonymous->describe_images();  // no bearer: EC2 would read it as a bad signature
  const std::string image_id = images.ok() ? first_image_id(*images) : "";
  progress.finish();

  for (const json& h : *hosts) {
    const json report = h.is_object() ? h.value("host", json()) : json();
    const std::string id = json_str(h, "id");
    const std::string cgroup = json_str(report, "cgroup");
    if (cgroup.rfind("none", 0) == 0)
      warn(fmt::format("{} has no cgroups ({}): its instances cannot start{}", id, cgroup,
                       ::geteuid() != 0 ? " (nimbusd needs root for cgroups: run as root)" : ""));
    for (const auto& [key, what, flag] :
         {std::tuple{"memory_mib", "memory", " (give --host-memory)"},
          std::tuple{"disk_mib", "disk space", " (nimbusd keeps 10GiB of its disk free)"}}) {
      double capacity = 0;
      if (report.is_object() && json_num(report.value(key, json()), "capacity", capacity) &&
          capacity <= 0)
        warn(fmt::format("{} has no {} for instances{}", id, what, flag));
    }
  }
  std::fputs(format_cloud_up(p, image_id).c_str(), stdout);
  return 0;
}

// ------------------------------------------------------------------------------------------
// down

// Stops every VM a host runs, at once (the instances' disks stay; the control plane starts
// them again at the next `up`). The number stopped, or why it could not.
Result<int> stop_vms(const CloudHost& h) {
  HostEndpoint e;
  e.address = e.host = h.socket;
  HostClient client(e);
  client.set_connect_timeout(5);
  client.set_read_timeout(60);
  auto list = client.request("GET", "/v1/vms");
  if (!list.ok()) return list.status();
  const json vms = list->is_object() ? list->value("vms", json::array()) : json::array();
  if (!vms.is_array()) return Status::internal("GET /v1/vms gave no list");
  int stopped = 0;
  for (const json& vm : vms) {
    const std::string state = json_str(vm, "state");
    if (state != "running" && state != "starting" && state != "paused" && state != "stopping")
      continue;
    const std::string name = json_str(vm, "name");
    if (Status s = check_name(name); !s.ok()) continue;  // not a name the API makes
    auto r = client.request("POST", "/v1/vms/" + name + "/stop", json{{"force", true}});
    if (!r.ok()) return r.status().with_context("stopping VM " + name);
    stopped++;
  }
  return stopped;
}

// With --purge: the hosts' cgroup parents, empty once their VMs stopped (nimbusd leaves
// them for its next start). Best effort: what cannot go stays.
void remove_cgroup_parents(const CloudPlan& p) {
  for (const CloudHost& h : p.hosts) {
    if (h.cgroup_parent.rfind("nimbus-cloud-", 0) != 0) continue;
    for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct",
                             "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory"}) {
      const fs::path dir = fs::path(root) / h.cgroup_parent;
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) continue;
      for (const auto& child : fs::directory_iterator(dir, ec))
        if (child.is_directory(ec)) ::rmdir(child.path().c_str());
      ::rmdir(dir.c_str());
    }
  }
}

// A directory `down --purge` may delete: one `up` made (never /, a home, or anything else
// given by mistake).
bool looks_like_cloud_dir(const std::string& dir) {
  std::error_code ec;
  return fs::exists(dir + "/cloud.db", ec) || fs::exists(dir + "/cloud.json", ec) ||
         fs::exists(dir + "/join-token", ec);
}

int purge(const std::string& dir) {
  if (!looks_like_cloud_dir(dir))
    return fail("down", fmt::format("{} does not look like a Nimbus Cloud state directory (no "
                                    "cloud.db, cloud.json or join-token): not deleting it",
                                    dir));
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return fail("down", fmt::format("cannot delete {}: {}", dir, ec.message()));
  std::printf("Deleted %s.\n", dir.c_str());
  return 0;
}

int cmd_down(const CloudCommandOptions& o) {
  if (o.up.state_dir.empty()) return fail("down", "--state-dir is empty", kExitUsage);
  const std::string dir = absolute_dir(o.up.state_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    std::printf("Nimbus Cloud is not up (no %s).\n", dir.c_str());
    return 0;
  }
  std::optional<CloudPlan> record;
  {
    auto lock = StateLock::take(dir);
    if (!lock.ok()) return fail("down", lock.message());
    auto loaded = load_record(dir);
    if (!loaded.ok()) return fail("down", loaded.message() + " (stop its processes by hand)");
    record = *loaded;
    if (!record) {
      std::printf("Nimbus Cloud is not up in %s (no cloud.json).\n", dir.c_str());
    } else {
      CloudPlan& p = *record;
      // The control plane first: left running, its reconciler would start again the VMs
      // stopped below (their instances still want to run).
      if (cloud_running(p)) {
        std::printf("Control plane (pid %d): %s\n", p.cloud_pid,
                    stop_process(p.cloud_pid, kStopGrace).c_str());
      } else {
        std::printf("Control plane: was not running\n");
      }
      for (const CloudHost& h : p.hosts) {
        if (!host_running(h)) {
          std::printf("%s: nimbusd was not running\n", h.id.c_str());
          warn(
              fmt::format("{}'s VMs, if any still run, were not stopped (nimbusd is down): "
                          "`nimbus cloud up` then `down` again stops them",
                          h.id));
          continue;
        }
        auto vms = stop_vms(h);
        const std::string how = stop_process(h.pid, kStopGrace);
        if (vms.ok()) {
          std::printf("%s: %d VM%s stopped; nimbusd (pid %d): %s\n", h.id.c_str(), *vms,
                      *vms == 1 ? "" : "s", h.pid, how.c_str());
        } else {
          std::printf("%s: nimbusd (pid %d): %s\n", h.id.c_str(), h.pid, how.c_str());
          warn(fmt::format("{}: its VMs were not all stopped: {}", h.id, vms.message()));
        }
      }
      remove_files(p);
      std::printf("Nimbus Cloud is down.\n");
    }
  }
  if (!o.purge) return 0;
  if (record) remove_cgroup_parents(*record);
  return purge(dir);
}

// The control plane's URL: --endpoint, else the one `up` recorded in `dir`, else the
// default listen address; only http:// URLs.
Result<std::string> resolve_endpoint(const CloudCommandOptions& o, const std::string& dir) {
  std::string url = o.endpoint;
  if (url.empty()) {
    auto record = load_record(dir);
    url = record.ok() && *record ? (*record)->url : std::string("http://") + kDefaultCloudListen;
  }
  if (url.rfind("http://", 0) != 0)
    return Status::invalid_argument(fmt::format("--endpoint '{}': give http://HOST:PORT", url));
  return url;
}

// ------------------------------------------------------------------------------------------
// hosts, zones, instances

int cmd_view(const CloudCommandOptions& o) {
  const std::string& v = o.verb;
  if (o.up.state_dir.empty()) return fail(v, "--state-dir is empty", kExitUsage);
  const std::string dir = absolute_dir(o.up.state_dir);
  auto endpoint = resolve_endpoint(o, dir);
  if (!endpoint.ok()) return fail(v, endpoint.message(), kExitUsage);
  std::string url = *endpoint;
  if (v == "regions") return cloud_regions_verb(url, o.region, o.latency, o.samples, o.json);
  if (!o.region.empty()) {  // another region's control plane (same join token file)
    if (o.samples < 1 || o.samples > 100) return fail(v, "--samples must be 1 to 100", kExitUsage);
    std::optional<LatencySummary> measured;
    auto chosen = choose_region(url, o.region, o.samples, &measured);
    if (!chosen.ok())
      return fail(v, chosen.message(),
                  chosen.status().code() == Code::kInvalidArgument ? kExitUsage : kExitFailed);
    std::fprintf(
        stderr, "Region %s%s at %s:\n%s", chosen->name.c_str(),
        measured ? fmt::format(" (the closest: median {})", format_ms(measured->median_ms)).c_str()
                 : "",
        chosen->endpoint.c_str(), format_region_export(*chosen).c_str());
    url = chosen->endpoint;
    if (url.rfind("http://", 0) != 0)
      return fail(v, fmt::format("region {}'s endpoint {} is not http://", chosen->name, url));
  }
  const std::string token_file = dir + "/join-token";
  auto token = read_token(token_file);
  if (!token.ok()) {
    return fail(v, fmt::format("no join token to ask the control plane with: {} (is the cloud up "
                               "with this --state-dir? the token is its owner's only)",
                               token.message()));
  }
  auto api = CloudApi::create(url, *token);
  if (!api.ok()) return fail(v, "--endpoint: " + api.message(), kExitUsage);

  const auto get_list = [&](const char* path, const char* key) -> Result<json> {
    auto r = api->get(path);
    if (!r.ok()) return r.status();
    json list = r->value(key, json());
    if (!list.is_array()) return Status::internal(fmt::format("{} gave no '{}' list", path, key));
    return list;
  };
  if (v == "hosts") {
    auto hosts = get_list("/nimbus/v1/hosts", "hosts");
    if (!hosts.ok()) return fail(v, hosts.message());
    if (o.json) {
      std::printf("%s\n", json{{"hosts", *hosts}}.dump(2).c_str());
    } else if (hosts->empty()) {
      std::fprintf(stderr, "No hosts have joined.\n");
    } else {
      std::fputs(format_cloud_hosts(*hosts).c_str(), stdout);
    }
    return 0;
  }
  if (v == "instances") {
    auto instances = get_list("/nimbus/v1/instances", "instances");
    if (!instances.ok()) return fail(v, instances.message());
    if (o.json) {
      std::printf("%s\n", json{{"instances", *instances}}.dump(2).c_str());
    } else if (instances->empty()) {
      std::fprintf(stderr,
                   "No instances. Start one with: aws --endpoint-url %s ec2 "
                   "run-instances --image-id AMI --instance-type t3.micro\n",
                   url.c_str());
    } else {
      std::fputs(format_cloud_instances(*instances).c_str(), stdout);
    }
    return 0;
  }
  // zones
  auto health = api->get("/nimbus/v1/health");
  if (!health.ok()) return fail(v, health.message());
  auto hosts = get_list("/nimbus/v1/hosts", "hosts");
  if (!hosts.ok()) return fail(v, hosts.message());
  auto instances = get_list("/nimbus/v1/instances", "instances");
  if (!instances.ok()) return fail(v, instances.message());
  const json rows = cloud_zones(health->value("zones", json::array()), *hosts, *instances);
  if (o.json) {
    std::printf("%s\n",
                json{{"region", json_str(*health, "region")}, {"zones", rows}}.dump(2).c_str());
  } else {
    std::fputs(format_cloud_zones(rows).c_str(), stdout);
  }
  return 0;
}

// ------------------------------------------------------------------------------------------
// move, drain, undrain

// The control plane to ask (--endpoint, else the one `up` recorded) with the join token of
// --state-dir; `exit` is set when it returns an error.
Result<CloudApi> operator_api(const CloudCommandOptions& o, int& exit) {
  exit = kExitUsage;
  if (o.up.state_dir.empty()) return Status::invalid_argument("--state-dir is empty");
  const std::string dir = absolute_dir(o.up.state_dir);
  auto endpoint = resolve_endpoint(o, dir);
  if (!endpoint.ok()) return endpoint.status();
  const std::string& url = *endpoint;
  exit = kExitFailed;
  auto token = read_token(dir + "/join-token");
  if (!token.ok())
    return Status::error(
        fmt::format("no join token to ask the control plane with: {} (is the "
                    "cloud up with this --state-dir?)",
                    token.message()));
  auto api = CloudApi::create(url, *token);
  if (!api.ok()) {
    exit = kExitUsage;
    return Status::invalid_argument("--endpoint: " + api.message());
  }
  return api;
}

// Waits until each instance's last_move is the move numbered `moves[id]` (or a later one),
// printing each result as it comes (JSON: the records at the end). 0 when all succeeded.
int wait_moves(const CloudCommandOptions& o, const CloudApi& api,
               std::map<std::string, uint64_t> moves) {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(o.wait_timeout_s);
  bool all_ok = true;
  json done = json::array();
  while (!moves.empty()) {
    auto list = api.get("/nimbus/v1/instances");
    if (!list.ok()) return fail(o.verb, list.message());
    const json instances = list->value("instances", json::array());
    for (const json& i : instances.is_array() ? instances : json::array()) {
      const std::string id = json_str(i, "id");
      auto it = moves.find(id);
      if (it == moves.end()) continue;
      const json last = i.value("last_move", json::object());
      const uint64_t n = last.is_object() && last.value("id", json()).is_number_unsigned()
                             ? last["id"].get<uint64_t>()
                             : 0;
      if (n < it->second || !json_str(i, "move_to").empty()) continue;
      const bool ok = last.value("ok", json()).is_boolean() && last["ok"].get<bool>();
      all_ok = all_ok && ok;
      if (o.json) {
        done.push_back(i);
      } else {
        std::fputs(format_move_result(i).c_str(), stdout);
        std::fflush(stdout);
      }
      moves.erase(it);
    }
    if (moves.empty()) break;
    if (SteadyClock::now() > deadline) {
      std::string left;
      for (const auto& [id, n] : moves) left += (left.empty() ? "" : ", ") + id;
      return fail(o.verb, fmt::format("timed out after {} s waiting for the move of {}",
                                      o.wait_timeout_s, left));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (o.json) std::printf("%s\n", json{{"moves", done}}.dump(2).c_str());
  return all_ok ? 0 : kExitFailed;
}

int cmd_move(const CloudCommandOptions& o) {
  const std::string& v = o.verb;
  if (o.target.empty()) return fail(v, "give the instance id", kExitUsage);
  if (o.wait_timeout_s < 1) return fail(v, "--timeout must be at least 1", kExitUsage);
  int exit = 0;
  auto api = operator_api(o, exit);
  if (!api.ok()) return fail(v, api.message(), exit);
  json body = json::object();
  if (!o.move_host.empty()) body["host"] = o.move_host;
  auto r = api->post("/nimbus/v1/instances/" + o.target + "/move", body);
  if (!r.ok()) return fail(v, r.message());  // the control plane refused: its message
  if (!o.wait) {
    if (o.json) {
      std::printf("%s\n", r->dump(2).c_str());
    } else {
      std::printf("Moving %s from %s to %s (see `nimbus cloud instances`)\n",
                  json_str(*r, "instance").c_str(), json_str(*r, "from").c_str(),
                  json_str(*r, "to").c_str());
    }
    return 0;
  }
  if (!o.json)
    std::fprintf(stderr, "Moving %s from %s to %s...\n", json_str(*r, "instance").c_str(),
                 json_str(*r, "from").c_str(), json_str(*r, "to").c_str());
  const json id = r->value("move_id", json());
  return wait_moves(o, *api,
                    {{json_str(*r, "instance"), id.is_number_unsigned() ? id.get<uint64_t>() : 1}});
}

int cmd_drain(const CloudCommandOptions& o) {
  const std::string& v = o.verb;
  if (o.target.empty()) return fail(v, "give the host id", kExitUsage);
  if (o.wait_timeout_s < 1) return fail(v, "--timeout must be at least 1", kExitUsage);
  int exit = 0;
  auto api = operator_api(o, exit);
  if (!api.ok()) return fail(v, api.message(), exit);
  auto r = api->post("/nimbus/v1/hosts/" + o.target + "/" + v, json::object());
  if (!r.ok()) return fail(v, r.message());  // the control plane refused: its message
  if (v == "undrain") {
    if (o.json) {
      std::printf("%s\n", r->dump(2).c_str());
      return 0;
    }
    const json cancelled = r->value("cancelled", json::array());
    std::printf("Host %s takes new instances again", o.target.c_str());
    if (cancelled.is_array() && !cancelled.empty())
      std::printf(" (%zu queued move%s cancelled)", cancelled.size(),
                  cancelled.size() == 1 ? "" : "s");
    std::printf("\n");
    return 0;
  }
  const json moving = r->value("moving", json::array());
  const json staying = r->value("staying", json::array());
  if (!o.wait && o.json) {
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (!o.json) {
    std::fprintf(o.wait ? stderr : stdout,
                 "Host %s is draining: no new instances; %zu instance%s to move\n",
                 o.target.c_str(), moving.is_array() ? moving.size() : 0,
                 moving.is_array() && moving.size() == 1 ? "" : "s");
    for (const json& s : staying.is_array() ? staying : json::array())
      std::fprintf(stderr, "  %s stays: %s\n", json_str(s, "instance").c_str(),
                   json_str(s, "reason").c_str());
  }
  if (!o.wait) return 0;
  std::map<std::string, uint64_t> moves;
  for (const json& m : moving.is_array() ? moving : json::array()) {
    const json id = m.value("move_id", json());
    moves[json_str(m, "instance")] = id.is_number_unsigned() ? id.get<uint64_t>() : 1;
  }
  return wait_moves(o, *api, moves);
}

CLI::App* verb(CLI::App* cloud, CloudCommandOptions& o, const std::string& name,
               const std::string& help) {
  CLI::App* cmd = cloud->add_subcommand(name, help);
  cmd->preparse_callback([&o, name](size_t) { o.verb = name; });
  cmd->add_option("--state-dir", o.up.state_dir,
                  "The cloud's state directory (store, join token, hosts, logs)")
      ->capture_default_str();
  return cmd;
}

void view_flags(CLI::App* cmd, CloudCommandOptions& o) {
  cmd->add_option("--endpoint", o.endpoint,
                  "The control plane's URL (default: the one `up` recorded, else "
                  "http://127.0.0.1:8773)");
  cmd->add_flag("--json", o.json, "Print the control plane's JSON");
  cmd->add_option("--region", o.region,
                  "Ask this region's control plane (from the endpoint's list of regions), or "
                  "auto: the closest");
  cmd->add_option("--samples", o.samples, "Round trips timed per region (--latency, --region auto)")
      ->capture_default_str();
}

}  // namespace

void add_cloud_command(CLI::App& app, CloudCommandOptions& o) {
  CLI::App* cloud = app.add_subcommand(
      "cloud", "An EC2-compatible cloud on this machine: a control plane and its hosts");
  cloud->group("Cloud (nimbus-cloud and its hosts)");
  cloud->require_subcommand(1);

  CLI::App* cmd = verb(cloud, o, "up",
                       "Start the control plane and N hosts (nimbusd) that join it; print how "
                       "to use it with aws");
  cmd->add_option("--listen", o.up.listen, "The EC2 API's ADDRESS:PORT")->capture_default_str();
  cmd->add_option("--region", o.up.region, "The region's name")->capture_default_str();
  cmd->add_option("--zones", o.up.zones, "Availability zones: letters (a,b) or full names")
      ->capture_default_str();
  cmd->add_option("--strategy", o.up.strategy, "Placement: spread or pack")->capture_default_str();
  cmd->add_option("--hosts", o.up.hosts, "Hosts (nimbusd) to start, over the zones round-robin")
      ->capture_default_str();
  cmd->add_option("--host-memory", o.up.host_memory,
                  "Memory each host counts, e.g. 4G (default: the machine's)");
  cmd->add_option("--host-cpus", o.up.host_cpus, "CPUs each host counts (default: the machine's)");
  cmd->add_option("--credentials", o.up.credentials,
                  "Access keys (lines: ACCESS_KEY_ID SECRET) the EC2 API checks and the web "
                  "console signs in with (default: any key works, no console sign-in)");
  cmd->add_option("--timeout", o.timeout_s, "Seconds for everything to be up")
      ->capture_default_str();

  cmd = verb(cloud, o, "down",
             "Stop the control plane, the hosts' VMs and the hosts (their disks stay)");
  cmd->add_flag("--purge", o.purge, "Also delete the state directory (instances, disks, logs)");

  cmd = verb(cloud, o, "hosts", "The hosts: zone, state, allocated/capacity, instances");
  view_flags(cmd, o);
  cmd = verb(cloud, o, "zones", "The zones: hosts up and instances in each");
  view_flags(cmd, o);
  cmd = verb(cloud, o, "instances", "Every instance: state, type, zone, host, addresses");
  view_flags(cmd, o);
  cmd = verb(cloud, o, "regions",
             "The cloud's regions and endpoints; --latency: each one's round-trip time");
  view_flags(cmd, o);
  cmd->add_flag("--latency", o.latency,
                "Time a TCP connect and a small request to every region; name the closest");

  const auto move_flags = [&](CLI::App* c) {
    c->add_option("--endpoint", o.endpoint,
                  "The control plane's URL (default: the one `up` recorded, else "
                  "http://127.0.0.1:8773)");
    c->add_flag("--json", o.json, "Print the control plane's JSON");
  };
  cmd = verb(cloud, o, "move",
             "Live-migrate a running instance to another host of its zone (docs/cloud.md)");
  cmd->add_option("instance", o.target, "The instance id")->required();
  cmd->add_option("--host", o.move_host, "The host to move to (default: the scheduler's pick)");
  cmd->add_flag("--wait", o.wait, "Wait until it moved; print from, to and the downtime");
  cmd->add_option("--timeout", o.wait_timeout_s, "Seconds --wait waits")->capture_default_str();
  move_flags(cmd);
  cmd = verb(cloud, o, "drain",
             "Take no new instances on a host and move every running instance off it");
  cmd->add_option("host", o.target, "The host id")->required();
  cmd->add_flag("--wait", o.wait, "Wait until every move is done; print each");
  cmd->add_option("--timeout", o.wait_timeout_s, "Seconds --wait waits")->capture_default_str();
  move_flags(cmd);
  cmd = verb(cloud, o, "undrain", "Take new instances on a host again (cancels queued moves)");
  cmd->add_option("host", o.target, "The host id")->required();
  move_flags(cmd);
  cmd = cloud->add_subcommand("simulate",
                              "Run the scheduler over a simulated data center: spread, pack, "
                              "pack with live-migration consolidation (docs/simulation.md)");
  cmd->preparse_callback([&o](size_t) { o.verb = "simulate"; });
  add_simulate_flags(cmd, o.simulate);
}

int cloud_command(const CloudCommandOptions& o) {
  if (o.verb == "up") return cmd_up(o);
  if (o.verb == "down") return cmd_down(o);
  if (o.verb == "hosts" || o.verb == "zones" || o.verb == "instances" || o.verb == "regions")
    return cmd_view(o);
  if (o.verb == "move") return cmd_move(o);
  if (o.verb == "drain" || o.verb == "undrain") return cmd_drain(o);
  if (o.verb == "simulate") return simulate_command(o.simulate);
  return fail(o.verb, "unknown command", kExitUsage);
}

}  // namespace nimbus::cli
