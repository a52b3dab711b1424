// A control plane to test against: a Cloud over an in-memory SQLite store with a clock the
// test moves, one registered image (two small files in a temporary directory), a fake
// nimbusd driver (fake_host_driver.h) and a Reconciler over it, and helpers that join
// hosts by heartbeat as nimbusd does (body shape: hosts.cpp). No gtest here, so the fuzz
// targets can use it too.
#pragma once

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cloud/cloud.h"
#include "cloud/fake_host_driver.h"
#include "cloud/reconciler.h"
#include "cloud/sqlite_store.h"

namespace nimbus::cloud {

// A host as it joins: its id, zone and what its GET /v1/host says it has.
struct TestHost {
  std::string id, zone;
  uint64_t cpus = 8, memory_mib = 8192, disk_mib = 100000, vm_overhead_mib = 0;
};

class CloudTestBed {
 public:
  static constexpr const char* kJoinToken = "join-secret-0123";
  static constexpr const char* kImageSource = "http://127.0.0.1:8773/nimbus/v1/images/";

  // The region's zones are nimbus-west-1a, -1b and -1c unless `options` names others.
  static CloudOptions default_options() {
    CloudOptions o;
    o.join_token = kJoinToken;
    o.host_timeout = std::chrono::milliseconds(10000);
    return o;
  }

