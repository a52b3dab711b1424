// The live-migration stream between two VMMs: how the bytes look and how they travel.
//
// One connection (TCP, or a unix socket between processes on one host). The source sends
// the magic, then records; the target answers only at the end. A record is a 1-byte type,
// 3 zero bytes and a little-endian u32 payload length, then the payload:
//
//   source -> target
//     kConfig   JSON {"config": VmConfig, "ram_size", "page_size", "disks": [size, ...]}
//     kPages    u32 count, count x u64 page index, u8 codec (kRaw | kZstd), the pages' bytes
//               (count x 4096, zstd-compressed as one frame with kZstd)
//     kZeroPages u32 count, count x u64 page index: pages that became all zeros
//     kDisk     u32 disk, u64 offset, u32 length, u8 codec (kRaw | kZstd | kZeros), bytes
//     kState    the machine state (VirtMachine::save_state)
//     kEnd      nothing: everything was sent; the target loads it and answers
//     kCommit   u64 µs the guest has been paused so far: the source gave the VM up; the
//               target resumes it (and reports the whole downtime)
//   target -> source
//     kReady    nothing: the state loaded; waiting for kCommit
//     kError    a message: the target gave up (it closes the connection)
//
// The target trusts nothing: every count, index, offset and length is checked against the
// limits below and the VM's shape before anything is written (parse_* return errors).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::vmm::migration {

constexpr char kMagic[8] = {'N', 'M', 'B', 'S', 'M', 'I', 'G', '1'};
constexpr uint64_t kPageSize = 4096;
constexpr uint32_t kMaxPagesPerRecord = 256;
constexpr uint32_t kMaxDiskBytesPerRecord = 1 << 20;
constexpr uint32_t kMaxPayload = 64u << 20;  // the state and config are far smaller

enum class RecordType : uint8_t {
  kConfig = 1,
  kPages = 2,
  kZeroPages = 3,
  kDisk = 4,
  kState = 5,
  kEnd = 6,
  kCommit = 7,
  kReady = 16,
  kError = 17,
};
enum class Codec : uint8_t { kRaw = 0, kZstd = 1, kZeros = 2 };

struct Record {
  RecordType type{};
  std::vector<uint8_t> payload;
};

// "tcp:HOST:PORT" or "unix:PATH".
struct Address {
  bool unix_socket = false;
  std::string host;  // tcp: a numeric IPv4 address or a name ("localhost")
  uint16_t port = 0;
  std::string path;  // unix
  std::string to_string() const;
};
Result<Address> parse_address(const std::string& text);

// A connected socket with whole-record I/O under a deadline per call. Cancel from another
// thread with shutdown(): every blocked call then fails.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  Status write_all(const void* data, size_t len, int timeout_ms);
  Status read_exact(void* data, size_t len, int timeout_ms);
  Status send(RecordType type, const void* payload, size_t len, int timeout_ms);
  Status send(RecordType type, const std::vector<uint8_t>& payload, int timeout_ms) {
    return send(type, payload.data(), payload.size(), timeout_ms);
  }
  Result<Record> receive(int timeout_ms);
  // A record already waiting (kError after a failed write), without blocking long.
  Result<Record> poll_record(int timeout_ms);
  void shutdown();
  uint64_t bytes_sent() const { return sent_; }
  uint64_t bytes_received() const { return received_; }

 private:
  int fd_;
  uint64_t sent_ = 0, received_ = 0;
};

// Connects (within timeout_ms) or listens. listen() returns the listening fd and the
// address it is bound to (the port filled in for port 0).
Result<std::unique_ptr<Channel>> connect_to(const Address& address, int timeout_ms);
struct Listener {
  int fd = -1;
  Address bound;
};
Result<Listener> listen_on(const Address& address);
// Accepts one connection within timeout_ms (-1: forever); fails if `listener_fd` is shut
// down meanwhile.
Result<std::unique_ptr<Channel>> accept_one(int listener_fd, int timeout_ms);

// Payload builders and parsers. `ram_pages` and the disks' sizes bound what parses.
std::vector<uint8_t> encode_pages(const std::vector<uint64_t>& indexes, const uint8_t* ram,
                                  bool compress);
std::vector<uint8_t> encode_zero_pages(const std::vector<uint64_t>& indexes);
std::vector<uint8_t> encode_disk(uint32_t disk, uint64_t offset, const uint8_t* data, uint32_t len,
                                 bool compress);

struct PagesRecord {
  std::vector<uint64_t> indexes;
  std::vector<uint8_t> data;  // indexes.size() x kPageSize, decompressed
};
Result<PagesRecord> parse_pages(const std::vector<uint8_t>& payload, uint64_t ram_pages);
Result<std::vector<uint64_t>> parse_zero_pages(const std::vector<uint8_t>& payload,
                                               uint64_t ram_pages);
struct DiskRecord {
  uint32_t disk = 0;
  uint64_t offset = 0;
  std::vector<uint8_t> data;  // decompressed (zeros for kZeros)
};
Result<DiskRecord> parse_disk(const std::vector<uint8_t>& payload,
                              const std::vector<uint64_t>& disk_sizes);

}  // namespace nimbus::vmm::migration
