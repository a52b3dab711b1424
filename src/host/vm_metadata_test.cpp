// A VM's instance metadata through nimbusd: create's "metadata", PUT /v1/vms/NAME/metadata
// (parsed by the API, applied by the daemon over fake VMM processes), what is saved, what
// the next VMM's config.json holds, and what the vm object shows (the options, never data).
#include <sqlite3.h>

#include <fstream>

#include "config/vm_config.h"
#include "host/daemon_test_fixture.h"
#include "host/host_api.h"
#include "host/host_json.h"
#include "host/recording_host_ops.h"

namespace nimbus::host {
namespace {

using config::json;
using config::MetadataConfig;

MetadataConfig sample(const std::string& id = "i-0001") {
  MetadataConfig m;
  m.data = {{"meta-data", {{"instance-id", id}}}, {"user-data", "aGVsbG8K"}};
  m.options.tokens_required = true;
  m.options.hop_limit = 2;
  return m;
}

// The metadata section of the VM's config.json (what its next VMM starts with).
std::optional<MetadataConfig> config_metadata(const std::string& state_dir, const std::string& vm) {
  std::ifstream in(state_dir + "/vms/" + vm + "/config.json");
  auto c = config::parse_vm_config(json::parse(in));
  EXPECT_TRUE(c.ok()) << c.message();
  return c.ok() ? c->metadata : std::nullopt;
}

class MetadataTest : public DaemonTest {
 protected:
  VmInfo create_with(const std::string& name, const std::optional<MetadataConfig>& m,
                     bool start = true) {
    CreateRequest r;
    r.name = name;
    r.start = start;
    r.metadata = m;
    auto vm = daemon->create_vm(r);
    EXPECT_TRUE(vm.ok()) << vm.message();
    return vm.ok() ? *vm : VmInfo{};
  }
};

TEST_F(MetadataTest, CreateWritesItToTheConfigAndKeepsItAcrossRestarts) {
  const MetadataConfig m = sample();
  create_with("web1", m);
  EXPECT_EQ(config_metadata(options.state_dir, "web1"), m);
  EXPECT_EQ(get("web1").metadata, m);
  restart_daemon();
  EXPECT_EQ(get("web1").metadata, m);
  // The VM's next VMM (a stop and a start rewrite config.json) has it too.
  ASSERT_TRUE(daemon->stop_vm("web1", true, 0).ok());
  std::filesystem::remove(options.state_dir + "/vms/web1/config.json");
  ASSERT_TRUE(daemon->start_vm("web1").ok());
  EXPECT_EQ(config_metadata(options.state_dir, "web1"), m);
  // A VM created without: no metadata service.
  create_with("web2", std::nullopt);
  EXPECT_EQ(config_metadata(options.state_dir, "web2"), std::nullopt);
}

TEST_F(MetadataTest, TheVmObjectShowsTheOptionsNotTheData) {
  const json with = to_json(create_with("web1", sample()));
  EXPECT_EQ(with["metadata_options"],
            json({{"http_tokens", "required"}, {"http_endpoint", "enabled"}, {"hop_limit", 2}}));
  EXPECT_EQ(with.dump().find("aGVsbG8K"), std::string::npos) << "user data is not shown";
  EXPECT_EQ(with.dump().find("i-0001"), std::string::npos);
  EXPECT_TRUE(with["macs"]["user"].is_string());
  const json without = to_json(create_with("web2", std::nullopt));
  EXPECT_TRUE(without["metadata_options"].is_null());
}

TEST_F(MetadataTest, ARunningVmTakesNewDataAtOnceAndKeepsItsOptions) {
  create_with("web1", sample());
  MetadataUpdate u;
  u.data = json{{"meta-data", {{"instance-id", "i-0001"}, {"local-ipv4", "10.88.0.2"}}}};
  auto r = daemon->set_metadata("web1", u);
  ASSERT_TRUE(r.ok()) << r.message();
  MetadataConfig want = sample();
  want.data = *u.data;
  EXPECT_EQ(r->record.metadata, want);
  EXPECT_EQ(fake->count("metadata web1"), 1u);
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    EXPECT_EQ(fake->metadata["web1"], want);
  }
  restart_daemon();
  EXPECT_EQ(get("web1").metadata, want);
  // Options alone: the data stays.
  MetadataUpdate o;
  o.options = {{"http_tokens", "optional"}};
  ASSERT_TRUE(daemon->set_metadata("web1", o).ok());
  want.options.tokens_required = false;
  EXPECT_EQ(get("web1").metadata, want);
  EXPECT_EQ(fake->count("metadata web1"), 2u);
}

TEST_F(MetadataTest, AStoppedVmSavesItForItsNextStart) {
  create_with("web1", std::nullopt, false);
  MetadataUpdate u;
  u.data = sample().data;
  u.options = {{"hop_limit", 3}};
  ASSERT_TRUE(daemon->set_metadata("web1", u).ok());
  EXPECT_EQ(fake->count("metadata web1"), 0u) << "no VMM to tell";
  ASSERT_TRUE(daemon->start_vm("web1").ok());
  auto m = config_metadata(options.state_dir, "web1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data, sample().data);
  EXPECT_EQ(m->options.hop_limit, 3u);
  EXPECT_FALSE(m->options.tokens_required) << "the defaults under the given option";
}

TEST_F(MetadataTest, WhenTheVmmRefusesNothingIsSaved) {
  create_with("web1", sample());
  fake->metadata_error = Status::invalid_argument("metadata: data: 'x' is bad");
  MetadataUpdate u;
  u.data = json{{"meta-data", json::object()}};
  auto r = daemon->set_metadata("web1", u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kInvalidArgument);
  EXPECT_EQ(get("web1").metadata, sample());
  EXPECT_EQ(daemon->set_metadata("nope", u).code(), Code::kNotFound);
}

TEST_F(MetadataTest, AVersion1DatabaseGainsTheColumn) {
  create("web1");
  daemon.reset();
  // Make the database what nimbusd's first schema wrote: no metadata column, version 1.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((options.state_dir + "/nimbus.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "ALTER TABLE vms DROP COLUMN metadata; PRAGMA user_version=1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  restart_daemon();
  EXPECT_EQ(get("web1").metadata, std::nullopt);
  MetadataUpdate u;
  u.data = sample().data;
  ASSERT_TRUE(daemon->set_metadata("web1", u).ok());
  restart_daemon();
  ASSERT_TRUE(get("web1").metadata.has_value());
  EXPECT_EQ(get("web1").metadata->data, sample().data);
}

// The API edge.

struct Reply {
  int status;
  json body;
};

Reply call(RecordingHostOps& ops, const std::string& method, const std::string& path,
           const std::string& body) {
  HostResponse r = handle_host_request(ops, method, path, body);
  return {r.status, json::parse(r.body, nullptr, false)};
}

TEST(HostApiMetadata, CreateTakesTheConfigSection) {
  RecordingHostOps ops;
  Reply r = call(ops, "POST", "/v1/vms",
                 R"({"metadata": {"data": {"meta-data": {"instance-id": "i-1"},
                     "user-data": "aGk="}, "http_tokens": "required"}})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  ASSERT_TRUE(ops.created.metadata.has_value());
  EXPECT_EQ(ops.created.metadata->data["meta-data"]["instance-id"], "i-1");
  EXPECT_TRUE(ops.created.metadata->options.tokens_required);
  EXPECT_EQ(ops.created.metadata->options.hop_limit, 1u);
  call(ops, "POST", "/v1/vms", "{}");
  EXPECT_FALSE(ops.created.metadata.has_value());
}

