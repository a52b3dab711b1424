#include "vmm/migration.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "backends/block/raw_file.h"

namespace nimbus::vmm::migration {
namespace {

using json = nlohmann::json;

constexpr uint64_t kRam = 4 << 20;  // 1024 pages
constexpr uint64_t kDisk = 2 << 20;

std::unique_ptr<backends::BlockBackend> raw_disk(const std::string& path) {
  { std::ofstream f(path); }
  std::filesystem::resize_file(path, kDisk);
  auto d = backends::RawFile::open(path, false);
  EXPECT_TRUE(d.ok()) << d.message();
  return std::move(*d);
}

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> channel_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {std::make_unique<Channel>(sv[0]), std::make_unique<Channel>(sv[1])};
}

// A "guest" that keeps writing RAM and its disk until paused; its dirty log is a bitmap it
// marks after each write, as the machine's DirtyLog does.
class FakeSource : public SourceVm {
 public:
  explicit FakeSource(const std::string& disk_path)
      : ram_(kRam, 0), disk_(raw_disk(disk_path)), bitmap_(kRam / kPageSize / 64, 0) {
    // Some pages hold data before the migration; most stay zero.
    for (uint64_t p = 0; p < kRam / kPageSize; p += 3) ram_[p * kPageSize + 7] = uint8_t(p | 1);
    std::vector<uint8_t> block(65536, 0x5a);
    EXPECT_TRUE(disk_.write(65536 * 4, block.data(), block.size()).ok());
  }
  ~FakeSource() override { stop_guest(); }

  void start_guest() {
    guest_ = std::thread([this] {
      std::mt19937_64 rng(42);
      while (!stop_) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !paused_ || stop_; });
        if (stop_) break;
        const uint64_t page = rng() % (kRam / kPageSize);
        const uint8_t value = static_cast<uint8_t>(rng());
        ram_[page * kPageSize + rng() % kPageSize] = value;
        if (rng() % 7 == 0) std::fill_n(&ram_[page * kPageSize], kPageSize, 0);  // zeroed
        if (logging_) bitmap_[page / 64] |= 1ull << (page % 64);
        if (rng() % 16 == 0) {
          std::vector<uint8_t> data(512, value);
          (void)disk_.write((rng() % (kDisk / 512)) * 512, data.data(), data.size());
        }
        writes_++;
      }
    });
  }
  void stop_guest() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (guest_.joinable()) guest_.join();
  }

  uint8_t* ram() override { return ram_.data(); }
  uint64_t ram_size() override { return kRam; }
  void start_dirty_log() override {
    std::lock_guard<std::mutex> lock(mu_);
    logging_ = true;
    std::fill(bitmap_.begin(), bitmap_.end(), 0);
  }
  void stop_dirty_log() override {
    std::lock_guard<std::mutex> lock(mu_);
    logging_ = false;
  }
  void take_dirty_pages(std::vector<uint64_t>& bitmap) override {
    std::lock_guard<std::mutex> lock(mu_);
    bitmap = bitmap_;
    std::fill(bitmap_.begin(), bitmap_.end(), 0);
  }
  std::vector<backends::TrackedDisk*> disks() override { return {&disk_}; }
  std::string config_json() override { return R"({"machine-config": {"vcpu_count": 1}})"; }
  Status pause() override {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = true;
    pauses++;
    ram_at_pause = ram_;
    return Status();
  }
  std::vector<uint8_t> save_state() override { return {1, 2, 3, 4}; }
  void resume() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      paused_ = false;
      resumes++;
    }
    cv_.notify_all();
  }
  void release_host_resources() override { released++; }
  void reclaim_host_resources() override { reclaimed++; }

  std::vector<uint8_t> disk_bytes() {
    std::vector<uint8_t> out(kDisk);
    EXPECT_TRUE(disk_.read(0, out.data(), out.size()).ok());
    return out;
  }
  bool logging() {
    std::lock_guard<std::mutex> lock(mu_);
    return logging_;
  }

  int pauses = 0, resumes = 0, released = 0, reclaimed = 0;
  std::vector<uint8_t> ram_at_pause;
  std::atomic<uint64_t> writes_{0};
  backends::TrackedDisk& disk() { return disk_; }

 private:
  std::vector<uint8_t> ram_;
  backends::TrackedDisk disk_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint64_t> bitmap_;
  bool logging_ = false, paused_ = false, stop_ = false;
  std::thread guest_;
};

