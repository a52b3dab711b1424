#include "host/image_fetch.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/http_server.h"
#include "host/daemon_test_fixture.h"
#include "host/host_api.h"
#include "host/recording_host_ops.h"
#include "host/sha256.h"

namespace nimbus::host {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kToken = "join-token-0123456789";
const std::string kName = "ami-0123456789abcdef0";
const std::string kDir = "/nimbus/v1/images/ami-0123456789abcdef0/";

// The control plane's image files on a real http::Server, behind the join token.
class FileServer {
 public:
  explicit FileServer(std::string token = kToken) {
    auto sock = http::listen_tcp("--listen", "127.0.0.1:0");
    EXPECT_TRUE(sock.ok()) << sock.message();
    url = "http://127.0.0.1:" + std::to_string(sock->port());
    http::ServerOptions o;
    o.token = std::move(token);
    server_ = std::make_unique<http::Server>(std::move(*sock), o);
    server_->serve([this](const http::Request& r) {
      std::lock_guard<std::mutex> lock(mu_);
      gets++;
      auto it = files.find(r.path);
      if (r.method != "GET" || it == files.end())
        return http::Reply{404, http::host_error_body(404, "NotFound", "no such file")};
      return http::Reply{200, it->second, "application/octet-stream"};
    });
  }
  void put(const std::string& name, const std::string& content) {
    std::lock_guard<std::mutex> lock(mu_);
    files[kDir + name] = content;
  }
  std::string source() const { return url + kDir; }

  std::string url;
  std::map<std::string, std::string> files;
  std::atomic<int> gets{0};

 private:
  std::mutex mu_;
  std::unique_ptr<http::Server> server_;
};

json file_json(const std::string& name, const std::string& content, const std::string& role) {
  return {
      {"name", name}, {"sha256", sha256_hex(content)}, {"size", content.size()}, {"role", role}};
}

const std::string kKernel = "a kernel, or so it says";
const std::string kInitrd = "an initramfs";
std::string raw_disk() { return std::string(64 * 1024, '\0') + "ext4-ish"; }

class ImageFetchTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    server = std::make_unique<FileServer>();
    server->put("Image", kKernel);
    server->put("rootfs.ext4", raw_disk());
    server->put("initramfs.cpio.gz", kInitrd);
    options.cloud_url = server->url;
    options.cloud_token = kToken;
    restart_daemon();
  }

  json body() const {
    return {{"name", kName},
            {"source", server->source()},
            {"files",
             {file_json("Image", kKernel, "kernel"), file_json("rootfs.ext4", raw_disk(), "disk"),
              file_json("initramfs.cpio.gz", kInitrd, "initrd")}},
            {"description", "the bundled guest"}};
  }
  Result<FetchedImage> fetch(const json& j) {
    auto req = parse_image_fetch_request(j);
    EXPECT_TRUE(req.ok()) << req.message();
    if (!req.ok()) return req.status();
    return daemon->fetch_image(*req);
  }
  // Only the default image and nothing staged: a failed fetch left nothing behind.
  void expect_store_untouched() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(options.state_dir + "/images"))
      names.push_back(e.path().filename().string());
    EXPECT_EQ(names, std::vector<std::string>{"default"});
  }

  std::unique_ptr<FileServer> server;
};

