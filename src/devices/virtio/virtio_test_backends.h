// Test-only backends for virtio devices: an in-memory disk and a scriptable network.
// Included only by *_test.cpp files.
#pragma once

#include <atomic>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/net/net_backend.h"

namespace nimbus::devices::testing {

// An in-memory disk that counts flushes and can be told to fail.
class MemDisk : public backends::BlockBackend {
 public:
  MemDisk(size_t size, bool ro) : data(size), ro_(ro) {}
  uint64_t size() const override { return data.size(); }
  bool read_only() const override { return ro_; }
  Status read(uint64_t off, uint8_t* buf, size_t len) override {
    if (fail || off > data.size() || len > data.size() - off) return Status::error("io");
    std::memcpy(buf, data.data() + off, len);
    return {};
  }
  Status write(uint64_t off, const uint8_t* buf, size_t len) override {
    if (fail || ro_ || off > data.size() || len > data.size() - off) return Status::error("io");
    std::memcpy(data.data() + off, buf, len);
    return {};
  }
  Status flush() override {
    ++flushes;
    return fail ? Status::error("io") : Status();
  }
  Status discard(uint64_t off, uint64_t len) override {
    discarded.push_back({off, len});
    return {};
  }
  std::vector<uint8_t> data;
  std::atomic<int> flushes{0};
  std::atomic<bool> fail{false};
  std::vector<std::pair<uint64_t, uint64_t>> discarded;

 private:
  bool ro_;
};

// Records frames sent by the guest; delivers frames on request, keeping the ones the
// device refuses (as the real backends do) until resume_receive().
class FakeNet : public backends::NetBackend {
 public:
  Status start(Receiver r) override {
    receiver = std::move(r);
    return {};
  }
  void send(const uint8_t* f, size_t len) override {
    std::lock_guard<std::mutex> lock(mu);
    sent.emplace_back(f, f + len);
  }
  void resume_receive() override {
    std::lock_guard<std::mutex> lock(mu);
    ++resumes;
    while (!held.empty() && receiver(held.front().data(), held.front().size())) {
      held.erase(held.begin());
    }
  }
  void stop() override {
    stopped = true;
    if (stopped_out) *stopped_out = true;
  }
  // From the "backend thread" (the test): true if the device took it.
  bool inject(std::vector<uint8_t> f) {
    std::lock_guard<std::mutex> lock(mu);
    if (held.empty() && receiver(f.data(), f.size())) return true;
    held.push_back(std::move(f));
    return false;
  }
  size_t held_count() {
    std::lock_guard<std::mutex> lock(mu);
    return held.size();
  }
  size_t sent_count() {
    std::lock_guard<std::mutex> lock(mu);
    return sent.size();
  }

  std::mutex mu;
  Receiver receiver;
  std::vector<std::vector<uint8_t>> sent, held;
  std::atomic<int> resumes{0};
  bool stopped = false;
  bool* stopped_out = nullptr;  // set by stop(): outlives the backend (tests of the owner)
};

}  // namespace nimbus::devices::testing
