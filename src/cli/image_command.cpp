#include "cli/image_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/block/disk_resize.h"
#include "backends/block/qcow2.h"
#include "backends/block/raw_file.h"
#include "common/size.h"

namespace nimbus::cli {

namespace {

using backends::BlockBackend;
using backends::DiskFormat;
using backends::DiskOptions;

constexpr int kExitUsage = 2;

int fail(const std::string& message) {
  std::fprintf(stderr, "nimbus: %s\n", message.c_str());
  return kExitUsage;
}

Result<DiskFormat> parse_format(const std::string& name, bool allow_auto) {
  if (name.empty() && allow_auto) return DiskFormat::kAuto;
  if (name == "raw") return DiskFormat::kRaw;
  if (name == "qcow2") return DiskFormat::kQcow2;
  return Status::error(fmt::format("unknown image format '{}' (raw or qcow2)", name));
}

std::string human_size(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return v == static_cast<double>(static_cast<uint64_t>(v))
             ? fmt::format("{} {}", static_cast<uint64_t>(v), kUnits[unit])
             : fmt::format("{:.3g} {}", v, kUnits[unit]);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

Status create_raw(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::error(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return Status::error(fmt::format("cannot size '{}': {}", path, std::strerror(err)));
  }
  ::close(fd);
  return Status();
}

int do_create(const ImageOptions& o) {
  auto format = parse_format(o.format.empty() ? "qcow2" : o.format, false);
  if (!format.ok()) return fail(format.message());
  uint64_t size = 0;
  if (!o.size.empty()) {
    auto parsed = parse_size(o.size);
    if (!parsed.ok()) return fail(parsed.message());
    size = *parsed;
  }
  if (*format == DiskFormat::kRaw) {
    if (!o.backing.empty()) return fail("raw images cannot have a backing file (use -f qcow2)");
    if (o.size.empty()) return fail("image create: a size is needed (e.g. 10G)");
    Status s = create_raw(o.file, size);
    return s.ok() ? 0 : fail(s.message());
  }
  if (o.size.empty() && o.backing.empty()) return fail("image create: a size is needed (e.g. 10G)");
  if (!o.backing_format.empty() && o.backing.empty()) return fail("-F needs a backing file (-b)");
  auto cluster = parse_size(o.cluster_size);
  if (!cluster.ok()) return fail(cluster.message());
  Status s = backends::create_qcow2(o.file, size, *cluster, o.backing, o.backing_format);
  return s.ok() ? 0 : fail(s.message());
}

int do_info(const ImageOptions& o) {
  auto probed = backends::probe_disk_format(o.file);
  if (!probed.ok()) return fail(probed.message());
  struct stat st {};
  if (::stat(o.file.c_str(), &st) != 0) {
    return fail(fmt::format("cannot stat '{}': {}", o.file, std::strerror(errno)));
  }
  uint64_t disk_size = static_cast<uint64_t>(st.st_blocks) * 512;
  std::string format = "raw", backing, backing_format;
  uint64_t virtual_size = 0, cluster_size = 0;
  unsigned version = 0;
  if (*probed == DiskFormat::kQcow2) {
    auto image = backends::Qcow2Image::open(o.file, true);
    if (!image.ok()) return fail(image.message());
    format = "qcow2";
    virtual_size = (*image)->size();
    cluster_size = (*image)->cluster_size();
    version = (*image)->version();
    backing = (*image)->backing_file();
    backing_format = (*image)->backing_format();
  } else {
    auto raw = backends::RawFile::open(o.file, true);
    if (!raw.ok()) return fail(raw.message());
    virtual_size = (*raw)->size();
  }
  if (o.json) {
    std::string out = fmt::format(
        "{{\"filename\": {}, \"format\": \"{}\", \"virtual-size\": {}, "
        "\"actual-size\": {}",
        json_string(o.file), format, virtual_size, disk_size);
    if (format == "qcow2") {
      out += fmt::format(", \"cluster-size\": {}, \"version\": {}", cluster_size, version);
      if (!backing.empty()) out += fmt::format(", \"backing-filename\": {}", json_string(backing));
      if (!backing_format.empty()) {
        out += fmt::format(", \"backing-filename-format\": {}", json_string(backing_format));
      }
    }
    std::printf("%s}\n", out.c_str());
    return 0;
  }
  std::printf("image: %s\nfile format: %s\nvirtual size: %s (%lu bytes)\ndisk size: %s\n",
              o.file.c_str(), format.c_str(), human_size(virtual_size).c_str(),
              static_cast<unsigned long>(virtual_size), human_size(disk_size).c_str());
  if (format == "qcow2") {
    std::printf("cluster size: %lu\nversion: %u\n", static_cast<unsigned long>(cluster_size),
                version);
    if (!backing.empty()) std::printf("backing file: %s\n", backing.c_str());
    if (!backing_format.empty()) std::printf("backing file format: %s\n", backing_format.c_str());
  }
  return 0;
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// Copies every non-zero block; the destination starts out reading as zeros.
Status copy_data(BlockBackend& src, BlockBackend& dst) {
  constexpr size_t kChunk = 1 << 20;
  constexpr size_t kGrain = 4096;
  std::vector<uint8_t> buf(kChunk);
  const uint64_t size = src.size();
  for (uint64_t offset = 0; offset < size; offset += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - offset));
    if (Status s = src.read(offset, buf.data(), n); !s.ok()) return s;
    size_t pos = 0;
    while (pos < n) {
      size_t g = std::min(kGrain, n - pos);
      if (all_zero(buf.data() + pos, g)) {
        pos += g;
        continue;
      }
      size_t end = pos + g;
      while (end < n) {
        size_t g2 = std::min(kGrain, n - end);
        if (all_zero(buf.data() + end, g2)) break;
        end += g2;
      }
      if (Status s = dst.write(offset + pos, buf.data() + pos, end - pos); !s.ok()) return s;
      pos = end;
    }
  }
  return dst.flush();
}

int do_convert(const ImageOptions& o) {
  auto in_format = parse_format(o.format, true);
  if (!in_format.ok()) return fail(in_format.message());
  auto out_format = parse_format(o.output_format, false);
  if (!out_format.ok()) return fail(out_format.message());
  std::error_code ec;
  if (std::filesystem::equivalent(o.source, o.destination, ec)) {
    return fail("convert: the source and the destination are the same file");
  }
  DiskOptions in;
  in.path = o.source;
  in.format = *in_format;
  in.read_only = true;
  auto src = backends::open_disk(in);
  if (!src.ok()) return fail(src.message());
  const std::string tmp = o.destination + ".tmp";
  auto cleanup_fail = [&](const std::string& message) {
    ::unlink(tmp.c_str());
    return fail(message);
  };
  Status created = *out_format == DiskFormat::kRaw ? create_raw(tmp, (*src)->size())
                                                   : backends::create_qcow2(tmp, (*src)->size());
  if (!created.ok()) return cleanup_fail(created.message());
  {
    DiskOptions out;
    out.path = tmp;
    out.format = *out_format;
    auto dst = backends::open_disk(out);
    if (!dst.ok()) return cleanup_fail(dst.message());
    if (Status s = copy_data(**src, **dst); !s.ok()) return cleanup_fail(s.message());
  }
  if (::rename(tmp.c_str(), o.destination.c_str()) != 0) {
    return cleanup_fail(
        fmt::format("cannot rename '{}' to '{}': {}", tmp, o.destination, std::strerror(errno)));
  }
  return 0;
}

int do_resize(const ImageOptions& o) {
  bool relative = !o.size.empty() && o.size[0] == '+';
  auto parsed = parse_size(relative ? o.size.substr(1) : o.size);
  if (!parsed.ok()) return fail(parsed.message());
  uint64_t target = *parsed;
  if (relative) {
    auto current = backends::disk_size(o.file);
    if (!current.ok()) return fail(current.message());
    target += *current;
  }
  Status s = backends::resize_disk(o.file, target);
  return s.ok() ? 0 : fail(s.message());
}

}  // namespace

void add_image_command(CLI::App& app, ImageOptions& o) {
  CLI::App* image = app.add_subcommand("image", "Create, inspect, convert and resize disk images");
  image->require_subcommand(1);

  CLI::App* create = image->add_subcommand("create", "Create an empty image");
  create->add_option("-f,--format", o.format, "raw or qcow2 (default qcow2)");
  create->add_option("-b,--backing", o.backing, "backing file (qcow2 overlay)");
  create->add_option("-F,--backing-format", o.backing_format, "raw or qcow2 (default: probed)");
  create->add_option("--cluster-size", o.cluster_size, "qcow2 cluster size (default 64K)");
  create->add_option("FILE", o.file, "image to create")->required();
  create->add_option("SIZE", o.size, "virtual size, e.g. 10G (default: the backing file's)");
  create->callback([&o] { o.action = "create"; });

  CLI::App* info = image->add_subcommand("info", "Show an image's format and sizes");
  info->add_flag("--json", o.json, "machine-readable output");
  info->add_option("FILE", o.file, "image")->required();
  info->callback([&o] { o.action = "info"; });

  CLI::App* convert = image->add_subcommand("convert", "Copy an image, skipping zeros");
  convert->add_option("-f,--format", o.format, "source format (default: probed)");
  convert->add_option("-O,--output-format", o.output_format, "raw or qcow2")->required();
  convert->add_option("SRC", o.source, "source image")->required();
  convert->add_option("DST", o.destination, "destination image")->required();
  convert->callback([&o] { o.action = "convert"; });

  CLI::App* resize = image->add_subcommand("resize", "Grow an image");
  resize->add_option("FILE", o.file, "image")->required();
  resize->add_option("SIZE", o.size, "new size, or +SIZE to grow by")->required();
  resize->callback([&o] { o.action = "resize"; });
}

int image_command(const ImageOptions& o) {
  if (o.action == "create") return do_create(o);
  if (o.action == "info") return do_info(o);
  if (o.action == "convert") return do_convert(o);
  if (o.action == "resize") return do_resize(o);
  return fail("image: choose create, info, convert or resize");
}

}  // namespace nimbus::cli
