#include "vmm/migration.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>

namespace nimbus::vmm::migration {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

bool page_is_zero(const uint8_t* p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < kPageSize; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
  }
  return acc == 0;
}

uint64_t popcount(const std::vector<uint64_t>& bitmap) {
  uint64_t n = 0;
  for (uint64_t w : bitmap) n += static_cast<uint64_t>(__builtin_popcountll(w));
  return n;
}

// The source's state through one migration.
class Source {
 public:
  Source(SourceVm& vm, Channel& ch, const SourceOptions& o, ProgressBoard& p,
         const std::atomic<bool>& cancel)
      : vm_(vm), ch_(ch), o_(o), progress_(p), cancel_(cancel) {
    pages_ = vm.ram_size() / kPageSize;
  }

  Status run() {
    const auto t0 = Clock::now();
    disks_ = vm_.disks();
    // The magic and the configuration.
    if (Status s = ch_.write_all(kMagic, sizeof kMagic, kIoTimeoutMs); !s.ok()) return s;
    json config = {{"config", json::parse(vm_.config_json(), nullptr, false)},
                   {"ram_size", vm_.ram_size()},
                   {"page_size", kPageSize},
                   {"disks", json::array()}};
    for (auto* d : disks_) config["disks"].push_back(d->size());
    const std::string text = config.dump(-1, ' ', false, json::error_handler_t::replace);
    if (Status s = ch_.send(RecordType::kConfig, text.data(), text.size(), kIoTimeoutMs); !s.ok())
      return s;

    // The disks: their own data, while the guest writes on (tracked from here on).
    phase("disk");
    for (auto* d : disks_) d->start_tracking();
    for (uint32_t i = 0; i < disks_.size(); i++) {
      auto extents = disks_[i]->own_extents();
      if (!extents.ok()) return Status::error(fmt::format("disk {}: {}", i, extents.message()));
      for (auto [offset, len] : *extents) {
        for (uint64_t at = offset; at < offset + len; at += kMaxDiskBytesPerRecord) {
          const uint32_t n =
              static_cast<uint32_t>(std::min<uint64_t>(kMaxDiskBytesPerRecord, offset + len - at));
          if (Status s = send_disk(i, at, n); !s.ok()) return s;
        }
      }
    }

    // RAM: every page that is not zero (the target's RAM starts zeroed), then rounds.
    phase("ram");
    vm_.start_dirty_log();
    logging_ = true;
    progress_.update([&](Progress& p) { p.ram_pages_total = pages_; });
    {
      std::vector<uint64_t> batch;
      const uint8_t* ram = vm_.ram();
      for (uint64_t i = 0; i < pages_; i++) {
        if (page_is_zero(ram + i * kPageSize)) {
          progress_.update([](Progress& p) { p.zero_pages++; });
          continue;
        }
        batch.push_back(i);
        if (batch.size() == kMaxPagesPerRecord) {
          if (Status s = send_pages(batch); !s.ok()) return s;
          batch.clear();
        }
      }
      if (Status s = send_pages(batch); !s.ok()) return s;
    }
    double bytes_per_ms = 0;             // guest data per millisecond, measured on the last round
    uint64_t last_pending = UINT64_MAX;  // bytes left after the round before
    std::vector<uint64_t> dirty;
    std::vector<std::vector<uint64_t>> disk_dirty(disks_.size());
    for (uint32_t round = 1;; round++) {
      if (cancel_) return cancelled();
      const auto r0 = Clock::now();
      vm_.take_dirty_pages(dirty);
      uint64_t chunks = 0;
      for (size_t i = 0; i < disks_.size(); i++) {
        disk_dirty[i] = disks_[i]->take_dirty();
        chunks += disk_dirty[i].size();
      }
      const uint64_t dirty_pages = popcount(dirty);
      const uint64_t pending = dirty_pages * kPageSize + chunks * backends::TrackedDisk::kChunk;
      progress_.update([&](Progress& p) {
        p.round = round;
        p.dirty_pages = dirty_pages;
      });
      if (bytes_per_ms == 0) bytes_per_ms = round_bytes_ / std::max(1.0, ms_since(round_start_));
      // The stop-and-copy goes at the link's rate, never above the limit (rounds that were
      // behind the limit's schedule ran unthrottled).
      double rate = bytes_per_ms;
      if (o_.max_bandwidth_mib_s != 0)
        rate = std::min(rate, o_.max_bandwidth_mib_s * 1048576.0 / 1000.0);
      const double estimate_ms = rate > 0 ? pending / rate : 0;
      // The downtime is what is left at the pause: stop when it is small for sure (a
      // tenth of the budget), or when it fits the budget and another round would not make
      // it much smaller (the last one shrank it by less than a quarter), or at the round
      // limit. Stopping at the first round that fits would spend the whole budget on a busy
      // guest where a few more short rounds leave only milliseconds.
      const bool small = estimate_ms <= o_.max_downtime_ms / 10.0;
      const bool fits = estimate_ms <= o_.max_downtime_ms;
      const bool shrinking = pending < last_pending / 4 * 3;
      last_pending = pending;
      if (small || (fits && !shrinking) || round > o_.max_rounds) {
        spdlog::info(
            "migration: {} dirty pages and {} disk chunks left after round {} "
            "(about {:.1f} ms at the measured rate): stop and copy",
            dirty_pages, chunks, round - 1, estimate_ms);
        break;
      }
      round_bytes_ = 0;
      round_start_ = r0;
      if (Status s = send_dirty(dirty, disk_dirty); !s.ok()) return s;
      bytes_per_ms = round_bytes_ / std::max(0.001, ms_since(r0));
    }

    // Stop and copy: what is left, with the machine's state.
    phase("stop-and-copy");
    if (Status s = vm_.pause(); !s.ok()) return s;
    paused_ = true;
    paused_at_ = Clock::now();
    std::vector<uint64_t> last;
    vm_.take_dirty_pages(last);
    for (size_t w = 0; w < last.size() && w < dirty.size(); w++) dirty[w] |= last[w];
    for (size_t i = 0; i < disks_.size(); i++) {
      std::vector<uint64_t> more = disks_[i]->take_dirty();
      disk_dirty[i].insert(disk_dirty[i].end(), more.begin(), more.end());
      std::sort(disk_dirty[i].begin(), disk_dirty[i].end());
      disk_dirty[i].erase(std::unique(disk_dirty[i].begin(), disk_dirty[i].end()),
                          disk_dirty[i].end());
    }
    progress_.update([&](Progress& p) { p.dirty_pages = popcount(dirty); });
    if (Status s = send_dirty(dirty, disk_dirty); !s.ok()) return s;
    const std::vector<uint8_t> state = vm_.save_state();
    if (Status s = ch_.send(RecordType::kState, state, kIoTimeoutMs); !s.ok()) return s;
    if (Status s = ch_.send(RecordType::kEnd, nullptr, 0, kIoTimeoutMs); !s.ok()) return s;
    auto answer = ch_.receive(kReadyTimeoutMs);
    if (!answer.ok()) return Status::error("waiting for the target: " + answer.message());
    if (answer->type == RecordType::kError)
      return Status::error("the target failed: " +
                           std::string(answer->payload.begin(), answer->payload.end()));
    if (answer->type != RecordType::kReady)
      return Status::error("the target answered with an unknown record");
    if (cancel_) return cancelled();
    // The point of no return: the target resumes on kCommit.
    vm_.release_host_resources();
    released_ = true;
    // The commit carries the pause so far (µs), so that the target can tell the whole
    // downtime (the source may be gone before anyone asks it).
    const uint64_t paused_us = static_cast<uint64_t>(ms_since(paused_at_) * 1000.0);
    uint8_t commit[8];
    for (int i = 0; i < 8; i++) commit[i] = static_cast<uint8_t>(paused_us >> (8 * i));
    if (Status s = ch_.send(RecordType::kCommit, commit, sizeof commit, kIoTimeoutMs); !s.ok())
      return s;
    committed_ = true;
    const double downtime = ms_since(paused_at_);
    progress_.update([&](Progress& p) {
      p.phase = "done";
      p.downtime_ms = downtime;
      p.total_ms = ms_since(t0);
      p.bytes_on_wire = ch_.bytes_sent();
    });
    return Status();
  }

