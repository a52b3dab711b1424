#include "machine/virt/virtio_devices.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/net/net_backend.h"
#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/console/virtio_console.h"
#include "devices/virtio/net/virtio_net.h"
#include "devices/virtio/rng/virtio_rng.h"
#include "machine/virt/memory_map.h"

namespace nimbus::machine::virt {
namespace {

// A scratch directory with two 1 MiB raw disk images in it.
struct Scratch {
  std::string dir;
  std::string disk, disk2;
  Scratch() {
    char tmpl[] = "/tmp/nimbus-virtio-devices-XXXXXX";
    dir = mkdtemp(tmpl);
    disk = dir + "/disk.raw";
    disk2 = dir + "/disk2.raw";
    for (const std::string& p : {disk, disk2}) {
      std::FILE* f = std::fopen(p.c_str(), "w");
      std::fclose(f);
      EXPECT_EQ(truncate(p.c_str(), 1 << 20), 0);
    }
  }
  ~Scratch() {
    unlink(disk.c_str());
    unlink(disk2.c_str());
    unlink((dir + "/console.out").c_str());
    rmdir(dir.c_str());
  }
};

// One device of every kind: the config and the backends the VMM would open for it.
VirtConfig board() {
  VirtConfig c;
  c.restoring = true;  // no boot files: only the board
  c.rng = true;
  return c;
}

VirtBackends one_of_each(const Scratch& s, const std::vector<std::string>& disks = {}) {
  VirtBackends b;
  for (const std::string& path : disks.empty() ? std::vector<std::string>{s.disk} : disks) {
    backends::DiskOptions d;
    d.path = path;
    auto disk = backends::open_disk(d);
    EXPECT_TRUE(disk.ok()) << disk.message();
    if (disk.ok()) b.disks.push_back(std::move(*disk));
  }
  config::NicSpec nic;
  auto net = backends::open_net(nic);
  EXPECT_TRUE(net.ok()) << net.message();
  if (net.ok()) b.nics.push_back({std::move(*net), {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}});
  b.virtio_console = [](const uint8_t*, size_t) {};
  return b;
}

// The kinds, in slot order, with the names snapshots carry: both are part of the
// snapshot format and of what the guest sees, so neither may change.
TEST(VirtioDevices, TableOrderAndNamesAreTheSnapshotFormat) {
  std::vector<std::string> names;
  for (const VirtioKind& k : virtio_kinds()) names.emplace_back(k.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"virtio-blk", "virtio-net", "virtio-rng", "virtio-console"}));
}

TEST(VirtioDevices, EachRowBuildsDevicesOfItsName) {
  Scratch s;
  const VirtConfig c = board();
  VirtBackends b = one_of_each(s);
  EXPECT_EQ(virtio_device_count(c, b), 4u);
  for (const VirtioKind& k : virtio_kinds()) {
    ASSERT_EQ(k.count(c, b), 1u) << k.name;
    auto dev = k.create(c, b, 0);
    ASSERT_TRUE(dev.ok()) << k.name << ": " << dev.message();
    EXPECT_EQ((*dev)->name(), k.name);
  }
}

TEST(VirtioDevices, CountsFollowTheConfig) {
  VirtConfig c;
  c.rng = false;
  VirtBackends b;
  EXPECT_EQ(virtio_device_count(c, b), 0u);
  b.disks.resize(3);
  b.nics.resize(2);
  c.rng = true;
  b.virtio_console = [](const uint8_t*, size_t) {};
  EXPECT_EQ(virtio_device_count(c, b), 7u);
}

// The machine opens no host file: a device without its backend is an error naming the
// option, not an open of something.
TEST(VirtioDevices, AMissingBackendIsAnErrorNamingTheOption) {
  const VirtConfig c = board();
  VirtBackends b;
  b.disks.resize(1);
  b.nics.resize(1);
  for (const VirtioKind& k : virtio_kinds()) {
    if (k.name != "virtio-blk" && k.name != "virtio-net") continue;
    auto dev = k.create(c, b, 0);
    ASSERT_FALSE(dev.ok()) << k.name;
    EXPECT_EQ(dev.message().rfind(k.name == "virtio-blk" ? "--disk: " : "--net: ", 0), 0u)
        << dev.message();
  }
}

// The machine fills its slots by walking the table: disks, NICs, rng, console, whatever
// the order of the config's fields.
TEST(VirtioDevices, MachineSlotsFollowTheTable) {
  Scratch s;
  auto m = VirtMachine::create(board(), one_of_each(s, {s.disk, s.disk2}),
                               [](const uint8_t*, size_t) {});
  ASSERT_TRUE(m.ok()) << m.message();
  std::vector<std::string> names;
  for (size_t i = 0; (*m)->virtio_device(i) != nullptr; i++)
    names.push_back((*m)->virtio_device(i)->name());
  EXPECT_EQ(names, (std::vector<std::string>{"virtio-blk", "virtio-blk", "virtio-net", "virtio-rng",
                                             "virtio-console"}));
  EXPECT_EQ((*m)->virtio_device_of<devices::VirtioBlk>(1), (*m)->virtio_device(1));
  EXPECT_EQ((*m)->virtio_device_of<devices::VirtioBlk>(2), nullptr);
  EXPECT_EQ((*m)->virtio_device_of<devices::VirtioNet>(), (*m)->virtio_device(2));
  EXPECT_EQ((*m)->virtio_device_of<devices::VirtioConsole>(), (*m)->virtio_device(4));
}

TEST(VirtioDevices, MoreDevicesThanSlotsIsRefused) {
  VirtConfig c;
  c.restoring = true;
  VirtBackends b;
  b.nics.resize(kVirtioSlots);  // plus the rng: one too many, refused before any is built
  auto m = VirtMachine::create(c, std::move(b), [](const uint8_t*, size_t) {});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("too many virtio devices (9)"), std::string::npos) << m.message();
}

// The machine state holds one "<name>-mmio" section per slot, in slot order, and loads
// into a machine built from the same configuration.
TEST(VirtioDevices, MachineStateHasOneSectionPerSlotInOrder) {
  Scratch s;
  const VirtConfig c = board();
  auto a = VirtMachine::create(c, one_of_each(s), [](const uint8_t*, size_t) {});
  ASSERT_TRUE(a.ok()) << a.message();
  StateWriter w;
  (*a)->save_state(w);
  const std::vector<uint8_t>& state = w.data();
  size_t at = 0;
  for (const char* section :
       {"virtio-blk-mmio", "virtio-net-mmio", "virtio-rng-mmio", "virtio-console-mmio"}) {
    const std::string name(section);
    auto it = std::search(state.begin() + static_cast<ptrdiff_t>(at), state.end(), name.begin(),
                          name.end());
    ASSERT_NE(it, state.end()) << section << " missing or out of order";
    at = static_cast<size_t>(it - state.begin()) + name.size();
  }
  a->reset();  // one disk user at a time: the image is locked
  auto b = VirtMachine::create(c, one_of_each(s), [](const uint8_t*, size_t) {});
  ASSERT_TRUE(b.ok()) << b.message();
  StateReader r(state);
  (*b)->load_state(r);
  EXPECT_TRUE(r.ok()) << r.status().message();
}

}  // namespace
}  // namespace nimbus::machine::virt
