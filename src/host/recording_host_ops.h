// A stand-in for the daemon behind the host API, for the router's unit tests and its fuzz
// target: it records the typed call the router made and answers like the daemon would
// (NotFound for unknown VMs, a VM for known ones), without any VM.
#pragma once

#include <set>
#include <string>

#include "host/host_types.h"

namespace nimbus::host {

class RecordingHostOps : public HostOps {
 public:
  std::string last;  // "create web1", "stop web1 force=1 timeout=30", ...
  CreateRequest created;
  ResizeRequest resized;
  std::set<std::string> vms = {"web1"};

  Result<VmInfo> vm(const std::string& name) {
    if (vms.count(name) == 0) return Status::not_found("no VM named '" + name + "'");
    VmInfo i;
    i.record.name = name;
    i.record.state = "running";
    return i;
  }
  Status known(const std::string& name) { return vm(name).status(); }

  Result<HostInfo> host_info() override {
    last = "host";
    HostInfo h;
    h.capacity.cpus.capacity = 8;
    return h;
  }
  Result<std::vector<ImageInfo>> list_images() override {
    last = "images";
    return std::vector<ImageInfo>{};
  }
  ImageFetchRequest fetched;
  Status fetch_result;  // what fetch_image answers when not OK
  Result<FetchedImage> fetch_image(const ImageFetchRequest& r) override {
    fetched = r;
    last = "fetch-image " + r.name;
    if (!fetch_result.ok()) return fetch_result;
    FetchedImage f;
    f.image.name = r.name;
    f.image.files = r.files;
    f.created = r.name != "present";
    return f;
  }
  Result<std::vector<VmInfo>> list_vms() override {
    last = "list";
    return std::vector<VmInfo>{};
  }
  Result<VmInfo> get_vm(const std::string& n) override { return record("get " + n, vm(n)); }
  Result<VmInfo> create_vm(const CreateRequest& r) override {
    created = r;
    const std::string name = r.name.empty() ? "vm-1" : r.name;
    last = "create " + name;
    if (vms.count(name) != 0) return Status::conflict("exists");
    vms.insert(name);
    return vm(name);
  }
  Status delete_vm(const std::string& n) override { return record("delete " + n, known(n)); }
  Result<VmInfo> start_vm(const std::string& n) override { return record("start " + n, vm(n)); }
  Result<StopResult> stop_vm(const std::string& n, bool force, unsigned t) override {
    last = "stop " + n + " force=" + std::to_string(force) + " timeout=" + std::to_string(t);
    auto v = vm(n);
    if (!v.ok()) return v.status();
    return StopResult{*v, false};
  }
  Result<VmInfo> restart_vm(const std::string& n, bool force, unsigned t) override {
    return record(
        "restart " + n + " force=" + std::to_string(force) + " timeout=" + std::to_string(t),
        vm(n));
  }
  Result<VmInfo> pause_vm(const std::string& n) override { return record("pause " + n, vm(n)); }
  Result<VmInfo> resume_vm(const std::string& n) override { return record("resume " + n, vm(n)); }
  Result<VmInfo> resize_vm(const std::string& n, const ResizeRequest& r) override {
    resized = r;
    return record("resize " + n, vm(n));
  }
  std::vector<config::PortForward> forwards;
  Result<VmInfo> set_forwards(const std::string& n,
                              const std::vector<config::PortForward>& f) override {
    forwards = f;
    return record("forwards " + n + " " + std::to_string(f.size()), vm(n));
  }
  MetadataUpdate metadata;
  Result<VmInfo> set_metadata(const std::string& n, const MetadataUpdate& u) override {
    metadata = u;
    return record("metadata " + n, vm(n));
  }
  Result<std::vector<SnapshotInfo>> list_snapshots(const std::string& n) override {
    last = "snapshots " + n;
    if (Status s = known(n); !s.ok()) return s;
    return std::vector<SnapshotInfo>{};
  }
  Result<SnapshotInfo> create_snapshot(const std::string& n, const std::string& s) override {
    last = "snapshot " + n + " " + s;
    if (Status st = known(n); !st.ok()) return st;
    return SnapshotInfo{n, s.empty() ? "snap-1" : s, "", 0, 1, 256};
  }
  Result<VmInfo> restore_snapshot(const std::string& n, const std::string& s) override {
    return record("restore " + n + " " + s, vm(n));
  }
  Status delete_snapshot(const std::string& n, const std::string& s) override {
    return record("delete-snapshot " + n + " " + s, known(n));
  }
  ExportImageRequest exported;
  Result<ImageInfo> export_image(const std::string& n, const ExportImageRequest& r) override {
    exported = r;
    last = "export-image " + n + " " + r.image;
    if (Status st = known(n); !st.ok()) return st;
    ImageInfo i;
    i.name = r.image;
    i.description = r.description;
    return i;
  }
  std::string image_file_path;  // what image_file answers ("": NotFound)
  Result<ImageFileRef> image_file(const std::string& image, const std::string& file) override {
    last = "image-file " + image + " " + file;
    if (image_file_path.empty()) return Status::not_found("no such file");
    return ImageFileRef{image_file_path, 0};
  }
  std::vector<backends::TunnelPeer> peers;
  Result<NetworkInfo> network_info() override {
    last = "network";
    NetworkInfo n;
    n.tunnel = true;
    n.peers = peers;
    return n;
  }
  Result<NetworkInfo> set_tunnel_peers(const std::vector<backends::TunnelPeer>& p) override {
    peers = p;
    NetworkInfo n;
    n.tunnel = true;
    n.peers = peers;
    last = "peers " + std::to_string(p.size());
    return n;
  }
  std::string metrics() override {
    last = "metrics";
    return "nimbus_host_vms{kind=\"total\"} 1\n";
  }

 private:
  template <typename R>
  R record(const std::string& what, R r) {
    last = what;
    return r;
  }
};

}  // namespace nimbus::host
