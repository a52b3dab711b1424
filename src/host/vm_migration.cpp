#include "host/vm_migration.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>

#include "common/mac.h"
#include "config/device_json.h"
#include "host/host_api.h"
#include "host/host_api_client.h"
#include "host/host_checks.h"
#include "host/host_json.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kIncoming = "incoming";

class HttpPeer : public MigrationPeer {
 public:
  explicit HttpPeer(HostApiClient client) : client_(std::move(client)) {}
  Result<json> prepare(const json& incoming) override {
    client_.set_read_timeout_ms(90000);  // an overlay and a VMM start
    return client_.call("POST", "/v1/vms/incoming", incoming);
  }
  Result<json> commit(const std::string& name) override {
    client_.set_read_timeout_ms(30000);
    return client_.call("POST", "/v1/vms/" + name + "/incoming/commit", json::object());
  }
  Status abort(const std::string& name) override {
    client_.set_read_timeout_ms(30000);
    return client_.call("DELETE", "/v1/vms/" + name + "/incoming").status();
  }

 private:
  HostApiClient client_;
};

// A target's refusal keeps its code when it means something to the caller (409s); anything
// else the target or the way to it did is the target's doing: Unavailable (502 at the API).
Status from_target(const Status& s, const std::string& what) {
  const std::string m = fmt::format("{}: {}", what, s.message());
  if (s.code() == Code::kConflict) return Status::conflict(m);
  if (s.code() == Code::kInsufficientCapacity) return Status::insufficient_capacity(m);
  if (s.code() == Code::kDeadlineExceeded) return Status::deadline_exceeded(m);
  return Status::unavailable(m);
}

Result<std::string> get_string(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string())
    return Status::error(fmt::format("{} must be a string", key));
  return j[key].get<std::string>();
}

Result<uint64_t> get_count(const json& j, const char* key, uint64_t lo, uint64_t hi) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    return Status::error(fmt::format("{} must be a whole number from {} to {}", key, lo, hi));
  const uint64_t n = v.get<uint64_t>();
  if (n < lo || n > hi)
    return Status::error(fmt::format("{} must be a whole number from {} to {}", key, lo, hi));
  return n;
}

Result<std::string> get_mac(const json& j, const char* key) {
  auto s = get_string(j, key);
  if (!s.ok()) return Status::error(fmt::format("macs.{} must be a MAC address", key));
  auto mac = parse_mac(*s);
  if (!mac.ok() || ((*mac)[0] & 1) != 0)
    return Status::error(fmt::format("macs.{} must be a unicast MAC address", key));
  return format_mac(*mac);
}

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

const ImageFile* disk_file(const std::vector<ImageFile>& files) {
  for (const ImageFile& f : files) {
    if (f.role == "disk") return &f;
  }
  return nullptr;
}

// A string field of a peer's or a VMM's reply: "" when absent or not a string (never throws).
std::string str(const json& j, const char* key) {
  if (!j.is_object()) return std::string();
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

}  // namespace

Result<std::unique_ptr<MigrationPeer>> http_migration_peer(const std::string& target,
                                                           const std::string& token) {
  auto c = HostApiClient::create(target, token);
  if (!c.ok()) return c.status();
  c->set_connect_timeout_ms(3000);
  return std::unique_ptr<MigrationPeer>(new HttpPeer(std::move(*c)));
}

