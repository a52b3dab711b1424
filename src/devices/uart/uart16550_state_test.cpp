#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "devices/state_test_util.h"
#include "devices/uart/uart16550.h"

namespace nimbus::devices {
namespace {

using namespace testing;  // NOLINT
using U = Uart16550;

struct UartBox {
  std::string sent;
  std::vector<bool> irq_calls;
  Uart16550 uart{[this](uint8_t b) { sent.push_back(static_cast<char>(b)); },
                 [this](bool l) { irq_calls.push_back(l); }};
  uint8_t rd(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(uart.read(off, 1, v));
    return static_cast<uint8_t>(v);
  }
  void wr(uint64_t off, uint8_t v) { EXPECT_TRUE(uart.write(off, 1, v)); }
};

TEST(UartState, RoundTripFifoAndInterrupt) {
  UartBox a;
  a.wr(U::kLcr, U::kLcrDlab);
  a.wr(U::kRbrThrDll, 0x0c);
  a.wr(U::kIerDlm, 0x01);
  a.wr(U::kLcr, 0x03);
  a.wr(U::kIirFcr, 0x07);
  a.wr(U::kScr, 0x5a);
  a.wr(U::kIerDlm, U::kIerRxData);
  // Wrap the ring so the saved FIFO does not start at index 0.
  for (int i = 0; i < 10; ++i) a.uart.push_input('x');
  for (int i = 0; i < 10; ++i) a.rd(U::kRbrThrDll);
  for (char c : std::string("hello")) a.uart.push_input(static_cast<uint8_t>(c));
  ASSERT_EQ(a.irq_calls.back(), true);
  const std::vector<uint8_t> state = save(a.uart);

  UartBox b;
  ASSERT_TRUE(load(b.uart, state).ok());
  ASSERT_EQ(b.irq_calls, std::vector<bool>{true});  // line re-driven
  EXPECT_EQ(b.rd(U::kLcr), 0x03);
  EXPECT_EQ(b.rd(U::kScr), 0x5a);
  EXPECT_EQ(b.rd(U::kIirFcr), U::kIirFifos | U::kIirRxData);
  std::string got;
  while (b.rd(U::kLsr) & U::kLsrDr) got.push_back(static_cast<char>(b.rd(U::kRbrThrDll)));
  EXPECT_EQ(got, "hello");
  EXPECT_FALSE(b.irq_calls.back());
  b.wr(U::kLcr, U::kLcrDlab);
  EXPECT_EQ(b.rd(U::kRbrThrDll), 0x0c);
  EXPECT_EQ(b.rd(U::kIerDlm), 0x01);
}

TEST(UartState, RefusesCorruptState) {
  UartBox a;
  a.uart.push_input('q');
  const std::vector<uint8_t> state = save(a.uart);
  std::vector<uint8_t> bad = state;
  const size_t header = 8 + 9 + 8;  // "uart16550" blob and section length
  bad[header] = 0xff;               // FIFO length far beyond the capacity
  bad[header + 3] = 0xff;
  UartBox b;
  Status s = load(b.uart, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("uart16550"), std::string::npos) << s.message();
  bad = state;
  bad[header + 8 + 1 + 3] = 0xf0;  // IER reserved bits
  s = load(b.uart, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("IER"), std::string::npos) << s.message();

  expect_truncations_refused(state, "uart16550", [](StateReader& r) {
    UartBox c;
    c.uart.load_state(r);
  });
  load_garbage(state, [](StateReader& r) {
    UartBox c;
    c.uart.load_state(r);
  });
}

}  // namespace
}  // namespace nimbus::devices
