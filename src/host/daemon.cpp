#include "host/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "host/image_fetch.h"
#include "host/linux_vm_processes.h"
#include "host/metrics.h"
#include "host/supervisor.h"
#include "host/vm_migration.h"
#include "host/vm_service.h"

namespace nimbus::host {
namespace fs = std::filesystem;

namespace {

// A refusal (the caller's to fix) is a warning, a failure of the host an error.
void log_outcome(const char* op, const std::string& vm, const Status& s) {
  if (s.ok()) return;
  switch (s.code()) {
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kConflict:
    case Code::kInsufficientCapacity:
      spdlog::warn("vm {}: {} refused ({}): {}", vm, op, code_name(s.code()), s.message());
      break;
    default:
      spdlog::error("vm {}: {} failed ({}): {}", vm, op, code_name(s.code()), s.message());
  }
}

template <typename T>
Result<T> logged(const char* op, const std::string& vm, Result<T> r) {
  log_outcome(op, vm, r.status());
  return r;
}

Status logged(const char* op, const std::string& vm, Status s) {
  log_outcome(op, vm, s);
  return s;
}

}  // namespace

Daemon::Daemon(DaemonOptions options, std::shared_ptr<VmProcesses> processes)
    : options_(std::move(options)), processes_(std::move(processes)) {}

Daemon::~Daemon() { shutdown(); }

std::string Daemon::describe() const {
  const CapacityPolicy& p = options_.policy;
  const bool sandboxed = rt_ && rt_->sandboxed();
  return fmt::format(
      "state {}; cgroups {}; sandbox {}; host: {} CPUs x {} overcommit, {} MiB memory ({} "
      "reserved, "
      "{} per VM), {} MiB disk ({} reserved)",
      options_.state_dir, processes_ ? processes_->describe_cgroups() : "none",
      sandboxed ? "on (own uid, seccomp)"
                : "off" + (sandbox_off_.empty() ? "" : ": " + sandbox_off_),
      p.cpus_override.value_or(host_.cpus), p.cpu_overcommit,
      p.memory_mib_override.value_or(host_.memory_mib), p.reserved_memory_mib, p.vm_overhead_mib,
      p.disk_mib_override.value_or(host_.disk_mib), p.reserved_disk_mib);
}

Status Daemon::init() {
  if (Status s = validate(options_.policy); !s.ok()) return s;
  std::error_code ec;
  for (const char* sub : {"", "/vms", "/images", "/net"}) {
    fs::create_directories(options_.state_dir + sub, ec);
    if (ec)
      return Status::internal(
          fmt::format("cannot create '{}{}': {}", options_.state_dir, sub, ec.message()));
  }
  // The VMMs (other uids) must reach their directories under the state directory.
  if (::chmod(options_.state_dir.c_str(), 0755) != 0 ||
      ::chmod((options_.state_dir + "/vms").c_str(), 0711) != 0) {
    spdlog::warn("cannot set the modes of '{}' and its vms/: {}", options_.state_dir,
                 std::strerror(errno));
  }
  // The VMMs run under uids of their own: they must be able to reach the nimbus binary and
  // the state directory. Where they cannot, they run as nimbusd's user (still in their
  // cgroup; seccomp still applies).
  if (options_.sandbox && ::geteuid() == 0) {
    sandbox_off_ = unreachable_by_others(options_.vmm_exe, S_IXOTH);
    if (sandbox_off_.empty()) sandbox_off_ = unreachable_by_others(options_.state_dir, S_IXOTH);
  } else if (options_.sandbox) {
    sandbox_off_ = "nimbusd is not running as root";
  } else {
    sandbox_off_ = "--no-sandbox";
  }
  const bool sandboxed = options_.sandbox && ::geteuid() == 0 && sandbox_off_.empty();
  // The host switch: VMs of different uids share it through the VM group, each in a port
  // directory of its uid that only nimbusd creates (switch_backend.h says why). Not the old
  // net/host.d, which VMs could write to: a socket bound there keeps its path for good.
  // (VmRuntime::prepare_switch, below, sets it up; private networks' switches likewise.)
  const std::string switch_path = options_.state_dir + "/net/hostnet";
  if (!options_.tunnel_listen.empty()) {
    backends::Tunnel::Options t;
    t.listen = options_.tunnel_listen;
    t.advertise = options_.tunnel_advertise;
    if (sandboxed) t.endpoint_group = options_.uid_base;
    auto tunnel = backends::Tunnel::create(t);
    if (!tunnel.ok()) return tunnel.status();
    tunnel_ = std::move(*tunnel);
  }
  auto reg = Registry::open(options_.state_dir + "/nimbus.db");
  if (!reg.ok()) return reg.status();
  registry_ = std::move(*reg);
  images_ = std::make_unique<ImageStore>(options_.state_dir + "/images");
  if (Status s = images_->ensure_default(options_.bundled_images); !s.ok()) {
    return s.with_context("importing the default image");
  }
  fetcher_ = std::make_unique<ImageFetcher>(*images_, options_.cloud_url, options_.cloud_token);
  fetcher_->clean_leftovers();
  auto host = detect_host_resources(options_.state_dir);
  if (!host.ok()) return host.status();
  host_ = *host;
  if (!processes_) {
    LinuxVmProcessesOptions o{options_.state_dir, options_.vmm_exe, options_.sandbox,
                              options_.uid_base, options_.policy.vm_overhead_mib};
    processes_ = std::make_shared<LinuxVmProcesses>(
        o, CgroupManager::detect(options_.cgroup_root, options_.cgroup_parent));
  }
  rt_ = std::make_unique<VmRuntime>(options_, *registry_, *images_, *processes_, host_, switch_path,
                                    sandbox_off_);
  if (Status s = rt_->prepare_switch(switch_path); !s.ok()) return s;
  if (tunnel_) {
    rt_->tunnel = tunnel_.get();
    // The networks of the VMs already here: their frames cross again at once.
    auto vms = registry_->list_vms();
    if (vms.ok()) {
      for (const VmRecord& v : *vms) {
        if (v.network)
          log_failure(v.name, "joining its network", rt_->prepare_network(v.network->vni));
      }
    }
    if (Status s = tunnel_->start(); !s.ok()) return s;
    spdlog::info("tunnel: UDP {} (advertised as {})", tunnel_->listen_endpoint(),
                 tunnel_->advertised_endpoint());
  }
  service_ = std::make_unique<VmService>(*rt_);
  supervisor_ = std::make_unique<Supervisor>(*rt_);
  migration_ = std::make_unique<VmMigration>(*rt_, http_migration_peer);
  supervisor_->recover();
  supervisor_->start();
  return {};
}

void Daemon::shutdown() {
  if (supervisor_) supervisor_->stop();
  if (tunnel_) tunnel_->stop();
}

std::string Daemon::tunnel_endpoint() const {
  return tunnel_ ? tunnel_->advertised_endpoint() : "";
}

Result<NetworkInfo> Daemon::network_info() {
  NetworkInfo n;
  if (!tunnel_) return n;
  n.tunnel = true;
  n.listen = tunnel_->listen_endpoint();
  n.endpoint = tunnel_->advertised_endpoint();
  n.peers = tunnel_->peers();
  n.vnis = tunnel_->networks();
  n.stats = tunnel_->stats();
  return n;
}

Result<NetworkInfo> Daemon::set_tunnel_peers(const std::vector<backends::TunnelPeer>& peers) {
  if (!tunnel_) return HostOps::set_tunnel_peers(peers);
  const auto before = tunnel_->peers();
  if (Status s = tunnel_->set_peers(peers); !s.ok()) {
    return logged("set tunnel peers", "-",
                  Result<NetworkInfo>(s.with_code(Code::kInvalidArgument)));
  }
  const auto after = tunnel_->peers();
  if (after != before) {
    std::string list;
    for (const auto& p : after) list += (list.empty() ? "" : ", ") + p.host + "=" + p.endpoint;
    spdlog::info("tunnel: peers now {}", list.empty() ? "none" : list);
  }
  return network_info();
}

void Daemon::monitor_once() { supervisor_->monitor_once(); }

Result<HostInfo> Daemon::host_info() {
  HostInfo h;
  char hostname[256] = {};
  if (::gethostname(hostname, sizeof hostname - 1) != 0)
    spdlog::warn("gethostname: {}", std::strerror(errno));
  {
    std::lock_guard<std::mutex> lock(rt_->mu);
    h.capacity = rt_->capacity_locked();
    auto vms = registry_->list_vms();
    if (!vms.ok()) spdlog::error("host info: listing the VMs failed: {}", vms.message());
    if (vms.ok()) {
      h.vms_total = static_cast<unsigned>(vms->size());
      for (const VmRecord& v : *vms) h.vms_running += v.pid != 0 ? 1 : 0;
    }
  }
  h.hostname = hostname;
  h.version = "0.1.0";
  h.state_dir = options_.state_dir;
  h.cgroup = processes_->describe_cgroups();
  h.sandbox = rt_->sandboxed();
  h.sandbox_note = sandbox_off_;
  h.vm_overhead_mib = options_.policy.vm_overhead_mib;
  return h;
}

Result<std::vector<ImageInfo>> Daemon::list_images() {
  auto list = images_->list();
  if (!list.ok())
    return logged("images", "-",
                  Result<std::vector<ImageInfo>>(list.status().with_code(Code::kInternal)));
  return list;
}

Result<FetchedImage> Daemon::fetch_image(const ImageFetchRequest& req) {
  auto r = fetcher_->fetch(req);
  if (r.ok()) {
    spdlog::info("image {}: {} (from {})", req.name,
                 r->created ? "fetched and installed" : "already present with these checksums",
                 req.source);
  } else if (r.code() == Code::kInvalidArgument || r.code() == Code::kConflict) {
    spdlog::warn("image {}: fetch refused ({}): {}", req.name, code_name(r.code()), r.message());
  } else {
    spdlog::error("image {}: fetch failed ({}): {}", req.name, code_name(r.code()), r.message());
  }
  return r;
}

Result<std::vector<VmInfo>> Daemon::list_vms() { return logged("list", "-", service_->list_vms()); }
Result<VmInfo> Daemon::get_vm(const std::string& n) {
  return logged("get", n, service_->get_vm(n));
}
Result<VmInfo> Daemon::create_vm(const CreateRequest& r) {
  return logged("create", r.name.empty() ? "(unnamed)" : r.name, service_->create_vm(r));
}
Result<MigrateResult> Daemon::migrate_vm(const std::string& n, const MigrateRequest& r) {
  return logged("migrate", n, migration_->migrate(n, r));
}
Result<IncomingResult> Daemon::prepare_incoming(const IncomingRequest& r) {
  return logged("incoming", r.vm.name, migration_->prepare_incoming(r));
}
Result<VmInfo> Daemon::commit_incoming(const std::string& n) {
  return logged("incoming commit", n, migration_->commit_incoming(n));
}
Status Daemon::abort_incoming(const std::string& n) {
  return logged("incoming abort", n, migration_->abort_incoming(n));
}
Status Daemon::delete_vm(const std::string& n) {
  return logged("delete", n, service_->delete_vm(n));
}
Result<VmInfo> Daemon::start_vm(const std::string& n) {
  return logged("start", n, service_->start_vm(n));
}
Result<StopResult> Daemon::stop_vm(const std::string& n, bool force, unsigned timeout_s) {
  return logged("stop", n, service_->stop_vm(n, force, timeout_s));
}
Result<VmInfo> Daemon::restart_vm(const std::string& n, bool force, unsigned timeout_s) {
  return logged("restart", n, service_->restart_vm(n, force, timeout_s));
}
Result<VmInfo> Daemon::pause_vm(const std::string& n) {
  return logged("pause", n, service_->pause_vm(n));
}
Result<VmInfo> Daemon::resume_vm(const std::string& n) {
  return logged("resume", n, service_->resume_vm(n));
}
Result<VmInfo> Daemon::resize_vm(const std::string& n, const ResizeRequest& r) {
  return logged("resize", n, service_->resize_vm(n, r));
}
Result<VmInfo> Daemon::set_forwards(const std::string& n,
                                    const std::vector<config::PortForward>& f) {
  return logged("set forwards", n, service_->set_forwards(n, f));
}

Result<VmInfo> Daemon::set_metadata(const std::string& n, const MetadataUpdate& u) {
  return logged("set metadata", n, service_->set_metadata(n, u));
}
Result<std::vector<SnapshotInfo>> Daemon::list_snapshots(const std::string& n) {
  return logged("list snapshots", n, service_->list_snapshots(n));
}
Result<SnapshotInfo> Daemon::create_snapshot(const std::string& n, const std::string& s) {
  return logged("snapshot", n, service_->create_snapshot(n, s));
}
Result<VmInfo> Daemon::restore_snapshot(const std::string& n, const std::string& s) {
  return logged("restore", n, service_->restore_snapshot(n, s));
}
Status Daemon::delete_snapshot(const std::string& n, const std::string& s) {
  return logged("delete snapshot", n, service_->delete_snapshot(n, s));
}

Result<ImageInfo> Daemon::export_image(const std::string& n, const ExportImageRequest& r) {
  return logged("export image", n, service_->export_image(n, r));
}

Result<ImageFileRef> Daemon::image_file(const std::string& image, const std::string& file) {
  auto i = images_->get(image);
  if (!i.ok()) return Status::not_found(fmt::format("no image named '{}'", image));
  // The image's own files only: those it lists, or (a local import) its kernel, initrd
  // and disk. A name is never joined to a path before it is found among them.
  std::vector<std::string> paths = {i->kernel, i->disk};
  if (!i->initrd.empty()) paths.push_back(i->initrd);
  for (const ImageFile& f : i->files) paths.push_back(i->dir + "/" + f.name);
  for (const std::string& p : paths) {
    if (std::filesystem::path(p).filename().string() != file) continue;
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(p, ec);
    if (ec) return Status::internal(fmt::format("image '{}': {}: {}", image, file, ec.message()));
    return ImageFileRef{p, size};
  }
  return Status::not_found(fmt::format("image '{}' has no file '{}'", image, file));
}

std::string Daemon::metrics() {
  auto host = host_info();
  auto vms = service_->list_vms();
  if (!vms.ok()) spdlog::error("metrics: listing the VMs failed: {}", vms.message());
  std::string out =
      prometheus_text(host.ok() ? *host : HostInfo{}, vms.ok() ? *vms : std::vector<VmInfo>{});
  if (tunnel_) {
    const backends::Tunnel::Stats s = tunnel_->stats();
    out +=
        "# HELP nimbus_tunnel_packets_total datagrams of the private networks' tunnel: sent to "
        "peers, taken from them, and dropped by reason\n"
        "# TYPE nimbus_tunnel_packets_total counter\n";
    for (auto [kind, v] : std::initializer_list<std::pair<const char*, uint64_t>>{
             {"tx", s.tx_packets},
             {"rx", s.rx_packets},
             {"tx_error", s.tx_errors},
             {"tx_too_big", s.tx_too_big},
             {"rx_unknown_sender", s.rx_unknown_sender},
             {"rx_malformed", s.rx_malformed},
             {"rx_unknown_vni", s.rx_unknown_vni},
             {"rx_spoofed", s.rx_spoofed}}) {
      out += fmt::format("nimbus_tunnel_packets_total{{kind=\"{}\"}} {}\n", kind, v);
    }
    out +=
        "# HELP nimbus_tunnel_bytes_total bytes of the tunnel's datagrams sent and taken\n"
        "# TYPE nimbus_tunnel_bytes_total counter\n";
    out += fmt::format("nimbus_tunnel_bytes_total{{kind=\"tx\"}} {}\n", s.tx_bytes);
    out += fmt::format("nimbus_tunnel_bytes_total{{kind=\"rx\"}} {}\n", s.rx_bytes);
  }
  return out;
}

}  // namespace nimbus::host
