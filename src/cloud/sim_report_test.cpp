#include "cloud/sim_report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace nimbus::cloud::sim {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/nimbus-simreport-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  for (std::string l; std::getline(s, l);) out.push_back(l);
  return out;
}

// Two policies over 2 hours: dedicated uses 10 hosts and 80 kWh, pack 3 hosts and 20 kWh.
SimResult two_policies(double duration_s = 7200) {
  SimResult r;
  r.datacenter = "dc-test";
  r.workload = "trace <1>.csv";
  r.hosts = 10;
  r.events = 1234;
  r.duration_s = duration_s;
  r.wall_s = 0.5;
  PolicyResult d;
  d.policy = Policy::kDedicated;
  d.launches = 10;
  d.energy_kwh = 80;
  d.peak_hosts_on = 10;
  d.mean_hosts_on = 10;
  d.mean_lower_bound = 2.5;
  d.mean_cpu_used = 0.04;
  PolicyResult p;
  p.policy = Policy::kPack;
  p.launches = 10;
  p.refused = 1;
  p.migrations = 4;
  p.migrated_mib = 3 * 1024;
  p.energy_kwh = 20;
  p.peak_hosts_on = 4;
  p.mean_hosts_on = 3;
  p.mean_lower_bound = 2.5;
  p.mean_cpu_used = 0.3125;
  p.placements.push_back({0, "i-1", "h-1", ""});
  p.placements.push_back({60, "i-2", "", "no host has 8 vCPUs, 4096 MiB free"});
  for (int i = 0; i <= 4; ++i) {
    const double t = i * duration_s / 4;
    Sample s;
    s.time_s = t;
    s.hosts_on = 10;
    s.lower_bound = 2.5;
    s.cpu_used = 0.04;
    s.power_w = 40000;
    s.instances = 10;
    d.samples.push_back(s);
    s.hosts_on = 3 + (i % 2);
    s.cpu_used = 0.3125;
    s.power_w = 10000;
    s.refused = 1;
    s.migrations = i;
    p.samples.push_back(s);
  }
  r.policies = {d, p};
  return r;
}

TEST(SimReport, SummaryShowsEachPolicyAndTheSavingAgainstDedicated) {
  const std::string text = summary_text(two_policies());
  const auto l = lines(text);
  ASSERT_EQ(l.size(), 4u) << text;  // header, two policies, the scale line
  EXPECT_EQ(l[0].rfind("policy", 0), 0u);
  EXPECT_NE(l[0].find("saving"), std::string::npos);
  EXPECT_EQ(l[1].rfind("dedicated", 0), 0u);
  EXPECT_NE(l[1].find("baseline"), std::string::npos);
  EXPECT_EQ(l[2].rfind("pack", 0), 0u);
  // (80 - 20) / 80 = 75 %; hosts/bound 3 / 2.5 = 1.20; CPU 31.2 %; 3 GiB moved.
  EXPECT_NE(l[2].find("75.0%"), std::string::npos) << l[2];
  EXPECT_NE(l[2].find("1.20"), std::string::npos) << l[2];
  EXPECT_NE(l[2].find("31.2%"), std::string::npos) << l[2];
  EXPECT_NE(l[2].find(" 3.0 "), std::string::npos) << l[2];
  EXPECT_NE(l[1].find("4.00"), std::string::npos) << l[1];  // 10 / 2.5
  // Aligned: every table row is as long as the header's last column ends.
  EXPECT_EQ(l[1].size(), l[0].size());
  EXPECT_EQ(l[2].size(), l[0].size());
  EXPECT_NE(l[3].find("10 hosts, 1234 events, 2.0 h simulated"), std::string::npos) << l[3];

  // Without dedicated, spread is the baseline; with neither, no saving is shown.
  SimResult r = two_policies(5 * 86400);
  r.policies[0].policy = Policy::kSpread;
  r.policies[0].energy_kwh = 40;
  auto l2 = lines(summary_text(r));
  EXPECT_NE(l2[1].find("baseline"), std::string::npos);
  EXPECT_NE(l2[2].find("50.0%"), std::string::npos) << l2[2];
  EXPECT_NE(l2[3].find("5 d 0.0 h simulated"), std::string::npos) << l2[3];
  r.policies[0].policy = Policy::kConsolidate;
  l2 = lines(summary_text(r));
  EXPECT_EQ(l2[2].find('%', l2[2].find("31.2%") + 5), std::string::npos) << l2[2];
  EXPECT_EQ(l2[1].find("baseline"), std::string::npos);
}