json incoming_body(const VmRecord& vm, const ImageInfo& image, unsigned timeout_s) {
  json j = {{"name", vm.name},
            {"image", vm.image},
            {"cpus", vm.cpus},
            {"memory_mib", vm.memory_mib},
            {"disk_mib", vm.disk_mib},
            {"restart_policy", vm.restart_policy},
            {"macs", {{"user", vm_user_mac(vm)}, {"host", vm_host_mac(vm)}}},
            {"slot", vm.slot},
            {"timeout_s", timeout_s}};
  json fw = json::array();
  for (const config::PortForward& f : vm.forwards) {
    fw.push_back({{"protocol", f.protocol},
                  {"host_address", f.host_address},
                  {"host_port", f.host_port},
                  {"guest_port", f.guest_port}});
  }
  j["forwards"] = fw;
  if (vm.metadata) j["metadata"] = config::to_json(*vm.metadata);
  if (vm.network) {
    json n = {{"vni", vm.network->vni}, {"address", vm.network->address}, {"mtu", vm.network->mtu}};
    if (!vm.network->gateway.empty()) n["gateway"] = vm.network->gateway;
    j["network"] = n;
  }
  json files = json::array();
  for (const ImageFile& f : image.files) {
    files.push_back({{"name", f.name}, {"role", f.role}, {"size", f.size}, {"sha256", f.sha256}});
  }
  j["image_files"] = files;
  std::error_code ec;
  const auto size = fs::file_size(image.disk, ec);
  j["image_disk_bytes"] = ec ? 0 : static_cast<uint64_t>(size);
  return j;
}

Result<IncomingRequest> parse_incoming_request(const json& j) {
  if (!j.is_object()) return Status::error("the incoming body must be a JSON object");
  IncomingRequest r;
  json vm = j;
  if (j.contains("start")) return Status::error("unknown field \"start\" in incoming");
  if (!j.contains("name")) return Status::error("incoming: \"name\" is required");
  if (!j.contains("macs") || !j["macs"].is_object())
    return Status::error("incoming: \"macs\" {\"user\", \"host\"} is required");
  for (auto it = j["macs"].begin(); it != j["macs"].end(); ++it) {
    if (it.key() != "user" && it.key() != "host")
      return Status::error("unknown field in macs (accepted: host, user)");
  }
  auto user = get_mac(j["macs"], "user");
  if (!user.ok()) return user.status();
  auto host = get_mac(j["macs"], "host");
  if (!host.ok()) return host.status();
  r.mac_user = *user;
  r.mac_host = *host;
  vm.erase("macs");
  if (j.contains("slot")) {
    auto n = get_count(j, "slot", kMinSlot, kMaxSlot);
    if (!n.ok()) return n.status();
    r.slot = static_cast<unsigned>(*n);
    vm.erase("slot");
  }
  if (j.contains("image_disk_bytes")) {
    auto n = get_count(j, "image_disk_bytes", 0, uint64_t{1} << 50);
    if (!n.ok()) return n.status();
    r.image_disk_bytes = *n;
    vm.erase("image_disk_bytes");
  }
  if (j.contains("timeout_s")) {
    auto n = get_count(j, "timeout_s", 10, 7200);
    if (!n.ok()) return n.status();
    r.timeout_s = static_cast<unsigned>(*n);
    vm.erase("timeout_s");
  }
  if (j.contains("image_files")) {
    const json& a = j["image_files"];
    if (!a.is_array() || a.size() > 8)
      return Status::error("image_files must be an array of at most 8 files");
    for (const json& f : a) {
      if (!f.is_object()) return Status::error("image_files: each file is an object");
      ImageFile file;
      for (const char* k : {"name", "role", "sha256"}) {
        auto s = get_string(f, k);
        if (!s.ok()) return Status::error(fmt::format("image_files: {}", s.message()));
      }
      file.name = f["name"].get<std::string>();
      file.role = f["role"].get<std::string>();
      file.sha256 = f["sha256"].get<std::string>();
      if (!is_hex64(file.sha256))
        return Status::error("image_files: sha256 must be 64 lowercase hex digits");
      if (!f.contains("size")) return Status::error("image_files: size is required");
      auto size = get_count(f, "size", 0, uint64_t{1} << 50);
      if (!size.ok()) return Status::error(fmt::format("image_files: {}", size.message()));
      file.size = *size;
      r.image_files.push_back(file);
    }
    vm.erase("image_files");
  }
  auto create = parse_create_request(vm);
  if (!create.ok()) return create.status();
  r.vm = *create;
  if (r.vm.name.empty()) return Status::error("incoming: \"name\" is required");
  return r;
}

