#include "cloud/reconciler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "cloud/instance_metadata.h"
#include "host/host_api_client.h"

namespace nimbus::cloud {

namespace {

constexpr auto kPassInterval = std::chrono::milliseconds(1000);
constexpr auto kRetryAfterError = std::chrono::seconds(3);
constexpr int kStopTimeoutS = 30;
constexpr unsigned kMaxStartAttempts = 3;
// A migration copies the guest's memory and disk while it runs: minutes for a large one.
// The source gives up after kMigrateTimeoutS (nimbusd's timeout_s); the call waits longer.
constexpr int kMigrateTimeoutS = 600;
constexpr int kMigrateTimeoutMs = (kMigrateTimeoutS + 60) * 1000;
constexpr int kMaxDowntimeMs = 100;

// What a host says (its heartbeat, its API's replies) is read field by field: a missing
// field or one of another type reads as absent, never throws (json::value() and a const
// operator[] would).
const nlohmann::json& field(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kAbsent;
  if (!j.is_object()) return kAbsent;
  auto it = j.find(key);
  return it == j.end() ? kAbsent : *it;
}

std::string text(const nlohmann::json& j, const char* key, const std::string& fallback = "") {
  const auto& v = field(j, key);
  return v.is_string() ? v.get<std::string>() : fallback;
}

int64_t integer(const nlohmann::json& j, const char* key) {
  const auto& v = field(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : -1;
}

bool flag(const nlohmann::json& j, const char* key) {
  const auto& v = field(j, key);
  return v.is_boolean() && v.get<bool>();
}

// A set of forwards as comparable values (order and extra fields do not matter).
std::set<std::string> forward_set(const nlohmann::json& list) {
  std::set<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& f : list) {
    if (!f.is_object()) continue;
    out.insert(fmt::format("{}/{}:{}>{}", text(f, "protocol", "tcp"), text(f, "host_address"),
                           integer(f, "host_port"), integer(f, "guest_port")));
  }
  return out;
}

std::set<std::string> forward_set(const std::vector<nlohmann::json>& list) {
  return forward_set(nlohmann::json(list));
}

const nlohmann::json* find_vm(const nlohmann::json& vms, const std::string& name) {
  if (!vms.is_array()) return nullptr;
  for (const auto& vm : vms) {
    if (text(vm, "name") == name) return &vm;
  }
  return nullptr;
}

}  // namespace

Result<nlohmann::json> NimbusdDriver::call(const HostRecord& host, const std::string& method,
                                           const std::string& path,
                                           const std::optional<nlohmann::json>& body,
                                           int timeout_ms) {
  auto client = host::HostApiClient::create(host.api_url, host.api_token);
  if (!client.ok()) return client.status();
  client->set_connect_timeout_ms(2000);
  client->set_read_timeout_ms(timeout_ms);
  return client->call(method, path, body);
}

Reconciler::Reconciler(Cloud& cloud, HostDriver& driver, std::string image_source, unsigned workers)
    : cloud_(cloud), driver_(driver), image_source_(std::move(image_source)), workers_(workers) {}

Reconciler::~Reconciler() { stop(); }

void Reconciler::start() {
  if (loop_thread_.joinable()) return;  // running
  stop_ = false;
  for (unsigned i = 0; i < workers_; ++i) worker_threads_.emplace_back([this] { worker(); });
  loop_thread_ = std::thread([this] { loop(); });
}

void Reconciler::stop() {
  stop_ = true;
  cloud_.kick();
  cv_.notify_all();
  if (loop_thread_.joinable()) loop_thread_.join();
  for (auto& t : worker_threads_) {
    if (t.joinable()) t.join();
  }
  worker_threads_.clear();
  // What was queued and not acted on is found again by the next pass (start() after a
  // stop(): a replica that leads again).
  std::lock_guard<std::mutex> lock(mu_);
  queue_.clear();
  queued_.clear();
}

void Reconciler::loop() {
  while (!stop_) {
    auto all = cloud_.instances();
    if (all.ok()) {
      purge_terminated(*all);
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& inst : *all) {
        if (queued_.count(inst.id)) continue;
        auto retry = retry_after_.find(inst.id);
        if (retry != retry_after_.end() && now < retry->second) continue;
        if (!needs_work(inst)) continue;
        queued_.insert(inst.id);
        queue_.push_back(inst.id);
      }
      cv_.notify_all();
    } else {
      spdlog::warn("reconciler: cannot read the instances: {}", all.error().message);
    }
    cloud_.wait_for_kick(kPassInterval);
  }
}