TEST(SimReport, WritesCsvPlotsAndIndex) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/out/nested";  // created, parents too
  ASSERT_TRUE(write_report(two_policies(), dir).ok());

  const auto ts = lines(read(fs::path(dir) / "timeseries.csv"));
  ASSERT_EQ(ts.size(), 1u + 5 + 5);
  EXPECT_EQ(ts[0],
            "policy,time_s,hosts_on,lower_bound,cpu_allocated,cpu_used,memory_allocated,power_w,"
            "instances,refused,migrations");
  EXPECT_EQ(ts[1], "dedicated,0,10,2.5,0,0.04,0,40000,10,0,0");
  EXPECT_EQ(ts[7], "pack,1800,4,2.5,0,0.3125,0,10000,10,1,1");

  const auto sum = lines(read(fs::path(dir) / "summary.csv"));
  ASSERT_EQ(sum.size(), 3u);
  EXPECT_EQ(sum[0].rfind("policy,launches,refused,", 0), 0u);
  EXPECT_EQ(sum[2].rfind("pack,10,1,0,4,3072,20,4,3,2.5,0.3125,", 0), 0u) << sum[2];
  EXPECT_EQ(sum[2].substr(sum[2].rfind(',') + 1), "75");

  const auto pl = lines(read(fs::path(dir) / "placements.csv"));
  ASSERT_EQ(pl.size(), 3u);
  EXPECT_EQ(pl[0], "policy,time_s,instance,host,reason");
  EXPECT_EQ(pl[1], "pack,0,i-1,h-1,");
  EXPECT_EQ(pl[2], "pack,60,i-2,,\"no host has 8 vCPUs, 4096 MiB free\"");

  const std::string hosts = read(fs::path(dir) / "hosts.svg");
  EXPECT_NE(hosts.find("<svg"), std::string::npos);
  EXPECT_NE(hosts.find(">dedicated</text>"), std::string::npos);
  EXPECT_NE(hosts.find(">lower bound</text>"), std::string::npos);
  EXPECT_NE(hosts.find("(hours)"), std::string::npos);
  EXPECT_NE(read(fs::path(dir) / "utilisation.svg").find(">pack</text>"), std::string::npos);
  EXPECT_NE(read(fs::path(dir) / "energy.svg").find("kWh"), std::string::npos);

  const std::string html = read(fs::path(dir) / "index.html");
  EXPECT_NE(html.find("<title>Simulation: dc-test / trace &lt;1&gt;.csv</title>"),
            std::string::npos);
  EXPECT_NE(html.find("<pre>policy"), std::string::npos);
  EXPECT_NE(html.find("75.0%"), std::string::npos);
  for (const char* img : {"hosts.svg", "utilisation.svg", "memory.svg", "energy.svg"}) {
    EXPECT_NE(html.find(std::string("<img src=\"") + img + "\""), std::string::npos) << img;
  }

  // A longer run is plotted in days; without placements there is no placements.csv; a
  // second write into the same directory overwrites.
  SimResult week = two_policies(7 * 86400);
  for (auto& p : week.policies) p.placements.clear();
  const std::string dir2 = tmp.path() + "/week";
  ASSERT_TRUE(write_report(week, dir2).ok());
  ASSERT_TRUE(write_report(week, dir2).ok());
  EXPECT_NE(read(fs::path(dir2) / "hosts.svg").find("(days)"), std::string::npos);
  EXPECT_FALSE(fs::exists(fs::path(dir2) / "placements.csv"));
  EXPECT_EQ(lines(read(fs::path(dir2) / "timeseries.csv")).size(), 11u);
}

TEST(SimReport, AnUnwritableDirectoryIsAnErrorNamingIt) {
  TempDir tmp;
  const std::string file = tmp.path() + "/plain-file";
  std::ofstream(file) << "x";
  // A path under a regular file cannot be a directory, even for root.
  const std::string dir = file + "/report";
  const Status s = write_report(two_policies(), dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir), std::string::npos) << s.message();
  // The file itself as the directory.
  const Status s2 = write_report(two_policies(), file);
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find(file), std::string::npos) << s2.message();
  EXPECT_FALSE(write_report(two_policies(), "").ok());
}

TEST(SimReport, EmptyResultStillWritesAValidReport) {
  TempDir tmp;
  SimResult r;
  ASSERT_TRUE(write_report(r, tmp.path()).ok());
  EXPECT_NE(read(fs::path(tmp.path()) / "hosts.svg").find("no data"), std::string::npos);
  EXPECT_EQ(lines(read(fs::path(tmp.path()) / "timeseries.csv")).size(), 1u);
  EXPECT_NE(summary_text(r).find("0 hosts, 0 events"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::cloud::sim
