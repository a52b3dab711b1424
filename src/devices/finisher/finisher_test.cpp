#include "devices/finisher/finisher.h"

#include <gtest/gtest.h>

namespace nimbus::devices {
namespace {

TEST(Finisher, DecodesPassFailReset) {
  Finisher::Event last = Finisher::Event::kNone;
  uint32_t code = 99;
  Finisher f([&](Finisher::Event e, uint32_t c) {
    last = e;
    code = c;
  });
  f.write(0, 4, 0x5555);
  EXPECT_EQ(last, Finisher::Event::kPass);
  f.write(0, 4, (42u << 16) | 0x3333);
  EXPECT_EQ(last, Finisher::Event::kFail);
  EXPECT_EQ(code, 42u);
  f.write(0, 4, 0x7777);
  EXPECT_EQ(last, Finisher::Event::kReset);
  last = Finisher::Event::kNone;
  f.write(0, 4, 0x1234);  // not a command
  f.write(4, 4, 0x5555);  // not the command register
  EXPECT_EQ(last, Finisher::Event::kNone);
  f.write(0, 1, 0x55);  // a byte is not a command
  EXPECT_EQ(last, Finisher::Event::kNone);
}

TEST(Finisher, AcceptsSixteenBitWrites) {
  Finisher::Event last = Finisher::Event::kNone;
  Finisher f([&](Finisher::Event e, uint32_t) { last = e; });
  f.write(0, 2, 0x5555);  // as OpenSBI's sifive_test driver does
  EXPECT_EQ(last, Finisher::Event::kPass);
}

TEST(Finisher, StateIsAnEmptySection) {
  Finisher f([](Finisher::Event, uint32_t) {});
  StateWriter w;
  f.save_state(w);
  StateReader r(w.data());
  f.load_state(r);
  EXPECT_TRUE(r.ok() && r.at_end());
  StateReader wrong(w.data().data(), w.data().size() - 1);
  f.load_state(wrong);
  EXPECT_FALSE(wrong.ok());
}

}  // namespace
}  // namespace nimbus::devices