  // `wrap`, when given, puts a store of the test's in front of the in-memory one.
  using StoreWrapper = std::function<std::unique_ptr<Store>(std::unique_ptr<Store>)>;
  explicit CloudTestBed(CloudOptions options = default_options(), StoreWrapper wrap = {}) {
    auto store = open_sqlite_store(":memory:");
    if (!store.ok()) throw std::runtime_error("in-memory store: " + store.message());
    store_ = wrap ? wrap(std::move(*store)) : std::move(*store);
    cloud_ = std::make_unique<Cloud>(*store_, std::move(options), [this] {
      return std::chrono::steady_clock::time_point(std::chrono::hours(1000)) +
             std::chrono::milliseconds(now_ms_.load());
    });
    if (Status s = cloud_->init(); !s.ok()) throw std::runtime_error("init: " + s.message());
    char dir_template[] = "/tmp/nimbus-cloud-test-XXXXXX";
    if (!mkdtemp(dir_template)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir_template;
    write_file(dir_ + "/Image", "a kernel, for the test's purposes");
    write_file(dir_ + "/rootfs.ext4", std::string(3 << 20, 'r'));  // 3 MiB: disk_mib 3
    auto img = cloud_->register_image_dir(dir_, "test-image", "two small files");
    if (!img.ok()) throw std::runtime_error("register_image_dir: " + img.error().message);
    image_ = *img;
    reconciler_ = std::make_unique<Reconciler>(*cloud_, driver_, kImageSource, 2);
  }
  ~CloudTestBed() {
    reconciler_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  CloudTestBed(const CloudTestBed&) = delete;
  CloudTestBed& operator=(const CloudTestBed&) = delete;

  Cloud& cloud() { return *cloud_; }
  Store& store() { return *store_; }
  FakeHostDriver& driver() { return driver_; }
  Reconciler& reconciler() { return *reconciler_; }
  const ImageRecord& image() const { return image_; }
  const std::string& image_id() const { return image_.id; }
  const std::string& image_dir() const { return dir_; }

  void advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }

  // nimbusd's heartbeat (hosts.cpp): host_id, zone, api_url, api_token, host (GET
  // /v1/host: capacity lines and vm_overhead_mib), vms and images.
  static nlohmann::json heartbeat_body(const TestHost& h, const nlohmann::json& vms,
                                       const nlohmann::json& images) {
    auto line = [](uint64_t capacity) {
      return nlohmann::json{
          {"host", capacity}, {"capacity", capacity}, {"allocated", 0u}, {"available", capacity}};
    };
    nlohmann::json host = {{"hostname", h.id},
                           {"version", "0.1.0"},
                           {"cpus", line(h.cpus)},
                           {"memory_mib", line(h.memory_mib)},
                           {"disk_mib", line(h.disk_mib)},
                           {"vm_overhead_mib", h.vm_overhead_mib}};
    // Through text, as it comes over HTTP.
    return nlohmann::json::parse(nlohmann::json{
        {"host_id", h.id},
        {"zone", h.zone},
        {"api_url", "http://127.0.0.1:9000"},
        {"api_token", "host-token-" + h.id},
        {"host", host},
        {"vms", vms},
        {"images", images}}.dump());
  }

  // Joins (or refreshes) a host: a heartbeat with what the fake driver holds for it.
  Ec2Result<nlohmann::json> heartbeat(const TestHost& h) {
    for (auto& known : hosts_) {
      if (known.id == h.id) known = h;
    }
    if (std::none_of(hosts_.begin(), hosts_.end(), [&](const auto& k) { return k.id == h.id; }))
      hosts_.push_back(h);
    return cloud_->heartbeat(heartbeat_body(h, driver_.vms_json(h.id), driver_.images_json(h.id)));
  }
  // A heartbeat of a host that joined before.
  Ec2Result<nlohmann::json> heartbeat(const std::string& id) {
    for (const auto& h : hosts_) {
      if (h.id == id) return heartbeat(h);
    }
    return ec2_error("NotFound", "no test host " + id);
  }
  void heartbeat_all() {
    for (const auto& h : std::vector<TestHost>(hosts_)) (void)heartbeat(h);
  }
  // Joins `per_zone` hosts in each of `zones` (default: the region's), named h-ZONE-N
  // (e.g. h-a-1 for zone nimbus-west-1a), each with `shape`'s capacity. Returns their ids.
  std::vector<std::string> add_hosts(unsigned per_zone, TestHost shape = {},
                                     std::vector<std::string> zones = {}) {
    if (zones.empty()) zones = cloud_->zones();
    std::vector<std::string> ids;
    for (const auto& z : zones) {
      for (unsigned n = 1; n <= per_zone; ++n) {
        TestHost h = shape;
        h.id = fmt::format("h-{}-{}", z.substr(z.size() - 1), n);
        h.zone = z;
        auto r = heartbeat(h);
        if (!r.ok()) throw std::runtime_error("heartbeat of " + h.id + ": " + r.error().message);
        ids.push_back(h.id);
      }
    }
    return ids;
  }

  // Every key and value of the store with its revisions: equal before and after an
  // operation iff it changed nothing.
  std::vector<std::string> store_dump() {
    std::vector<std::string> out;
    auto all = store_->list("");
    if (!all.ok()) return {"<list failed: " + all.message() + ">"};
    for (const auto& kv : *all)
      out.push_back(fmt::format("{}@{}={}", kv.key, kv.mod_revision, kv.value));
    return out;
  }

  // The claims on a host (an empty allocation when it has none).
  HostAllocation allocation(const std::string& host) {
    auto kv = store_->get(kAllocPrefix + host);
    if (!kv.ok() || !*kv) return {};
    auto a = allocation_from_json((*kv)->value);
    return a.ok() ? *a : HostAllocation{};
  }

  // A RunRequest for the test image.
  RunRequest run_request(const std::string& type = "n1.tiny", unsigned count = 1) const {
    RunRequest r;
    r.image_id = image_.id;
    r.instance_type = type;
    r.min_count = r.max_count = count;
    return r;
  }

 private:
  static void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
    if (!out) throw std::runtime_error("cannot write " + path);
  }

  std::atomic<int64_t> now_ms_{0};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Cloud> cloud_;
  std::string dir_;
  ImageRecord image_;
  FakeHostDriver driver_;
  std::unique_ptr<Reconciler> reconciler_;
  std::vector<TestHost> hosts_;
};

}  // namespace nimbus::cloud
