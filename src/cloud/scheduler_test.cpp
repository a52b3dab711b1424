#include "cloud/scheduler.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>

namespace nimbus::cloud {
namespace {

HostCandidate host(std::string id, std::string zone, uint64_t vcpus = 16,
                   uint64_t memory_mib = 16384, uint64_t disk_mib = 100000) {
  HostCandidate h;
  h.id = std::move(id);
  h.zone = std::move(zone);
  h.vcpus_capacity = vcpus;
  h.memory_mib_capacity = memory_mib;
  h.disk_mib_capacity = disk_mib;
  return h;
}

PlacementRequest request(uint64_t vcpus, uint64_t memory_mib, std::string zone = "") {
  PlacementRequest r;
  r.vcpus = vcpus;
  r.memory_mib = memory_mib;
  r.zone = std::move(zone);
  return r;
}

PlacementRequest in_group(PlacementRequest r, std::string name, std::string strategy,
                          unsigned partitions = 0) {
  r.group = PlacementGroupInfo{std::move(name), std::move(strategy), partitions};
  return r;
}

TEST(Scheduler, ZoneFilter) {
  std::vector<HostCandidate> hosts = {host("a1", "z-a"), host("b1", "z-b"), host("b2", "z-b")};
  Placement p = place(hosts, request(1, 256, "z-b"), 4, Strategy::kSpread);
  ASSERT_EQ(p.hosts.size(), 4u);
  for (const std::string& h : p.hosts) EXPECT_NE(h, "a1");
  EXPECT_EQ(hosts[0].vcpus_allocated, 0u);
  EXPECT_EQ(p.shortage, "");

  Placement none = place(hosts, request(1, 256, "z-c"), 1, Strategy::kSpread);
  EXPECT_TRUE(none.hosts.empty());
  EXPECT_EQ(none.shortage,
            "no host in zone z-c can take an instance of 1 vCPU, 256 MiB: the zone has no hosts");
}

TEST(Scheduler, AliveAndAcceptingFilters) {
  std::vector<HostCandidate> hosts = {host("down", "z"), host("draining", "z"), host("up", "z")};
  hosts[0].alive = false;
  hosts[1].accepting = false;
  Placement p = place(hosts, request(1, 256), 3, Strategy::kSpread);
  EXPECT_EQ(p.hosts, (std::vector<std::string>{"up", "up", "up"}));
  EXPECT_EQ(hosts[0].vcpus_allocated + hosts[1].vcpus_allocated, 0u);
  EXPECT_EQ(hosts[2].vcpus_allocated, 3u);
}

TEST(Scheduler, FitsCountsOverheadAndUpdatesAllocations) {
  std::vector<HostCandidate> hosts = {host("h", "z", 8, 1100, 1000)};
  hosts[0].vm_overhead_mib = 64;
  PlacementRequest r = request(2, 256);
  r.disk_mib = 300;
  // Memory: 320 per instance -> 3 fit in 1100; disk: 300 -> 3 fit in 1000; vCPUs: 4 fit.
  Placement p = place(hosts, r, 5, Strategy::kPack);
  EXPECT_EQ(p.hosts.size(), 3u);
  EXPECT_EQ(hosts[0].vcpus_allocated, 6u);
  EXPECT_EQ(hosts[0].memory_mib_allocated, 960u);
  EXPECT_EQ(hosts[0].disk_mib_allocated, 900u);
  EXPECT_EQ(p.shortage,
            "no host can take an instance of 2 vCPUs, 256 MiB, 300 MiB disk: 1 host short of "
            "memory (most free: 76 MiB), 1 host short of disk (most free: 100 MiB)");

  // vCPUs alone.
  std::vector<HostCandidate> small = {host("s", "z", 1, 100000)};
  Placement q = place(small, request(2, 256), 1, Strategy::kPack);
  EXPECT_TRUE(q.hosts.empty());
  EXPECT_NE(q.shortage.find("1 host short of vCPUs (most free: 1)"), std::string::npos)
      << q.shortage;
}

TEST(Scheduler, HugeRequestsDoNotOverflow) {
  std::vector<HostCandidate> hosts = {host("h", "z", UINT64_MAX, UINT64_MAX, UINT64_MAX)};
  hosts[0].vm_overhead_mib = 64;
  Placement p = place(hosts, request(1, UINT64_MAX - 10), 1, Strategy::kSpread);
  EXPECT_TRUE(p.hosts.empty());
  EXPECT_EQ(hosts[0].memory_mib_allocated, 0u);
  // Allocations above capacity (a host that shrank) count as nothing free.
  std::vector<HostCandidate> over = {host("o", "z", 4, 1024)};
  over[0].vcpus_allocated = 10;
  EXPECT_TRUE(place(over, request(1, 64), 1, Strategy::kSpread).hosts.empty());
}

TEST(Scheduler, SpreadWeigherPrefersFreeHostsPackPrefersFull) {
  std::vector<HostCandidate> base = {host("h1", "z"), host("h2", "z"), host("h3", "z")};
  base[0].vcpus_allocated = 8;
  base[0].memory_mib_allocated = 8192;
  base[1].vcpus_allocated = 2;
  base[1].memory_mib_allocated = 2048;
  std::vector<HostCandidate> spread = base;
  EXPECT_EQ(place(spread, request(1, 256), 1, Strategy::kSpread).hosts,
            std::vector<std::string>{"h3"});
  std::vector<HostCandidate> pack = base;
  EXPECT_EQ(place(pack, request(1, 256), 1, Strategy::kPack).hosts, std::vector<std::string>{"h1"});

  // Spread over equal hosts goes round them; pack fills one host before the next.
  std::vector<HostCandidate> equal = {host("c", "z", 2, 1024), host("a", "z", 2, 1024),
                                      host("b", "z", 2, 1024)};
  std::vector<HostCandidate> equal2 = equal;
  EXPECT_EQ(place(equal, request(1, 256), 6, Strategy::kSpread).hosts,
            (std::vector<std::string>{"a", "b", "c", "a", "b", "c"}));
  EXPECT_EQ(place(equal2, request(1, 256), 6, Strategy::kPack).hosts,
            (std::vector<std::string>{"a", "a", "b", "b", "c", "c"}));
}

// A retry after a lost race asks for a random one of the `subset` best: over seeds it
// spreads over exactly those, never a worse host, and is reproducible for one seed.
TEST(Scheduler, SubsetPicksRandomlyAmongTheBest) {
  std::vector<HostCandidate> base = {host("h1", "z"), host("h2", "z"), host("h3", "z"),
                                     host("h4", "z")};
  base[3].vcpus_allocated = 8;  // clearly the worst for spread
  base[3].memory_mib_allocated = 8192;
  std::set<std::string> chosen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    std::vector<HostCandidate> hosts = base;
    PlacementRequest r = request(1, 256);
    r.subset = 3;
    r.seed = seed;
    Placement p = place(hosts, r, 1, Strategy::kSpread);
    ASSERT_EQ(p.hosts.size(), 1u);
    chosen.insert(p.hosts[0]);
    std::vector<HostCandidate> again = base;
    EXPECT_EQ(place(again, r, 1, Strategy::kSpread).hosts, p.hosts) << "seed " << seed;
  }
  EXPECT_EQ(chosen, (std::set<std::string>{"h1", "h2", "h3"}));
  // Subset 1 (the default) stays deterministic whatever the seed: ties to the smallest id.
  for (uint64_t seed = 0; seed < 8; ++seed) {
    std::vector<HostCandidate> hosts = base;
    PlacementRequest r = request(1, 256);
    r.seed = seed;
    EXPECT_EQ(place(hosts, r, 1, Strategy::kSpread).hosts, std::vector<std::string>{"h1"});
  }
  // A subset larger than the hosts that fit picks among those; several placements in one
  // call still claim what they take (two instances per 2-vCPU host at most).
  std::vector<HostCandidate> small = {host("a", "z", 2, 4096), host("b", "z", 2, 4096)};
  PlacementRequest r = request(1, 256);
  r.subset = 16;
  r.seed = 7;
  Placement p = place(small, r, 5, Strategy::kSpread);
  EXPECT_EQ(p.hosts.size(), 4u);
  EXPECT_EQ(std::count(p.hosts.begin(), p.hosts.end(), "a"), 2);
  EXPECT_FALSE(p.shortage.empty());
}

TEST(Scheduler, WeigherNormalisesMemoryAndCpuMinMax) {
  // h1 has the most free memory (fraction), h2 the most free vCPUs. Normalised, h1 scores
  // 1 + 0 and h2 0 + 1: a tie, to the smaller id; with h2's memory slightly better it wins.
  std::vector<HostCandidate> hosts = {host("h1", "z", 10, 1000), host("h2", "z", 10, 1000)};
  hosts[0].vcpus_allocated = 5;
  hosts[1].memory_mib_allocated = 500;
  std::vector<HostCandidate> copy = hosts;
  EXPECT_EQ(place(copy, request(1, 10), 1, Strategy::kSpread).hosts,
            std::vector<std::string>{"h1"});
  hosts[1].memory_mib_allocated = 400;
  hosts.push_back(host("h0", "z", 10, 1000));  // the most used of all: the min of both ranges
  hosts[2].vcpus_allocated = 6;
  hosts[2].memory_mib_allocated = 600;
  EXPECT_EQ(place(hosts, request(1, 10), 1, Strategy::kSpread).hosts,
            std::vector<std::string>{"h2"});
}

TEST(Scheduler, DeterministicWhateverTheOrderOfHosts) {
  std::vector<HostCandidate> hosts;
  for (int i = 0; i < 50; ++i) {
    hosts.push_back(host(fmt::format("host-{:02}", (i * 37) % 50), i % 2 ? "z-a" : "z-b", 8,
                         8192 + 1024 * (i % 3)));
  }
  std::vector<HostCandidate> reversed(hosts.rbegin(), hosts.rend());
  for (unsigned count : {5u, 40u}) {  // below and above the count that sorts ids once
    std::vector<HostCandidate> a = hosts, b = reversed;
    Placement pa = place(a, request(1, 512), count, Strategy::kSpread);
    Placement pb = place(b, request(1, 512), count, Strategy::kSpread);
    EXPECT_EQ(pa.hosts, pb.hosts);
    std::vector<HostCandidate> c = hosts, d = reversed;
    EXPECT_EQ(place(c, request(1, 512), count, Strategy::kPack).hosts,
              place(d, request(1, 512), count, Strategy::kPack).hosts);
  }
}

TEST(Scheduler, SpreadGroupUsesDistinctHostsAndSevenPerZone) {
  std::vector<HostCandidate> hosts;
  for (int i = 0; i < 10; ++i) hosts.push_back(host(fmt::format("a{}", i), "z-a"));
  for (int i = 0; i < 10; ++i) hosts.push_back(host(fmt::format("b{}", i), "z-b"));
  hosts[0].group_members["pg"] = 1;  // one member already on a0
  const PlacementRequest r = in_group(request(1, 256, "z-a"), "pg", "spread");
  Placement p = place(hosts, r, 10, Strategy::kPack);  // pack would stack; the group forbids
  ASSERT_EQ(p.hosts.size(), 6u);                       // 1 + 6 = 7 in z-a
  std::set<std::string> distinct(p.hosts.begin(), p.hosts.end());
  EXPECT_EQ(distinct.size(), 6u);
  EXPECT_EQ(distinct.count("a0"), 0u);
  EXPECT_EQ(p.shortage, "placement group 'pg' (spread) already has 7 instances in z-a");
  for (const std::string& id : p.hosts) {
    for (const HostCandidate& h : hosts)
      if (h.id == id) {
        EXPECT_EQ(h.group_members.at("pg"), 1u);
      }
  }
  // Any zone: the rest go to z-b, 7 there too, then both zones are full.
  Placement q = place(hosts, in_group(request(1, 256), "pg", "spread"), 10, Strategy::kSpread);
  EXPECT_EQ(q.hosts.size(), 7u);
  for (const std::string& id : q.hosts) EXPECT_EQ(id[0], 'b');
  EXPECT_EQ(q.shortage, "placement group 'pg' (spread) already has 7 instances in z-a, z-b");
  // Another group is not affected.
  EXPECT_EQ(
      place(hosts, in_group(request(1, 256), "other", "spread"), 3, Strategy::kSpread).hosts.size(),
      3u);
}

TEST(Scheduler, SpreadGroupRunsOutOfDistinctHosts) {
  std::vector<HostCandidate> hosts = {host("h1", "z"), host("h2", "z")};
  Placement p = place(hosts, in_group(request(1, 256), "pg", "spread"), 3, Strategy::kSpread);
  EXPECT_EQ(p.hosts.size(), 2u);
  EXPECT_EQ(p.shortage,
            "placement group 'pg' (spread) already has an instance on each of the 2 hosts that "
            "can take an instance of 1 vCPU, 256 MiB");
}

TEST(Scheduler, ClusterGroupStaysTogether) {
  std::vector<HostCandidate> hosts = {host("a1", "z-a", 4, 4096), host("a2", "z-a", 4, 4096),
                                      host("b1", "z-b", 64, 65536), host("b2", "z-b", 4, 4096)};
  hosts[1].group_members["pg"] = 1;  // a member on a2
  const PlacementRequest r = in_group(request(1, 512), "pg", "cluster");
  // Spread weigher would pick the big b1; the group keeps them on a2, then in z-a.
  Placement p = place(hosts, r, 6, Strategy::kSpread);
  ASSERT_EQ(p.hosts.size(), 6u);
  EXPECT_EQ(p.hosts, (std::vector<std::string>{"a2", "a2", "a2", "a2", "a1", "a1"}));
  // z-a full of vCPUs: no spill into z-b.
  Placement q = place(hosts, r, 3, Strategy::kSpread);
  EXPECT_EQ(q.hosts, (std::vector<std::string>{"a1", "a1"}));
  EXPECT_EQ(q.shortage,
            "placement group 'pg' (cluster) has its instances in zone z-a: no host there can take "
            "an instance of 1 vCPU, 512 MiB: 2 hosts short of vCPUs (most free: 0)");
  // Asked for another zone than the members'.
  Placement other =
      place(hosts, in_group(request(1, 512, "z-b"), "pg", "cluster"), 1, Strategy::kSpread);
  EXPECT_TRUE(other.hosts.empty());
  EXPECT_EQ(other.shortage,
            "placement group 'pg' (cluster) has its instances in zone z-a, not z-b");
}

TEST(Scheduler, ClusterGroupWithoutMembersStartsAnywhereThenFollows) {
  std::vector<HostCandidate> hosts = {host("a1", "z-a", 2, 4096), host("b1", "z-b", 8, 8192),
                                      host("b2", "z-b", 8, 8192)};
  hosts[0].memory_mib_allocated = 2048;  // a1 is half full: the weigher prefers b1
  Placement p = place(hosts, in_group(request(2, 512), "new", "cluster"), 5, Strategy::kSpread);
  // The first goes where the weigher says (b1: as free as b2, first by id); the rest
  // follow it: b1 until full, then b2 (its zone), never a1.
  EXPECT_EQ(p.hosts, (std::vector<std::string>{"b1", "b1", "b1", "b1", "b2"}));
}

TEST(Scheduler, PartitionGroupFillsTheLeastUsedPartition) {
  std::vector<HostCandidate> hosts;
  for (int i = 0; i < 12; ++i) hosts.push_back(host(fmt::format("h{}", i), "z", 64, 65536));
  const unsigned n = 3;
  std::map<unsigned, std::vector<std::string>> by_partition;
  for (const HostCandidate& h : hosts) by_partition[partition_of(h.id, n)].push_back(h.id);
  ASSERT_EQ(by_partition.size(), n) << "the hash should spread 12 hosts over 3 partitions";
  for (const auto& [k, ids] : by_partition) {
    EXPECT_GE(k, 1u);
    EXPECT_LE(k, n);
  }
  // Partition 1 holds many members already: new ones go to 2 and 3 first, alternating.
  for (HostCandidate& h : hosts)
    if (partition_of(h.id, n) == 1) h.group_members["pp"] = 5;
  const unsigned p1_members = 5 * static_cast<unsigned>(by_partition[1].size());
  Placement p = place(hosts, in_group(request(1, 256), "pp", "partition", n), 6, Strategy::kPack);
  ASSERT_EQ(p.hosts.size(), 6u);
  std::map<unsigned, unsigned> placed;
  for (const std::string& id : p.hosts) ++placed[partition_of(id, n)];
  ASSERT_GE(p1_members, 5u);
  EXPECT_EQ(placed[1], 0u);
  EXPECT_EQ(placed[2], 3u);
  EXPECT_EQ(placed[3], 3u);
  // Without members the partitions are filled evenly, lowest number first.
  std::vector<HostCandidate> fresh;
  for (int i = 0; i < 12; ++i) fresh.push_back(host(fmt::format("h{}", i), "z", 64, 65536));
  Placement f = place(fresh, in_group(request(1, 256), "pq", "partition", n), 7, Strategy::kSpread);
  ASSERT_EQ(f.hosts.size(), 7u);
  EXPECT_EQ(partition_of(f.hosts[0], n), 1u);
  EXPECT_EQ(partition_of(f.hosts[1], n), 2u);
  EXPECT_EQ(partition_of(f.hosts[2], n), 3u);
  EXPECT_EQ(partition_of(f.hosts[3], n), 1u);
  // A partition whose hosts are all full is skipped.
  for (HostCandidate& h : fresh)
    if (partition_of(h.id, n) == 2) h.vcpus_allocated = h.vcpus_capacity;
  Placement g = place(fresh, in_group(request(1, 256), "pr", "partition", n), 4, Strategy::kSpread);
  for (const std::string& id : g.hosts) EXPECT_NE(partition_of(id, n), 2u);
  EXPECT_EQ(g.hosts.size(), 4u);
}

TEST(Scheduler, PartitionOfIsStable) {
  // FNV-1a: fixed values, the same on every machine and run.
  EXPECT_EQ(partition_of("", 7), 0xcbf29ce484222325ull % 7 + 1);
  EXPECT_EQ(partition_of("a", 1000), 0xaf63dc4c8601ec8cull % 1000 + 1);  // FNV-1a("a")
  EXPECT_EQ(partition_of("host-1", 1), 1u);
  EXPECT_EQ(partition_of("host-1", 0), 0u);
  EXPECT_EQ(partition_of("host-1", 7), partition_of(std::string("host-1"), 7));
}

TEST(Scheduler, BadGroupsPlaceNothing) {
  std::vector<HostCandidate> hosts = {host("h", "z")};
  Placement p = place(hosts, in_group(request(1, 256), "pg", "partition", 0), 1, Strategy::kSpread);
  EXPECT_TRUE(p.hosts.empty());
  EXPECT_EQ(p.shortage, "placement group 'pg' (partition) has no partitions");
  Placement q = place(hosts, in_group(request(1, 256), "pg", "rack"), 1, Strategy::kSpread);
  EXPECT_TRUE(q.hosts.empty());
  EXPECT_EQ(q.shortage, "placement group 'pg' has an unknown strategy 'rack'");
  EXPECT_EQ(hosts[0].vcpus_allocated, 0u);
}

TEST(Scheduler, ShortageMessageAggregatesOverHosts) {
  std::vector<HostCandidate> hosts = {
      host("h1", "nimbus-west-1a", 8, 16384), host("h2", "nimbus-west-1a", 8, 16384),
      host("h3", "nimbus-west-1a", 8, 16384), host("h4", "nimbus-west-1b", 8, 65536)};
  hosts[0].alive = false;
  hosts[1].memory_mib_allocated = 12288;
  hosts[1].vm_overhead_mib = 64;  // 4096 free - 64 overhead
  hosts[2].memory_mib_allocated = 14336;
  PlacementRequest r = request(2, 8192, "nimbus-west-1a");
  r.instance_type = "t3.large";
  Placement p = place(hosts, r, 1, Strategy::kSpread);
  EXPECT_TRUE(p.hosts.empty());
  EXPECT_EQ(p.shortage,
            "no host in zone nimbus-west-1a can take a t3.large (2 vCPUs, 8192 MiB): 1 host down, "
            "2 hosts short of memory (most free: 4032 MiB)");
  r.instance_type = "n1.tiny";
  r.zone = "";
  hosts[3].accepting = false;
  EXPECT_EQ(place(hosts, r, 1, Strategy::kSpread).shortage,
            "no host can take an n1.tiny (2 vCPUs, 8192 MiB): 1 host down, 1 host draining, 2 "
            "hosts short of memory (most free: 4032 MiB)");
  std::vector<HostCandidate> empty;
  EXPECT_EQ(place(empty, r, 1, Strategy::kSpread).shortage,
            "no host can take an n1.tiny (2 vCPUs, 8192 MiB): there are no hosts");
}

TEST(Scheduler, PartialPlacementStopsWithAShortage) {
  std::vector<HostCandidate> hosts = {host("h1", "z", 4, 4096), host("h2", "z", 4, 4096)};
  Placement p = place(hosts, request(2, 1024), 10, Strategy::kSpread);
  EXPECT_EQ(p.hosts.size(), 4u);
  EXPECT_NE(p.shortage.find("2 hosts short of vCPUs (most free: 0)"), std::string::npos)
      << p.shortage;
  EXPECT_TRUE(place(hosts, request(1, 1), 0, Strategy::kSpread).hosts.empty());
  EXPECT_EQ(place(hosts, request(1, 1), 0, Strategy::kSpread).shortage, "");
}

// Launches without a group take a faster path (one pass per placement, ranges kept in
// heaps); a partition group of one partition constrains nothing, so it must place exactly
// as that path does, with the general code.
TEST(Scheduler, UngroupedPathAgreesWithTheGeneralOne) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<HostCandidate> hosts;
    const int n = 1 + static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) {
      HostCandidate h = host(fmt::format("h{}", rng() % 1000), fmt::format("z{}", rng() % 2),
                             1 + rng() % 16, 512 + 256 * (rng() % 16), 10000);
      h.vcpus_allocated = rng() % 4;
      h.memory_mib_allocated = 128 * (rng() % 8);
      h.vm_overhead_mib = 32 * (rng() % 3);
      h.alive = rng() % 10 != 0;
      hosts.push_back(std::move(h));
    }
    const PlacementRequest r = request(1 + rng() % 2, 128 * (1 + rng() % 3), rng() % 3 ? "" : "z1");
    const unsigned count = 1 + rng() % 40;
    for (Strategy strategy : {Strategy::kSpread, Strategy::kPack}) {
      std::vector<HostCandidate> a = hosts, b = hosts;
      Placement fast = place(a, r, count, strategy);
      Placement general = place(b, in_group(r, "one", "partition", 1), count, strategy);
      EXPECT_EQ(fast.hosts, general.hosts) << "round " << round;
      EXPECT_EQ(fast.hosts.size() < count, !fast.shortage.empty());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].vcpus_allocated, b[i].vcpus_allocated);
        EXPECT_EQ(a[i].memory_mib_allocated, b[i].memory_mib_allocated);
      }
    }
  }
}

