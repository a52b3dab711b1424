#include "cloud/instance_types.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace nimbus::cloud {
namespace {

class TypesFile {
 public:
  explicit TypesFile(const std::string& text) {
    char tmpl[] = "/tmp/nimbus-types-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    path_ = tmpl;
    ::close(fd);
    std::ofstream(path_) << text;
  }
  ~TypesFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Result<std::vector<InstanceType>> load_text(const std::string& text) {
  TypesFile f(text);
  return load_instance_types(f.path());
}

TEST(InstanceTypes, DefaultsAreEc2sT3AndNimbusTypes) {
  const std::vector<InstanceType> types = default_instance_types();
  const std::vector<std::tuple<std::string, unsigned, uint64_t>> expected = {
      {"t3.nano", 2, 512},      {"t3.micro", 2, 1024}, {"t3.small", 2, 2048},
      {"t3.medium", 2, 4096},   {"t3.large", 2, 8192}, {"t3.xlarge", 4, 16384},
      {"t3.2xlarge", 8, 32768}, {"n1.tiny", 1, 128},   {"n1.small", 1, 256},
      {"n1.medium", 2, 512},    {"n1.large", 4, 1024}, {"n1.xlarge", 8, 2048}};
  ASSERT_EQ(types.size(), expected.size());
  for (size_t i = 0; i < types.size(); ++i) {
    EXPECT_EQ(types[i].name, std::get<0>(expected[i]));
    EXPECT_EQ(types[i].vcpus, std::get<1>(expected[i]));
    EXPECT_EQ(types[i].memory_mib, std::get<2>(expected[i]));
    EXPECT_FALSE(types[i].family_note.empty());
    EXPECT_LE(types[i].vcpus, kMaxTypeVcpus);
  }
}

TEST(InstanceTypes, FindType) {
  const std::vector<InstanceType> types = default_instance_types();
  const InstanceType* t = find_type(types, "t3.large");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->memory_mib, 8192u);
  EXPECT_EQ(find_type(types, "t3.LARGE"), nullptr);
  EXPECT_EQ(find_type(types, "m5.large"), nullptr);
  EXPECT_EQ(find_type(types, ""), nullptr);
}

TEST(InstanceTypes, LoadsAValidFile) {
  auto r = load_text(R"({"instance_types": [
      {"name": "c1.big", "vcpus": 8, "memory_mib": 1048576, "family_note": "compute"},
      {"name": "u-6tb1.56xlarge", "vcpus": 1, "memory_mib": 64}]})");
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "c1.big");
  EXPECT_EQ((*r)[0].vcpus, 8u);
  EXPECT_EQ((*r)[0].memory_mib, 1048576u);
  EXPECT_EQ((*r)[0].family_note, "compute");
  EXPECT_EQ((*r)[1].family_note, "");
  EXPECT_NE(find_type(*r, "u-6tb1.56xlarge"), nullptr);
}

TEST(InstanceTypes, RejectsBadFilesClearly) {
  const auto error = [](const std::string& text) {
    auto r = load_text(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.code(), Code::kInvalidArgument) << text;
    return r.ok() ? std::string() : r.message();
  };
  const auto type = [](const std::string& entry) {
    return R"({"instance_types": [)" + entry + "]}";
  };
  EXPECT_NE(error("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error(R"({"types": []})").find("instance_types"), std::string::npos);
  EXPECT_NE(error(R"({"instance_types": []})").find("no instance types"), std::string::npos);
  EXPECT_NE(error(R"([1])").find("instance_types"), std::string::npos);
  EXPECT_NE(error(type(R"("t3.micro")")).find("type #1: each type is an object"),
            std::string::npos);
  for (const char* name : {"T3.micro", "t3", "t3.", ".micro", "t3..micro", "3t.micro", "t3.mi cro",
                           "t3_micro", "t3.micro/"}) {
    const std::string msg =
        error(type(fmt::format(R"({{"name": "{}", "vcpus": 1, "memory_mib": 128}})", name)));
    EXPECT_NE(msg.find("name"), std::string::npos) << name << ": " << msg;
  }
  EXPECT_NE(error(type(R"({"name": 5, "vcpus": 1, "memory_mib": 128})")).find("'name'"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": 0, "memory_mib": 128})")).find("'vcpus' is 0"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": 9, "memory_mib": 128})")).find("1 to 8"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": -1, "memory_mib": 128})")).find("whole"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": 1.5, "memory_mib": 128})")).find("whole"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": "2", "memory_mib": 128})")).find("whole"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": 1})")).find("'memory_mib' is missing"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": 1, "memory_mib": 63})")).find("64 to"),
            std::string::npos);
  EXPECT_NE(error(type(R"({"name": "a.b", "vcpus": 1, "memory_mib": 1048577})")).find("1 TiB"),
            std::string::npos);
  EXPECT_NE(
      error(type(R"({"name": "a.b", "vcpus": 1, "memory_mib": 99999999999999999999})")).size(), 0u);
  EXPECT_NE(
      error(type(R"({"name": "a.b", "vcpus": 1, "memory": 128})")).find("unknown field 'memory'"),
      std::string::npos);
  const std::string dup = error(type(R"({"name": "a.b", "vcpus": 1, "memory_mib": 128},
                                        {"name": "a.c", "vcpus": 1, "memory_mib": 128},
                                        {"name": "a.b", "vcpus": 2, "memory_mib": 256})"));
  EXPECT_NE(dup.find("type #3: 'a.b' is defined twice"), std::string::npos) << dup;
  // The entry is named in the error.
  const std::string named = error(type(R"({"name": "a.b", "vcpus": 1, "memory_mib": 128},
                                          {"name": "x.y", "vcpus": 99, "memory_mib": 128})"));
  EXPECT_NE(named.find("type #2 ('x.y')"), std::string::npos) << named;
}

TEST(InstanceTypes, MissingAndHugeFiles) {
  auto missing = load_instance_types("/nonexistent/types.json");
  EXPECT_EQ(missing.code(), Code::kNotFound);
  auto huge = load_text(std::string(2 << 20, ' '));
  EXPECT_EQ(huge.code(), Code::kInvalidArgument);
  EXPECT_NE(huge.message().find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::cloud