TEST(HostApiMetadata, PutRoutesDataAndOptions) {
  RecordingHostOps ops;
  Reply r = call(ops, "PUT", "/v1/vms/web1/metadata",
                 R"({"data": {"meta-data": {"local-ipv4": "10.88.0.2"}}, "hop_limit": 4})");
  ASSERT_LT(r.status, 300) << r.body.dump();
  EXPECT_EQ(ops.last, "metadata web1");
  ASSERT_TRUE(ops.metadata.data.has_value());
  EXPECT_EQ((*ops.metadata.data)["meta-data"]["local-ipv4"], "10.88.0.2");
  EXPECT_EQ(ops.metadata.options, json({{"hop_limit", 4}}));
  r = call(ops, "PUT", "/v1/vms/web1/metadata", R"({"http_endpoint": "disabled"})");
  ASSERT_LT(r.status, 300);
  EXPECT_FALSE(ops.metadata.data.has_value());
  EXPECT_EQ(ops.metadata.options, json({{"http_endpoint", "disabled"}}));
}

TEST(HostApiMetadata, BadMetadataIsRefusedAndChangesNothing) {
  const std::pair<const char*, const char*> cases[] = {
      {"POST /v1/vms", R"({"metadata": "yes"})"},
      {"POST /v1/vms", R"({"metadata": {"data": []}})"},
      {"POST /v1/vms", R"({"metadata": {"data": {"user-data": "not base64!"}}})"},
      {"POST /v1/vms", R"({"metadata": {"data": {"a/b": "x"}}})"},
      {"POST /v1/vms", R"({"metadata": {"data": {"n": 5}}})"},
      {"POST /v1/vms", R"({"metadata": {"hop_limit": 0}})"},
      {"POST /v1/vms", R"({"metadata": {"http_tokens": "maybe"}})"},
      {"POST /v1/vms", R"({"metadata": {"extra": 1}})"},
      {"PUT /v1/vms/web1/metadata", "{}"},
      {"PUT /v1/vms/web1/metadata", R"({"data": {"..": "x"}})"},
      {"PUT /v1/vms/web1/metadata", R"({"hop_limit": 65})"},
      {"PUT /v1/vms/web1/metadata", R"({"data": {}, "more": 1})"},
  };
  for (const auto& [what, body] : cases) {
    RecordingHostOps ops;
    const std::string w = what;
    const size_t sp = w.find(' ');
    Reply r = call(ops, w.substr(0, sp), w.substr(sp + 1), body);
    EXPECT_EQ(r.status, 400) << what << " " << body << " " << r.body.dump();
    EXPECT_TRUE(ops.last.empty()) << what << " " << body << ": " << ops.last;
  }
  RecordingHostOps ops;
  EXPECT_EQ(call(ops, "GET", "/v1/vms/web1/metadata", "").status, 405)
      << "the data is never read back through nimbusd";
  // Deep or huge trees: bounded by the config's rules and the body limit.
  std::string deep = R"({"data": )";
  for (int i = 0; i < 40; i++) deep += R"({"d": )";
  deep += "\"x\"";
  for (int i = 0; i < 41; i++) deep += "}";
  deep += "}";
  EXPECT_EQ(call(ops, "PUT", "/v1/vms/web1/metadata", deep).status, 400);
  EXPECT_EQ(call(ops, "PUT", "/v1/vms/web1/metadata",
                 R"({"data": {"user-data": ")" + std::string(kMaxHostRequestBody, 'A') + "\"}}")
                .status,
            413);
  EXPECT_TRUE(ops.last.empty());
}

}  // namespace
}  // namespace nimbus::host
