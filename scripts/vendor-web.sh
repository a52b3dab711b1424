#!/usr/bin/env bash
# Vendors the web console's third-party browser code (xterm.js and its fit add-on) into
# web/console/vendor/. The copied files are committed, so that builds and CI need no network;
# this script is how to update them: change the pinned versions below, run it, review, commit.
#
#   scripts/vendor-web.sh
#
# It uses `npm pack` (the registry's tarballs, no node_modules, no install scripts run) into a
# temporary directory and copies only the browser bundles, the stylesheet and the licences.
set -euo pipefail

XTERM_VERSION=6.0.0
ADDON_FIT_VERSION=0.11.0

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/web/console/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

command -v npm >/dev/null || { echo "vendor-web: npm is needed (apt-get install npm)" >&2; exit 1; }

fetch() { # fetch PACKAGE VERSION SUBDIR: the package's tarball unpacked into $tmp/SUBDIR
  local pkg="$1" version="$2" sub="$3"
  mkdir -p "$tmp/$sub"
  (cd "$tmp/$sub" && npm pack --silent "$pkg@$version" >/dev/null)
  tar -xzf "$tmp/$sub"/*.tgz -C "$tmp/$sub"
  local got
  got="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/$sub/package/package.json" | head -1)"
  if [ "$got" != "$version" ]; then
    echo "vendor-web: $pkg: wanted $version, the tarball says $got" >&2
    exit 1
  fi
}

fetch @xterm/xterm "$XTERM_VERSION" xterm
fetch @xterm/addon-fit "$ADDON_FIT_VERSION" fit

mkdir -p "$dest"
install -m 0644 "$tmp/xterm/package/lib/xterm.js" "$dest/xterm.js"
install -m 0644 "$tmp/xterm/package/css/xterm.css" "$dest/xterm.css"
install -m 0644 "$tmp/xterm/package/LICENSE" "$dest/LICENSE.xterm"
install -m 0644 "$tmp/fit/package/lib/addon-fit.js" "$dest/addon-fit.js"
install -m 0644 "$tmp/fit/package/LICENSE" "$dest/LICENSE.addon-fit"
cat >"$dest/VERSIONS" <<VERSIONS
# Written by scripts/vendor-web.sh; do not edit by hand.
@xterm/xterm $XTERM_VERSION
@xterm/addon-fit $ADDON_FIT_VERSION
VERSIONS

echo "vendor-web: @xterm/xterm $XTERM_VERSION and @xterm/addon-fit $ADDON_FIT_VERSION in ${dest#"$root"/}"
ls -l "$dest"
