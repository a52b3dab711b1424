#!/bin/bash
# Boot the Nimbus guest images under QEMU's virt machine (reference platform).
#
#   guest/qemu-boot.sh [options] [-- extra qemu args]
#     --initramfs        boot images/initramfs.cpio.gz (default)
#     --disk             boot images/rootfs.ext4 as a virtio-blk disk (root=/dev/vda)
#     --poweroff         add nimbus.poweroff=1: the guest powers off after
#                        "nimbus-guest: ready", so this script returns
#     --port N           host port forwarded to guest port 80 (default 8080)
#     --no-net           no virtio-net device
#     --smp N            harts (default 2, at most 8)
#     --mem SIZE         RAM (default 256M)
#     --append "ARGS"    extra kernel command-line arguments
#     --console sbi      use the SBI console (earlycon=sbi console=hvc0) instead
#                        of the 16550 UART (earlycon console=ttyS0, default)
#     --writable         with --disk: write to the image itself (default: the
#                        disk is opened with snapshot=on so images/ stays intact)
#     --kernel/--initrd/--rootfs FILE   use other image files
#     --bios FILE        firmware (default: QEMU's bundled OpenSBI fw_dynamic from
#                        qemu-system-data; or opensbi's generic/fw_jump.elf)
# Quit QEMU with Ctrl-A x.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
KERNEL="$REPO/images/Image"
INITRD="$REPO/images/initramfs.cpio.gz"
ROOTFS="$REPO/images/rootfs.ext4"
MODE=initramfs POWEROFF=0 PORT=8080 NET=1 SMP=2 MEM=256M APPEND="" SNAPSHOT=on BIOS=default CONSOLE=uart
while [ $# -gt 0 ]; do
  case "$1" in
    --initramfs) MODE=initramfs ;;
    --disk) MODE=disk ;;
    --poweroff) POWEROFF=1 ;;
    --port) PORT=$2; shift ;;
    --no-net) NET=0 ;;
    --smp) SMP=$2; shift ;;
    --mem) MEM=$2; shift ;;
    --append) APPEND="$APPEND $2"; shift ;;
    --console) CONSOLE=$2; shift ;;
    --writable) SNAPSHOT=off ;;
    --kernel) KERNEL=$2; shift ;;
    --initrd) INITRD=$2; shift ;;
    --rootfs) ROOTFS=$2; shift ;;
    --bios) BIOS=$2; shift ;;
    --) shift; break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v qemu-system-riscv64 >/dev/null; then
  echo "qemu-system-riscv64 not found: apt-get install qemu-system-misc opensbi" >&2
  exit 1
fi

case "$CONSOLE" in
  uart|ttyS0) CMDLINE="earlycon console=ttyS0" ;;
  sbi|hvc0) CMDLINE="earlycon=sbi console=hvc0" ;;
  *) echo "unknown console: $CONSOLE (uart or sbi)" >&2; exit 2 ;;
esac
ARGS=(-M virt -smp "$SMP" -m "$MEM" -nographic -bios "$BIOS" -kernel "$KERNEL")
if [ "$MODE" = disk ]; then
  CMDLINE="$CMDLINE root=/dev/vda rw rootwait"
  ARGS+=(-drive "file=$ROOTFS,format=raw,if=none,id=hd0,snapshot=$SNAPSHOT"
         -device virtio-blk-device,drive=hd0)
else
  ARGS+=(-initrd "$INITRD")
fi
if [ "$NET" = 1 ]; then
  ARGS+=(-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:80" -device virtio-net-device,netdev=n0)
fi
ARGS+=(-device virtio-rng-device)
[ "$POWEROFF" = 1 ] && CMDLINE="$CMDLINE nimbus.poweroff=1"
CMDLINE="$CMDLINE$APPEND"
exec qemu-system-riscv64 "${ARGS[@]}" -append "$CMDLINE" "$@"