class FakeTarget : public TargetVm {
 public:
  explicit FakeTarget(const std::string& disk_path) : disk_(raw_disk(disk_path)) {}
  Status prepare(const json& config, uint64_t ram_size,
                 const std::vector<uint64_t>& disk_sizes) override {
    if (refuse) return Status::invalid_argument("this VM has 2 vCPUs, the source 1");
    if (config.value("machine-config", json::object()).value("vcpu_count", 0) != 1)
      return Status::invalid_argument("vcpus");
    if (ram_size != kRam || disk_sizes != std::vector<uint64_t>{kDisk})
      return Status::invalid_argument("shape");
    ram_.assign(ram_size, 0);
    return Status();
  }
  uint8_t* ram() override { return ram_.data(); }
  std::vector<backends::BlockBackend*> disks() override { return {disk_.get()}; }
  Status load_state(const std::vector<uint8_t>& state) override {
    state_ = state;
    return Status();
  }
  Status start() override {
    started++;
    return Status();
  }
  void discard() override { discarded++; }

  std::vector<uint8_t> disk_bytes() {
    std::vector<uint8_t> out(kDisk);
    EXPECT_TRUE(disk_->read(0, out.data(), out.size()).ok());
    return out;
  }
  bool refuse = false;
  int started = 0, discarded = 0;
  std::vector<uint8_t> ram_, state_;

 private:
  std::unique_ptr<backends::BlockBackend> disk_;
};

class VmmMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus_migration_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(VmmMigrationTest, ARunningGuestArrivesWhole) {
  FakeSource source(dir_ + "/a.raw");
  FakeTarget target(dir_ + "/b.raw");
  auto [a, b] = channel_pair();
  source.start_guest();
  while (source.writes_.load() < 100) std::this_thread::yield();  // the guest is busy
  ProgressBoard sp, tp;
  Status target_status;
  std::thread t([&, ch = b.get()] { target_status = run_target(target, *ch, tp); });
  std::atomic<bool> cancel{false};
  SourceOptions o;
  o.max_downtime_ms = 1;
  o.max_rounds = 5;
  Status s = run_source(source, *a, o, sp, cancel);
  t.join();
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(target_status.ok()) << target_status.message();
  EXPECT_GT(source.writes_.load(), 0u);
  // What the target holds is the guest as it was when it stopped: RAM, disk and state.
  EXPECT_EQ(source.pauses, 1);
  EXPECT_EQ(source.resumes, 0);
  EXPECT_EQ(source.released, 1);
  EXPECT_TRUE(target.ram_ == source.ram_at_pause);
  EXPECT_TRUE(target.disk_bytes() == source.disk_bytes());
  EXPECT_EQ(target.state_, (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(target.started, 1);
  // Both sides know the downtime; the target's includes the source's pause.
  EXPECT_GT(tp.get().downtime_ms, 0);
  EXPECT_GE(tp.get().downtime_ms + 0.01, sp.get().downtime_ms * 0.5);
  const Progress p = sp.get();
  EXPECT_EQ(p.phase, "done");
  EXPECT_GE(p.round, 1u);
  EXPECT_GT(p.zero_pages, 0u);  // most pages were never sent
  EXPECT_LE(p.ram_pages_sent, p.ram_pages_total * (o.max_rounds + 2));
  EXPECT_GT(p.disk_bytes_sent, 0u);
}

TEST_F(VmmMigrationTest, ARefusingTargetLeavesTheSourceRunning) {
  FakeSource source(dir_ + "/a.raw");
  FakeTarget target(dir_ + "/b.raw");
  target.refuse = true;
  auto [a, b] = channel_pair();
  ProgressBoard sp, tp;
  Status target_status;
  std::thread t([&, ch = b.get()] { target_status = run_target(target, *ch, tp); });
  std::atomic<bool> cancel{false};
  Status s = run_source(source, *a, SourceOptions{}, sp, cancel);
  t.join();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("2 vCPUs"), std::string::npos) << s.message();
  EXPECT_FALSE(target_status.ok());
  EXPECT_EQ(target.discarded, 1);
  EXPECT_EQ(target.started, 0);
  EXPECT_EQ(source.pauses, source.resumes);
  EXPECT_EQ(source.released, 0);
  EXPECT_FALSE(source.logging());
  EXPECT_FALSE(source.disk().tracking());
}

TEST_F(VmmMigrationTest, ACutConnectionLeavesTheSourceRunning) {
  FakeSource source(dir_ + "/a.raw");
  auto [a, b] = channel_pair();
  // The "target" reads the first records, then goes away.
  std::thread t([ch = b.get()] {
    char magic[8];
    (void)ch->read_exact(magic, 8, 5000);
    for (int i = 0; i < 3; i++) (void)ch->receive(5000);
    ch->shutdown();
  });
  source.start_guest();
  ProgressBoard sp;
  std::atomic<bool> cancel{false};
  Status s = run_source(source, *a, SourceOptions{}, sp, cancel);
  t.join();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(source.pauses, source.resumes);
  EXPECT_FALSE(source.logging());
  const uint64_t before = source.writes_.load();
  for (int i = 0; i < 200 && source.writes_.load() == before; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GT(source.writes_.load(), before);  // the guest runs on
}

TEST_F(VmmMigrationTest, ATargetDyingAfterReadyNeverGetsTheCommit) {
  // The target loads everything and answers ready, then the connection goes: it must not
  // start the VM (the source may resume it).
  FakeTarget target(dir_ + "/b.raw");
  auto [a, b] = channel_pair();
  ProgressBoard tp;
  Status target_status;
  std::thread t([&, ch = b.get()] { target_status = run_target(target, *ch, tp); });
  ASSERT_TRUE(a->write_all(kMagic, 8, 1000).ok());
  const std::string config = json{
      {"config", {{"machine-config", {{"vcpu_count", 1}}}}},
      {"ram_size", kRam},
      {"page_size", kPageSize},
      {"disks", {kDisk}}}.dump();
  ASSERT_TRUE(a->send(RecordType::kConfig, config.data(), config.size(), 1000).ok());
  ASSERT_TRUE(a->send(RecordType::kState, std::vector<uint8_t>{9}, 1000).ok());
  ASSERT_TRUE(a->send(RecordType::kEnd, nullptr, 0, 1000).ok());
  auto ready = a->receive(5000);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->type, RecordType::kReady);
  a->shutdown();
  t.join();
  EXPECT_FALSE(target_status.ok());
  EXPECT_EQ(target.started, 0);
  EXPECT_EQ(target.discarded, 1);
}

// Hostile streams: each is refused with an error and nothing runs.
TEST_F(VmmMigrationTest, TheTargetRefusesMalformedStreams) {
  const std::string config = json{
      {"config", json::object()},
      {"ram_size", kRam},
      {"page_size", kPageSize},
      {"disks", {kDisk}}}.dump();
  auto pages_record = [](uint64_t index, uint32_t count) {
    std::vector<uint8_t> v;
    for (int i = 0; i < 4; i++) v.push_back(uint8_t(count >> (8 * i)));
    for (uint32_t k = 0; k < count; k++)
      for (int i = 0; i < 8; i++) v.push_back(uint8_t(index >> (8 * i)));
    v.push_back(0);  // raw
    v.resize(v.size() + count * kPageSize, 0);
    return v;
  };
  struct Case {
    const char* name;
    std::vector<std::pair<RecordType, std::vector<uint8_t>>> records;
    bool bad_magic = false;
  };
  std::vector<Case> cases = {
      {"bad magic", {}, true},
      {"no config first", {{RecordType::kPages, pages_record(0, 1)}}},
      {"config not json", {{RecordType::kConfig, {'{', 'x'}}}},
      {"page past RAM",
       {{RecordType::kConfig, {config.begin(), config.end()}},
        {RecordType::kPages, pages_record(kRam / kPageSize, 1)}}},
      {"too many pages",
       {{RecordType::kConfig, {config.begin(), config.end()}},
        {RecordType::kPages, pages_record(0, kMaxPagesPerRecord + 1)}}},
      {"disk past its end",
       {{RecordType::kConfig, {config.begin(), config.end()}},
        {RecordType::kDisk,
         encode_disk(0, kDisk - 10, std::vector<uint8_t>(20, 1).data(), 20, false)}}},
      {"no such disk",
       {{RecordType::kConfig, {config.begin(), config.end()}},
        {RecordType::kDisk, encode_disk(1, 0, std::vector<uint8_t>(20, 1).data(), 20, false)}}},
      {"end without state",
       {{RecordType::kConfig, {config.begin(), config.end()}}, {RecordType::kEnd, {}}}},
      {"unknown record",
       {{RecordType::kConfig, {config.begin(), config.end()}}, {RecordType{99}, {}}}},
  };
  for (const Case& c : cases) {
    FakeTarget target(dir_ + "/t.raw");
    auto [a, b] = channel_pair();
    ProgressBoard tp;
    Status status;
    std::thread t([&, ch = b.get()] { status = run_target(target, *ch, tp); });
    const char bad[8] = {'X'};
    (void)a->write_all(c.bad_magic ? bad : kMagic, 8, 1000);
    for (const auto& [type, payload] : c.records) (void)a->send(type, payload, 1000);
    a->shutdown();
    t.join();
    EXPECT_FALSE(status.ok()) << c.name;
    EXPECT_EQ(target.started, 0) << c.name;
  }
}

TEST(MigrationWire, AddressesParseOrSayWhy) {
  auto t = parse_address("tcp:127.0.0.1:7000");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, 7000);
  auto u = parse_address("unix:/run/x.sock");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->unix_socket);
  EXPECT_EQ(u->path, "/run/x.sock");
  for (const char* bad : {"", "tcp:", "tcp:1.2.3.4", "tcp:1.2.3.4:99999", "tcp::80",
                          "udp:1.2.3.4:5", "unix:", "tcp:h:8x"})
    EXPECT_FALSE(parse_address(bad).ok()) << bad;
  EXPECT_FALSE(parse_address("unix:" + std::string(200, 'a')).ok());
}

