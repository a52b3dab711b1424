// A stand-in for the daemon behind the host API, for the router's unit tests and its fuzz
// target: it records the typed call the router made and answers like the daemon would
// (404 for unknown VMs, a VM object for known ones), without any VM.
#pragma once

#include <set>
#include <string>

#include "host/daemon.h"

namespace nimbus::host {

class RecordingHostOps : public HostOps {
 public:
  std::string last;              // "create web1", "stop web1 force=1 timeout=30", ...
  CreateRequest created;
  ResizeRequest resized;
  std::set<std::string> vms = {"web1"};

  Reply vm(const std::string& name) {
    if (vms.count(name) == 0) return Reply::error(404, "NotFound", "no VM named '" + name + "'");
    return Reply::ok({{"name", name}, {"state", "running"}});
  }
  Reply host_info() override { return record("host", Reply::ok({{"cpus", {{"capacity", 8}}}})); }
  Reply list_images() override { return record("images", Reply::ok({{"images", json::array()}})); }
  Reply list_vms() override { return record("list", Reply::ok({{"vms", json::array()}})); }
  Reply get_vm(const std::string& n) override { return record("get " + n, vm(n)); }
  Reply create_vm(const CreateRequest& r) override {
    created = r;
    const std::string name = r.name.empty() ? "vm-1" : r.name;
    if (vms.count(name) != 0) return record("create " + name, Reply::error(409, "Conflict", "exists"));
    vms.insert(name);
    return record("create " + name, Reply::ok({{"name", name}}, 201));
  }
  Reply delete_vm(const std::string& n) override { return record("delete " + n, vm(n)); }
  Reply start_vm(const std::string& n) override { return record("start " + n, vm(n)); }
  Reply stop_vm(const std::string& n, bool force, unsigned t) override {
    return record("stop " + n + " force=" + std::to_string(force) + " timeout=" + std::to_string(t), vm(n));
  }
  Reply restart_vm(const std::string& n, bool force, unsigned t) override {
    return record("restart " + n + " force=" + std::to_string(force) + " timeout=" + std::to_string(t), vm(n));
  }
  Reply pause_vm(const std::string& n) override { return record("pause " + n, vm(n)); }
  Reply resume_vm(const std::string& n) override { return record("resume " + n, vm(n)); }
  Reply resize_vm(const std::string& n, const ResizeRequest& r) override {
    resized = r;
    return record("resize " + n, vm(n));
  }
  Reply list_snapshots(const std::string& n) override { return record("snapshots " + n, vm(n)); }
  Reply create_snapshot(const std::string& n, const std::string& s) override {
    return record("snapshot " + n + " " + s, vm(n));
  }
  Reply restore_snapshot(const std::string& n, const std::string& s) override {
    return record("restore " + n + " " + s, vm(n));
  }
  Reply delete_snapshot(const std::string& n, const std::string& s) override {
    return record("delete-snapshot " + n + " " + s, vm(n));
  }
  std::string metrics() override {
    last = "metrics";
    return "nimbus_host_vms{kind=\"total\"} 1\n";
  }

 private:
  Reply record(const std::string& what, Reply r) {
    last = what;
    return r;
  }
};

}  // namespace nimbus::host