void Reconciler::worker() {
  while (true) {
    std::string id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    act(id);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued_.erase(id);
    }
  }
}

void Reconciler::pass_now() {
  auto all = cloud_.instances();
  if (!all.ok()) return;
  purge_terminated(*all);
  for (const auto& inst : *all) {
    if (needs_work(inst)) act(inst.id);
  }
}

void Reconciler::purge_terminated(const std::vector<InstanceRecord>& all) {
  const int64_t now = wall_ms_now();
  const int64_t ttl_ms = cloud_.options().terminated_ttl.count() * 1000;
  for (const auto& inst : all) {
    if (inst.state != InstanceState::kTerminated || inst.terminated_at_ms == 0) continue;
    if (now - inst.terminated_at_ms < ttl_ms) continue;
    auto kv = cloud_.store().get(kInstancesPrefix + inst.id);
    if (!kv.ok() || !*kv) continue;
    (void)cloud_.store().txn({{kInstancesPrefix + inst.id, (*kv)->mod_revision}},
                             {{Op::Kind::kDelete, kInstancesPrefix + inst.id, ""}});
  }
}

bool Reconciler::needs_work(const InstanceRecord& inst) {
  if (inst.state == InstanceState::kTerminated) return false;
  if (inst.state == InstanceState::kStopped && inst.desired == Desired::kStopped) {
    // Only new metadata options (ModifyInstanceMetadataOptions) go to a stopped VM.
    return !inst.metadata_options_applied && cloud_.host_alive(inst.host);
  }
  // A move that began while its source went down: the target may have the VM already.
  if (!inst.move_from.empty() && cloud_.host_alive(inst.move_to)) return true;
  if (!cloud_.host_alive(inst.host)) return false;  // impaired: wait for the host
  if (!inst.move_to.empty()) return true;           // a move to run (or to cancel)
  if (inst.state != InstanceState::kRunning || inst.desired != Desired::kRunning) return true;
  if (inst.reboot_requests > inst.reboots_done) return true;
  // A running instance: only if the host's last report differs from the record.
  auto l = cloud_.liveness(inst.host);
  if (!l) return false;
  const nlohmann::json* vm = find_vm(l->vms, inst.id);
  if (!vm) return true;
  const std::string state = text(*vm, "state");
  if (state != "running" && state != "starting" && state != "paused") return true;
  // Its metadata was never sent whole, its options changed, or its private address (in the
  // metadata) changed.
  if (inst.metadata_hash.empty() || !inst.metadata_options_applied) return true;
  const std::string ip = text(field(*vm, "addresses"), "host");
  if (inst.subnet_id.empty() && !ip.empty() && ip != inst.private_ip) return true;
  return forward_set(field(*vm, "forwards")) != forward_set(cloud_.forwards_for(inst));
}

Status Reconciler::ensure_image(const HostRecord& host, const std::string& image_id) {
  auto have = driver_.call(host, "GET", "/v1/images", std::nullopt, 10000);
  if (!have.ok()) return have.status();
  const auto& images = field(*have, "images");
  for (const auto& img : images.is_array() ? images : nlohmann::json::array()) {
    if (text(img, "name") == image_id) return Status();
  }
  auto image = cloud_.image(image_id);
  if (!image.ok()) return Status::not_found(image.error().message);
  nlohmann::json files = nlohmann::json::array();
  uint64_t total = 0;
  for (const auto& f : image->files) {
    files.push_back({{"name", f.name}, {"sha256", f.sha256}, {"size", f.size}, {"role", f.role}});
    total += f.size;
  }
  nlohmann::json body = {{"name", image_id},
                         {"source", image_source_ + image_id + "/"},
                         {"files", files},
                         {"description", image->name}};
  // A second or so per 10 MB over loopback; generous for slow disks.
  const int timeout_ms = 30000 + static_cast<int>(std::min<uint64_t>(total >> 10, 600000));
  spdlog::info("host {}: fetching image {} ({} MiB)", host.id, image_id, total >> 20);
  auto r = driver_.call(host, "POST", "/v1/images", body, timeout_ms);
  if (!r.ok()) return r.status().with_context("fetching image " + image_id);
  return Status();
}

