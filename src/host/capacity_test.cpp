#include "host/capacity.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>

namespace nimbus::host {
namespace {

// The host of docs/nimbusd.md's example: 2 CPUs, 24000 MiB, 250000 MiB of disk.
HostResources example_host() { return {2, 24000, 250000}; }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(Capacity, DetectsThisHost) {
  auto h = detect_host_resources("/");
  ASSERT_TRUE(h.ok()) << h.message();
  EXPECT_GE(h->cpus, 1u);
  EXPECT_LE(h->cpus, static_cast<unsigned>(sysconf(_SC_NPROCESSORS_CONF)));
  EXPECT_GT(h->memory_mib, 16u);
  EXPECT_GT(h->disk_mib, 0u);
}

TEST(Capacity, DetectFailsForMissingStateDir) {
  auto h = detect_host_resources("/nonexistent/nimbus-state");
  ASSERT_FALSE(h.ok());
  EXPECT_TRUE(contains(h.message(), "'/nonexistent/nimbus-state'")) << h.message();
}

TEST(Capacity, ComputesTheDocumentedExample) {
  CapacityPolicy p;  // overcommit 4, 1024 MiB and 10240 MiB reserved, 64 MiB overhead
  // web1 running (1 vCPU, 256 MiB, 1024 MiB disk), web2 paused (2, 256, 1024), web3 stopped.
  std::vector<VmAllocation> vms = {
      {{1, 256, 1024}, true}, {{2, 256, 1024}, true}, {{4, 4096, 1024}, false}};
  Capacity c = compute_capacity(example_host(), p, vms);
  EXPECT_EQ(c.cpus.host, 2u);
  EXPECT_EQ(c.cpus.capacity, 8u);
  EXPECT_EQ(c.cpus.allocated, 3u);
  EXPECT_EQ(c.cpus.available, 5u);
  EXPECT_EQ(c.memory_mib.capacity, 22976u);
  EXPECT_EQ(c.memory_mib.allocated, 640u);  // 2 x (256 + 64): the stopped VM holds none
  EXPECT_EQ(c.memory_mib.available, 22336u);
  EXPECT_EQ(c.disk_mib.capacity, 239760u);
  EXPECT_EQ(c.disk_mib.allocated, 3072u);  // every VM's disk
  EXPECT_EQ(c.disk_mib.available, 236688u);

  const nlohmann::json expected = nlohmann::json::parse(R"({
    "cpus":      {"host": 2, "overcommit": 4.0, "capacity": 8, "allocated": 3, "available": 5},
    "memory_mib":{"host": 24000, "reserved": 1024, "capacity": 22976, "allocated": 640, "available": 22336},
    "disk_mib":  {"host": 250000, "reserved": 10240, "capacity": 239760, "allocated": 3072, "available": 236688}})");
  EXPECT_EQ(to_json(c), expected) << to_json(c).dump();
}

TEST(Capacity, OverridesReplaceDetectedFigures) {
  CapacityPolicy p;
  p.cpus_override = 3;
  p.memory_mib_override = 4096;
  p.disk_mib_override = 20480;
  Capacity c = compute_capacity(example_host(), p, {});
  EXPECT_EQ(c.cpus.host, 3u);
  EXPECT_EQ(c.cpus.capacity, 12u);
  EXPECT_EQ(c.memory_mib.host, 4096u);
  EXPECT_EQ(c.memory_mib.capacity, 3072u);
  EXPECT_EQ(c.disk_mib.host, 20480u);
  EXPECT_EQ(c.disk_mib.capacity, 10240u);
}

TEST(Capacity, FractionalOvercommitFloors) {
  CapacityPolicy p;
  p.cpu_overcommit = 1.5;
  EXPECT_EQ(compute_capacity({3, 8192, 100000}, p, {}).cpus.capacity, 4u);  // 4.5
  p.cpu_overcommit = 1.4;
  EXPECT_EQ(compute_capacity({5, 8192, 100000}, p, {}).cpus.capacity, 7u);  // 5 x 1.4 is not 6.99
  p.cpu_overcommit = 1.0;
  EXPECT_EQ(compute_capacity({2, 8192, 100000}, p, {}).cpus.capacity, 2u);
}

TEST(Capacity, ReservesLargerThanTheHostLeaveNothing) {
  CapacityPolicy p;
  p.memory_mib_override = 512;
  p.disk_mib_override = 1000;
  Capacity c = compute_capacity(example_host(), p, {});
  EXPECT_EQ(c.memory_mib.capacity, 0u);
  EXPECT_EQ(c.disk_mib.capacity, 0u);
  EXPECT_FALSE(check_fit(c, {1, 64, 0}, p).ok());
}

TEST(Capacity, OverAllocatedHostHasNothingAvailable) {
  CapacityPolicy p;
  p.cpu_overcommit = 1.0;
  // Allocated under a larger overcommit, then the policy was tightened.
  Capacity c = compute_capacity(example_host(), p, {{{3, 256, 0}, true}});
  EXPECT_EQ(c.cpus.allocated, 3u);
  EXPECT_EQ(c.cpus.available, 0u);
  EXPECT_FALSE(check_fit(c, {1, 0, 0}, p).ok());
}

TEST(Capacity, ExactFitIsAcceptedAndOneMoreIsRefused) {
  CapacityPolicy p;
  p.memory_mib_override = 1024 + 3 * 320;  // room for 3 VMs of 256 MiB + 64 MiB overhead
  p.disk_mib_override = 10240 + 3000;
  std::vector<VmAllocation> vms = {{{2, 256, 1000}, true}, {{3, 256, 1000}, true}};
  Capacity c = compute_capacity(example_host(), p, vms);
  EXPECT_EQ(c.cpus.available, 3u);
  EXPECT_EQ(c.memory_mib.available, 320u);
  EXPECT_EQ(c.disk_mib.available, 1000u);

  EXPECT_TRUE(check_fit(c, {3, 256, 1000}, p).ok());
  EXPECT_FALSE(check_fit(c, {4, 256, 1000}, p).ok());
  EXPECT_FALSE(check_fit(c, {3, 257, 1000}, p).ok());
  EXPECT_FALSE(check_fit(c, {3, 256, 1001}, p).ok());
}

TEST(Capacity, RefusalNamesEveryShortResourceWithNumbers) {
  CapacityPolicy p;
  p.memory_mib_override = 1024 + 200;
  p.disk_mib_override = 10240 + 500;
  Capacity c = compute_capacity(example_host(), p, {{{5, 0, 0}, true}});
  Status s = check_fit(c, {4, 256, 2048}, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "not enough vCPUs: the VM needs 4, 3 of 8 are free (2 host CPUs x overcommit 4.0); "
            "not enough memory: the VM needs 320 MiB (256 MiB + 64 MiB overhead), 136 MiB of 200 "
            "MiB is free; "
            "not enough disk: the VM needs 2048 MiB, 500 MiB of 500 MiB is free");

  // Only the short resource is named.
  s = check_fit(c, {1, 72, 2048}, p);  // 72 + 64 MiB is exactly what is free
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "not enough disk: the VM needs 2048 MiB, 500 MiB of 500 MiB is free");
}