TEST_F(ImageFetchTest, FetchesChecksInstallsAndAVmCanUseIt) {
  auto r = fetch(body());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->image.name, kName);
  EXPECT_EQ(r->image.disk_format, "raw");
  EXPECT_EQ(r->image.disk_mib, 1u);
  EXPECT_EQ(r->image.description, "the bundled guest");
  ASSERT_EQ(r->image.files.size(), 3u);
  EXPECT_EQ(r->image.files[1].sha256, sha256_hex(raw_disk()));
  const fs::path dir = fs::path(options.state_dir) / "images" / kName;
  EXPECT_EQ(r->image.kernel, (dir / "Image").string());
  EXPECT_EQ(r->image.initrd, (dir / "initramfs.cpio.gz").string());
  std::ifstream in(dir / "Image");
  std::stringstream kernel;
  kernel << in.rdbuf();
  EXPECT_EQ(kernel.str(), kKernel);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "rootfs.ext4").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  // image.json records the checksums; the API's image object shows them.
  json meta = json::parse(std::ifstream(dir / "image.json"));
  EXPECT_EQ(meta["disk"], "rootfs.ext4");
  EXPECT_EQ(meta["files"][0]["sha256"], sha256_hex(kKernel));
  EXPECT_EQ(to_json(r->image)["files"][2]["role"], "initrd");
  auto list = daemon->list_images();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, kName);
  CreateRequest c;
  c.name = "web1";
  c.image = kName;
  auto vm = daemon->create_vm(c);
  EXPECT_TRUE(vm.ok()) << vm.message();
}

TEST_F(ImageFetchTest, TheSameImageAgainIsFoundAndOtherChecksumsConflict) {
  ASSERT_TRUE(fetch(body()).ok());
  const int gets = server->gets;
  auto again = fetch(body());
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(server->gets, gets);  // nothing downloaded
  server->put("Image", "another kernel");
  json other = body();
  other["files"][0] = file_json("Image", "another kernel", "kernel");
  auto conflict = fetch(other);
  EXPECT_EQ(conflict.code(), Code::kConflict) << conflict.message();
  // The default image was imported locally, without checksums: a fetch cannot match it.
  json def = body();
  def["name"] = "default";
  EXPECT_EQ(fetch(def).code(), Code::kConflict);
}

TEST_F(ImageFetchTest, BadDownloadsLeaveNothingBehind) {
  struct Case {
    const char* what;
    std::function<void(json&)> change;
    const char* says;
  };
  const Case cases[] = {
      {"wrong sha256", [](json& j) { j["files"][1]["sha256"] = sha256_hex("something else"); },
       "is not the declared"},
      {"short body", [](json& j) { j["files"][1]["size"] = raw_disk().size() + 1; },
       "the declared size is"},
      {"long body", [](json& j) { j["files"][1]["size"] = raw_disk().size() - 1; },
       "longer than the declared"},
      {"far longer body (refused unread)", [](json& j) { j["files"][1]["size"] = 1; },
       "longer than the declared"},
      {"missing file", [](json& j) { j["files"][2]["name"] = "nope.gz"; }, "no such file"},
  };
  for (const Case& c : cases) {
    json j = body();
    c.change(j);
    auto r = fetch(j);
    EXPECT_EQ(r.code(), Code::kUnavailable) << c.what << ": " << r.message();
    EXPECT_TRUE(contains(r.message(), c.says)) << c.what << ": " << r.message();
    expect_store_untouched();
  }
}

TEST_F(ImageFetchTest, AWrongTokenOrNoServerIsAFailedDownload) {
  options.cloud_token = "not-the-join-token";
  restart_daemon();
  auto r = fetch(body());
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_TRUE(contains(r.message(), "401")) << r.message();
  expect_store_untouched();
  json j = body();
  const std::string source = server->source();
  server.reset();  // nobody listens there any more
  options.cloud_token = kToken;
  restart_daemon();
  j["source"] = source;
  r = fetch(j);
  EXPECT_EQ(r.code(), Code::kUnavailable) << r.message();
  EXPECT_TRUE(contains(r.message(), "cannot reach")) << r.message();
  expect_store_untouched();
}

TEST_F(ImageFetchTest, OnlyTheCloudsOriginAndOnlyWhenJoined) {
  FileServer elsewhere;
  elsewhere.put("Image", kKernel);
  json j = body();
  j["source"] = elsewhere.source();  // same host, another port
  auto r = fetch(j);
  EXPECT_EQ(r.code(), Code::kInvalidArgument) << r.message();
  j["source"] = "http://localhost:" + server->url.substr(server->url.rfind(':') + 1) + kDir;
  EXPECT_EQ(fetch(j).code(), Code::kInvalidArgument);  // spelled otherwise: refused too
  EXPECT_EQ(elsewhere.gets, 0);
  EXPECT_EQ(server->gets, 0);
  options.cloud_url.clear();
  restart_daemon();
  r = fetch(body());
  EXPECT_EQ(r.code(), Code::kConflict);
  EXPECT_TRUE(contains(r.message(), "not joined to a cloud")) << r.message();
  expect_store_untouched();
}

