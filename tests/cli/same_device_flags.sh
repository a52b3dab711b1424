#!/bin/bash
# `nimbus run` and `nimbus vmm` accept and refuse exactly the same --disk and --net strings
# (one parser, config/device_flags.h). Each string is given to both with a kernel that does
# not exist: a string both accept gets as far as the kernel ("cannot open kernel"); a string
# both refuse is refused by its flag, with the same message. Usage: same_device_flags.sh NIMBUS
set -u
nimbus=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: > "$work/disk.img"
truncate -s 1M "$work/disk.img"
fail=0

# The part of stderr after the command's own prefix ("nimbus: " / "nimbus vmm: ").
outcome() {
  "$nimbus" "$@" --kernel "$work/nope" 2>&1 >/dev/null </dev/null | head -1 | sed -e 's/^nimbus vmm: //' -e 's/^nimbus: //'
}

check() {  # FLAG VALUE EXPECT(accept|refuse)
  local run vmm
  run=$(outcome run "$1" "$2")
  vmm=$(outcome vmm --log-level off "$1" "$2")
  local verdict=refuse
  [[ $run == *"cannot open kernel"* ]] && verdict=accept
  # Past the flags the messages may differ by "boot-source: " (the API's name for the kernel).
  if [[ $verdict == accept ]]; then run=${run#boot-source: } vmm=${vmm#boot-source: }; fi
  if [[ $run != "$vmm" ]]; then
    echo "FAIL: $1 '$2': run says '$run', vmm says '$vmm'"
    fail=1
  elif [[ $verdict != "$3" ]]; then
    echo "FAIL: $1 '$2': both $verdict ('$run'), expected $3"
    fail=1
  else
    echo "ok: $1 '$2': both $verdict${run:+ ($run)}"
  fi
}

check --disk "$work/disk.img" accept
check --disk "$work/disk.img,format=raw,readonly" accept
check --disk "$work/disk.img,format=vmdk" refuse
check --disk "$work/disk.img,cache=none" refuse
check --disk "" refuse
check --net user accept
check --net "user,hostfwd=tcp::18080-:80" accept
check --net "user,hostfwd=tcp:127.0.0.1:18080-10.0.2.15:80,hostfwd=udp::15353-:53" accept
# Accepted by `nimbus run` only, before there was one parser:
check --net "user,net=192.168.76.0/24,hostfwd=tcp::18080-:80" accept
check --net "user,hostfwd=tcp:127.0.0.1:18080-:80,mac=52:54:00:12:34:56" accept
check --net "switch,path=$work/sw,mac=52:54:00:12:34:57" accept
check --net "user,hostfwd=tcp::0-:80" refuse
check --net "user,hostfwd=tcp::18080-192.168.1.5:80" refuse
check --net "user,hostfwd=tcp::18080-:80,hostfwd=tcp::18080-:81" refuse
# Accepted by `nimbus vmm` only (its regex took a shorthand address and a port 0 guest address):
check --net "user,hostfwd=tcp:10.2:18080-:80" refuse
check --net "user,net=10.0.2.1/24" refuse
check --net "user,mac=01:00:5e:00:00:01" refuse
check --net "tap" refuse
check --net "user," refuse
check --net "switch" refuse
exit $fail
