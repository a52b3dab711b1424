// VmService::export_image over fake VMM processes: real disks (the fixture's 1 MiB raw
// image under each VM's qcow2 overlay), fake VMMs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/block/qcow2.h"
#include "host/daemon_test_fixture.h"
#include "host/host_api.h"
#include "host/sha256.h"
#include "host/vm_launcher.h"

namespace nimbus::host {
namespace {

namespace fs = std::filesystem;

class VmExportTest : public DaemonTest {
 protected:
  std::string disk(const std::string& vm) { return VmPaths::of(options.state_dir, vm).disk; }
  void write_disk(const std::string& path, uint64_t off, const std::string& data) {
    backends::DiskOptions o;
    o.path = path;
    auto d = backends::open_disk(o);
    ASSERT_TRUE(d.ok()) << d.message();
    ASSERT_TRUE((*d)->write(off, reinterpret_cast<const uint8_t*>(data.data()), data.size()).ok());
    ASSERT_TRUE((*d)->flush().ok());
  }
  std::string read_disk(const std::string& path) {
    backends::DiskOptions o;
    o.path = path;
    o.read_only = true;
    auto d = backends::open_disk(o);
    EXPECT_TRUE(d.ok()) << d.message();
    if (!d.ok()) return "";
    std::string out((*d)->size(), '\0');
    EXPECT_TRUE((*d)->read(0, reinterpret_cast<uint8_t*>(out.data()), out.size()).ok());
    return out;
  }
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(fake->mu);
    return fake->calls;
  }
  // Nothing staged or copied is left behind.
  void expect_no_leftovers(const std::string& vm) {
    for (const auto& e : fs::directory_iterator(options.state_dir + "/images"))
      EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
    EXPECT_FALSE(fs::exists(disk(vm) + ".export"));
  }
  static std::string file_text(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
};

TEST_F(VmExportTest, StoppedVmIsFlattenedIntoAStandaloneImage) {
  create("web1", 1, 256, false);
  write_disk(disk("web1"), 4096, "written by the guest");
  const size_t before = calls().size();
  ExportImageRequest r{"golden", "my image", false, 30};
  auto img = daemon->export_image("web1", r);
  ASSERT_TRUE(img.ok()) << img.message();
  EXPECT_EQ(calls().size(), before);  // no VMM was touched
  EXPECT_EQ(img->name, "golden");
  EXPECT_EQ(img->description, "my image");
  EXPECT_EQ(img->disk_format, "qcow2");
  EXPECT_EQ(img->disk_mib, 1u);
  ASSERT_EQ(img->files.size(), 2u);
  for (const ImageFile& f : img->files) {
    const std::string path = img->dir + "/" + f.name;
    EXPECT_EQ(f.size, fs::file_size(path)) << f.name;
    EXPECT_EQ(f.sha256, sha256_hex(file_text(path))) << f.name;
  }
  EXPECT_EQ(img->files[0].role, "kernel");
  EXPECT_EQ(file_text(img->kernel), "not a kernel");
  auto q = backends::Qcow2Image::open(img->disk, true);
  ASSERT_TRUE(q.ok()) << q.message();
  EXPECT_EQ((*q)->backing_file(), "");
  q->reset();
  const std::string flat = read_disk(img->disk);
  EXPECT_EQ(flat, read_disk(disk("web1")));
  EXPECT_EQ(flat.substr(4096, 20), "written by the guest");
  EXPECT_EQ(get("web1").state, "stopped");
  expect_no_leftovers("web1");

  // A VM made from the new image sees the data; the name is now taken.
  CreateRequest c;
  c.name = "web2";
  c.image = "golden";
  c.start = false;
  ASSERT_TRUE(daemon->create_vm(c).ok());
  EXPECT_EQ(read_disk(disk("web2")).substr(4096, 20), "written by the guest");
  auto again = daemon->export_image("web2", r);
  EXPECT_EQ(again.code(), Code::kConflict);
  EXPECT_EQ(daemon->list_images()->size(), 2u);
}

TEST_F(VmExportTest, RunningVmIsPausedForTheCopyAndResumed) {
  create("web1");
  const int64_t pid = get("web1").pid;
  auto img = daemon->export_image("web1", {"golden", "", false, 30});
  ASSERT_TRUE(img.ok()) << img.message();
  const auto c = calls();
  const std::vector<std::string> tail(c.end() - 2, c.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"pause web1", "resume web1"}));
  EXPECT_EQ(get("web1").pid, pid);
  EXPECT_NE(get("web1").state, "paused");
  expect_no_leftovers("web1");
}

TEST_F(VmExportTest, RebootStopsGracefullyAndStartsAgain) {
  create("web1");
  const int64_t pid = get("web1").pid;
  auto img = daemon->export_image("web1", {"golden", "", true, 30});
  ASSERT_TRUE(img.ok()) << img.message();
  const auto c = calls();
  EXPECT_NE(std::find(c.begin(), c.end(), "shutdown web1"), c.end());
  EXPECT_EQ(c.back(), "spawn web1");
  const VmRecord vm = get("web1");
  EXPECT_NE(vm.pid, pid);
  EXPECT_NE(vm.pid, 0);
  EXPECT_EQ(vm.desired_state, "running");
  EXPECT_EQ(fake->live_of("web1").size(), 1u);
  expect_no_leftovers("web1");
}

