// A HostDriver for tests: simulates nimbusd hosts in memory with the API's JSON shapes
// (docs/nimbusd.md) and records every call. Per host: its images, its VMs (state
// `starting`, then `running` with `ready: true` after a configurable number of GETs of
// the VM, or at once), capacity that refuses VMs as nimbusd does (409
// InsufficientCapacity), and a switch that makes the host unreachable (kUnavailable).
// Thread-safe, so a running Reconciler may use it too.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cloud/reconciler.h"
#include "cloud/sigv4.h"

namespace nimbus::cloud {

class FakeHostDriver : public HostDriver {
 public:
  struct Vm {
    nlohmann::json spec;  // name, image, cpus, memory_mib, disk_mib, forwards
    std::string state = "stopped", desired = "stopped", last_exit;
    bool ready = false;
    int gets_left = 0;  // GETs of the VM until a starting VM is running and ready
    unsigned restarts = 0;
    std::string console;
    nlohmann::json metadata;  // nimbusd's "metadata" (data and options); null: none
  };
  struct Host {
    std::map<std::string, nlohmann::json> images;  // by name
    // The files of images exported here (POST /v1/vms/ID/image), by image and file name.
    std::map<std::string, std::map<std::string, std::string>> image_files;
    std::map<std::string, Vm> vms;  // by name
    bool unreachable = false;
    uint64_t cpus_capacity = 1u << 20, memory_mib_capacity = uint64_t{1} << 40;
    uint64_t vm_overhead_mib = 0;
  };
  struct CallRecord {
    std::string host, method, path;
    std::optional<nlohmann::json> body;
  };

