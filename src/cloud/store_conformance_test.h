// The Store conformance suite (store_conformance_test.cpp): the behaviour every store
// implementation must show, as etcd v3 does, run against each backend by an
// INSTANTIATE_TEST_SUITE_P(Name, StoreConformance, ...) beside that backend's own tests.
//
// A backend may hand every test the same long-lived store (etcd: one cluster per test
// program), so the tests write only under their own key prefix and compare revisions
// relative to the revision they start at.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "cloud/store.h"

namespace nimbus::cloud {

struct StoreBackend {
  std::string name;
  // The store one test uses, alive at least until the test ends; an error skips the test
  // with its message (e.g. no etcd installed).
  std::function<Result<Store*>()> store;
  // The revision a fresh store of this kind is at before anything was written.
  std::function<Result<int64_t>()> fresh_revision;
};

class StoreConformance : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;
  Store& store() { return *store_; }
  // A key prefix of this test's own ("/t<N>"): every key the test writes starts with it.
  std::string k(const std::string& suffix) const { return prefix_ + suffix; }
  const std::string& prefix() const { return prefix_; }
  int64_t base() const { return base_; }  // the store's revision when the test began

 private:
  Store* store_ = nullptr;
  std::string prefix_;
  int64_t base_ = 0;
};

}  // namespace nimbus::cloud
