#!/usr/bin/env bash
# Installs every Debian package Nimbus needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt-get update runs once.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang lld clang-format python3
  # libraries
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libfdt-dev libslirp-dev libglib2.0-dev libsqlite3-dev libzstd-dev zlib1g-dev
  libcpp-httplib-dev libseccomp-dev libssl-dev
  # the cloud: the real EC2 clients its tests drive; OpenSSH's client (ssh-keygen reads the
  # key pairs' private keys, ssh logs in to instances) and openssl (fingerprints)
  awscli python3-boto3 python3-botocore openssh-client openssl
  # Ansible (its amazon.aws collection drives EC2 and STS; tests/cloud/ansible_test.py)
  ansible
  # the cloud's etcd store: its tests start real etcd members and read them with etcdctl
  etcd-server etcd-client
  # the web console's browser test (tests/cloud/console_test.py): headless Chromium via Selenium
  chromium chromium-driver python3-selenium
  # guest toolchain (tests build their RISC-V programs at test time)
  gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu
  # reference machine and images
  qemu-system-misc qemu-utils opensbi
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
