// CreateImage / DeregisterImage and the image step against simulated hosts
// (fake_host_driver.h): pending -> available, failures -> failed, names, the rules of
// deregistering, and an instance of the new image on another host.
#include "cloud/custom_images.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_api.h"
#include "cloud/ec2_form_request.h"
#include "cloud/ec2_query.h"

namespace nimbus::cloud {
namespace {

namespace fs = std::filesystem;

class CustomImagesTest : public ::testing::Test {
 protected:
  CustomImagesTest() : api_(bed_.cloud(), bed_.driver(), {}) {
    char tmpl[] = "/tmp/nimbus-images-test-XXXXXX";
    files_dir_ = ::mkdtemp(tmpl);
    builder_ = std::make_unique<ImageBuilder>(bed_.cloud(), bed_.driver(), files_dir_);
    host_ = bed_.add_hosts(1, {}, {"nimbus-west-1a"}).at(0);
  }
  ~CustomImagesTest() override {
    builder_.reset();
    fs::remove_all(files_dir_);
  }

  InstanceRecord get(const std::string& id) {
    auto i = bed_.cloud().instance(id);
    EXPECT_TRUE(i.ok()) << id;
    return i.ok() ? *i : InstanceRecord{};
  }
  ImageRecord image(const std::string& id) {
    auto all = bed_.cloud().images();
    EXPECT_TRUE(all.ok());
    for (const auto& i : *all) {
      if (i.id == id) return i;
    }
    ADD_FAILURE() << "no image " << id;
    return {};
  }
  std::string running(RunRequest r) {
    auto res = bed_.cloud().run_instances(r);
    EXPECT_TRUE(res.ok()) << (res.ok() ? "" : res.error().message);
    if (!res.ok()) return "";
    const std::string id = res->instances.at(0).id;
    for (int n = 0; n < 5 && get(id).state != InstanceState::kRunning; ++n)
      bed_.reconciler().pass_now();
    EXPECT_EQ(get(id).state, InstanceState::kRunning);
    return id;
  }
  std::string running() { return running(bed_.run_request()); }
  Ec2Result<ImageRecord> create(const std::string& instance, const std::string& name,
                                bool no_reboot = false) {
    CreateImageRequest r;
    r.instance_id = instance;
    r.name = name;
    r.description = "made in a test";
    r.no_reboot = no_reboot;
    return create_image(bed_.cloud(), r);
  }
  std::string error_code(const Ec2Result<ImageRecord>& r) { return r.ok() ? "OK" : r.error().code; }

  http::Reply send(const std::string& body) {
    return route_cloud_request(bed_.cloud(), api_, form_request("Version=2016-11-15&" + body));
  }
  static std::string between(const std::string& xml, const std::string& tag) {
    const auto a = xml.find("<" + tag + ">");
    const auto b = xml.find("</" + tag + ">");
    if (a == std::string::npos || b == std::string::npos) return "";
    return xml.substr(a + tag.size() + 2, b - a - tag.size() - 2);
  }

  CloudTestBed bed_;
  Ec2Api api_;
  std::string files_dir_;
  std::unique_ptr<ImageBuilder> builder_;
  std::string host_;
};

TEST_F(CustomImagesTest, PendingThenAvailableWithTheHostsFiles) {
  const std::string inst = running();
  auto img = create(inst, "web server v1");
  ASSERT_TRUE(img.ok()) << img.error().message;
  EXPECT_EQ(img->state, "pending");
  EXPECT_FALSE(img->is_public);
  EXPECT_EQ(img->owner_id, bed_.cloud().options().account_id);
  EXPECT_EQ(image(img->id).state, "pending");
  // Not launchable while pending.
  RunRequest r = bed_.run_request();
  r.image_id = img->id;
  auto early = bed_.cloud().run_instances(r);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, "InvalidAMIID.Unavailable");

  bed_.driver().clear_calls();
  builder_->pass_now();
  const auto lines = bed_.driver().call_lines(host_);
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[0], "GET /v1/images");
  EXPECT_EQ(lines[1], "POST /v1/vms/" + inst + "/image");
  auto calls = bed_.driver().calls();
  EXPECT_EQ((*calls[1].body)["image"], img->id);
  EXPECT_EQ((*calls[1].body)["reboot"], true);
  EXPECT_EQ((*calls[1].body)["description"], "made in a test");

