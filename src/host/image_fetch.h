// nimbusd's fetch of an image from the control plane it joined (POST /v1/images): each file
// is downloaded from the cloud's own origin (never another address: the API must not make
// nimbusd fetch from wherever a caller says), checked against its declared size and sha256
// in a staged directory under STATE_DIR/images/, and the whole image is then installed
// atomically (ImageStore::install). A fetch that fails leaves nothing behind.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/image_store.h"

namespace nimbus::host {

// A fetched file is held in memory whole before it is written: this bounds it (our images
// are ~10 MB). Larger declared sizes are refused (400).
constexpr uint64_t kMaxFetchFileBytes = 1ull << 30;

struct ImageFetchRequest {
  std::string name;              // the image's name in the store ("ami-0123456789abcdef0")
  std::string source;            // "http://HOST:PORT/PATH/": each file is SOURCE + its name
  std::vector<ImageFile> files;  // one kernel, one disk, at most one initrd
  std::string disk_format;       // from the disk's name: raw (.ext4 .img .raw) or qcow2
  std::string description;
};

struct FetchedImage {
  ImageInfo image;
  bool created = false;  // false: an image of that name with the same checksums was there
};

// The request body, strictly: unknown fields, file names that are not one path component of
// [A-Za-z0-9._-], roles, sizes (1 byte to kMaxFetchFileBytes), checksums (64 hex digits) and
// a malformed source are kInvalidArgument naming the field.
Result<ImageFetchRequest> parse_image_fetch_request(const nlohmann::json& j);

class ImageFetcher {
 public:
  // `cloud_url` ("http://HOST:PORT", or several comma-separated: the control plane's
  // replicas; empty when nimbusd has not joined a cloud) is the only origin files are
  // fetched from, with "Authorization: Bearer `token`".
  ImageFetcher(ImageStore& store, std::string cloud_url, std::string token);

  // Removes the staged directories of fetches a crash interrupted.
  void clean_leftovers();

  // kConflict: not joined to a cloud, or an image of that name with other checksums exists;
  // kInvalidArgument: a source on another origin; kUnavailable: the download failed (no
  // connection, an HTTP error, a short or long body, a wrong checksum, a bad disk image);
  // kInternal: the host could not write the image.
  Result<FetchedImage> fetch(const ImageFetchRequest& req);

  // Per file: 10 s plus 1 s per MiB (a floor of 1 MiB/s).
  static int timeout_ms(uint64_t size);

 private:
  Status download(const ImageFetchRequest& req, const ImageFile& file, const std::string& path);
  Result<FetchedImage> existing(const ImageFetchRequest& req);

  ImageStore& store_;
  std::string cloud_url_, token_;
  // One fetch at a time: it bounds memory (a file is held whole), and a second fetch of a
  // name waits for the first and then finds its image.
  std::mutex mu_;
  unsigned serial_ = 0;  // under mu_
};

}  // namespace nimbus::host
