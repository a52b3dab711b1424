// A plain driver for the libFuzzer targets, for machines without clang's libFuzzer: link it
// with one target (and -fsanitize=address,undefined) and it feeds LLVMFuzzerTestOneInput
// random inputs and mutations of a corpus. No coverage guidance, so it finds less than
// libFuzzer does; README.md says how to build it.
//
//   standalone_driver [-n N] [-seed S] [-timeout SEC] [-max_len BYTES] CORPUS_DIR|FILE...
//
// With -n 0 (the default when only files are given) it runs each file once (a replay). With
// -n N it runs the corpus once, then N inputs: a quarter random bytes, the rest a corpus
// entry mutated (bytes flipped, inserted, erased, chunks copied from other entries, numbers
// and separators put in). On a crash, a trap or a timeout the input is written to
// crash-<n> (or timeout-<n>) in the current directory, and the driver exits non-zero.
#include <dirent.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> g_input;
uint64_t g_index = 0;

void write_input(const char* prefix) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%llu", prefix, static_cast<unsigned long long>(g_index));
  FILE* f = std::fopen(name, "wb");
  if (f != nullptr) {
    std::fwrite(g_input.data(), 1, g_input.size(), f);
    std::fclose(f);
  }
  std::fprintf(stderr, "standalone_driver: input #%llu (%zu bytes) written to %s\n",
               static_cast<unsigned long long>(g_index), g_input.size(), name);
}

void on_death() { write_input("crash"); }

void on_signal(int sig) {
  write_input(sig == SIGALRM ? "timeout" : "crash");
  _exit(sig == SIGALRM ? 3 : 4);
}

void read_path(const std::string& path, std::vector<std::vector<uint8_t>>& out) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) read_path(n, out);
    return;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  out.emplace_back(s.begin(), s.end());
}

class Mutator {
 public:
  Mutator(uint64_t seed, size_t max_len) : rng_(seed), max_len_(max_len) {}