TEST_F(VmExportTest, PausedVmStaysPaused) {
  create("web1");
  ASSERT_TRUE(daemon->pause_vm("web1").ok());
  const size_t before = calls().size();
  ASSERT_TRUE(daemon->export_image("web1", {"golden", "", true, 30}).ok());
  EXPECT_EQ(calls().size(), before);
  EXPECT_EQ(get("web1").state, "paused");
}

TEST_F(VmExportTest, RefusalsAndFailuresChangeNothing) {
  EXPECT_EQ(daemon->export_image("nope", {"golden", "", false, 30}).code(), Code::kNotFound);
  create("web1");
  EXPECT_EQ(daemon->export_image("web1", {"default", "", false, 30}).code(), Code::kConflict);
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    fake->pause_error = Status::error("the VMM refused");
  }
  auto r = daemon->export_image("web1", {"golden", "", false, 30});
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(daemon->image_file("golden", "rootfs.qcow2").ok());
  EXPECT_EQ(daemon->list_images()->size(), 1u);
  EXPECT_NE(get("web1").state, "paused");
  expect_no_leftovers("web1");
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    fake->pause_error = Status();
  }
  // The VM's disk is damaged: the flatten fails, no image, the VM runs on.
  { std::ofstream(disk("web1"), std::ios::trunc) << std::string("QFI\xfb", 4) << "garbage"; }
  r = daemon->export_image("web1", {"golden", "", false, 30});
  EXPECT_EQ(r.code(), Code::kInternal) << r.message();
  EXPECT_EQ(daemon->list_images()->size(), 1u);
  EXPECT_EQ(get("web1").state, "starting");
  expect_no_leftovers("web1");
}

TEST_F(VmExportTest, ImageFilesAreServedByNameOnly) {
  create("web1", 1, 256, false);
  ASSERT_TRUE(daemon->export_image("web1", {"golden", "", false, 30}).ok());
  auto f = daemon->image_file("golden", "rootfs.qcow2");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->size, fs::file_size(f->path));
  EXPECT_TRUE(daemon->image_file("golden", "Image").ok());
  EXPECT_TRUE(daemon->image_file("default", "rootfs.ext4").ok());
  for (const char* bad : {"image.json", "..", ".", "", "rootfs.ext4", "../default/Image"})
    EXPECT_EQ(daemon->image_file("golden", bad).code(), Code::kNotFound) << bad;
  EXPECT_EQ(daemon->image_file("nope", "Image").code(), Code::kNotFound);

  // Over the API: the bytes, and 404 for names outside the image.
  HostResponse ok = handle_host_request(*daemon, "GET", "/v1/images/golden/files/Image", "");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "not a kernel");
  EXPECT_EQ(ok.content_type, "application/octet-stream");
  for (const char* path : {"/v1/images/golden/files/image.json", "/v1/images/golden/files/..",
                           "/v1/images/golden/files/%2e%2e", "/v1/images/../files/Image",
                           "/v1/images/golden/files/.hidden"}) {
    EXPECT_EQ(handle_host_request(*daemon, "GET", path, "").status, 404) << path;
  }
  EXPECT_EQ(handle_host_request(*daemon, "DELETE", "/v1/images/golden/files/Image", "").status,
            405);
}

TEST_F(VmExportTest, ApiExportsAndRefusesBadBodies) {
  create("web1", 1, 256, false);
  for (const char* body :
       {"{}", R"({"image": "Bad Name"})", R"({"image": "../x"})", R"({"image": 5})",
        R"({"image": "ok", "reboot": "yes"})", R"({"image": "ok", "extra": 1})",
        R"({"image": "ok", "timeout_s": -1})", R"({"image": "ok", "description": 7})", "[1]"}) {
    HostResponse r = handle_host_request(*daemon, "POST", "/v1/vms/web1/image", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
  }
  EXPECT_EQ(daemon->list_images()->size(), 1u);
  HostResponse r = handle_host_request(*daemon, "POST", "/v1/vms/web1/image",
                                       R"({"image": "golden", "description": "d"})");
  EXPECT_EQ(r.status, 201) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["name"], "golden");
  EXPECT_EQ(j["files"].size(), 2u);
  r = handle_host_request(*daemon, "POST", "/v1/vms/web1/image", R"({"image": "golden"})");
  EXPECT_EQ(r.status, 409) << r.body;
  r = handle_host_request(*daemon, "POST", "/v1/vms/nope/image", R"({"image": "other"})");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(handle_host_request(*daemon, "GET", "/v1/vms/web1/image", "").status, 405);
}

}  // namespace
}  // namespace nimbus::host