  // GETs of a VM before it becomes running and ready (0: it is ready as soon as it starts).
  void set_ready_after(int gets) {
    std::lock_guard<std::mutex> lock(mu_);
    ready_after_ = gets;
  }
  void set_unreachable(const std::string& host, bool unreachable) {
    std::lock_guard<std::mutex> lock(mu_);
    hosts_[host].unreachable = unreachable;
  }
  // What the host has for VMs whose desired state is running (nimbusd's allocation).
  void set_capacity(const std::string& host, uint64_t cpus, uint64_t memory_mib) {
    std::lock_guard<std::mutex> lock(mu_);
    hosts_[host].cpus_capacity = cpus;
    hosts_[host].memory_mib_capacity = memory_mib;
  }
  void add_image(const std::string& host, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    hosts_[host].images[name] = {{"name", name}, {"description", ""}};
  }
  bool has_image(const std::string& host, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return hosts_[host].images.count(name) > 0;
  }
  // The guest powers off (or, with crashed, the VMM dies): the VM is down by itself.
  void power_off(const std::string& host, const std::string& vm, bool crashed = false) {
    std::lock_guard<std::mutex> lock(mu_);
    Vm& v = hosts_[host].vms.at(vm);
    v.state = crashed ? "crashed" : "stopped";
    v.desired = crashed ? "running" : "stopped";
    v.ready = false;
    v.last_exit = crashed ? "killed by signal 9" : "guest powered off";
  }
  void set_console(const std::string& host, const std::string& vm, std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    hosts_[host].vms.at(vm).console = std::move(text);
  }
  std::optional<Vm> vm(const std::string& host, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& vms = hosts_[host].vms;
    auto it = vms.find(name);
    if (it == vms.end()) return std::nullopt;
    return it->second;
  }
  // nimbusd's GET /v1/vms and GET /v1/images lists (what a heartbeat reports).
  nlohmann::json vms_json(const std::string& host) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, v] : hosts_[host].vms) out.push_back(vm_json(v));
    return out;
  }
  nlohmann::json images_json(const std::string& host) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, i] : hosts_[host].images) out.push_back(i);
    return out;
  }
  std::vector<CallRecord> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  void clear_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }
  // "METHOD PATH" of each call (to `host`, or every host for ""), in order.
  std::vector<std::string> call_lines(const std::string& host = "") {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& c : calls_) {
      if (host.empty() || c.host == host) out.push_back(c.method + " " + c.path);
    }
    return out;
  }

  // What an export (POST /v1/vms/ID/image) answers instead of exporting; and whether the
  // files served afterwards differ from what the export reported (a corrupt download).
  void set_export_error(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    export_error_ = std::move(s);
  }
  void set_corrupt_files(bool corrupt) {
    std::lock_guard<std::mutex> lock(mu_);
    corrupt_files_ = corrupt;
  }

  // Live migration (POST /v1/vms/NAME/migrate on the source, docs/nimbusd.md): the target
  // is the host whose API token the body's target_token is ("host-token-ID", as
  // CloudTestBed's hosts send). `error`: what the source answers instead of migrating.
  // `reply_lost`: the VM moves, but the caller gets kUnavailable (a connection cut after
  // the migration, or a control plane that died waiting).
  void set_migrate_error(Status error) {
    std::lock_guard<std::mutex> lock(mu_);
    migrate_error_ = std::move(error);
  }
  void set_migrate_reply_lost(bool lost) {
    std::lock_guard<std::mutex> lock(mu_);
    migrate_reply_lost_ = lost;
  }
  unsigned migrations() {
    std::lock_guard<std::mutex> lock(mu_);
    return migrations_;
  }
  // Each migration takes this long (outside the driver's lock: other calls go on), and the
  // most that were underway at once.
  void set_migrate_delay(std::chrono::milliseconds d) { migrate_delay_ms_ = d.count(); }
  int max_concurrent_migrations() const { return max_in_flight_.load(); }

  Result<std::string> fetch_file(const HostRecord& host, const std::string& path,
                                 uint64_t max_bytes, int /*timeout_ms*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({host.id, "GET", path, std::nullopt});
    Host& h = hosts_[host.id];
    if (h.unreachable)
      return Status::unavailable(
          fmt::format("cannot connect to {}: Connection refused", host.api_url));
    const std::string prefix = "/v1/images/";
    const size_t files = path.find("/files/");
    if (path.rfind(prefix, 0) != 0 || files == std::string::npos)
      return Status::not_found("no such path " + path);
    const std::string image = path.substr(prefix.size(), files - prefix.size());
    const std::string name = path.substr(files + 7);
    auto img = h.image_files.find(image);
    if (img == h.image_files.end() || !img->second.count(name))
      return Status::not_found(fmt::format("image '{}' has no file '{}'", image, name));
    std::string bytes = img->second.at(name);
    if (corrupt_files_) bytes[0] ^= 1;
    if (bytes.size() > max_bytes) return Status::internal("the reply body is over the limit");
    return bytes;
  }

  Result<nlohmann::json> call(const HostRecord& host, const std::string& method,
                              const std::string& path, const std::optional<nlohmann::json>& body,
                              int timeout_ms) override {
    if (migrate_delay_ms_ > 0 && method == "POST" && path.size() > 8 &&
        path.compare(path.size() - 8, 8, "/migrate") == 0) {
      const int now = ++in_flight_;
      int seen = max_in_flight_.load();
      while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(migrate_delay_ms_.load()));
      auto r = locked_call(host, method, path, body);
      --in_flight_;
      return r;
    }
    return locked_call(host, method, path, body);
  }

 private:
  Result<nlohmann::json> locked_call(const HostRecord& host, const std::string& method,
                                     const std::string& path,
                                     const std::optional<nlohmann::json>& body) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({host.id, method, path, body});
    Host& h = hosts_[host.id];
    if (h.unreachable)
      return Status::unavailable(
          fmt::format("cannot connect to {}: Connection refused", host.api_url));
    if (method == "POST" && path.size() > 16 && path.rfind("/v1/vms/", 0) == 0 &&
        path.compare(path.size() - 8, 8, "/migrate") == 0)
      return migrate(host.id, path.substr(8, path.size() - 16), body);
    return route(h, method, path, body);
  }

  static bool has(const std::optional<nlohmann::json>& body, const char* key,
                  nlohmann::json::value_t type) {
    return body && body->is_object() && body->contains(key) && body->at(key).type() == type;
  }

  static nlohmann::json vm_json(const Vm& v) {
    nlohmann::json j = v.spec;
    j["state"] = v.state;
    j["desired_state"] = v.desired;
    j["ready"] = v.ready;
    j["restarts"] = v.restarts;
    j["last_exit"] = v.last_exit;
    j["restart_policy"] = "no";
    j["addresses"] = {{"user", "10.0.2.15"}, {"host", "10.88.0.2"}};
    j["macs"] = {{"user", "52:54:00:80:00:02"}, {"host", "52:54:00:81:00:02"}};
    nlohmann::json options = v.metadata;
    if (options.is_object()) options.erase("data");
    j["metadata_options"] = options;
    return j;
  }

  Status fits(const Host& h, const std::string& skip, uint64_t cpus, uint64_t memory_mib) const {
    uint64_t used_cpus = 0, used_mem = 0;
    for (const auto& [name, v] : h.vms) {
      if (name == skip || v.desired != "running") continue;
      used_cpus += v.spec.value("cpus", uint64_t{0});
      used_mem += v.spec.value("memory_mib", uint64_t{0}) + h.vm_overhead_mib;
    }
    if (used_cpus + cpus > h.cpus_capacity)
      return Status::insufficient_capacity(fmt::format("not enough vCPUs: {} asked, {} available",
                                                       cpus, h.cpus_capacity - used_cpus));
    if (used_mem + memory_mib + h.vm_overhead_mib > h.memory_mib_capacity)
      return Status::insufficient_capacity(
          fmt::format("not enough memory: {} MiB asked, {} MiB "
                      "available",
                      memory_mib, h.memory_mib_capacity - used_mem));
    return Status();
  }

  void start(Vm& v) {
    v.desired = "running";
    v.last_exit.clear();
    v.gets_left = ready_after_;
    v.state = ready_after_ == 0 ? "running" : "starting";
    v.ready = ready_after_ == 0;
  }

  Result<nlohmann::json> route(Host& h, const std::string& method, const std::string& path,
                               const std::optional<nlohmann::json>& body) {
    using nlohmann::json;
    if (path == "/v1/images") {
      if (method == "GET") {
        json list = json::array();
        for (const auto& [name, i] : h.images) list.push_back(i);
        return json{{"images", list}};
      }
      if (method == "POST") {
        if (!has(body, "name", json::value_t::string) ||
            !has(body, "source", json::value_t::string) ||
            !has(body, "files", json::value_t::array))
          return Status::invalid_argument("an image fetch needs name, source and files");
        const std::string name = body->at("name");
        json img = {{"name", name},
                    {"description", body->value("description", "")},
                    {"files", body->at("files")}};
        h.images[name] = img;
        return img;
      }
      return Status(Code::kUnimplemented, "method not allowed");
    }
    if (path == "/v1/vms") {
      if (method == "GET") {
        json list = json::array();
        for (const auto& [name, v] : h.vms) list.push_back(vm_json(v));
        return json{{"vms", list}};
      }
      if (method != "POST") return Status(Code::kUnimplemented, "method not allowed");
      if (!has(body, "name", json::value_t::string))
        return Status::invalid_argument("a create request needs a name");
      const std::string name = body->at("name");
      if (h.vms.count(name)) return Status::conflict("a VM named " + name + " exists");
      const std::string image = body->value("image", "default");
      if (!h.images.count(image))
        return Status::invalid_argument("image must be an image name (see GET /v1/images)");
      Vm v;
      v.spec = {{"name", name},
                {"image", image},
                {"cpus", body->value("cpus", uint64_t{1})},
                {"memory_mib", body->value("memory_mib", uint64_t{256})},
                {"disk_mib", body->value("disk_mib", uint64_t{1024})},
                {"forwards", body->value("forwards", json::array())}};
      if (body->contains("metadata")) {
        if (!has(body, "metadata", json::value_t::object))
          return Status::invalid_argument("metadata must be an object");
        v.metadata = body->at("metadata");
      }
      if (body->value("start", true)) {
        if (Status s = fits(h, "", v.spec["cpus"], v.spec["memory_mib"]); !s.ok()) return s;
        start(v);
      }
      h.vms[name] = v;
      return vm_json(v);
    }
    const std::string prefix = "/v1/vms/";
    if (path.rfind(prefix, 0) != 0) return Status::not_found("no such path " + path);
    std::string rest = path.substr(prefix.size());
    std::string verb;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      verb = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
    }
    auto it = h.vms.find(rest);
    if (it == h.vms.end()) return Status::not_found("no VM named " + rest);
    Vm& v = it->second;
    if (verb.empty() && method == "GET") {
      if (v.state == "starting" && --v.gets_left <= 0) {
        v.state = "running";
        v.ready = true;
      }
      return vm_json(v);
    }
    if (verb.empty() && method == "DELETE") {
      h.vms.erase(it);
      return json{{"deleted", rest}};
    }
    if (verb == "start" && method == "POST") {
      if (v.state != "stopped" && v.state != "crashed")
        return Status::conflict(fmt::format("VM {} is {}", rest, v.state));
      if (Status s = fits(h, rest, v.spec["cpus"], v.spec["memory_mib"]); !s.ok()) return s;
      start(v);
      return vm_json(v);
    }
    if ((verb == "stop" || verb == "restart") && method == "POST") {
      const bool force = body && body->is_object() && body->value("force", false);
      if (verb == "restart") {
        ++v.restarts;
        start(v);
        return vm_json(v);
      }
      v.state = "stopped";
      v.desired = "stopped";
      v.ready = false;
      json j = vm_json(v);
      j["graceful"] = !force;
      return j;
    }
    if (verb == "resize" && method == "POST") {
      if (v.state != "stopped" && v.state != "crashed")
        return Status::conflict("resize needs a stopped VM");
      if (!body || !body->is_object()) return Status::invalid_argument("a resize needs a body");
      for (const char* k : {"cpus", "memory_mib", "disk_mib"}) {
        if (body->contains(k)) v.spec[k] = body->at(k);
      }
      return vm_json(v);
    }
    if (verb == "forwards" && method == "PUT") {
      if (!has(body, "forwards", json::value_t::array))
        return Status::invalid_argument("forwards must be a list");
      v.spec["forwards"] = body->at("forwards");
      return vm_json(v);
    }
    if (verb == "metadata" && method == "PUT") {
      if (!body || !body->is_object()) return Status::invalid_argument("a metadata needs a body");
      if (!v.metadata.is_object()) v.metadata = {{"data", json::object()}};
      for (const auto& [k, val] : body->items()) v.metadata[k] = val;
      return vm_json(v);
    }
    if (verb == "image" && method == "POST") {
      if (!has(body, "image", json::value_t::string))
        return Status::invalid_argument("image is required");
      if (!export_error_.ok()) return export_error_;
      const std::string name = body->at("image");
      if (h.images.count(name)) return Status::conflict("an image named " + name + " exists");
      std::map<std::string, std::string> files = {
          {"Image", "a kernel, for the test's purposes"},
          {"rootfs.qcow2", "QFI\xfb the disk of " + rest + " (" + v.state + ")"}};
      json list = json::array();
      for (const auto& [file, bytes] : files) {
        list.push_back({{"name", file},
                        {"role", file == "Image" ? "kernel" : "disk"},
                        {"size", bytes.size()},
                        {"sha256", sha256_hex(bytes)}});
      }
      json img = {{"name", name},
                  {"description", body->value("description", "")},
                  {"disk_format", "qcow2"},
                  {"disk_mib", v.spec.value("disk_mib", uint64_t{0})},
                  {"files", list}};
      h.images[name] = img;
      h.image_files[name] = files;
      return img;
    }
    if (verb == "console-output" && method == "GET") return json{{"output", v.console}};
    return Status::not_found("no such path " + path);
  }

  Result<nlohmann::json> migrate(const std::string& source, const std::string& name,
                                 const std::optional<nlohmann::json>& body) {
    if (!has(body, "target", nlohmann::json::value_t::string) ||
        !has(body, "target_token", nlohmann::json::value_t::string))
      return Status::invalid_argument("a migration needs target and target_token");
    Host& src = hosts_[source];
    auto it = src.vms.find(name);
    if (it == src.vms.end()) return Status::not_found("no VM named " + name);
    if (it->second.state != "running")
      return Status::conflict(
          fmt::format("VM {} is {}: only a running VM migrates", name, it->second.state));
    if (!migrate_error_.ok()) return migrate_error_;
    const std::string token = body->at("target_token");
    const std::string prefix = "host-token-";
    if (token.rfind(prefix, 0) != 0 || !hosts_.count(token.substr(prefix.size())))
      return Status::unavailable("cannot connect to the target " +
                                 body->at("target").get<std::string>());
    const std::string target_id = token.substr(prefix.size());
    Host& target = hosts_[target_id];
    if (target.unreachable)
      return Status::unavailable("cannot connect to the target " +
                                 body->at("target").get<std::string>());
    if (target.vms.count(name))
      return Status::conflict(fmt::format("the target has a VM named {}", name));
    const std::string image = it->second.spec.value("image", "");
    if (!target.images.count(image))
      return Status::invalid_argument(fmt::format("the target has no image {}", image));
    if (Status s = fits(target, "", it->second.spec.value("cpus", uint64_t{1}),
                        it->second.spec.value("memory_mib", uint64_t{256}));
        !s.ok())
      return s;
    target.vms[name] = it->second;
    if (body->contains("forwards")) target.vms[name].spec["forwards"] = body->at("forwards");
    src.vms.erase(it);
    ++migrations_;
    if (migrate_reply_lost_) return Status::unavailable("the connection was cut");
    return nlohmann::json{
        {"name", name}, {"host", target_id}, {"downtime_ms", 12.5}, {"total_ms", 340.0}};
  }

  std::atomic<int64_t> migrate_delay_ms_{0};
  std::atomic<int> in_flight_{0}, max_in_flight_{0};
  std::mutex mu_;
  Status migrate_error_;
  bool migrate_reply_lost_ = false;
  unsigned migrations_ = 0;
  int ready_after_ = 0;
  Status export_error_;
  bool corrupt_files_ = false;
  std::map<std::string, Host> hosts_;
  std::vector<CallRecord> calls_;
};

}  // namespace nimbus::cloud