  const ImageRecord done = image(img->id);
  EXPECT_EQ(done.state, "available");
  ASSERT_EQ(done.files.size(), 2u);
  for (const ImageFile& f : done.files) {
    EXPECT_EQ(fs::path(f.path).parent_path(), fs::path(files_dir_) / img->id);
    EXPECT_EQ(fs::file_size(f.path), f.size);
    auto sum = sha256_file(f.path);
    ASSERT_TRUE(sum.ok());
    EXPECT_EQ(*sum, f.sha256);
  }
  EXPECT_EQ(done.disk_mib, get(inst).disk_mib);
  // The instance was never touched by the reconciler for this.
  EXPECT_EQ(get(inst).state, InstanceState::kRunning);

  // Another pass does nothing.
  bed_.driver().clear_calls();
  builder_->pass_now();
  EXPECT_TRUE(bed_.driver().call_lines().empty());

  // Launched on a host that lacks it: fetched from the control plane like the bundled one.
  const std::string h2 = bed_.add_hosts(1, {}, {"nimbus-west-1b"}).at(0);
  r.zone = "nimbus-west-1b";
  const std::string second = running(r);
  EXPECT_EQ(get(second).host, h2);
  EXPECT_GE(get(second).disk_mib, done.disk_mib);
  bool fetched = false;
  for (const auto& c : bed_.driver().calls()) {
    if (c.host == h2 && c.method == "POST" && c.path == "/v1/images") {
      fetched = true;
      EXPECT_EQ((*c.body)["name"], img->id);
      EXPECT_EQ((*c.body)["source"], std::string(CloudTestBed::kImageSource) + img->id + "/");
      EXPECT_EQ((*c.body)["files"][1]["sha256"], done.files[1].sha256);
    }
  }
  EXPECT_TRUE(fetched);
  // And the control plane serves its files to hosts.
  http::Request fr;
  fr.method = "GET";
  fr.path = "/nimbus/v1/images/" + img->id + "/" + done.files[1].name;
  fr.headers = {{"authorization", std::string("Bearer ") + CloudTestBed::kJoinToken}};
  http::Reply served = route_cloud_request(bed_.cloud(), api_, fr);
  EXPECT_EQ(served.status, 200);
  EXPECT_EQ(served.body.size(), done.files[1].size);
}