void Reconciler::act(const std::string& id) {
  auto got = cloud_.instance(id);
  if (!got.ok()) return;
  InstanceRecord inst = *got;
  auto hosts = cloud_.store().get(kHostsPrefix + inst.host);
  if (!hosts.ok() || !*hosts) return;
  auto host_rec = host_from_json((*hosts)->value);
  if (!host_rec.ok()) return;
  const HostRecord& host = *host_rec;

  auto fail = [&](const Status& s, const std::string& doing) {
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_[id] = std::chrono::steady_clock::now() + kRetryAfterError;
    const std::string message = fmt::format("{}: {}", doing, s.message());
    if (last_error_[id] != message) {
      spdlog::warn("instance {}: on host {}: {}", id, host.id, message);
      last_error_[id] = message;
    }
  };
  auto done = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_.erase(id);
    last_error_.erase(id);
  };

  if (!inst.move_to.empty()) {
    if (inst.move_from.empty() &&
        (inst.desired != Desired::kRunning ||
         (inst.state != InstanceState::kRunning && inst.state != InstanceState::kPending))) {
      // Stopped or terminated before its move began: no move.
      if (Status s = cloud_.fail_move(
              id, fmt::format("cancelled: the instance is {}", state_name(inst.state)));
          !s.ok())
        return fail(s, "cancelling the move");
      return act(id);
    }
    // A pending instance moves once it runs; one that began moving finishes first.
    if (inst.state == InstanceState::kRunning || !inst.move_from.empty())
      return act_move(inst, host);
  }

  auto vm_reply = driver_.call(host, "GET", "/v1/vms/" + id, std::nullopt, 10000);
  std::optional<nlohmann::json> vm;
  if (vm_reply.ok()) {
    vm = *vm_reply;
  } else if (vm_reply.code() != Code::kNotFound) {
    return fail(vm_reply.status(), "reading the VM");
  }
  const std::string vm_state = vm ? text(*vm, "state") : "";
  const bool vm_down = vm && (vm_state == "stopped" || vm_state == "crashed");

  switch (inst.desired) {
    case Desired::kTerminated: {
      if (vm) {
        auto r = driver_.call(host, "DELETE", "/v1/vms/" + id, std::nullopt, 60000);
        if (!r.ok() && r.code() != Code::kNotFound) return fail(r.status(), "deleting the VM");
      }
      // The claim goes first: once `terminated` shows, its capacity is free (a client that
      // waited for it launches again at once).
      if (Status rel = cloud_.release_claim(inst, true); !rel.ok())
        return fail(rel, "releasing the claim");
      Status s = cloud_.update_instance(id, [&](InstanceRecord& r) {
        if (r.desired != Desired::kTerminated) return false;
        r.state = InstanceState::kTerminated;
        r.terminated_at_ms = wall_ms_now();
        r.vm_state.clear();
        r.vm_ready = false;
        return true;
      });
      if (!s.ok()) return fail(s, "recording termination");
      spdlog::info("instance {}: terminated", id);
      return done();
    }
    case Desired::kStopped: {
      if (vm && !vm_down && vm_state != "stopping") {
        nlohmann::json body = {{"force", inst.force_stop},
                               {"timeout_s", inst.force_stop ? 0 : kStopTimeoutS}};
        auto r = driver_.call(host, "POST", "/v1/vms/" + id + "/stop", body,
                              (kStopTimeoutS + 15) * 1000);
        if (!r.ok() && r.code() != Code::kNotFound) return fail(r.status(), "stopping the VM");
        if (r.ok()) {
          vm = *r;
        } else {
          vm.reset();
        }
      }
      const std::string now_state = vm ? text(*vm, "state") : "stopped";
      if (now_state != "stopped" && now_state != "crashed") return done();  // next pass
      // Options changed while it stops or is stopped: its VM starts with them. (No VM: it
      // cannot start again, nothing to apply.)
      std::string sent_hash = inst.metadata_hash;
      if (vm && !inst.metadata_options_applied) {
        const nlohmann::json metadata = instance_metadata(
            inst, metadata_context(cloud_, inst, text(field(*vm, "macs"), "host")));
        auto r = driver_.call(host, "PUT", "/v1/vms/" + id + "/metadata", metadata, 30000);
        if (!r.ok()) return fail(r.status(), "setting the metadata");
        sent_hash = cloud::metadata_hash(metadata);
      }
      // Compute first, as for termination (StartInstances refuses a stopping instance, so
      // nothing claims it again in between).
      if (Status rel = cloud_.release_claim(inst, false); !rel.ok())
        return fail(rel, "releasing compute");
      Status s = cloud_.update_instance(id, [&](InstanceRecord& r) {
        if (r.desired != Desired::kStopped) return false;
        r.state = InstanceState::kStopped;
        r.force_stop = false;
        r.vm_state = now_state;
        r.vm_ready = false;
        if (r.metadata_options == inst.metadata_options) {
          r.metadata_options_applied = true;
          r.metadata_hash = sent_hash;
        }
        return true;
      });
      if (!s.ok()) return fail(s, "recording the stop");
      spdlog::info("instance {}: stopped", id);
      return done();
    }
    case Desired::kRunning:
      break;
  }

  // Desired running.
  if (!vm) {
    if (inst.state != InstanceState::kPending) {
      // It runs on another host (a move whose end a leader that died did not record): the
      // record follows the VM.
      if (const std::string there = host_reporting(id, host.id); !there.empty()) {
        spdlog::warn("instance {}: its VM runs on {}, not {}: recording that", id, there, host.id);
        Status s = cloud_.finish_move(id, there, -1, -1);
        return s.ok() ? done() : fail(s, "recording where its VM runs");
      }
      // It ran and its VM is gone (deleted on the host behind the cloud's back).
      Status s = cloud_.update_instance(id, [&](InstanceRecord& r) {
        r.desired = Desired::kStopped;
        r.state = InstanceState::kStopped;
        r.state_reason_code = "Server.InternalError";
        r.state_reason_message = "Server.InternalError: the VM disappeared from its host";
        return true;
      });
      (void)cloud_.release_claim(inst, false);
      return s.ok() ? done() : fail(s, "recording a lost VM");
    }
    if (Status s = ensure_image(host, inst.image_id); !s.ok()) return fail(s, "image");
    nlohmann::json body = {{"name", id},
                           {"image", inst.image_id},
                           {"cpus", inst.vcpus},
                           {"memory_mib", inst.memory_mib},
                           {"disk_mib", inst.disk_mib},
                           {"forwards", cloud_.forwards_for(inst)},
                           {"metadata", instance_metadata(inst, metadata_context(cloud_, inst))},
                           {"start", true}};
    // Its VPC address (docs/cloud.md, "Networks"): vni, address, gateway, mtu.
    auto network = cloud_.vm_network(inst);
    if (!network.ok()) return fail(network.status(), "its network");
    if (*network) body["network"] = **network;
    auto r = driver_.call(host, "POST", "/v1/vms", body, 60000);
    if (!r.ok() && r.code() != Code::kConflict) {
      if (r.code() == Code::kInvalidArgument || r.code() == Code::kInsufficientCapacity) {
        // The host refuses for good: the launch fails, as EC2's does, and frees its claim.
        spdlog::warn("instance {}: host {} refused the VM: {}", id, host.id, r.message());
        Status s = cloud_.update_instance(id, [&](InstanceRecord& rec) {
          rec.desired = Desired::kTerminated;
          rec.state = InstanceState::kTerminated;
          rec.terminated_at_ms = wall_ms_now();
          rec.state_reason_code = "Server.InsufficientInstanceCapacity";
          rec.state_reason_message =
              "Server.InsufficientInstanceCapacity: the host refused: " + r.message();
          return true;
        });
        (void)cloud_.release_claim(inst, true);
        return s.ok() ? done() : fail(s, "recording a failed launch");
      }
      return fail(r.status(), "creating the VM");
    }
    if (!r.ok()) {
      // A conflict is either the VM itself (created by an earlier pass whose reply was lost)
      // or something else holding what it needs (a host port of its public address): look.
      auto again = driver_.call(host, "GET", "/v1/vms/" + id, std::nullopt, 10000);
      if (!again.ok()) return fail(r.status(), "creating the VM");
    }
    spdlog::info("instance {}: VM created on {}", id, host.id);
    return done();
  }

  if (vm_down) {
    if (inst.state == InstanceState::kPending) {
      // Started again (StartInstances): the type may have changed while it was stopped.
      if (integer(*vm, "cpus") != static_cast<int64_t>(inst.vcpus) ||
          integer(*vm, "memory_mib") != static_cast<int64_t>(inst.memory_mib)) {
        nlohmann::json body = {{"cpus", inst.vcpus}, {"memory_mib", inst.memory_mib}};
        auto r = driver_.call(host, "POST", "/v1/vms/" + id + "/resize", body, 30000);
        if (!r.ok()) return fail(r.status(), "resizing the VM");
      }
      if (forward_set(field(*vm, "forwards")) != forward_set(cloud_.forwards_for(inst))) {
        nlohmann::json body = {{"forwards", cloud_.forwards_for(inst)}};
        auto r = driver_.call(host, "PUT", "/v1/vms/" + id + "/forwards", body, 30000);
        if (!r.ok()) return fail(r.status(), "setting the forwards");
      }
      // A VM that keeps going down before it was ever ready does not get started forever:
      // after kMaxStartAttempts the launch fails, as EC2's does (Server.InternalError).
      unsigned attempts = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        attempts = ++start_attempts_[id];
      }
      if (attempts > kMaxStartAttempts) {
        const std::string last_exit = text(*vm, "last_exit");
        spdlog::warn(
            "instance {}: its VM went down {} times before it was ready ({}): the launch "
            "fails",
            id, attempts - 1, last_exit);
        Status s = cloud_.update_instance(id, [&](InstanceRecord& rec) {
          if (rec.state != InstanceState::kPending) return false;
          rec.desired = Desired::kStopped;
          rec.state = InstanceState::kStopped;
          rec.vm_last_exit = last_exit;
          rec.state_reason_code = "Server.InternalError";
          rec.state_reason_message = "Server.InternalError: the VM did not start: " + last_exit;
          return true;
        });
        (void)cloud_.release_claim(inst, false);
        {
          std::lock_guard<std::mutex> lock(mu_);
          start_attempts_.erase(id);
        }
        return s.ok() ? done() : fail(s, "recording a failed start");
      }
      if (!inst.metadata_options_applied) {
        // Changed while stopped and not sent yet: it starts with them (recorded as applied
        // once it runs, below).
        auto r = driver_.call(
            host, "PUT", "/v1/vms/" + id + "/metadata",
            instance_metadata(inst,
                              metadata_context(cloud_, inst, text(field(*vm, "macs"), "host"))),
            30000);
        if (!r.ok()) return fail(r.status(), "setting the metadata");
      }
      auto r = driver_.call(host, "POST", "/v1/vms/" + id + "/start", std::nullopt, 60000);
      if (!r.ok()) return fail(r.status(), "starting the VM");
      return done();
    }
    // It was running and went down by itself: the guest powered off (EC2: the instance
    // stops) or the VMM crashed.
    const bool crashed = vm_state == "crashed";
    const std::string last_exit = text(*vm, "last_exit");
    Status s = cloud_.update_instance(id, [&](InstanceRecord& r) {
      if (r.desired != Desired::kRunning) return false;
      r.desired = Desired::kStopped;
      r.state = InstanceState::kStopped;
      r.vm_state = vm_state;
      r.vm_last_exit = last_exit;
      r.reason = fmt::format("{} ({})", crashed ? "Server error" : "Instance initiated shutdown",
                             iso_time_now());
      r.state_reason_code = crashed ? "Server.InternalError" : "Client.InstanceInitiatedShutdown";
      r.state_reason_message =
          crashed ? "Server.InternalError: " + last_exit
                  : "Client.InstanceInitiatedShutdown: Instance initiated shutdown";
      return true;
    });
    if (!s.ok()) return fail(s, "recording the shutdown");
    (void)cloud_.release_claim(inst, false);
    spdlog::info("instance {}: stopped by itself ({})", id, crashed ? last_exit : "shutdown");
    return done();
  }

  // The VM lives.
  if (inst.reboot_requests > inst.reboots_done) {
    auto r = driver_.call(host, "POST", "/v1/vms/" + id + "/restart",
                          nlohmann::json{{"force", false}, {"timeout_s", kStopTimeoutS}},
                          (kStopTimeoutS + 30) * 1000);
    if (!r.ok()) return fail(r.status(), "rebooting the VM");
    Status s = cloud_.update_instance(id, [&](InstanceRecord& rec) {
      rec.reboots_done = std::max(rec.reboots_done, inst.reboot_requests);
      return true;
    });
    if (!s.ok()) return fail(s, "recording the reboot");
    return done();
  }
  const auto want = cloud_.forwards_for(inst);
  if (forward_set(field(*vm, "forwards")) != forward_set(want)) {
    auto r = driver_.call(host, "PUT", "/v1/vms/" + id + "/forwards",
                          nlohmann::json{{"forwards", want}}, 30000);
    if (!r.ok()) return fail(r.status(), "setting the forwards");
    spdlog::info("instance {}: {} port(s) open on {}", id, want.size(), inst.public_ip);
  }
  const bool ready = flag(*vm, "ready") && vm_state == "running";
  // The host's address of the VM is its private address only for instances without a
  // subnet (launched before VPCs); the others have theirs from the launch.
  const std::string private_ip =
      inst.subnet_id.empty() ? text(field(*vm, "addresses"), "host") : "";
  // The metadata as it should be now (the private address and MAC are known once the VM
  // is): sent when it differs from what was sent last.
  InstanceRecord now = inst;
  if (!private_ip.empty()) now.private_ip = private_ip;
  // The options are part of it: ModifyInstanceMetadataOptions changes the hash too.
  const nlohmann::json metadata =
      instance_metadata(now, metadata_context(cloud_, now, text(field(*vm, "macs"), "host")));
  const std::string metadata_hash = cloud::metadata_hash(metadata);
  if (metadata_hash != inst.metadata_hash || !inst.metadata_options_applied) {
    auto r = driver_.call(host, "PUT", "/v1/vms/" + id + "/metadata", metadata, 30000);
    if (!r.ok()) return fail(r.status(), "setting the metadata");
  }
  Status s = cloud_.update_instance(id, [&](InstanceRecord& r) {
    bool changed = false;
    if (r.desired == Desired::kRunning && r.state == InstanceState::kPending && ready) {
      r.state = InstanceState::kRunning;
      changed = true;
      spdlog::info("instance {}: running", id);
      std::lock_guard<std::mutex> lock(mu_);
      start_attempts_.erase(id);
    }
    if (r.private_ip != private_ip && !private_ip.empty()) {
      r.private_ip = private_ip;
      changed = true;
    }
    if (r.metadata_hash != metadata_hash) {
      r.metadata_hash = metadata_hash;
      changed = true;
    }
    // What was sent is what the record asks for now (not changed again meanwhile).
    if (!r.metadata_options_applied && r.metadata_options == inst.metadata_options) {
      r.metadata_options_applied = true;
      changed = true;
    }
    if (r.vm_state != vm_state || r.vm_ready != ready) {
      r.vm_state = vm_state;
      r.vm_ready = ready;
      changed = true;
    }
    return changed;
  });
  if (!s.ok()) return fail(s, "recording the state");
  done();
  if (!ready) {
    // Not ready yet: look again soon (the guest boots in about a second).
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_[id] = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  }
}

