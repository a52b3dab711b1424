// The Vmm's typed operations without a guest: what each refuses in which state, with which
// code, that a refusal changes nothing, and that changes and failures are logged with the
// VM's id. (Booting guests is tests/vmm's job.)
#include "vmm/vmm.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "common/log_capture.h"

namespace nimbus::vmm {
namespace {

TEST(Vmm, LifecycleStepsNeedTheirStateAndSayConflict) {
  log::LogCapture log(spdlog::level::info);
  VmmOptions o;
  o.id = "t1";
  Vmm vmm(o, VmConfig());
  for (const auto& [what, status] : std::vector<std::pair<std::string, Status>>{
           {"pause", vmm.pause()},
           {"resume", vmm.resume()},
           {"stop", vmm.stop()},
           {"ctrl-alt-del", vmm.send_ctrl_alt_del()},
           {"shutdown", vmm.shutdown(1).status()},
           {"snapshot", vmm.snapshot_create("/tmp/never").status()},
       }) {
    EXPECT_EQ(status.code(), Code::kConflict) << what << ": " << status.message();
    EXPECT_NE(status.message().find("the VM is NotStarted"), std::string::npos)
        << what << ": " << status.message();
  }
  EXPECT_EQ(vmm.state(), VmState::kNotStarted);
}

TEST(Vmm, NicForwardsChangeBeforeBootAndAreChecked) {
  log::LogCapture log(spdlog::level::info);
  VmmOptions o;
  o.id = "t1";
  Vmm vmm(o, VmConfig());
  NetConfig user;
  user.id = "eth0";
  NetConfig sw;
  sw.id = "eth1";
  sw.mode = "switch";
  sw.switch_path = "/run/sw";
  ASSERT_TRUE(vmm.put_nic(user).ok());
  ASSERT_TRUE(vmm.put_nic(sw).ok());
  // No machine yet: only the configuration changes (nothing listens until the start).
  const std::vector<HostForward> set = {{"tcp", "127.100.1.5", 80, "", 80}};
  ASSERT_TRUE(vmm.set_nic_forwards("eth0", set).ok());
  EXPECT_EQ(vmm.config().nics[0].forwards, set);
  EXPECT_NE(log.text().find("info vm t1: network interface 'eth0' forwards now "
                            "[tcp:127.100.1.5:80-:80]"),
            std::string::npos)
      << log.text();
  // Refusals change nothing.
  EXPECT_EQ(vmm.set_nic_forwards("eth9", {}).code(), Code::kNotFound);
  EXPECT_EQ(vmm.set_nic_forwards("eth1", {}).code(), Code::kInvalidArgument);
  Status twice =
      vmm.set_nic_forwards("eth0", {{"tcp", "", 8080, "", 80}, {"tcp", "", 8080, "", 81}});
  EXPECT_EQ(twice.code(), Code::kInvalidArgument);
  EXPECT_NE(twice.message().find("forwarded twice"), std::string::npos) << twice.message();
  EXPECT_EQ(vmm.config().nics[0].forwards, set);
}

TEST(Vmm, ConfigurationEditsAreTypedAndLogged) {
  log::LogCapture log(spdlog::level::info);
  VmmOptions o;
  o.id = "t1";
  Vmm vmm(o, VmConfig());
  ASSERT_TRUE(vmm.set_machine_shape({2, 128}).ok());
  DriveConfig ro{"root", "/r.qcow2"};
  ro.read_only = true;
  ASSERT_TRUE(vmm.put_drive(ro).ok());
  EXPECT_EQ(vmm.config().vcpus, 2u);
  EXPECT_EQ(vmm.config().drives.size(), 1u);

  EXPECT_EQ(vmm.delete_drive("nope").code(), Code::kNotFound);
  EXPECT_EQ(vmm.delete_nic("nope").code(), Code::kNotFound);
  EXPECT_EQ(vmm.resize_drive("nope", 1 << 20).code(), Code::kNotFound);
  auto ro_resize = vmm.resize_drive("root", 1 << 20);
  EXPECT_EQ(ro_resize.code(), Code::kInvalidArgument);
  EXPECT_EQ(ro_resize.message(), "drive 'root' is read-only");
  Status boot = vmm.set_boot_source({"/dev/zero", "", "", ""});
  EXPECT_EQ(boot.code(), Code::kInvalidArgument);
  EXPECT_TRUE(vmm.config().kernel.empty());

  const std::string text = log.text();
  EXPECT_NE(text.find("info vm t1: configured: machine-config (2 vCPUs, 128 MiB)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("info vm t1: configured: drive 'root' (/r.qcow2)"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("boot-source"), std::string::npos)
      << "a refused edit is not a change: " << text;
}

TEST(Vmm, FailedStartAndRestoreAreInvalidArgumentLoggedAndChangeNothing) {
  log::LogCapture log(spdlog::level::info);
  VmmOptions o;
  o.id = "t1";
  o.images_dir = "/nonexistent";
  VmConfig c;
  c.kernel = "/nonexistent/Image";
  Vmm vmm(o, c);
  Status start = vmm.start();
  EXPECT_EQ(start.code(), Code::kInvalidArgument) << start.message();
  EXPECT_NE(start.message().find("cannot open kernel '/nonexistent/Image'"), std::string::npos)
      << start.message();
  EXPECT_EQ(vmm.state(), VmState::kNotStarted);

  auto restore = vmm.snapshot_load("/nonexistent/vm.snap", true);
  EXPECT_EQ(restore.code(), Code::kInvalidArgument) << restore.message();
  EXPECT_EQ(vmm.state(), VmState::kNotStarted);
  EXPECT_EQ(vmm.config().kernel, "/nonexistent/Image");

  const std::string text = log.text();
  EXPECT_NE(text.find("error vm t1: start failed: "), std::string::npos) << text;
  EXPECT_NE(text.find("error vm t1: restoring '/nonexistent/vm.snap' failed: "), std::string::npos)
      << text;
  EXPECT_EQ(text.find("started"), std::string::npos) << text;
}

}  // namespace
}  // namespace nimbus::vmm