TEST(Scheduler, HundredThousandInstancesOverTenThousandHosts) {
  std::vector<HostCandidate> hosts;
  hosts.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    HostCandidate h = host(fmt::format("host-{:05}", i), fmt::format("zone-{}", i % 3),
                           32 + 16 * (i % 4), 65536 + 8192 * (i % 5), 1 << 20);
    h.vm_overhead_mib = 64;
    h.vcpus_allocated = i % 7;
    h.memory_mib_allocated = 1024 * (i % 11);
    hosts.push_back(std::move(h));
  }
  uint64_t total_vcpus_before = 0;
  for (const HostCandidate& h : hosts) total_vcpus_before += h.vcpus_allocated;
  const auto start = std::chrono::steady_clock::now();
  Placement p = place(hosts, request(1, 512), 100000, Strategy::kSpread);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("placed %zu instances over 10000 hosts in %.2f s\n", p.hosts.size(), seconds);
  ASSERT_EQ(p.hosts.size(), 100000u);
  EXPECT_EQ(p.shortage, "");
  uint64_t total_vcpus = 0;
  for (const HostCandidate& h : hosts) {
    total_vcpus += h.vcpus_allocated;
    EXPECT_LE(h.vcpus_allocated, h.vcpus_capacity);
    EXPECT_LE(h.memory_mib_allocated, h.memory_mib_capacity);
  }
  EXPECT_EQ(total_vcpus, total_vcpus_before + 100000);
  EXPECT_LT(seconds, 120.0);
}

