#include "devices/virtio/io_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace nimbus::devices {
namespace {

TEST(VirtioIoThread, RunsTasksInOrderOffTheCaller) {
  IoThread io("test-io");
  std::vector<int> order;
  std::thread::id worker;
  for (int i = 0; i < 100; i++) {
    io.post([&, i] {
      order.push_back(i);
      worker = std::this_thread::get_id();
    });
  }
  io.wait_idle();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; i++) EXPECT_EQ(order[i], i);
  EXPECT_NE(worker, std::this_thread::get_id());
}

TEST(VirtioIoThread, StopDiscardsPendingAndIgnoresLaterPosts) {
  std::atomic<int> ran{0};
  {
    IoThread io;
    std::atomic<bool> release{false}, started{false};
    io.post([&] {
      started = true;
      while (!release) std::this_thread::yield();
      ++ran;
    });
    for (int i = 0; i < 10; i++) io.post([&] { ran += 100; });
    while (!started) std::this_thread::yield();
    std::thread t([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      release = true;
    });
    io.stop();
    t.join();
    io.post([&] { ran += 1000; });
    io.stop();
  }
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace nimbus::devices