  // After a failure before the commit: the guest goes on as if nothing happened.
  void undo() {
    if (committed_) return;
    if (logging_) vm_.stop_dirty_log();
    for (auto* d : disks_) d->stop_tracking();
    if (released_) vm_.reclaim_host_resources();
    if (paused_) vm_.resume();
  }
  bool committed() const { return committed_; }

 private:
  void phase(const char* name) {
    progress_.update([&](Progress& p) { p.phase = name; });
  }
  Status cancelled() { return Status::conflict("cancelled"); }

  // With a bandwidth limit: sleeps while the bytes on the wire run ahead of it (never
  // during the stop-and-copy: the guest waits then).
  void throttle() {
    if (o_.max_bandwidth_mib_s == 0 || paused_) return;
    const double allowed_ms = ch_.bytes_sent() / (o_.max_bandwidth_mib_s * 1048576.0) * 1000.0;
    const double ahead = allowed_ms - ms_since(started_);
    if (ahead > 1) std::this_thread::sleep_for(std::chrono::microseconds(int64_t(ahead * 1000)));
  }

  Status send_disk(uint32_t disk, uint64_t offset, uint32_t len) {
    if (cancel_) return cancelled();
    buf_.resize(len);
    if (Status s = disks_[disk]->read(offset, buf_.data(), len); !s.ok())
      return Status::error(fmt::format("disk {}: {}", disk, s.message()));
    const auto rec = encode_disk(disk, offset, buf_.data(), len, o_.compress);
    if (Status s = ch_.send(RecordType::kDisk, rec, kIoTimeoutMs); !s.ok()) return s;
    round_bytes_ += len;
    throttle();
    progress_.update([&](Progress& p) {
      p.disk_bytes_sent += len;
      p.bytes_on_wire = ch_.bytes_sent();
    });
    return Status();
  }