TEST_F(ImageFetchTest, AQcow2DiskWithABackingFileIsRefused) {
  std::string q(512, '\0');
  q.replace(0, 4, std::string("QFI\xfb", 4));
  q[7] = 3;     // version 3
  q[15] = 100;  // backing_file_offset 100: would open a path of the host
  server->put("rootfs.qcow2", q);
  json j = body();
  j["files"][1] = file_json("rootfs.qcow2", q, "disk");
  auto r = fetch(j);
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_TRUE(contains(r.message(), "backing file")) << r.message();
  // A raw disk that is in fact qcow2 is refused too.
  server->put("rootfs.img", q);
  j["files"][1] = file_json("rootfs.img", q, "disk");
  r = fetch(j);
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_TRUE(contains(r.message(), "holds a qcow2")) << r.message();
  expect_store_untouched();
}

TEST_F(ImageFetchTest, ConcurrentFetchesOfOneNameInstallItOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> created{0}, found{0}, failed{0};
  auto req = parse_image_fetch_request(body());
  ASSERT_TRUE(req.ok());
  for (int i = 0; i < 6; i++) {
    threads.emplace_back([&] {
      auto r = daemon->fetch_image(*req);
      (r.ok() ? (r->created ? created : found) : failed)++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created, 1);
  EXPECT_EQ(found, 5);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(server->gets, 3);  // one download of each file
  int entries = 0;
  for (const auto& e : fs::directory_iterator(options.state_dir + "/images")) entries += e.exists();
  EXPECT_EQ(entries, 2);  // default and the image: no staged directory left
}

TEST_F(ImageFetchTest, AStagedDirectoryLeftByACrashIsRemovedAtStart) {
  const fs::path staged = fs::path(options.state_dir) / "images" / ("." + kName + ".fetch-1-1");
  fs::create_directories(staged);
  std::ofstream(staged / "Image") << "half";
  restart_daemon();
  EXPECT_FALSE(fs::exists(staged));
  expect_store_untouched();
}

TEST(ImageFetchRequest, StrictValidation) {
  const json good = {
      {"name", kName},
      {"source", "http://127.0.0.1:8773" + kDir},
      {"files", {file_json("Image", "k", "kernel"), file_json("rootfs.qcow2", "d", "disk")}}};
  auto ok = parse_image_fetch_request(good);
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(ok->disk_format, "qcow2");
  json upper = good;
  upper["files"][0]["sha256"] = "ABCDEF" + sha256_hex("k").substr(6);
  EXPECT_EQ(parse_image_fetch_request(upper)->files[0].sha256,
            "abcdef" + sha256_hex("k").substr(6));
  struct Case {
    const char* what;
    std::function<void(json&)> change;
  };
  const Case cases[] = {
      {"unknown field", [](json& j) { j["format"] = "raw"; }},
      {"unknown file field", [](json& j) { j["files"][0]["mode"] = 420; }},
      {"bad image name", [](json& j) { j["name"] = "Ami_1"; }},
      {"no name", [](json& j) { j.erase("name"); }},
      {"path in a file name", [](json& j) { j["files"][0]["name"] = "../Image"; }},
      {"slash in a file name", [](json& j) { j["files"][0]["name"] = "boot/Image"; }},
      {"hidden file name", [](json& j) { j["files"][0]["name"] = ".Image"; }},
      {"image.json", [](json& j) { j["files"][0]["name"] = "image.json"; }},
      {"same name twice", [](json& j) { j["files"][1]["name"] = "Image"; }},
      {"two kernels", [](json& j) { j["files"][1]["role"] = "kernel"; }},
      {"no disk", [](json& j) { j["files"].erase(1); }},
      {"two initrds",
       [](json& j) {
         j["files"].push_back(file_json("a.gz", "a", "initrd"));
         j["files"].push_back(file_json("b.gz", "b", "initrd"));
       }},
      {"unknown role", [](json& j) { j["files"][1]["role"] = "firmware"; }},
      {"disk suffix", [](json& j) { j["files"][1]["name"] = "rootfs.vmdk"; }},
      {"size 0", [](json& j) { j["files"][0]["size"] = 0; }},
      {"size over 1 GiB", [](json& j) { j["files"][0]["size"] = (1ull << 30) + 1; }},
      {"negative size", [](json& j) { j["files"][0]["size"] = -1; }},
      {"size as text", [](json& j) { j["files"][0]["size"] = "1"; }},
      {"short sha256", [](json& j) { j["files"][0]["sha256"] = "abc"; }},
      {"non-hex sha256", [](json& j) { j["files"][0]["sha256"] = std::string(64, 'g'); }},
      {"https source", [](json& j) { j["source"] = "https://127.0.0.1:8773" + kDir; }},
      {"source without /", [](json& j) { j["source"] = "http://127.0.0.1:8773/x"; }},
      {"source query", [](json& j) { j["source"] = "http://127.0.0.1:8773/x?a=/"; }},
      {"source escape", [](json& j) { j["source"] = "http://127.0.0.1:8773/%2e%2e/"; }},
      {"source dot-dot", [](json& j) { j["source"] = "http://127.0.0.1:8773/a/../"; }},
      {"source user", [](json& j) { j["source"] = "http://u@127.0.0.1:8773/a/"; }},
      {"description type", [](json& j) { j["description"] = 1; }},
      {"files not array", [](json& j) { j["files"] = "Image"; }},
  };
  for (const Case& c : cases) {
    json j = good;
    c.change(j);
    auto r = parse_image_fetch_request(j);
    EXPECT_EQ(r.code(), Code::kInvalidArgument) << c.what << " " << j.dump();
  }
}

TEST(ImageFetchRoute, PostRoutesAndMapsErrors) {
  RecordingHostOps ops;
  const json req = {
      {"name", kName},
      {"source", "http://127.0.0.1:8773" + kDir},
      {"files", {file_json("Image", "k", "kernel"), file_json("rootfs.ext4", "d", "disk")}}};
  HostResponse r = handle_host_request(ops, "POST", "/v1/images", req.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(ops.last, "fetch-image " + kName);
  EXPECT_EQ(ops.fetched.files[1].name, "rootfs.ext4");
  EXPECT_EQ(json::parse(r.body)["files"][0]["sha256"], sha256_hex("k"));
  json present = req;
  present["name"] = "present";
  EXPECT_EQ(handle_host_request(ops, "POST", "/v1/images", present.dump()).status, 200);
  json extra = req;
  extra["files"][0]["extra"] = true;
  ops.last.clear();
  r = handle_host_request(ops, "POST", "/v1/images", extra.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ops.last, "");  // refused before the daemon
  EXPECT_EQ(handle_host_request(ops, "PUT", "/v1/images", req.dump()).status, 405);
  EXPECT_EQ(handle_host_request(ops, "GET", "/v1/images", "").status, 200);
  ops.fetch_result = Status::unavailable("fetching ...: sha256 differs");
  r = handle_host_request(ops, "POST", "/v1/images", req.dump());
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "BadGateway");
  ops.fetch_result = Status::conflict("not joined to a cloud");
  EXPECT_EQ(handle_host_request(ops, "POST", "/v1/images", req.dump()).status, 409);
  ops.fetch_result = Status::invalid_argument("another origin");
  EXPECT_EQ(handle_host_request(ops, "POST", "/v1/images", req.dump()).status, 400);
}

}  // namespace
}  // namespace nimbus::host
