// Images made from instances (EC2's CreateImage / DeregisterImage) and the image step that
// builds them. CreateImage records the image `pending` and returns its id at once, as EC2
// does; the ImageBuilder then asks the instance's host to export the VM's disk (nimbusd's
// POST /v1/vms/ID/image, named after the AMI id), downloads the image's files into the
// control plane's image directory (each checked against the size and sha256 the host
// reported), records them and marks the image `available` (or `failed` with a reason).
// Other hosts then fetch it like the bundled image (the reconciler's ensure_image).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "cloud/cloud.h"
#include "cloud/reconciler.h"

namespace nimbus::cloud {

struct CreateImageRequest {
  std::string instance_id, name, description;
  bool no_reboot = false;
  Tags tags;
};

// InvalidInstanceID.*, IncorrectInstanceState (not running or stopped), InvalidAMIName.Malformed
// (EC2's rule: 3-128 of letters, digits and ( ) [ ] space . / - ' @ _),
// InvalidAMIName.Duplicate (a name the owner already uses), InvalidParameterValue
// (description over 255 characters).
Ec2Result<ImageRecord> create_image(Cloud& cloud, const CreateImageRequest& req);

// The caller's own image only (the bundled image is the cloud's: AuthFailure); pending and
// failed ones too. Its files on the control plane are removed; hosts keep their copies, so
// instances of it keep running.
Ec2Result<bool> deregister_image(Cloud& cloud, const std::string& id);

// Read-modify-write of an image record; `change` returns false to leave it. kNotFound when
// the image is gone (deregistered).
Status update_image(Cloud& cloud, const std::string& id,
                    const std::function<bool(ImageRecord&)>& change);

class ImageBuilder {
 public:
  // `files_dir`: where images' files go (STATE_DIR/images), one directory per AMI.
  ImageBuilder(Cloud& cloud, HostDriver& driver, std::string files_dir);
  ~ImageBuilder();

  void start();
  void stop();
  // One pass over the pending images, each built synchronously (tests).
  void pass_now();
  // How long a pending image may wait on hosts that do not answer (or a busy VM) before
  // it fails.
  void set_deadline(std::chrono::seconds d) { deadline_ = d; }

 private:
  void build(const ImageRecord& img);
  // The outcome of one try: done (available or failed) or to be tried again.
  Status try_build(const ImageRecord& img, bool* retry);
  void fail_image(const std::string& id, const std::string& code, const std::string& message);

  Cloud& cloud_;
  HostDriver& driver_;
  std::string files_dir_;
  std::chrono::seconds deadline_{600};
  std::map<std::string, std::chrono::steady_clock::time_point> first_try_;
  std::map<std::string, std::string> last_error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace nimbus::cloud