  Status send_pages(const std::vector<uint64_t>& batch) {
    if (batch.empty()) return Status();
    if (cancel_) return cancelled();
    const auto rec = encode_pages(batch, vm_.ram(), o_.compress);
    if (Status s = ch_.send(RecordType::kPages, rec, kIoTimeoutMs); !s.ok()) return s;
    round_bytes_ += batch.size() * kPageSize;
    throttle();
    progress_.update([&](Progress& p) {
      p.ram_pages_sent += batch.size();
      p.ram_bytes_sent += batch.size() * kPageSize;
      p.bytes_on_wire = ch_.bytes_sent();
    });
    return Status();
  }

  Status send_dirty(const std::vector<uint64_t>& dirty,
                    const std::vector<std::vector<uint64_t>>& disk_dirty) {
    for (size_t i = 0; i < disk_dirty.size(); i++) {
      const uint64_t size = disks_[i]->size();
      for (uint64_t chunk : disk_dirty[i]) {
        const uint64_t offset = chunk * backends::TrackedDisk::kChunk;
        if (offset >= size) continue;
        const uint32_t n =
            static_cast<uint32_t>(std::min<uint64_t>(backends::TrackedDisk::kChunk, size - offset));
        if (Status s = send_disk(static_cast<uint32_t>(i), offset, n); !s.ok()) return s;
      }
    }
    std::vector<uint64_t> batch, zeros;
    const uint8_t* ram = vm_.ram();
    for (size_t w = 0; w < dirty.size(); w++) {
      for (uint64_t bits = dirty[w]; bits != 0; bits &= bits - 1) {
        const uint64_t page = w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
        if (page >= pages_) break;
        if (page_is_zero(ram + page * kPageSize)) {
          zeros.push_back(page);
          continue;
        }
        batch.push_back(page);
        if (batch.size() == kMaxPagesPerRecord) {
          if (Status s = send_pages(batch); !s.ok()) return s;
          batch.clear();
        }
      }
    }
    if (Status s = send_pages(batch); !s.ok()) return s;
    if (!zeros.empty()) {
      if (Status s = ch_.send(RecordType::kZeroPages, encode_zero_pages(zeros), kIoTimeoutMs);
          !s.ok())
        return s;
      progress_.update([&](Progress& p) { p.zero_pages += zeros.size(); });
    }
    return Status();
  }