TEST(Capacity, NoOverheadMessageWithoutOverhead) {
  CapacityPolicy p;
  p.vm_overhead_mib = 0;
  p.cpu_overcommit = 2.5;
  p.memory_mib_override = 1024 + 100;
  Capacity c = compute_capacity(example_host(), p, {});
  Status s = check_fit(c, {6, 128, 0}, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "not enough vCPUs: the VM needs 6, 5 of 5 are free (2 host CPUs x overcommit 2.5); "
            "not enough memory: the VM needs 128 MiB, 100 MiB of 100 MiB is free");
}

TEST(Capacity, ZeroMemoryRequestSkipsTheOverhead) {
  // Starting a VM whose compute is already counted, or adding only disk.
  CapacityPolicy p;
  p.memory_mib_override = 1024;  // no memory at all
  Capacity c = compute_capacity(example_host(), p, {});
  EXPECT_TRUE(check_fit(c, {0, 0, 1024}, p).ok());
  EXPECT_FALSE(check_fit(c, {0, 1, 0}, p).ok());
}

TEST(Capacity, NothingIsOvercommittedBeyondTheRatio) {
  // Fill the host one VM at a time: the total never passes the capacities.
  CapacityPolicy p;
  p.cpu_overcommit = 3.0;
  p.memory_mib_override = 1024 + 10 * (200 + 64);
  std::vector<VmAllocation> vms;
  const Allocation each{2, 200, 100};
  for (int i = 0; i < 100; i++) {
    Capacity c = compute_capacity(example_host(), p, vms);
    if (!check_fit(c, each, p).ok()) break;
    vms.push_back({each, true});
  }
  Capacity c = compute_capacity(example_host(), p, vms);
  EXPECT_EQ(vms.size(), 3u);  // 6 of 6 vCPUs
  EXPECT_LE(c.cpus.allocated, c.cpus.capacity);
  EXPECT_LE(c.memory_mib.allocated, c.memory_mib.capacity);
  EXPECT_LE(c.disk_mib.allocated, c.disk_mib.capacity);
  // Stopping one frees its compute but not its disk.
  vms[0].holds_compute = false;
  c = compute_capacity(example_host(), p, vms);
  EXPECT_EQ(c.cpus.available, 2u);
  EXPECT_EQ(c.disk_mib.allocated, 300u);
}

TEST(Capacity, ValidateChecksRanges) {
  CapacityPolicy p;
  EXPECT_TRUE(validate(p).ok());
  p.cpu_overcommit = 1.0;
  EXPECT_TRUE(validate(p).ok());
  p.cpu_overcommit = 64.0;
  EXPECT_TRUE(validate(p).ok());
  p.cpu_overcommit = 0.5;
  Status s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "CPU overcommit 0.5 is out of range (a ratio from 1.0 to 64)");
  p.cpu_overcommit = 65;
  EXPECT_FALSE(validate(p).ok());
  p.cpu_overcommit = std::nan("");
  EXPECT_FALSE(validate(p).ok());

  p = {};
  p.cpus_override = 0;
  s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "host CPUs override 0")) << s.message();
  p = {};
  p.memory_mib_override = 0;
  EXPECT_FALSE(validate(p).ok());
  p = {};
  p.disk_mib_override = uint64_t{1} << 50;
  EXPECT_FALSE(validate(p).ok());
  p = {};
  p.vm_overhead_mib = uint64_t{1} << 50;
  s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "per-VM memory overhead")) << s.message();
}

}  // namespace
}  // namespace nimbus::host