// The simulator keeps one HostTable for a whole run, while the control plane builds one per
// launch from the hosts it reads: both must choose alike, launch after launch, with
// instances leaving in between.
TEST(Scheduler, HostTableKeptAcrossPlacementsChoosesAsTheControlPlaneDoes) {
  std::mt19937 rng(11);
  std::vector<HostCandidate> hosts;
  for (int i = 0; i < 40; ++i) {
    HostCandidate h = host(fmt::format("h{:02}", (i * 17) % 40), fmt::format("z{}", i % 3),
                           4 + 4 * (i % 3), 4096 + 2048 * (i % 4), 50000);
    h.vm_overhead_mib = 16 * (i % 2);
    hosts.push_back(std::move(h));
  }
  for (Strategy strategy : {Strategy::kSpread, Strategy::kPack}) {
    std::vector<HostCandidate> cloud = hosts;  // as the control plane sees them
    HostTable table(hosts);                    // as the simulator keeps them
    struct Live {
      std::string host;
      PlacementRequest req;
    };
    std::vector<Live> live;
    for (int step = 0; step < 600; ++step) {
      if (!live.empty() && rng() % 3 == 0) {
        const size_t k = rng() % live.size();
        const Live gone = live[k];
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
        table.release(table.slot_of(gone.host), gone.req.vcpus, gone.req.memory_mib,
                      gone.req.disk_mib);
        for (HostCandidate& h : cloud) {
          if (h.id != gone.host) continue;
          h.vcpus_allocated -= gone.req.vcpus;
          h.memory_mib_allocated -= gone.req.memory_mib + h.vm_overhead_mib;
          h.disk_mib_allocated -= gone.req.disk_mib;
        }
        continue;
      }
      PlacementRequest r = request(1 + rng() % 3, 256 * (1 + rng() % 6),
                                   rng() % 2 ? "" : fmt::format("z{}", rng() % 3));
      r.disk_mib = 100 * (rng() % 3);
      Placement a = place(cloud, r, 1, strategy);
      Placement b = place(table, r, 1, strategy);
      ASSERT_EQ(a.hosts, b.hosts) << "step " << step;
      ASSERT_EQ(a.shortage, b.shortage) << "step " << step;
      if (b.hosts.empty()) continue;
      ASSERT_EQ(table.host(b.slots[0]).id, b.hosts[0]);
      ASSERT_EQ(cloud[a.slots[0]].id, a.hosts[0]);
      live.push_back({b.hosts[0], r});
    }
    // Everything released: the table is back where it started.
    for (const Live& l : live)
      table.release(table.slot_of(l.host), l.req.vcpus, l.req.memory_mib, l.req.disk_mib);
    for (size_t slot = 0; slot < table.size(); ++slot) {
      EXPECT_EQ(table.host(slot).vcpus_allocated, 0u);
      EXPECT_EQ(table.host(slot).memory_mib_allocated, 0u);
      EXPECT_EQ(table.host(slot).disk_mib_allocated, 0u);
    }
  }
}