  size_t below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }

  std::vector<uint8_t> random_bytes() {
    std::vector<uint8_t> v(below(std::min<size_t>(max_len_, 512) + 1));
    for (uint8_t& b : v) b = static_cast<uint8_t>(below(256));
    return v;
  }

  std::vector<uint8_t> mutate(const std::vector<std::vector<uint8_t>>& corpus) {
    std::vector<uint8_t> v = corpus[below(corpus.size())];
    const size_t rounds = below(4) == 0 ? 1 + below(8) : 1 + below(2);
    for (size_t r = 0; r < rounds; ++r) step(v, corpus);
    if (v.size() > max_len_) v.resize(max_len_);
    return v;
  }

 private:
  void step(std::vector<uint8_t>& v, const std::vector<std::vector<uint8_t>>& corpus) {
    static const char* kTokens[] = {",",
                                    "\n",
                                    "0",
                                    "-1",
                                    "1e309",
                                    "nan",
                                    "inf",
                                    "1e10",
                                    "-0",
                                    "0.5",
                                    "\"",
                                    "'",
                                    "#",
                                    "{",
                                    "}",
                                    "[",
                                    "]",
                                    ":",
                                    "null",
                                    "true",
                                    "\"\"",
                                    "[]",
                                    "{}",
                                    "4294967296",
                                    "18446744073709551616",
                                    "1000000",
                                    "launch",
                                    "terminate",
                                    "util",
                                    "pack",
                                    "spread",
                                    "partition",
                                    "cluster",
                                    "t3.medium",
                                    "\r\n",
                                    "  ",
                                    "9999999999999"};
    const size_t pos = below(v.size() + 1);
    switch (below(8)) {
      case 0:  // flip a byte
        if (!v.empty()) v[below(v.size())] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:  // a random byte in
        v.insert(v.begin() + static_cast<long>(pos), static_cast<uint8_t>(below(256)));
        break;
      case 2: {  // erase a range
        if (v.empty()) break;
        const size_t at = below(v.size()), n = 1 + below(std::min<size_t>(16, v.size() - at));
        v.erase(v.begin() + static_cast<long>(at), v.begin() + static_cast<long>(at + n));
        break;
      }
      case 3:
      case 4: {  // a token in, or over a short range
        const char* t = kTokens[below(sizeof kTokens / sizeof *kTokens)];
        if (below(2) == 0 && pos < v.size()) {
          const size_t n = std::min(v.size() - pos, 1 + below(8));
          v.erase(v.begin() + static_cast<long>(pos), v.begin() + static_cast<long>(pos + n));
        }
        v.insert(v.begin() + static_cast<long>(pos), t, t + std::strlen(t));
        break;
      }
      case 5: {  // a chunk of another entry
        const std::vector<uint8_t>& o = corpus[below(corpus.size())];
        if (o.empty()) break;
        const size_t at = below(o.size()), n = 1 + below(std::min<size_t>(64, o.size() - at));
        v.insert(v.begin() + static_cast<long>(pos), o.begin() + static_cast<long>(at),
                 o.begin() + static_cast<long>(at + n));
        break;
      }
      case 6: {  // a chunk of this one repeated
        if (v.empty() || v.size() > max_len_ / 2) break;
        const size_t at = below(v.size()), n = 1 + below(std::min<size_t>(64, v.size() - at));
        const std::vector<uint8_t> chunk(v.begin() + static_cast<long>(at),
                                         v.begin() + static_cast<long>(at + n));
        for (size_t k = 1 + below(4); k > 0; --k)
          v.insert(v.begin() + static_cast<long>(pos), chunk.begin(), chunk.end());
        break;
      }
      default: {  // a digit changed
        for (size_t tries = 0; tries < 8 && !v.empty(); ++tries) {
          uint8_t& c = v[below(v.size())];
          if (c >= '0' && c <= '9') {
            c = static_cast<uint8_t>('0' + below(10));
            break;
          }
        }
        break;
      }
    }
  }

  std::mt19937_64 rng_;
  size_t max_len_;
};

}  // namespace

int main(int argc, char** argv) {
  long long n = -1;
  uint64_t seed = 1;
  unsigned timeout = 10;
  size_t max_len = 4096;
  std::vector<std::vector<uint8_t>> corpus;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 < argc && a == "-n") {
      n = std::atoll(argv[++i]);
    } else if (i + 1 < argc && a == "-seed") {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (i + 1 < argc && a == "-timeout") {
      timeout = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (i + 1 < argc && a == "-max_len") {
      max_len = static_cast<size_t>(std::atoll(argv[++i]));
    } else {
      read_path(a, corpus);
    }
  }
  if (corpus.empty()) corpus.emplace_back();
  if (n < 0) n = 0;
  __sanitizer_set_death_callback(on_death);
  signal(SIGALRM, on_signal);
  signal(SIGILL, on_signal);
  signal(SIGSEGV, on_signal);
  signal(SIGFPE, on_signal);
  signal(SIGABRT, on_signal);

  Mutator m(seed, max_len);
  double slowest = 0;
  const auto start = std::chrono::steady_clock::now();
  const uint64_t total = corpus.size() + static_cast<uint64_t>(n);
  for (g_index = 0; g_index < total; ++g_index) {
    if (g_index < corpus.size()) {
      g_input = corpus[g_index];
    } else {
      g_input = m.below(4) == 0 ? m.random_bytes() : m.mutate(corpus);
    }
    alarm(timeout);
    const auto t0 = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(g_input.data(), g_input.size());
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    alarm(0);
    if (dt > slowest) slowest = dt;
  }
  std::fprintf(
      stderr, "standalone_driver: %llu inputs (%zu from the corpus) in %.1f s, slowest %.3f s\n",
      static_cast<unsigned long long>(total), corpus.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), slowest);
  return 0;
}