Result<MigrateRequest> parse_migrate_request(const json& j) {
  if (!j.is_object()) return Status::error("the migrate body must be a JSON object");
  // "forwards" is parsed by the API (the create request's rules).
  static const std::set<std::string> kFields = {"target", "target_token", "max_downtime_ms",
                                                "timeout_s", "forwards"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kFields.count(it.key()) == 0) {
      return Status::error(fmt::format(
          "unknown field {} in migrate (accepted: forwards, max_downtime_ms, target, "
          "target_token, timeout_s)",
          json(it.key().substr(0, 64)).dump(-1, ' ', false, json::error_handler_t::replace)));
    }
  }
  MigrateRequest r;
  auto target = get_string(j, "target");
  if (!target.ok()) return Status::error("migrate: \"target\" (http://HOST:PORT) is required");
  r.target = *target;
  if (r.target.rfind("http://", 0) != 0 || r.target.size() > 256 ||
      !http::parse_target(r.target).ok()) {
    return Status::error("migrate: target must be the target nimbusd's TCP API, http://HOST:PORT");
  }
  if (j.contains("target_token")) {
    auto t = get_string(j, "target_token");
    if (!t.ok() || t->size() > 4096 || t->find_first_of("\r\n") != std::string::npos)
      return Status::error("migrate: target_token must be a string of one line");
    r.target_token = *t;
  }
  if (j.contains("max_downtime_ms")) {
    auto n = get_count(j, "max_downtime_ms", 1, 60000);
    if (!n.ok()) return n.status();
    r.max_downtime_ms = static_cast<unsigned>(*n);
  }
  if (j.contains("timeout_s")) {
    auto n = get_count(j, "timeout_s", 10, 3600);
    if (!n.ok()) return n.status();
    r.timeout_s = static_cast<unsigned>(*n);
  }
  return r;
}

json to_json(const MigrateResult& r) {
  json j = {{"migrated", r.name},
            {"target", r.target},
            {"downtime_ms", r.downtime_ms},
            {"total_ms", r.total_ms},
            {"ram_bytes_sent", r.ram_bytes_sent},
            {"disk_bytes_sent", r.disk_bytes_sent},
            {"rounds", r.rounds},
            {"vm", r.vm}};
  if (!r.warning.empty()) j["warning"] = r.warning;
  return j;
}

// ---- VmMigration ------------------------------------------------------------------------

VmMigration::VmMigration(VmRuntime& rt, MigrationPeerFactory peers)
    : rt_(rt), peers_(std::move(peers)) {}

VmMigration::~VmMigration() {
  stopping_ = true;
  std::lock_guard<std::mutex> lock(watch_mu_);
  for (Watcher& w : watchers_) {
    if (w.thread.joinable()) w.thread.join();
  }
}

void VmMigration::set_progress(const std::string& name, const json& m) {
  std::lock_guard<std::mutex> lock(rt_.mu);
  rt_.migrations[name] = m;
}

