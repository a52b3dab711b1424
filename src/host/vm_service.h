// nimbusd's operations on VMs (the HostOps of docs/nimbusd.md's API, less the host and
// metrics): each takes typed arguments and returns a typed result or a Status whose code
// says why it was refused (NotFound, Conflict: wrong state, busy, name or port taken;
// InsufficientCapacity; InvalidArgument) or what failed (Internal). A refused operation
// changes nothing. The state machine:
//
//   create   -> starting (or stopped with start=false); refused: name taken, no slot,
//               no capacity, port taken, disk smaller than the image
//   start    stopped|crashed -> starting; refused while any VMM of the VM lives
//   stop     any -> stopped (kills every VMM of the VM)
//   restart  any -> starting
//   pause    running|starting -> paused;  resume paused -> running|starting
//   resize   only without a VMM; disks only grow
//   forwards any state: saved; a live VMM (starting, running, paused) applies them at once,
//            and if it refuses nothing is saved
//   metadata any state: saved; a live VMM applies it at once (PUT /mmds, /mmds/config), and
//            if it refuses nothing is saved
//   snapshot running|paused|starting; restore any -> running|paused (from the snapshot)
//   export   stopped: its disk; paused: its disk as it is; running|starting: paused for a
//            copy of the overlay and resumed, or (reboot) stopped gracefully, copied and
//            started again; the copy is then flattened into a new image (vm_export.cpp)
//   delete   any -> gone (stops it hard first)
#pragma once

#include <string>
#include <vector>

#include "host/vm_runtime.h"

namespace nimbus::host {

class VmService {
 public:
  explicit VmService(VmRuntime& rt) : rt_(rt) {}

  Result<std::vector<VmInfo>> list_vms();
  Result<VmInfo> get_vm(const std::string& name);
  Result<VmInfo> create_vm(const CreateRequest& req);
  Status delete_vm(const std::string& name);
  Result<VmInfo> start_vm(const std::string& name);
  Result<StopResult> stop_vm(const std::string& name, bool force, unsigned timeout_s);
  Result<VmInfo> restart_vm(const std::string& name, bool force, unsigned timeout_s);
  Result<VmInfo> pause_vm(const std::string& name);
  Result<VmInfo> resume_vm(const std::string& name);
  Result<VmInfo> resize_vm(const std::string& name, const ResizeRequest& req);
  // Replaces the VM's forwards (each with its host address: the API fills in 0.0.0.0).
  // Refused (nothing changed): a host port another VM forwards, one this host cannot bind
  // now (Conflict), or one the VMM cannot listen on (its code and reason).
  Result<VmInfo> set_forwards(const std::string& name,
                              const std::vector<config::PortForward>& forwards);
  // Replaces the VM's metadata data and/or options (MetadataUpdate).
  Result<VmInfo> set_metadata(const std::string& name, const MetadataUpdate& update);

  // vm_snapshots.cpp
  Result<std::vector<SnapshotInfo>> list_snapshots(const std::string& name);
  Result<SnapshotInfo> create_snapshot(const std::string& name, const std::string& snap);
  Result<VmInfo> restore_snapshot(const std::string& name, const std::string& snap);
  Status delete_snapshot(const std::string& name, const std::string& snap);

  // vm_export.cpp: the VM's disk (overlay and backing image) flattened into one qcow2
  // with no backing file, installed as image `req.image` with the parent image's kernel
  // and initrd. Refused: an image of that name exists (Conflict), the VM is busy or in a
  // state that cannot be exported (Conflict). A failed export leaves no image and the VM
  // as it was (running again if it was running).
  Result<ImageInfo> export_image(const std::string& name, const ExportImageRequest& req);

 private:
  VmRuntime& rt_;
};

}  // namespace nimbus::host
