#include "devices/uart/uart16550.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace nimbus::devices {
namespace {

using U = Uart16550;

struct UartFixture : ::testing::Test {
  std::string sent;
  std::vector<bool> irq_calls;
  bool irq = false;
  Uart16550 uart{[this](uint8_t b) { sent.push_back(static_cast<char>(b)); },
                 [this](bool l) {
                   irq = l;
                   irq_calls.push_back(l);
                 }};

  uint8_t rd(uint64_t off) {
    uint64_t v = 0xdeadbeef;
    EXPECT_TRUE(uart.read(off, 1, v));
    EXPECT_LE(v, 0xffu);
    return static_cast<uint8_t>(v);
  }
  void wr(uint64_t off, uint8_t v) { EXPECT_TRUE(uart.write(off, 1, v)); }
};

TEST_F(UartFixture, ResetState) {
  EXPECT_EQ(rd(U::kLsr), U::kLsrThre | U::kLsrTemt);
  EXPECT_EQ(rd(U::kIirFcr), U::kIirNone);
  EXPECT_EQ(rd(U::kIerDlm), 0u);
  EXPECT_EQ(rd(U::kRbrThrDll), 0u);  // empty FIFO reads 0
  EXPECT_TRUE(irq_calls.empty());
}

TEST_F(UartFixture, TransmitIsImmediate) {
  for (char c : std::string("hi\n")) wr(U::kRbrThrDll, static_cast<uint8_t>(c));
  EXPECT_EQ(sent, "hi\n");
  EXPECT_EQ(rd(U::kLsr) & (U::kLsrThre | U::kLsrTemt), U::kLsrThre | U::kLsrTemt);
  EXPECT_TRUE(irq_calls.empty());  // no interrupt without ETBEI
  // Wider accesses use the low byte.
  EXPECT_TRUE(uart.write(U::kRbrThrDll, 4, 0x12345641));
  EXPECT_EQ(sent, "hi\nA");
}

TEST_F(UartFixture, DlabSelectsDivisorLatch) {
  wr(U::kLcr, U::kLcrDlab | 0x03);
  wr(U::kRbrThrDll, 0x0c);
  wr(U::kIerDlm, 0x01);
  EXPECT_EQ(rd(U::kRbrThrDll), 0x0cu);
  EXPECT_EQ(rd(U::kIerDlm), 0x01u);
  EXPECT_TRUE(sent.empty());  // DLL write is not a transmit
  wr(U::kLcr, 0x03);
  EXPECT_EQ(rd(U::kLcr), 0x03u);
  EXPECT_EQ(rd(U::kIerDlm), 0u);  // IER untouched by the DLM write
  EXPECT_TRUE(irq_calls.empty());
  wr(U::kRbrThrDll, 'x');
  EXPECT_EQ(sent, "x");
  wr(U::kLcr, U::kLcrDlab);
  EXPECT_EQ(rd(U::kRbrThrDll), 0x0cu);
  wr(U::kScr, 0x5a);
  EXPECT_EQ(rd(U::kScr), 0x5au);
}

TEST_F(UartFixture, ReceiveAndRxInterrupt) {
  EXPECT_TRUE(uart.push_input('a'));
  EXPECT_TRUE(irq_calls.empty());  // ERBFI off
  EXPECT_EQ(rd(U::kLsr) & U::kLsrDr, U::kLsrDr);
  wr(U::kIerDlm, U::kIerRxData);
  EXPECT_TRUE(irq);
  wr(U::kIirFcr, 0x07);  // enable and clear FIFOs
  EXPECT_FALSE(irq);     // the FIFO clear dropped 'a'
  EXPECT_EQ(rd(U::kLsr) & U::kLsrDr, 0u);
  EXPECT_TRUE(uart.push_input('b'));
  EXPECT_TRUE(uart.push_input('c'));
  EXPECT_TRUE(irq);
  EXPECT_EQ(rd(U::kIirFcr), U::kIirFifos | U::kIirRxData);
  EXPECT_TRUE(irq);  // reading IIR does not acknowledge received data
  EXPECT_EQ(rd(U::kRbrThrDll), 'b');
  EXPECT_TRUE(irq);
  EXPECT_EQ(rd(U::kRbrThrDll), 'c');
  EXPECT_FALSE(irq);
  EXPECT_EQ(rd(U::kIirFcr), U::kIirFifos | U::kIirNone);
  EXPECT_EQ(rd(U::kLsr) & U::kLsrDr, 0u);
  EXPECT_EQ(irq_calls, (std::vector<bool>{true, false, true, false}));
}

TEST_F(UartFixture, ThreInterruptHandshakeDoesNotStall) {
  wr(U::kIirFcr, 0x01);
  wr(U::kIerDlm, U::kIerThre);  // ETBEI 0 -> 1 with THR empty
  EXPECT_TRUE(irq);
  EXPECT_EQ(rd(U::kIirFcr), 0xc2u);
  EXPECT_FALSE(irq);  // the IIR read acknowledged it
  EXPECT_EQ(rd(U::kIirFcr), 0xc1u);
  wr(U::kRbrThrDll, 'z');  // the write completes at once: THR empty again
  EXPECT_TRUE(irq);
  EXPECT_EQ(sent, "z");
  // The driver's stop_tx: clearing ETBEI lowers the line.
  wr(U::kIerDlm, 0);
  EXPECT_FALSE(irq);
  // Linux's UART_BUG_THRE probe: IER=THRI, read IIR, IER=0, IER=THRI, IIR must assert again.
  wr(U::kIerDlm, U::kIerThre);
  EXPECT_EQ(rd(U::kIirFcr), 0xc2u);
  wr(U::kIerDlm, 0);
  wr(U::kIerDlm, U::kIerThre);
  EXPECT_EQ(rd(U::kIirFcr), 0xc2u);
}

TEST_F(UartFixture, RxDataHasPriorityOverThre) {
  wr(U::kIerDlm, U::kIerThre | U::kIerRxData);
  uart.push_input('q');
  EXPECT_EQ(rd(U::kIirFcr), U::kIirRxData);
  EXPECT_EQ(rd(U::kRbrThrDll), 'q');
  // THR-empty was not acknowledged by the earlier IIR read: it is still reported.
  EXPECT_EQ(rd(U::kIirFcr), U::kIirThre);
  EXPECT_EQ(rd(U::kIirFcr), U::kIirNone);
  EXPECT_FALSE(irq);
}

TEST_F(UartFixture, RxFifoIsBounded) {
  for (size_t i = 0; i < U::kRxCapacity; ++i) {
    ASSERT_TRUE(uart.push_input(static_cast<uint8_t>(i)));
  }
  EXPECT_FALSE(uart.has_input_space());
  EXPECT_FALSE(uart.push_input(0xff));
  EXPECT_EQ(rd(U::kLsr) & (U::kLsrOe | U::kLsrDr), U::kLsrOe | U::kLsrDr);
  EXPECT_EQ(rd(U::kLsr) & U::kLsrOe, 0u);  // OE clears on read
  for (size_t i = 0; i < U::kRxCapacity; ++i) {
    ASSERT_EQ(rd(U::kRbrThrDll), static_cast<uint8_t>(i));
  }
  EXPECT_EQ(rd(U::kLsr) & U::kLsrDr, 0u);
  EXPECT_TRUE(uart.has_input_space());
}

TEST_F(UartFixture, LoopbackAndModemStatus) {
  EXPECT_EQ(rd(U::kMsr), 0xb0u);
  wr(U::kMcr, U::kMcrLoop | 0x0a);  // RTS + OUT2
  EXPECT_EQ(rd(U::kMcr), U::kMcrLoop | 0x0a);
  EXPECT_EQ(rd(U::kMsr) & 0xf0, 0x90u);  // CTS + DCD
  wr(U::kRbrThrDll, 'L');
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(rd(U::kRbrThrDll), 'L');
}

TEST_F(UartFixture, HostileAccessesAreSafe) {
  uint64_t v = 1;
  EXPECT_FALSE(uart.read(U::kSize, 1, v));
  EXPECT_FALSE(uart.write(~0ull, 8, ~0ull));
  EXPECT_TRUE(uart.read(0x80, 8, v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(uart.write(0x80, 8, ~0ull));
  EXPECT_TRUE(uart.write(U::kLsr, 1, 0));  // read-only
  EXPECT_EQ(rd(U::kLsr), U::kLsrThre | U::kLsrTemt);
  EXPECT_TRUE(uart.write(U::kIerDlm, 8, ~0ull));
  EXPECT_EQ(rd(U::kIerDlm), 0x0fu);
  EXPECT_TRUE(sent.empty());
}

TEST(Uart16550, ConsoleThreadAndVcpuThreadConcurrently) {
  std::atomic<int> sent{0};
  Uart16550 uart([&](uint8_t) { sent.fetch_add(1); }, [](bool) {});
  uart.write(U::kIerDlm, 1, U::kIerRxData);
  constexpr int kBytes = 20000;
  std::thread console([&] {
    for (int i = 0; i < kBytes; ++i) {
      while (!uart.push_input(static_cast<uint8_t>(i))) std::this_thread::yield();
    }
  });
  int received = 0;
  while (received < kBytes) {
    uint64_t lsr = 0;
    uart.read(U::kLsr, 1, lsr);
    if (lsr & U::kLsrDr) {
      uint64_t b = 0;
      uart.read(U::kRbrThrDll, 1, b);
      ASSERT_EQ(b, static_cast<uint8_t>(received));  // in order, none lost
      ++received;
      uart.write(U::kRbrThrDll, 1, b);
    }
  }
  console.join();
  EXPECT_EQ(sent.load(), kBytes);
}

}  // namespace
}  // namespace nimbus::devices
