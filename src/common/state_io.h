// Serialised machine state for snapshots: a flat little-endian byte stream that each
// component (hart, device, virtqueue) writes and reads in the same order.
//
// Components implement
//     void save_state(StateWriter& w) const;
//     void load_state(StateReader& r);
// and wrap their fields in a named section (w.begin("plic") ... w.end()). The reader
// checks every section's name and length, so a component that reads more or less than
// it wrote is caught at once with its name in the error.
//
// A snapshot file is user input: load_state() must validate every value it reads
// (ranges, sizes, guest addresses) and call r.fail("what is wrong") instead of trusting
// it. Reads past the end or after a failure return zeros; check r.ok() at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nimbus {

class StateWriter {
 public:
  void u8(uint8_t v) { put(&v, 1); }
  void u16(uint16_t v) { put(&v, 2); }
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void b(bool v) { u8(v ? 1 : 0); }
  // Raw bytes of a fixed size the reader knows.
  void bytes(const void* data, size_t len) { put(data, len); }
  // Length-prefixed byte string.
  void blob(const void* data, size_t len);
  void str(std::string_view s) { blob(s.data(), s.size()); }

  // A named section; sections nest.
  void begin(std::string_view name);
  void end();

  const std::vector<uint8_t>& data() const { return buf_; }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  void put(const void* p, size_t n);
  std::vector<uint8_t> buf_;
  std::vector<size_t> open_;  // offsets of the length fields of open sections
};

class StateReader {
 public:
  StateReader(const uint8_t* data, size_t len) : data_(data), len_(len) {}
  explicit StateReader(const std::vector<uint8_t>& v) : StateReader(v.data(), v.size()) {}

  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  bool b() { return u8() != 0; }
  void bytes(void* out, size_t len);
  // A blob of at most `max_len` bytes (longer ones fail).
  std::vector<uint8_t> blob(size_t max_len);
  std::string str(size_t max_len) {
    std::vector<uint8_t> v = blob(max_len);
    return std::string(v.begin(), v.end());
  }

  // Enters the section `name` (fails if the next section has another name).
  void begin(std::string_view name);
  // Leaves the current section (fails unless all of it was read).
  void end();
  // The name of the next section without entering it ("" at the end or on error).
  std::string peek_section();

  // Marks the stream invalid; the first message wins. Prefixed with the open sections.
  void fail(std::string_view message);
  bool ok() const { return error_.empty(); }
  bool at_end() const { return pos_ == len_; }
  Status status() const { return ok() ? Status() : Status::error(error_); }

 private:
  bool take(void* out, size_t n);
  const uint8_t* data_;
  size_t len_;
  size_t pos_ = 0;
  struct Open {
    std::string name;
    size_t end;
  };
  std::vector<Open> open_;
  std::string error_;
};

}  // namespace nimbus
