#include "common/state_io.h"

#include <gtest/gtest.h>

namespace nimbus {
namespace {

TEST(StateIo, RoundTripsValuesAndSections) {
  StateWriter w;
  w.begin("outer");
  w.u8(0xab);
  w.u16(0x1234);
  w.begin("inner");
  w.u32(0xdeadbeef);
  w.str("hello");
  w.end();
  w.u64(0x0102030405060708ull);
  w.b(true);
  w.end();

  StateReader r(w.data());
  r.begin("outer");
  EXPECT_EQ(r.u8(), 0xab);
  EXPECT_EQ(r.u16(), 0x1234);
  EXPECT_EQ(r.peek_section(), "inner");
  r.begin("inner");
  EXPECT_EQ(r.u32(), 0xdeadbeefu);
  EXPECT_EQ(r.str(16), "hello");
  r.end();
  EXPECT_EQ(r.u64(), 0x0102030405060708ull);
  EXPECT_TRUE(r.b());
  r.end();
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r.at_end());
}

TEST(StateIo, WrongSectionNameFails) {
  StateWriter w;
  w.begin("plic");
  w.u32(1);
  w.end();
  StateReader r(w.data());
  r.begin("clint");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("expected section 'clint', found 'plic'"), std::string::npos);
}

TEST(StateIo, UnreadBytesInSectionFail) {
  StateWriter w;
  w.begin("uart");
  w.u32(1);
  w.u32(2);
  w.end();
  StateReader r(w.data());
  r.begin("uart");
  r.u32();
  r.end();
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("uart: section has 4 unread bytes"), std::string::npos);
}

TEST(StateIo, ReadingPastASectionFailsAndReturnsZero) {
  StateWriter w;
  w.begin("a");
  w.u16(7);
  w.end();
  w.u64(99);
  StateReader r(w.data());
  r.begin("a");
  EXPECT_EQ(r.u16(), 7);
  EXPECT_EQ(r.u64(), 0u);  // would cross the section's end
  EXPECT_FALSE(r.ok());
}

TEST(StateIo, TruncatedStreamFails) {
  StateWriter w;
  w.begin("virtq");
  w.u64(1);
  w.end();
  std::vector<uint8_t> cut(w.data().begin(), w.data().end() - 3);
  StateReader r(cut);
  r.begin("virtq");
  EXPECT_FALSE(r.ok());
}

TEST(StateIo, BlobLongerThanAllowedFails) {
  StateWriter w;
  w.str("a long string");
  StateReader r(w.data());
  EXPECT_EQ(r.str(4), "");
  EXPECT_FALSE(r.ok());
}

TEST(StateIo, FirstFailureWins) {
  StateReader r(nullptr, 0);
  r.fail("first");
  r.fail("second");
  EXPECT_EQ(r.status().message(), "snapshot state: first");
}

}  // namespace
}  // namespace nimbus