  SourceVm& vm_;
  Channel& ch_;
  const SourceOptions& o_;
  ProgressBoard& progress_;
  const std::atomic<bool>& cancel_;
  uint64_t pages_ = 0;
  std::vector<backends::TrackedDisk*> disks_;
  std::vector<uint8_t> buf_;
  double round_bytes_ = 0;
  Clock::time_point round_start_ = Clock::now();
  Clock::time_point paused_at_;
  Clock::time_point started_ = Clock::now();
  bool logging_ = false, paused_ = false, released_ = false, committed_ = false;
};

}  // namespace

json to_json(const Progress& p) {
  json j = {{"role", p.role},
            {"state", p.state},
            {"phase", p.phase},
            {"round", p.round},
            {"ram_pages_total", p.ram_pages_total},
            {"ram_pages_sent", p.ram_pages_sent},
            {"zero_pages", p.zero_pages},
            {"dirty_pages", p.dirty_pages},
            {"ram_bytes_sent", p.ram_bytes_sent},
            {"disk_bytes_sent", p.disk_bytes_sent},
            {"bytes_on_wire", p.bytes_on_wire},
            {"downtime_ms", p.downtime_ms},
            {"total_ms", p.total_ms}};
  if (!p.listen.empty()) j["listen"] = p.listen;
  if (!p.error.empty()) j["error"] = p.error;
  return j;
}

Status run_source(SourceVm& vm, Channel& channel, const SourceOptions& options,
                  ProgressBoard& progress, const std::atomic<bool>& cancel) {
  Source source(vm, channel, options, progress, cancel);
  Status s = source.run();
  if (!s.ok() && !source.committed()) {
    // A reason the target gave beats "the connection was closed".
    if (!cancel) {
      auto why = channel.poll_record(200);
      if (why.ok() && why->type == RecordType::kError)
        s = Status::error("the target failed: " +
                          std::string(why->payload.begin(), why->payload.end()));
    }
    source.undo();
  }
  return s;
}

