// Test-only helpers for device snapshot state (save_state / load_state). Included only by
// *_test.cpp files.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/state_io.h"

namespace nimbus::devices::testing {

// Loads every strict prefix of `state` through `load(StateReader&)` (which should load
// into a fresh or reset instance) and expects each to be refused. A prefix that keeps the
// section header whole must name `section` in the error.
template <typename Load>
void expect_truncations_refused(const std::vector<uint8_t>& state, const std::string& section,
                                Load&& load) {
  const size_t header = 8 + section.size() + 8;  // name blob + section length
  for (size_t n = 0; n < state.size(); ++n) {
    StateReader r(state.data(), n);
    load(r);
    ASSERT_FALSE(r.ok()) << "a prefix of " << n << " bytes was accepted";
    if (n >= header) {
      EXPECT_NE(r.status().message().find(section), std::string::npos) << r.status().message();
    }
  }
}

// Loads `rounds` variants of `state` with random bytes overwritten (fixed seed) and with
// random garbage of the same length. Nothing is expected except that no load crashes or
// trips a sanitizer, and that each either succeeds or reports an error.
template <typename Load>
void load_garbage(const std::vector<uint8_t>& state, Load&& load, int rounds = 200) {
  std::mt19937 rng(12345);
  for (int i = 0; i < rounds; ++i) {
    std::vector<uint8_t> v = state;
    if (i % 10 == 9) {
      for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
    } else if (!v.empty()) {
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) v[rng() % v.size()] = static_cast<uint8_t>(rng());
    }
    StateReader r(v);
    load(r);
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
}

// Saves `obj` into a byte vector.
template <typename T>
std::vector<uint8_t> save(const T& obj) {
  StateWriter w;
  obj.save_state(w);
  return w.take();
}

// Loads `state` into `obj`; returns the reader's status (ok only if all was consumed).
template <typename T>
Status load(T& obj, const std::vector<uint8_t>& state) {
  StateReader r(state);
  obj.load_state(r);
  if (r.ok() && !r.at_end()) r.fail("trailing bytes");
  return r.status();
}

}  // namespace nimbus::devices::testing
