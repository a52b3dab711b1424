# Shared helpers for the guest image recipes. Source it; do not run it.
# (not a stand-alone script)
# shellcheck shell=bash
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$GUEST_DIR/.." && pwd)
IMAGES_DIR="$REPO_DIR/images"
# Scratch space for sources and build trees; never inside the repository.
BUILD_DIR=${NIMBUS_GUEST_BUILD:-/tmp/nimbus-guest-build}
JOBS=${JOBS:-$(nproc)}
CROSS=riscv64-linux-gnu-

# Fixed time stamps and identities so rebuilds are reproducible.
export SOURCE_DATE_EPOCH=1735689600          # 2025-01-01 00:00:00 UTC
export KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC"
export KBUILD_BUILD_USER=nimbus
export KBUILD_BUILD_HOST=nimbus
export KBUILD_BUILD_VERSION=1
export LC_ALL=C
export TZ=UTC

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ensure_pkgs PKG...: install the Debian packages that are missing (idempotent).
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ensure_deb_src: make sure bookworm deb-src entries exist (for `apt-get source`).
ensure_deb_src() {
  if grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  log "adding a deb-src entry for bookworm"
  as_root tee /etc/apt/sources.list.d/debian-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  as_root apt-get update -q
}

# Static, non-PIE riscv64 userland flags (Debian's cross gcc defaults to PIE).
GUEST_CFLAGS="-O2 -static -no-pie -Wall -Wextra"