namespace {

Status receive(TargetVm& vm, Channel& ch, ProgressBoard& progress) {
  char magic[sizeof kMagic];
  if (Status s = ch.read_exact(magic, sizeof magic, kIoTimeoutMs); !s.ok()) return s;
  if (std::memcmp(magic, kMagic, sizeof magic) != 0)
    return Status::invalid_argument("not a Nimbus migration stream (bad magic)");
  auto first = ch.receive(kIoTimeoutMs);
  if (!first.ok()) return first.status();
  if (first->type != RecordType::kConfig)
    return Status::invalid_argument("the stream does not start with the configuration");
  const json config = json::parse(first->payload.begin(), first->payload.end(), nullptr, false);
  auto has = [&](const char* key, bool (json::*is)() const noexcept) {
    return config.contains(key) && (config.at(key).*is)();
  };
  if (config.is_discarded() || !config.is_object() || !has("config", &json::is_object) ||
      !has("ram_size", &json::is_number_unsigned) || !has("disks", &json::is_array) ||
      !has("page_size", &json::is_number_unsigned) || config.at("page_size") != kPageSize)
    return Status::invalid_argument("the source's configuration record is malformed");
  const uint64_t ram_size = config.at("ram_size").get<uint64_t>();
  if (ram_size == 0 || ram_size % kPageSize != 0 || ram_size > (uint64_t{64} << 30))
    return Status::invalid_argument("the source's RAM size is not a whole number of pages");
  std::vector<uint64_t> disk_sizes;
  for (const json& d : config.at("disks")) {
    if (!d.is_number_unsigned() || disk_sizes.size() == 64)
      return Status::invalid_argument("the disks' sizes are malformed");
    disk_sizes.push_back(d.get<uint64_t>());
  }
  if (Status s = vm.prepare(config.at("config"), ram_size, disk_sizes); !s.ok()) return s;
  const uint64_t pages = ram_size / kPageSize;
  progress.update([&](Progress& p) {
    p.phase = "ram";
    p.ram_pages_total = pages;
  });
  uint8_t* ram = vm.ram();
  std::vector<backends::BlockBackend*> disks = vm.disks();
  std::vector<uint8_t> state;
  bool have_state = false;
  for (;;) {
    auto rec = ch.receive(kIoTimeoutMs);
    if (!rec.ok()) return rec.status();
    switch (rec->type) {
      case RecordType::kPages: {
        auto p = parse_pages(rec->payload, pages);
        if (!p.ok()) return p.status();
        for (size_t k = 0; k < p->indexes.size(); k++)
          std::memcpy(ram + p->indexes[k] * kPageSize, p->data.data() + k * kPageSize, kPageSize);
        progress.update([&](Progress& pr) {
          pr.ram_pages_sent += p->indexes.size();
          pr.ram_bytes_sent += p->indexes.size() * kPageSize;
          pr.bytes_on_wire = ch.bytes_received();
        });
        break;
      }
      case RecordType::kZeroPages: {
        auto z = parse_zero_pages(rec->payload, pages);
        if (!z.ok()) return z.status();
        for (uint64_t i : *z) std::memset(ram + i * kPageSize, 0, kPageSize);
        progress.update([&](Progress& pr) { pr.zero_pages += z->size(); });
        break;
      }
      case RecordType::kDisk: {
        auto d = parse_disk(rec->payload, disk_sizes);
        if (!d.ok()) return d.status();
        if (Status s = disks[d->disk]->write(d->offset, d->data.data(), d->data.size()); !s.ok())
          return Status::error(fmt::format("disk {}: {}", d->disk, s.message()));
        progress.update([&](Progress& pr) {
          pr.phase = "disk";
          pr.disk_bytes_sent += d->data.size();
        });
        break;
      }
      case RecordType::kState:
        state = std::move(rec->payload);
        have_state = true;
        break;
      case RecordType::kEnd: {
        if (!have_state) return Status::invalid_argument("the stream ended without a state");
        progress.update([](Progress& pr) { pr.phase = "stop-and-copy"; });
        for (auto* d : disks) {
          if (Status s = d->flush(); !s.ok()) return s;
        }
        if (Status s = vm.load_state(state); !s.ok()) return s;
        if (Status s = ch.send(RecordType::kReady, nullptr, 0, kIoTimeoutMs); !s.ok()) return s;
        auto commit = ch.receive(kReadyTimeoutMs);
        if (!commit.ok()) return Status::error("waiting for the commit: " + commit.message());
        if (commit->type != RecordType::kCommit)
          return Status::invalid_argument("expected the commit");
        const auto received = Clock::now();
        uint64_t paused_us = 0;
        if (commit->payload.size() == 8) {
          for (int i = 0; i < 8; i++)
            paused_us |= static_cast<uint64_t>(commit->payload[i]) << (8 * i);
        }
        if (Status s = vm.start(); !s.ok()) return s;
        // The source's pause until its commit, and ours from the commit to the guest running.
        const double downtime = std::min<double>(paused_us / 1000.0, 3600e3) + ms_since(received);
        progress.update([&](Progress& pr) { pr.downtime_ms = downtime; });
        return Status();
      }
      default:
        return Status::invalid_argument(
            fmt::format("an unexpected record (type {})", static_cast<int>(rec->type)));
    }
  }
}

}  // namespace

Status run_target(TargetVm& vm, Channel& channel, ProgressBoard& progress) {
  Status s = receive(vm, channel, progress);
  if (!s.ok()) {
    const std::string why = s.message();
    (void)channel.send(RecordType::kError, why.data(), why.size(), 1000);
    vm.discard();
    return s;
  }
  progress.update([&](Progress& p) {
    p.phase = "done";
    p.bytes_on_wire = channel.bytes_received();
  });
  return Status();
}

}  // namespace nimbus::vmm::migration
