// A real single-member etcd (Debian's etcd-server) for unit tests: started once per test
// program on free 127.0.0.1 ports in a temp dir and stopped at exit. Tests skip when
// EtcdServer::get().status() is not ok (no `etcd` binary installed).
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cloud/etcd_store.h"

namespace nimbus::cloud::etcd_test {

using namespace std::chrono_literals;

inline std::string find_etcd() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/etcd";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  ::close(fd);
  return port;
}

// One etcd member of its own cluster, in a temp dir.
class EtcdServer {
 public:
  static EtcdServer& get() {
    static EtcdServer server;
    return server;
  }
  ~EtcdServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // The error why there is none (no etcd installed, it did not start).
  const Status& status() const { return status_; }
  const std::string& endpoint() const { return endpoint_; }
  Store* store() { return store_.get(); }
  int64_t fresh_revision() const { return fresh_revision_; }

 private:
  EtcdServer() {
    const std::string etcd = find_etcd();
    if (etcd.empty()) {
      status_ = Status::unavailable("no etcd binary on PATH (apt-get install etcd-server)");
      return;
    }
    char tmpl[] = "/tmp/nimbus-etcd-test-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      status_ = Status::unavailable("mkdtemp failed");
      return;
    }
    dir_ = tmpl;
    const int client = free_port(), peer = free_port();
    endpoint_ = fmt::format("http://127.0.0.1:{}", client);
    const std::string peer_url = fmt::format("http://127.0.0.1:{}", peer);
    const std::vector<std::string> args = {
        etcd,
        "--name=unit",
        "--data-dir=" + dir_ + "/data",
        "--listen-client-urls=" + endpoint_,
        "--advertise-client-urls=" + endpoint_,
        "--listen-peer-urls=" + peer_url,
        "--initial-advertise-peer-urls=" + peer_url,
        "--initial-cluster=unit=" + peer_url,
        "--initial-cluster-state=new",
        "--logger=zap",
        "--log-level=warn",
    };
    pid_ = ::fork();
    if (pid_ == 0) {
      const int log = ::open((dir_ + "/etcd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    EtcdOptions o;
    o.endpoints = {endpoint_};
    o.retry_ms = 200;
    auto store = open_etcd_store(o);
    if (!store.ok()) {
      status_ = store.status();
      return;
    }
    store_ = std::move(*store);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      auto r = store_->txn({}, {});  // writes nothing: the revision of the fresh cluster
      if (r.ok()) {
        fresh_revision_ = r->revision;
        // The tests' store: the default patience, not the start-up loop's 200 ms (a loaded
        // machine, e.g. CI building beside the tests, can keep etcd from answering that
        // fast; an empty txn then failed a conformance test once).
        o.retry_ms = EtcdOptions{}.retry_ms;
        auto patient = open_etcd_store(o);
        if (!patient.ok()) {
          status_ = patient.status();
          return;
        }
        store_ = std::move(*patient);
        break;
      }
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = Status::unavailable("etcd exited at start; see its log in " + dir_);
        return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        status_ = Status::unavailable("etcd did not answer within 20 s: " + r.message());
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  Status status_;
  std::string dir_, endpoint_;
  pid_t pid_ = -1;
  std::unique_ptr<Store> store_;
  int64_t fresh_revision_ = 0;
};

}  // namespace nimbus::cloud::etcd_test