TEST_F(CustomImagesTest, NoRebootAndAStoppedInstance) {
  const std::string inst = running();
  auto img = create(inst, "no-reboot", true);
  ASSERT_TRUE(img.ok());
  builder_->pass_now();
  bool seen = false;
  for (const auto& c : bed_.driver().calls()) {
    if (c.path == "/v1/vms/" + inst + "/image") {
      seen = true;
      EXPECT_EQ((*c.body)["reboot"], false);
    }
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(image(img->id).state, "available");

  ASSERT_TRUE(bed_.cloud().stop_instances({inst}, false).ok());
  for (int n = 0; n < 5 && get(inst).state != InstanceState::kStopped; ++n)
    bed_.reconciler().pass_now();
  ASSERT_EQ(get(inst).state, InstanceState::kStopped);
  auto img2 = create(inst, "from-stopped");
  ASSERT_TRUE(img2.ok()) << img2.error().message;
  builder_->pass_now();
  EXPECT_EQ(image(img2->id).state, "available");
}

TEST_F(CustomImagesTest, RefusedRequestsChangeNothing) {
  const std::string inst = running();
  ASSERT_TRUE(create(inst, "taken").ok());
  const auto before = bed_.store_dump();
  EXPECT_EQ(error_code(create(inst, "taken")), "InvalidAMIName.Duplicate");
  EXPECT_EQ(error_code(create(inst, "x")), "InvalidAMIName.Malformed");
  EXPECT_EQ(error_code(create(inst, "bad\nname")), "InvalidAMIName.Malformed");
  EXPECT_EQ(error_code(create(inst, std::string(129, 'a'))), "InvalidAMIName.Malformed");
  EXPECT_EQ(error_code(create("i-0123456789abcdef0", "other")), "InvalidInstanceID.NotFound");
  EXPECT_EQ(error_code(create("nope", "other")), "InvalidInstanceID.Malformed");
  EXPECT_EQ(error_code(create("", "other")), "MissingParameter");
  EXPECT_EQ(error_code(create(inst, "")), "MissingParameter");
  EXPECT_EQ(bed_.store_dump(), before);
  // Pending (not yet running): IncorrectInstanceState.
  auto launch = bed_.cloud().run_instances(bed_.run_request());
  ASSERT_TRUE(launch.ok());
  const std::string pending = launch->instances.at(0).id;
  const auto before2 = bed_.store_dump();
  EXPECT_EQ(error_code(create(pending, "other")), "IncorrectInstanceState");
  EXPECT_EQ(bed_.store_dump(), before2);
}

TEST_F(CustomImagesTest, FailuresMarkTheImageFailed) {
  const std::string inst = running();
  // The host refuses the export for good.
  bed_.driver().set_export_error(Status::internal("flatten failed: disk full"));
  auto img = create(inst, "will-fail");
  ASSERT_TRUE(img.ok());
  builder_->pass_now();
  ImageRecord r = image(img->id);
  EXPECT_EQ(r.state, "failed");
  EXPECT_EQ(r.state_reason_code, "Server.InternalError");
  EXPECT_NE(r.state_reason_message.find("disk full"), std::string::npos) << r.state_reason_message;
  EXPECT_FALSE(fs::exists(fs::path(files_dir_) / img->id));
  RunRequest run = bed_.run_request();
  run.image_id = img->id;
  auto launch = bed_.cloud().run_instances(run);
  ASSERT_FALSE(launch.ok());
  EXPECT_EQ(launch.error().code, "InvalidAMIID.Unavailable");

  // A busy VM (409) is tried again, until the deadline.
  bed_.driver().set_export_error(Status::conflict("VM is busy (stop)"));
  auto busy = create(inst, "busy-then-ok");
  ASSERT_TRUE(busy.ok());
  builder_->pass_now();
  EXPECT_EQ(image(busy->id).state, "pending");
  bed_.driver().set_export_error(Status());
  builder_->pass_now();
  EXPECT_EQ(image(busy->id).state, "available");

  // A download that does not match what the host listed.
  bed_.driver().set_corrupt_files(true);
  auto corrupt = create(inst, "corrupt");
  ASSERT_TRUE(corrupt.ok());
  builder_->pass_now();
  r = image(corrupt->id);
  EXPECT_EQ(r.state, "failed");
  EXPECT_NE(r.state_reason_message.find("sha256"), std::string::npos) << r.state_reason_message;
  EXPECT_FALSE(fs::exists(fs::path(files_dir_) / corrupt->id));
  bed_.driver().set_corrupt_files(false);

  // An unreachable host: pending while within the deadline, then failed.
  bed_.driver().set_unreachable(host_, true);
  auto down = create(inst, "host-down");
  ASSERT_TRUE(down.ok());
  builder_->pass_now();
  EXPECT_EQ(image(down->id).state, "pending");
  builder_->set_deadline(std::chrono::seconds(0));
  builder_->pass_now();
  EXPECT_EQ(image(down->id).state, "failed");
  bed_.driver().set_unreachable(host_, false);

  // The instance terminated before the export.
  builder_->set_deadline(std::chrono::seconds(600));
  auto gone = create(inst, "instance-gone");
  ASSERT_TRUE(gone.ok());
  ASSERT_TRUE(bed_.cloud().terminate_instances({inst}).ok());
  builder_->pass_now();
  EXPECT_EQ(image(gone->id).state, "failed");
}

TEST_F(CustomImagesTest, DeregisterRules) {
  const std::string inst = running();
  auto img = create(inst, "to-go");
  ASSERT_TRUE(img.ok());
  builder_->pass_now();
  const ImageRecord done = image(img->id);
  ASSERT_EQ(done.state, "available");
  // An instance of it runs on.
  RunRequest r = bed_.run_request();
  r.image_id = img->id;
  const std::string child = running(r);

  // The cloud's own image: refused, unchanged.
  const auto before = bed_.store_dump();
  auto own = deregister_image(bed_.cloud(), bed_.image_id());
  ASSERT_FALSE(own.ok());
  EXPECT_EQ(own.error().code, "AuthFailure");
  EXPECT_EQ(deregister_image(bed_.cloud(), "ami-0123456789abcdef0").error().code,
            "InvalidAMIID.NotFound");
  EXPECT_EQ(deregister_image(bed_.cloud(), "bogus").error().code, "InvalidAMIID.Malformed");
  EXPECT_EQ(deregister_image(bed_.cloud(), "").error().code, "MissingParameter");
  EXPECT_EQ(bed_.store_dump(), before);

  ASSERT_TRUE(deregister_image(bed_.cloud(), img->id).ok());
  for (const ImageFile& f : done.files) EXPECT_FALSE(fs::exists(f.path)) << f.path;
  EXPECT_FALSE(fs::exists(fs::path(files_dir_) / img->id));
  auto all = bed_.cloud().images();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
  EXPECT_EQ(deregister_image(bed_.cloud(), img->id).error().code, "InvalidAMIID.NotFound");
  // The instance of it is untouched by further passes; its name is free again.
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(child).state, InstanceState::kRunning);
  EXPECT_TRUE(create(inst, "to-go").ok());

  // A pending image deregistered while it is being made: the build leaves nothing.
  auto pending = create(inst, "pending-gone");
  ASSERT_TRUE(pending.ok());
  ASSERT_TRUE(deregister_image(bed_.cloud(), pending->id).ok());
  builder_->pass_now();
  EXPECT_FALSE(fs::exists(fs::path(files_dir_) / pending->id));
}

