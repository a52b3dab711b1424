#include "host/console_tail.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace nimbus::host {
namespace {

class ConsoleTailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("console-tail-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ConsoleTailTest, ReadsTheWholeShortLog) {
  std::ofstream(dir_ / "console.log") << "Linux version 6.1\nnimbus-guest: ready\n";
  auto t = read_console_tail((dir_ / "console.log").string(), kConsoleOutputBytes);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->output, "Linux version 6.1\nnimbus-guest: ready\n");
  EXPECT_FALSE(t->truncated);
}

TEST_F(ConsoleTailTest, KeepsOnlyTheMostRecentBytes) {
  {
    std::ofstream out(dir_ / "console.log");
    for (int i = 0; i < 10000; ++i) out << "line " << i << "\n";
  }
  auto t = read_console_tail((dir_ / "console.log").string(), 100);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->output.size(), 100u);
  EXPECT_TRUE(t->truncated);
  EXPECT_NE(t->output.find("line 9999\n"), std::string::npos);
}

TEST_F(ConsoleTailTest, AbsentLogIsEmpty) {
  auto t = read_console_tail((dir_ / "none.log").string(), 100);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->output, "");
}

TEST_F(ConsoleTailTest, RefusesWhatIsNotARegularFile) {
  // A VM owns its directory: it could put a FIFO or a link to another VM's log there.
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  EXPECT_FALSE(read_console_tail((dir_ / "fifo").string(), 100).ok());
  std::ofstream(dir_ / "secret") << "not yours";
  std::filesystem::create_symlink(dir_ / "secret", dir_ / "link");
  EXPECT_FALSE(read_console_tail((dir_ / "link").string(), 100).ok());
}

}  // namespace
}  // namespace nimbus::host