TEST(MigrationWire, PagesAndDiskRecordsRoundTripAndCompress) {
  std::vector<uint8_t> ram(16 * kPageSize, 0);
  ram[3 * kPageSize + 5] = 7;
  for (bool compress : {false, true}) {
    auto rec = encode_pages({3, 9}, ram.data(), compress);
    if (compress) {
      EXPECT_LT(rec.size(), kPageSize);  // two nearly empty pages
    }
    auto p = parse_pages(rec, 16);
    ASSERT_TRUE(p.ok()) << p.message();
    EXPECT_EQ(p->indexes, (std::vector<uint64_t>{3, 9}));
    EXPECT_EQ(p->data[5], 7);
    EXPECT_FALSE(parse_pages(rec, 9).ok());  // page 9 is past 9 pages
  }
  std::vector<uint8_t> zeros(4096, 0), data(4096, 1);
  auto z = parse_disk(encode_disk(0, 0, zeros.data(), 4096, true), {8192});
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->data, zeros);
  auto d = parse_disk(encode_disk(0, 4096, data.data(), 4096, true), {8192});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->data, data);
  EXPECT_FALSE(parse_disk(encode_disk(0, 4097, data.data(), 4096, true), {8192}).ok());
}

}  // namespace
}  // namespace nimbus::vmm::migration