TEST_F(CustomImagesTest, TheEc2Api) {
  const std::string inst = running();
  http::Reply r = send("Action=CreateImage&InstanceId=" + inst +
                       "&Name=api-image&Description=hello&NoReboot=true"
                       "&TagSpecification.1.ResourceType=image"
                       "&TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=web");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = between(r.body, "imageId");
  ASSERT_TRUE(is_id(id, "ami")) << r.body;
  r = send("Action=CreateImage&InstanceId=" + inst + "&Name=api-image");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("InvalidAMIName.Duplicate"), std::string::npos) << r.body;
  r = send("Action=CreateImage&InstanceId=" + inst + "&Name=x2&NoReboot=maybe");
  EXPECT_EQ(r.status, 400);

  r = send("Action=DescribeImages&ImageId.1=" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(between(r.body, "imageState"), "pending");
  builder_->pass_now();
  r = send("Action=DescribeImages&Owner.1=self");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(between(r.body, "imageId"), id);  // only the own image
  EXPECT_EQ(between(r.body, "imageState"), "available");
  EXPECT_EQ(between(r.body, "name"), "api-image");
  EXPECT_EQ(between(r.body, "description"), "hello");
  EXPECT_EQ(between(r.body, "isPublic"), "false");
  EXPECT_EQ(between(r.body, "architecture"), "riscv64");
  EXPECT_EQ(between(r.body, "rootDeviceName"), "/dev/vda");
  EXPECT_EQ(between(r.body, "imageOwnerId"), bed_.cloud().options().account_id);
  EXPECT_NE(r.body.find("<volumeSize>"), std::string::npos);
  EXPECT_NE(r.body.find("<key>team</key>"), std::string::npos) << r.body;
  r = send("Action=DescribeImages&Owner.1=amazon");
  EXPECT_EQ(between(r.body, "imageId"), bed_.image_id());
  r = send("Action=DescribeImages&Filter.1.Name=name&Filter.1.Value.1=api-*");
  EXPECT_EQ(between(r.body, "imageId"), id);
  r = send("Action=DescribeImages&Filter.1.Name=state&Filter.1.Value.1=failed");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("<item>"), std::string::npos) << r.body;

  r = send("Action=DeregisterImage&ImageId=" + bed_.image_id());
  EXPECT_NE(r.body.find("AuthFailure"), std::string::npos) << r.body;
  r = send("Action=DeregisterImage&ImageId=" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(between(r.body, "return"), "true");
  r = send("Action=DescribeImages&ImageId.1=" + id);
  EXPECT_NE(r.body.find("InvalidAMIID.NotFound"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace nimbus::cloud