Result<MigrateResult> VmMigration::migrate(const std::string& name, const MigrateRequest& req) {
  auto vm = rt_.acquire(name, "migrate");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (vm->state != "running" || !rt_.processes.alive(*vm)) {
    return Status::conflict(
        fmt::format("VM '{}' is {}: only a running VM can be migrated", name, vm->state));
  }
  auto image = rt_.images.get(vm->image);
  if (!image.ok()) return image.status().with_code(Code::kInternal);
  const auto started = Clock::now();
  json progress = {{"role", "source"}, {"state", "preparing"}, {"target", req.target}};
  set_progress(name, progress);
  auto fail = [&](Status s) {
    progress["state"] = "failed";
    progress["error"] = s.message();
    set_progress(name, progress);
    spdlog::warn("vm {}: migration to {} failed: {}", name, req.target, s.message());
    return s;
  };

  auto peer = peers_(req.target, req.target_token);
  if (!peer.ok()) return fail(from_target(peer.status(), "cannot reach the target"));
  VmRecord there = *vm;
  if (req.forwards) there.forwards = *req.forwards;
  auto prepared = (*peer)->prepare(incoming_body(there, *image, req.timeout_s + 30));
  if (!prepared.ok()) return fail(from_target(prepared.status(), "the target refused the VM"));
  const std::string listen = str(*prepared, "listen");
  auto abort_target = [&](const std::string& why) {
    if (Status s = (*peer)->abort(name); !s.ok())
      spdlog::warn("vm {}: removing the target's incoming VM ({}): {}", name, why, s.message());
  };
  if (listen.rfind("tcp:", 0) != 0 || listen.size() > 128) {
    abort_target("bad listen");
    return fail(Status::unavailable("the target answered without a migration address"));
  }
  spdlog::info("vm {}: migrating to {} (its VMM listens on {})", name, req.target, listen);
  auto put = rt_.processes.migration(
      name, "PUT", json{{"destination", listen}, {"max_downtime_ms", req.max_downtime_ms}});
  if (!put.ok()) {
    abort_target("the VMM refused");
    return fail(Status::unavailable("the VMM did not start the migration: " + put.message()));
  }
  progress["state"] = "active";
  set_progress(name, progress);

  const auto deadline = started + std::chrono::seconds(req.timeout_s);
  bool cancelled = false;
  json last = json::object();
  bool completed = false;
  for (;;) {
    auto r = rt_.processes.migration(name, "GET", json());
    if (r.ok() && r->is_object()) {
      last = *r;
      for (auto it = r->begin(); it != r->end(); ++it) progress[it.key()] = it.value();
      progress["role"] = "source";
      progress["target"] = req.target;
      set_progress(name, progress);
      const std::string state = str(*r, "state");
      if (state == "completed") {
        completed = true;
        break;
      }
      if (state == "failed" || state == "cancelled") {
        abort_target(state);
        const std::string err = str(*r, "error").empty() ? state : str(*r, "error");
        if (cancelled)
          return fail(Status::deadline_exceeded(fmt::format(
              "the migration did not complete within {} s and was cancelled", req.timeout_s)));
        return fail(Status::unavailable("the migration failed: " + err));
      }
    } else if (!rt_.processes.alive(*vm)) {
      // The VMM ended: after a completed migration (exit "migrated") or by a crash. The
      // target knows which: its VMM runs the guest only if the source gave it up.
      const VmmExit exit = rt_.processes.take_exit(*vm);
      if (exit.description.find("migrated") != std::string::npos) {
        completed = true;
        break;
      }
      auto c = (*peer)->commit(name);
      if (c.ok()) {
        completed = true;
        break;
      }
      abort_target("the source VMM ended");
      vm->pid = 0;
      vm->state = "crashed";
      vm->last_exit = exit.description;
      log_failure(name, "saving the crash", rt_.save(*vm));
      return fail(Status::unavailable("the VMM ended during the migration: " + exit.description));
    }
    if (!cancelled && Clock::now() >= deadline) {
      cancelled = true;
      log_failure(name, "cancelling the migration",
                  rt_.processes.migration(name, "DELETE", json()).status());
    } else if (cancelled && Clock::now() >= deadline + std::chrono::seconds(15)) {
      abort_target("timeout");
      return fail(Status::deadline_exceeded(
          fmt::format("the migration did not complete within {} s (and did not stop when "
                      "cancelled)",
                      req.timeout_s)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  (void)completed;

  // The guest runs on the target now (or is about to: the target resumes it once this VMM
  // gave it up). Commit there (a few tries: the target's VMM may take a moment to say
  // Running), then delete the VM here.
  MigrateResult result;
  result.name = name;
  result.target = req.target;
  result.downtime_ms = num(last, "downtime_ms");
  result.total_ms = num(last, "total_ms");
  result.ram_bytes_sent = static_cast<uint64_t>(num(last, "ram_bytes_sent"));
  result.disk_bytes_sent = static_cast<uint64_t>(num(last, "disk_bytes_sent"));
  result.rounds = static_cast<uint64_t>(num(last, "round"));
  Status commit_error;
  for (int attempt = 0; attempt < 50; attempt++) {
    auto c = (*peer)->commit(name);
    if (c.ok()) {
      result.vm = *c;
      commit_error = {};
      break;
    }
    commit_error = c.status();
    if (c.code() != Code::kConflict) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // The source's VMM may have ended before it was asked how it went: the target's figures.
  if (str(last, "state") != "completed" && result.vm.is_object() &&
      result.vm.contains("migration") && result.vm["migration"].is_object()) {
    const json& t = result.vm["migration"];
    result.downtime_ms = num(t, "downtime_ms");
    result.total_ms = num(t, "total_ms");
    result.ram_bytes_sent = static_cast<uint64_t>(num(t, "ram_bytes_sent"));
    result.disk_bytes_sent = static_cast<uint64_t>(num(t, "disk_bytes_sent"));
    result.rounds = static_cast<uint64_t>(num(t, "round"));
  }
  if (!commit_error.ok()) {
    result.warning = "the commit on the target failed (its VM commits itself when its VMM runs): " +
                     commit_error.message();
    spdlog::warn("vm {}: {}", name, result.warning);
  }
  rt_.stop_process(*vm, true, 0);
  const VmPaths p = rt_.paths(name);
  std::error_code ec;
  fs::remove_all(p.dir, ec);
  if (ec) spdlog::warn("vm {}: removing '{}': {}", name, p.dir, ec.message());
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    log_failure(name, "removing its row", rt_.registry.delete_vm(name));
    rt_.ready.erase(name);
    rt_.migrations.erase(name);
    rt_.restart_budget.forget(name);
  }
  const double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  spdlog::info(
      "vm {}: migrated to {} in {:.0f} ms (downtime {:.1f} ms, {} RAM bytes, {} disk "
      "bytes); deleted here",
      name, req.target, elapsed, result.downtime_ms, result.ram_bytes_sent, result.disk_bytes_sent);
  if (result.total_ms == 0) result.total_ms = elapsed;
  return result;
}

Result<IncomingResult> VmMigration::prepare_incoming(const IncomingRequest& req) {
  const CreateRequest& cr = req.vm;
  auto image = rt_.images.get(cr.image);
  if (!image.ok()) {
    return Status::conflict(
        fmt::format("image '{}' is not on this host (fetch it first: POST /v1/images)", cr.image));
  }
  // The target's overlay goes on its own copy of the image: it must be the same image.
  const ImageFile* theirs = disk_file(req.image_files);
  const ImageFile* ours = disk_file(image->files);
  if (theirs && ours) {
    if (theirs->sha256 != ours->sha256) {
      return Status::conflict(fmt::format(
          "image '{}' here is not the source's (its disk's sha256 is {}, the source's {})",
          cr.image, ours->sha256, theirs->sha256));
    }
  } else if (req.image_disk_bytes != 0) {
    std::error_code ec;
    const auto size = fs::file_size(image->disk, ec);
    if (ec || size != req.image_disk_bytes) {
      return Status::conflict(
          fmt::format("image '{}' here is not the source's (its disk is {} bytes, the source's {})",
                      cr.image, ec ? 0 : static_cast<uint64_t>(size), req.image_disk_bytes));
    }
  }
  VmRecord vm;
  vm.name = cr.name;
  vm.image = cr.image;
  vm.cpus = cr.cpus;
  vm.memory_mib = cr.memory_mib;
  vm.disk_mib = cr.disk_mib != 0 ? cr.disk_mib : image->disk_mib;
  if (vm.disk_mib < image->disk_mib) {
    return Status::invalid_argument(fmt::format("disk_mib {} is smaller than image '{}' ({} MiB)",
                                                vm.disk_mib, cr.image, image->disk_mib));
  }
  vm.forwards = cr.forwards;
  vm.metadata = cr.metadata;
  vm.network = cr.network;
  vm.restart_policy = cr.restart_policy;
  vm.desired_state = "running";
  vm.state = "creating";
  vm.created_at = utc_now();
  vm.mac_user = req.mac_user;
  vm.mac_host = req.mac_host;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto all = rt_.registry.list_vms();
    if (!all.ok()) return all.status().with_code(Code::kInternal);
    std::set<unsigned> slots;
    for (const VmRecord& v : *all) {
      if (v.name == vm.name)
        return Status::conflict(fmt::format("a VM named '{}' already exists here", vm.name));
      slots.insert(v.slot);
    }
    // Capacity first (the reason a scheduler most wants to know), then what collides.
    vm.slot = req.slot != 0 ? req.slot : kMinSlot;  // for the check only; chosen below
    if (Status s = rt_.check_fit_locked(vm, vm.name, true, true); !s.ok())
      return s.with_context(fmt::format("cannot take VM '{}'", vm.name));
    // No other VM here may forward the same host ports; whether they can be bound is not
    // checked: on one machine the source's VMM still holds them. The VMM takes them at the
    // commit, once the source's is gone.
    if (Status s = rt_.check_ports_locked(vm, vm.forwards); !s.ok()) return s;
    vm.slot = 0;
    // On the host network the guest keeps the address of its slot (10.88.X.Y, configured by
    // its kernel at boot): it needs the same slot here. On a private network its address
    // and eth1 MAC are its own; any slot does, and its MACs stay pinned.
    if (!vm.network) {
      if (req.slot == 0 || slots.count(req.slot) != 0) {
        return Status::conflict(fmt::format(
            "slot {} is taken here: a VM on the host network keeps its address {} and MAC {}, "
            "which another VM here has",
            req.slot, host_network_address(req.slot), vm.mac_host));
      }
      vm.slot = req.slot;
    } else if (req.slot != 0 && slots.count(req.slot) == 0) {
      vm.slot = req.slot;
    }
    for (unsigned s = kMinSlot; s <= kMaxSlot && vm.slot == 0; s++) {
      if (slots.count(s) == 0) vm.slot = s;
    }
    if (vm.slot == 0) return Status::insufficient_capacity("this host has no free VM slot");
    for (const VmRecord& v : *all) {
      const bool same_switch = (!vm.network && !v.network) ||
                               (vm.network && v.network && v.network->vni == vm.network->vni);
      if (vm.network && v.network && v.network->vni == vm.network->vni &&
          network_host_address(*v.network) == network_host_address(*vm.network)) {
        return Status::conflict(fmt::format("VM '{}' already has {} in network {}", v.name,
                                            network_host_address(*vm.network), vm.network->vni));
      }
      if (same_switch && vm_host_mac(v) == vm.mac_host) {
        return Status::conflict(
            fmt::format("VM '{}' here already has the MAC {} on its switch", v.name, vm.mac_host));
      }
    }
    vm.uid = rt_.sandboxed() ? rt_.options.uid_base + vm.slot : 0;
    if (Status s = rt_.registry.insert_vm(vm); !s.ok()) return s.with_code(Code::kConflict);
    rt_.busy[vm.name] = kIncoming;
    rt_.migrations[vm.name] = {{"role", "target"}, {"state", "preparing"}};
  }
  spdlog::info(
      "vm {}: incoming ({} vCPUs, {} MiB, {} MiB disk, image {}, slot {}, uid {}, MACs "
      "{} {})",
      vm.name, vm.cpus, vm.memory_mib, vm.disk_mib, vm.image, vm.slot, vm.uid, vm.mac_user,
      vm.mac_host);
  const VmPaths p = rt_.paths(vm.name);
  auto rollback = [&](const Status& why) {
    remove_incoming(vm, why.message());
    return Status(why.code() == Code::kOk ? Code::kInternal : why.code(),
                  fmt::format("cannot take VM '{}': {}", vm.name, why.message()));
  };
  if (Status s = rt_.prepare_dir(vm); !s.ok()) return rollback(s.with_code(Code::kInternal));
  if (Status s = rt_.create_disk(vm, *image, p.disk); !s.ok())
    return rollback(s.with_code(Code::kInternal));
  rt_.chown_vm(vm, p.disk);
  const std::string listen = "tcp:" + rt_.options.migration_host + ":0";
  // Its VMM starts without the forwards (commit_locked_out applies them).
  const std::vector<config::PortForward> forwards = vm.forwards;
  vm.forwards.clear();
  const Status started = rt_.start_process(vm, "", listen);
  vm.forwards = forwards;
  if (!started.ok())
    return rollback(Status::internal("its VMM did not start: " + started.message()));
  if (Status s = rt_.save(vm); !s.ok()) return rollback(s.with_code(Code::kInternal));
  // The VMM says where it listens once it does.
  json m;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto r = rt_.processes.migration(vm.name, "GET", json());
    if (r.ok() && r->is_object()) {
      m = *r;
      const std::string state = str(m, "state");
      if (state == "failed")
        return rollback(Status::internal("its VMM failed: " + str(m, "error")));
      if (!str(m, "listen").empty() && state == "listening") break;
    }
    if (Clock::now() >= deadline)
      return rollback(Status::internal("its VMM did not say where it listens within 10 s"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  m["role"] = "target";
  set_progress(vm.name, m);
  {
    std::lock_guard<std::mutex> lock(deadline_mu_);
    deadlines_[vm.name] = Clock::now() + std::chrono::seconds(req.timeout_s);
  }
  if (rt_.options.monitor_interval_ms != 0) {
    std::lock_guard<std::mutex> lock(watch_mu_);
    for (auto it = watchers_.begin(); it != watchers_.end();) {
      if (*it->done) {
        it->thread.join();
        it = watchers_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    watchers_.push_back(Watcher{std::thread([this, n = vm.name, done] {
                                  watch(n);
                                  *done = true;
                                }),
                                done});
  }
  IncomingResult out;
  out.listen = m["listen"].get<std::string>();
  out.vm = rt_.info(vm, false);
  return out;
}

Result<VmRecord> VmMigration::claim_incoming(const std::string& name, const std::string& op) {
  std::lock_guard<std::mutex> lock(rt_.mu);
  auto vm = rt_.registry.get_vm(name);
  if (!vm.ok()) return vm.status().with_code(Code::kInternal);
  if (!vm->has_value())
    return Status::not_found(fmt::format("no VM named '{}' (see 'nimbus list')", name));
  auto it = rt_.busy.find(name);
  if ((**vm).state != kIncoming || it == rt_.busy.end()) {
    return Status::conflict(fmt::format("VM '{}' is {}, not an incoming VM", name, (**vm).state));
  }
  if (it->second != kIncoming) {
    return Status::conflict(
        fmt::format("VM '{}' is busy ({} in progress); try again in a moment", name, it->second));
  }
  it->second = op;
  return **vm;
}

void VmMigration::unclaim(const std::string& name) {
  std::lock_guard<std::mutex> lock(rt_.mu);
  rt_.busy[name] = kIncoming;
}

void VmMigration::remove_incoming(const VmRecord& vm, const std::string& why) {
  spdlog::warn("vm {}: incoming VM removed: {}", vm.name, why);
  rt_.kill_vmms(vm, 5000);
  std::error_code ec;
  fs::remove_all(rt_.paths(vm.name).dir, ec);
  if (ec) spdlog::warn("vm {}: removing '{}': {}", vm.name, rt_.paths(vm.name).dir, ec.message());
  rt_.remove_cgroup(vm.name);
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    log_failure(vm.name, "removing its row", rt_.registry.delete_vm(vm.name));
    rt_.ready.erase(vm.name);
    rt_.busy.erase(vm.name);
    rt_.migrations.erase(vm.name);
    rt_.restart_budget.forget(vm.name);
  }
  std::lock_guard<std::mutex> lock(deadline_mu_);
  deadlines_.erase(vm.name);
}

Result<VmInfo> VmMigration::commit_locked_out(VmRecord vm) {
  auto status = rt_.processes.info(vm.name, 2000);
  auto m = rt_.processes.migration(vm.name, "GET", json());
  const std::string mstate = m.ok() ? str(*m, "state") : "";
  if (!status.ok() || status->state != "Running") {
    unclaim(vm.name);
    return Status::conflict(fmt::format("VM '{}' has not arrived yet (its VMM is {}, migration {})",
                                        vm.name, status.ok() ? status->state : status.message(),
                                        mstate.empty() ? "unknown" : mstate));
  }
  // The forwards: the source's VMM may still hold them for a moment (one machine).
  // Those that can never be bound here (an address of another host: the caller replaces
  // them with PUT .../forwards) are left out at once rather than waited for.
  std::string warning;
  std::vector<config::PortForward> usable;
  for (const config::PortForward& f : vm.forwards) {
    const Status s = check_host_port(f);
    if (s.ok() || s.code() == Code::kConflict) {
      usable.push_back(f);
    } else {
      warning += (warning.empty() ? "" : "; ") + s.message();
    }
  }
  if (!usable.empty()) {
    const auto until = Clock::now() + std::chrono::seconds(5);
    Status s;
    while (!(s = rt_.processes.set_forwards(vm.name, usable)).ok() && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!s.ok()) warning += (warning.empty() ? "" : "; ") + s.message();
  }
  if (!warning.empty()) {
    warning = "forwards not listened on: " + warning;
    spdlog::warn("vm {}: {}", vm.name, warning);
  }
  vm.state = "running";
  vm.desired_state = "running";
  vm.started_at = utc_now();
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    rt_.ready[vm.name] = true;  // the guest (and its agent) ran on the source
    if (Status s = rt_.save_locked(vm); !s.ok()) {
      rt_.busy[vm.name] = kIncoming;
      return s.with_code(Code::kInternal);
    }
    json done = m.ok() && m->is_object() ? *m : json::object();
    done["role"] = "target";
    done["state"] = "completed";
    if (!warning.empty()) done["warning"] = warning;
    rt_.migrations[vm.name] = done;
    rt_.busy.erase(vm.name);
  }
  {
    std::lock_guard<std::mutex> lock(deadline_mu_);
    deadlines_.erase(vm.name);
  }
  spdlog::info("vm {}: arrived (migration completed); running here", vm.name);
  return rt_.info(vm, false);
}

Result<VmInfo> VmMigration::commit_incoming(const std::string& name) {
  // Already committed (by the watcher, or a commit whose reply was lost): the same answer.
  std::optional<VmRecord> done;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto vm = rt_.registry.get_vm(name);
    auto m = rt_.migrations.find(name);
    if (vm.ok() && vm->has_value() && (**vm).state != kIncoming && rt_.busy.count(name) == 0 &&
        m != rt_.migrations.end() && str(m->second, "role") == "target" &&
        str(m->second, "state") == "completed") {
      done = **vm;
    }
  }
  if (done) return rt_.info(*done, false);
  auto vm = claim_incoming(name, "incoming commit");
  if (!vm.ok()) return vm.status();
  return commit_locked_out(*vm);
}

Status VmMigration::abort_incoming(const std::string& name) {
  auto vm = claim_incoming(name, "incoming abort");
  if (!vm.ok()) return vm.status();
  remove_incoming(*vm, "the source gave up the migration");
  return {};
}

bool VmMigration::check_incoming(const std::string& name) {
  auto vm = claim_incoming(name, "incoming check");
  if (!vm.ok()) {
    // Busy with a commit or an abort: look again later; gone or no longer incoming: done.
    return vm.message().find("is busy") == std::string::npos;
  }
  if (!rt_.processes.alive(*vm)) {
    const VmmExit exit = rt_.processes.take_exit(*vm);
    remove_incoming(*vm, "its VMM ended: " + exit.description);
    return true;
  }
  auto m = rt_.processes.migration(name, "GET", json());
  const std::string state = m.ok() ? str(*m, "state") : "";
  if (state == "failed" || state == "cancelled") {
    remove_incoming(*vm, "the migration " + state + ": " + str(*m, "error"));
    return true;
  }
  if (state == "completed") {
    if (commit_locked_out(*vm).ok()) return true;
    // Not Running yet: commit_locked_out gave the claim back.
  } else {
    if (m.ok() && m->is_object()) {
      json p = *m;
      p["role"] = "target";
      set_progress(name, p);
    }
    unclaim(name);
  }
  bool late = false;
  {
    std::lock_guard<std::mutex> lock(deadline_mu_);
    auto d = deadlines_.find(name);
    late = d != deadlines_.end() && Clock::now() >= d->second;
  }
  if (!late) return false;
  auto again = claim_incoming(name, "incoming check");
  if (!again.ok()) return false;
  remove_incoming(*again, "the migration did not complete in time");
  return true;
}

void VmMigration::watch(const std::string& name) {
  while (!stopping_) {
    if (check_incoming(name)) return;
    for (int i = 0; i < 5 && !stopping_; i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
}

}  // namespace nimbus::host