TEST(Scheduler, HostTableSlotsZonesAndFlags) {
  HostTable t({host("b", "z2"), host("c", "z1"), host("a", "z2"), host("d", "z1")});
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t.zone_names(), (std::vector<std::string>{"z1", "z2"}));
  EXPECT_EQ(t.zone_range(0), (std::pair<size_t, size_t>{0, 2}));
  EXPECT_EQ(t.zone_range(1), (std::pair<size_t, size_t>{2, 4}));
  EXPECT_EQ(t.host(0).id, "c");
  EXPECT_EQ(t.host(2).id, "a");
  EXPECT_EQ(t.origin(2), 2u);  // "a" was third in the vector
  EXPECT_EQ(t.origin(0), 1u);
  EXPECT_EQ(t.slot_of("d"), 1u);
  EXPECT_EQ(t.slot_of("nope"), t.size());

  // Spread over all zones: the emptiest, ties to the smallest id ("a", in z2).
  Placement p = place(t, request(1, 1024), 1, Strategy::kSpread);
  ASSERT_EQ(p.hosts, std::vector<std::string>{"a"});
  EXPECT_EQ(p.slots, std::vector<size_t>{2});
  // Not accepting, then down: skipped; back: chosen again.
  t.release(2, 1, 1024, 0);
  t.set_accepting(2, false);
  EXPECT_EQ(place(t, request(1, 1024), 1, Strategy::kSpread).hosts[0], "b");
  t.release(t.slot_of("b"), 1, 1024, 0);
  t.set_accepting(2, true);
  t.set_alive(2, false);
  EXPECT_EQ(place(t, request(1, 1024), 1, Strategy::kSpread).hosts[0], "b");
  t.release(t.slot_of("b"), 1, 1024, 0);
  t.set_alive(2, true);
  EXPECT_EQ(place(t, request(1, 1024), 1, Strategy::kSpread).hosts[0], "a");
  // A zone the table does not have.
  Placement none = place(t, request(1, 1024, "z9"), 1, Strategy::kSpread);
  EXPECT_TRUE(none.hosts.empty());
  EXPECT_EQ(none.shortage,
            "no host in zone z9 can take an instance of 1 vCPU, 1024 MiB: the zone has no hosts");
  // claim without choosing, release never below zero, groups counted and dropped.
  t.claim(0, 2, 512, 10, "g");
  EXPECT_EQ(t.host(0).group_members.at("g"), 1u);
  t.release(0, 99, 99999, 999, "g");
  EXPECT_EQ(t.host(0).vcpus_allocated, 0u);
  EXPECT_EQ(t.host(0).memory_mib_allocated, 0u);
  EXPECT_EQ(t.host(0).group_members.count("g"), 0u);
}

}  // namespace
}  // namespace nimbus::cloud
