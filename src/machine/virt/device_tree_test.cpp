#include "machine/virt/device_tree.h"

#include <gtest/gtest.h>
#include <libfdt.h>

#include <string>

#include "machine/virt/memory_map.h"

namespace nimbus::machine::virt {
namespace {

std::string str(const void* fdt, const char* path, const char* prop) {
  int node = fdt_path_offset(fdt, path);
  if (node < 0) return "<no node>";
  int len = 0;
  const char* v = static_cast<const char*>(fdt_getprop(fdt, node, prop, &len));
  return v ? std::string(v, strnlen(v, len)) : "<no prop>";
}

uint64_t cells64(const void* fdt, const char* path, const char* prop, int index) {
  int node = fdt_path_offset(fdt, path);
  int len = 0;
  auto* v = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, prop, &len));
  if (v == nullptr || len < (index + 1) * 8) return ~0ull;
  return (uint64_t{fdt32_to_cpu(v[2 * index])} << 32) | fdt32_to_cpu(v[2 * index + 1]);
}

int prop_len(const void* fdt, const char* path, const char* prop) {
  int len = -1;
  fdt_getprop(fdt, fdt_path_offset(fdt, path), prop, &len);
  return len;
}

TEST(DeviceTree, DescribesTheBoard) {
  DeviceTreeConfig c;
  c.harts = 3;
  c.ram_size = 512ull << 20;
  c.bootargs = "console=ttyS0 quiet";
  c.initrd_start = 0x9f000000;
  c.initrd_end = 0x9f100000;
  auto blob = build_device_tree(c);
  ASSERT_TRUE(blob.ok()) << blob.message();
  const void* fdt = blob->data();
  ASSERT_EQ(fdt_check_header(fdt), 0);

  EXPECT_EQ(str(fdt, "/", "compatible"), "riscv-virtio");
  EXPECT_EQ(str(fdt, "/chosen", "bootargs"), "console=ttyS0 quiet");
  EXPECT_EQ(str(fdt, "/chosen", "stdout-path"), "/soc/serial@10000000");
  EXPECT_EQ(cells64(fdt, "/chosen", "linux,initrd-start", 0), 0x9f000000u);
  EXPECT_EQ(cells64(fdt, "/chosen", "linux,initrd-end", 0), 0x9f100000u);

  EXPECT_EQ(cells64(fdt, "/memory@80000000", "reg", 0), kRamBase);
  EXPECT_EQ(cells64(fdt, "/memory@80000000", "reg", 1), 512ull << 20);

  for (const char* cpu : {"/cpus/cpu@0", "/cpus/cpu@1", "/cpus/cpu@2"}) {
    EXPECT_EQ(str(fdt, cpu, "riscv,isa"), c.isa) << cpu;
    EXPECT_EQ(str(fdt, cpu, "status"), "okay");
  }
  EXPECT_LT(fdt_path_offset(fdt, "/cpus/cpu@3"), 0);
  EXPECT_EQ(str(fdt, "/cpus/cpu@1/interrupt-controller", "compatible"), "riscv,cpu-intc");

  // Two (phandle, irq) pairs per hart on the CLINT and the PLIC.
  EXPECT_EQ(prop_len(fdt, "/soc/clint@2000000", "interrupts-extended"), 3 * 4 * 4);
  EXPECT_EQ(prop_len(fdt, "/soc/plic@c000000", "interrupts-extended"), 3 * 4 * 4);
  EXPECT_EQ(cells64(fdt, "/soc/plic@c000000", "reg", 0), kPlic.base);
  EXPECT_EQ(cells64(fdt, "/soc/plic@c000000", "reg", 1), kPlic.size);
  EXPECT_EQ(str(fdt, "/soc/serial@10000000", "compatible"), "ns16550a");
  EXPECT_EQ(str(fdt, "/soc/rtc@101000", "compatible"), "google,goldfish-rtc");
  EXPECT_EQ(str(fdt, "/soc/poweroff", "compatible"), "syscon-poweroff");
  EXPECT_LT(fdt_path_offset(fdt, "/soc/virtio_mmio@10001000"), 0);
}

TEST(DeviceTree, NoInitrdNoBootargs) {
  DeviceTreeConfig c;
  c.ram_size = 64ull << 20;
  c.virtio_slots = 2;
  auto blob = build_device_tree(c);
  ASSERT_TRUE(blob.ok());
  const void* fdt = blob->data();
  EXPECT_EQ(str(fdt, "/chosen", "bootargs"), "<no prop>");
  EXPECT_EQ(str(fdt, "/chosen", "linux,initrd-start"), "<no prop>");
  EXPECT_EQ(str(fdt, "/soc/virtio_mmio@10001000", "compatible"), "virtio,mmio");
  EXPECT_EQ(str(fdt, "/soc/virtio_mmio@10002000", "compatible"), "virtio,mmio");
  EXPECT_LT(fdt_path_offset(fdt, "/soc/virtio_mmio@10003000"), 0);
}

}  // namespace
}  // namespace nimbus::machine::virt
