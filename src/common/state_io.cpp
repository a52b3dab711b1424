#include "common/state_io.h"

#include <cstring>

namespace nimbus {

void StateWriter::put(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  buf_.insert(buf_.end(), b, b + n);
}

void StateWriter::blob(const void* data, size_t len) {
  u64(len);
  put(data, len);
}

void StateWriter::begin(std::string_view name) {
  str(name);
  open_.push_back(buf_.size());
  u64(0);  // patched by end()
}

void StateWriter::end() {
  if (open_.empty()) return;
  const size_t at = open_.back();
  open_.pop_back();
  const uint64_t len = buf_.size() - at - 8;
  std::memcpy(buf_.data() + at, &len, 8);
}

bool StateReader::take(void* out, size_t n) {
  const size_t limit = open_.empty() ? len_ : open_.back().end;
  if (!ok() || n > limit - pos_) {
    if (ok()) fail("truncated state");
    std::memset(out, 0, n);
    return false;
  }
  std::memcpy(out, data_ + pos_, n);
  pos_ += n;
  return true;
}

uint8_t StateReader::u8() {
  uint8_t v;
  take(&v, 1);
  return v;
}
uint16_t StateReader::u16() {
  uint16_t v;
  take(&v, 2);
  return v;
}
uint32_t StateReader::u32() {
  uint32_t v;
  take(&v, 4);
  return v;
}
uint64_t StateReader::u64() {
  uint64_t v;
  take(&v, 8);
  return v;
}

void StateReader::bytes(void* out, size_t len) { take(out, len); }

std::vector<uint8_t> StateReader::blob(size_t max_len) {
  const uint64_t n = u64();
  const size_t limit = open_.empty() ? len_ : open_.back().end;
  if (!ok()) return {};
  if (n > max_len || n > limit - pos_) {
    fail("blob length out of range");
    return {};
  }
  std::vector<uint8_t> v(data_ + pos_, data_ + pos_ + n);
  pos_ += n;
  return v;
}

void StateReader::begin(std::string_view name) {
  const std::string got = str(64);
  const uint64_t n = u64();
  if (!ok()) return;
  const size_t limit = open_.empty() ? len_ : open_.back().end;
  if (got != name) {
    fail("expected section '" + std::string(name) + "', found '" + got + "'");
    return;
  }
  if (n > limit - pos_) {
    fail("section '" + std::string(name) + "' is truncated");
    return;
  }
  open_.push_back({std::string(name), pos_ + n});
}

void StateReader::end() {
  if (!ok() || open_.empty()) return;
  if (pos_ != open_.back().end) {
    fail("section has " + std::to_string(open_.back().end - pos_) + " unread bytes");
    return;
  }
  open_.pop_back();
}

std::string StateReader::peek_section() {
  if (!ok()) return {};
  const size_t save = pos_;
  const std::string saved_error = error_;
  const std::string name = str(64);
  pos_ = save;
  error_ = saved_error;
  return name;
}

void StateReader::fail(std::string_view message) {
  if (!ok()) return;
  std::string where;
  for (const Open& o : open_) where += o.name + ": ";
  error_ = "snapshot state: " + where + std::string(message);
  if (error_.empty()) error_ = "snapshot state: invalid";
}

}  // namespace nimbus
