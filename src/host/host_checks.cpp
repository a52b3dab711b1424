#include "host/host_checks.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace nimbus::host {
namespace fs = std::filesystem;

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool forwards_collide(const config::PortForward& a, const config::PortForward& b) {
  if (a.protocol != b.protocol || a.host_port != b.host_port) return false;
  const uint32_t x = config::host_ipv4(a), y = config::host_ipv4(b);
  return x == y || x == 0 || y == 0;
}

Status check_host_port(const config::PortForward& f) {
  const int fd = ::socket(AF_INET, f.protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM, 0);
  if (fd < 0) return {};
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(f.host_port);
  if (::inet_pton(AF_INET, f.host_address.c_str(), &a.sin_addr) != 1) {
    ::close(fd);
    return Status::invalid_argument(
        fmt::format("host address '{}' is not an IPv4 address", f.host_address));
  }
  const int err = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
  ::close(fd);
  switch (err) {
    case 0:
      return {};
    case EADDRNOTAVAIL:
      return Status::invalid_argument(
          fmt::format("host address {} is not an address of this host (for host port {}/{})",
                      f.host_address, f.host_port, f.protocol));
    case EADDRINUSE:
      return Status::conflict(fmt::format("host port {}/{} on {} is in use by another program",
                                          f.host_port, f.protocol, f.host_address));
    case EACCES:
      return Status::permission_denied(
          fmt::format("host port {}/{} on {}: binding it is not permitted", f.host_port, f.protocol,
                      f.host_address));
    default:
      return Status::internal(fmt::format("host port {}/{} on {} cannot be used: {}", f.host_port,
                                          f.protocol, f.host_address, std::strerror(err)));
  }
}

std::string unreachable_by_others(const std::string& path, mode_t need) {
  fs::path p = fs::absolute(path);
  fs::path prefix = "/";
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (*it == "/") continue;
    struct stat st {};
    if (::stat(prefix.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      return fmt::format("{} (mode {:o}) cannot be searched by other users", prefix.string(),
                         st.st_mode & 07777);
    }
    prefix /= *it;
  }
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0 && (st.st_mode & need) != need) {
    return fmt::format("{} (mode {:o}) is not accessible to other users", p.string(),
                       st.st_mode & 07777);
  }
  return "";
}

}  // namespace nimbus::host