std::string Reconciler::host_reporting(const std::string& id, const std::string& except) {
  auto hosts = cloud_.store().list(kHostsPrefix);
  if (!hosts.ok()) return "";
  for (const KeyValue& kv : *hosts) {
    const std::string host = kv.key.substr(std::string(kHostsPrefix).size());
    if (host == except || !cloud_.host_alive(host)) continue;
    auto l = cloud_.liveness(host);
    if (!l) continue;
    const nlohmann::json* vm = find_vm(l->vms, id);
    if (vm && text(*vm, "state") == "running") return host;
  }
  return "";
}

void Reconciler::act_move(InstanceRecord inst, const HostRecord& source) {
  const std::string id = inst.id;
  auto later = [&](std::chrono::milliseconds after) {
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_[id] = std::chrono::steady_clock::now() + after;
  };
  auto log_once = [&](const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (last_error_[id] != message) {
      spdlog::warn("instance {}: {}", id, message);
      last_error_[id] = message;
    }
  };
  // One move at a time off each host (a drain queues all of its instances).
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = moving_from_.emplace(source.id, id);
    if (!inserted && it->second != id) {
      retry_after_[id] = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      return;
    }
  }
  struct Release {
    Reconciler* r;
    std::string host;
    ~Release() {
      std::lock_guard<std::mutex> lock(r->mu_);
      r->moving_from_.erase(host);
    }
  } release{this, source.id};

  if (inst.move_from.empty()) {
    auto begun = cloud_.begin_move(id);
    if (!begun.ok()) {
      if (begun.error().code == "Unavailable") {
        log_once("beginning the move: " + begun.error().message);
        return later(kRetryAfterError);
      }
      if (Status s = cloud_.fail_move(id, begun.error().message); !s.ok()) {
        log_once("recording a failed move: " + s.message());
        return later(kRetryAfterError);
      }
      return;
    }
    inst = *begun;
  }
  const std::string target_id = inst.move_to;
  auto kv = cloud_.store().get(kHostsPrefix + target_id);
  if (!kv.ok()) {
    log_once("reading host " + target_id + ": " + kv.message());
    return later(kRetryAfterError);
  }
  if (!*kv) {
    (void)cloud_.fail_move(id, "the target host " + target_id + " left the cloud");
    return;
  }
  auto target = host_from_json((*kv)->value);
  if (!target.ok()) return later(kRetryAfterError);

  // Where is the VM now? A leader that died mid-move left the record as it was; what the
  // hosts say decides.
  auto on_target = [&]() -> bool {
    auto r = driver_.call(*target, "GET", "/v1/vms/" + id, std::nullopt, 10000);
    if (!r.ok()) return false;
    const std::string state = text(*r, "state");
    return state == "running" || state == "starting" || state == "paused";
  };
  auto finish = [&](double downtime_ms, double total_ms) {
    if (Status s = cloud_.finish_move(id, target_id, downtime_ms, total_ms); !s.ok()) {
      log_once("recording the move: " + s.message());
      return later(kRetryAfterError);
    }
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_.erase(id);
    last_error_.erase(id);
  };
  if (on_target()) return finish(-1, -1);
  if (!cloud_.host_alive(target_id)) {
    (void)cloud_.fail_move(id, "the target host " + target_id + " is down");
    return;
  }
  // The target recreates the VM from its own copy of the image.
  if (Status s = ensure_image(*target, inst.image_id); !s.ok()) {
    log_once("the image on the target " + target_id + ": " + s.message());
    return later(kRetryAfterError);
  }
  spdlog::info("instance {}: migrating from {} to {} ({})", id, source.id, target_id,
               target->api_url);
  nlohmann::json body = {{"target", target->api_url},
                         {"target_token", target->api_token},
                         {"max_downtime_ms", kMaxDowntimeMs},
                         {"timeout_s", kMigrateTimeoutS}};
  // Its forwards there are on its public address there: the target listens on them as the
  // VM arrives (the source's address is another host's).
  if (!inst.move_public_ip.empty()) {
    InstanceRecord there = inst;
    there.public_ip = inst.move_public_ip;
    body["forwards"] = cloud_.forwards_for(there);
  }
  auto r = driver_.call(source, "POST", "/v1/vms/" + id + "/migrate", body, kMigrateTimeoutMs);
  if (r.ok()) {
    auto number = [&](const char* key) {
      const auto& v = field(*r, key);
      return v.is_number() ? v.get<double>() : -1.0;
    };
    return finish(number("downtime_ms"), number("total_ms"));
  }
  // Refused, failed, or the reply was lost (the outcome unknown): look where it is.
  if (on_target()) return finish(-1, -1);
  const bool unknown = r.code() == Code::kUnavailable || r.code() == Code::kDeadlineExceeded;
  // nimbusd: "VM 'ID' is busy (migrate in progress); try again in a moment".
  const bool in_progress =
      r.code() == Code::kConflict && r.message().find("is busy") != std::string::npos;
  if (unknown || in_progress) {
    // The source may still be migrating it (a call of an earlier leader, or a reply lost):
    // ask again later rather than release the target's claim under a VM arriving there.
    auto src = driver_.call(source, "GET", "/v1/vms/" + id, std::nullopt, 10000);
    const std::string migration = src.ok() ? text(field(*src, "migration"), "state") : "";
    if (in_progress || !src.ok() || migration == "preparing" || migration == "listening" ||
        migration == "active") {
      log_once(fmt::format("migrating to {}: {} (looking again)", target_id, r.message()));
      return later(kRetryAfterError);
    }
  }
  (void)cloud_.fail_move(id, r.message());
}

}  // namespace nimbus::cloud
