#include "machine/virt/device_tree.h"

#include <fmt/format.h>
#include <libfdt.h>

#include "machine/virt/memory_map.h"

namespace nimbus::machine::virt {

namespace {

// libfdt's sequential-write API, with errors collected instead of checked at every call.
class FdtWriter {
 public:
  explicit FdtWriter(size_t capacity) : buf_(capacity) {
    check(fdt_create(buf_.data(), static_cast<int>(buf_.size())));
    check(fdt_finish_reservemap(buf_.data()));
  }
  void begin(const std::string& name) { check(fdt_begin_node(buf_.data(), name.c_str())); }
  void end() { check(fdt_end_node(buf_.data())); }
  void prop(const char* name, const std::string& value) {
    check(fdt_property_string(buf_.data(), name, value.c_str()));
  }
  // A list of strings ("a\0b\0").
  void prop_strings(const char* name, std::initializer_list<const char*> values) {
    std::string joined;
    for (const char* v : values) {
      joined += v;
      joined.push_back('\0');
    }
    check(fdt_property(buf_.data(), name, joined.data(), static_cast<int>(joined.size())));
  }
  void prop_u32(const char* name, uint32_t v) { check(fdt_property_u32(buf_.data(), name, v)); }
  void prop_u64(const char* name, uint64_t v) { check(fdt_property_u64(buf_.data(), name, v)); }
  void prop_cells(const char* name, const std::vector<uint32_t>& cells) {
    std::vector<fdt32_t> be;
    for (uint32_t c : cells) be.push_back(cpu_to_fdt32(c));
    check(fdt_property(buf_.data(), name, be.data(), static_cast<int>(be.size() * 4)));
  }
  void prop_empty(const char* name) { check(fdt_property(buf_.data(), name, nullptr, 0)); }
  // reg = <base size> with #address-cells = #size-cells = 2.
  void reg(uint64_t base, uint64_t size) {
    prop_cells("reg", {static_cast<uint32_t>(base >> 32), static_cast<uint32_t>(base),
                       static_cast<uint32_t>(size >> 32), static_cast<uint32_t>(size)});
  }

  Result<std::vector<uint8_t>> finish() {
    check(fdt_finish(buf_.data()));
    if (error_ != 0) return Status::error(fmt::format("device tree: {}", fdt_strerror(error_)));
    buf_.resize(fdt_totalsize(buf_.data()));
    return buf_;
  }

 private:
  void check(int rc) {
    if (rc < 0 && error_ == 0) error_ = rc;
  }
  std::vector<uint8_t> buf_;
  int error_ = 0;
};

constexpr uint32_t kPhandlePlic = 1;
constexpr uint32_t kPhandleTest = 2;
constexpr uint32_t kPhandleCpuBase = 16;   // cpu@N
constexpr uint32_t kPhandleIntcBase = 32;  // cpu@N's interrupt-controller

std::string node(const char* name, uint64_t address) {
  return fmt::format("{}@{:x}", name, address);
}

}  // namespace

Result<std::vector<uint8_t>> build_device_tree(const DeviceTreeConfig& c) {
  FdtWriter w(64 * 1024 + c.bootargs.size());
  w.begin("");
  w.prop_u32("#address-cells", 2);
  w.prop_u32("#size-cells", 2);
  w.prop("compatible", "riscv-virtio");
  w.prop("model", "nimbus,virt");

  w.begin("chosen");
  if (!c.bootargs.empty()) w.prop("bootargs", c.bootargs);
  w.prop("stdout-path", node("/soc/serial", kUart.base));
  if (c.initrd_end > c.initrd_start) {
    w.prop_u64("linux,initrd-start", c.initrd_start);
    w.prop_u64("linux,initrd-end", c.initrd_end);
  }
  w.end();

  w.begin(node("memory", kRamBase));
  w.prop("device_type", "memory");
  w.reg(kRamBase, c.ram_size);
  w.end();

  w.begin("cpus");
  w.prop_u32("#address-cells", 1);
  w.prop_u32("#size-cells", 0);
  w.prop_u32("timebase-frequency", kTimebaseHz);
  for (unsigned h = 0; h < c.harts; h++) {
    w.begin(fmt::format("cpu@{}", h));
    w.prop_u32("phandle", kPhandleCpuBase + h);
    w.prop("device_type", "cpu");
    w.prop_u32("reg", h);
    w.prop("status", "okay");
    w.prop("compatible", "riscv");
    w.prop("riscv,isa", c.isa);
    w.prop("mmu-type", c.mmu_type);
    w.begin("interrupt-controller");
    w.prop_u32("#interrupt-cells", 1);
    w.prop_empty("interrupt-controller");
    w.prop("compatible", "riscv,cpu-intc");
    w.prop_u32("phandle", kPhandleIntcBase + h);
    w.end();
    w.end();
  }
  w.begin("cpu-map");
  w.begin("cluster0");
  for (unsigned h = 0; h < c.harts; h++) {
    w.begin(fmt::format("core{}", h));
    w.prop_u32("cpu", kPhandleCpuBase + h);
    w.end();
  }
  w.end();
  w.end();
  w.end();  // cpus

  w.begin("soc");
  w.prop_u32("#address-cells", 2);
  w.prop_u32("#size-cells", 2);
  w.prop("compatible", "simple-bus");
  w.prop_empty("ranges");

  // CLINT: per hart, the software (3) and timer (7) interrupts of the M level.
  std::vector<uint32_t> clint_irqs, plic_irqs;
  for (unsigned h = 0; h < c.harts; h++) {
    clint_irqs.insert(clint_irqs.end(), {kPhandleIntcBase + h, 3, kPhandleIntcBase + h, 7});
    // PLIC contexts in QEMU's order: hart h's M external (11), then S external (9).
    plic_irqs.insert(plic_irqs.end(), {kPhandleIntcBase + h, 11, kPhandleIntcBase + h, 9});
  }
  w.begin(node("clint", kClint.base));
  w.prop_strings("compatible", {"sifive,clint0", "riscv,clint0"});
  w.reg(kClint.base, kClint.size);
  w.prop_cells("interrupts-extended", clint_irqs);
  w.end();

  w.begin(node("plic", kPlic.base));
  w.prop_u32("phandle", kPhandlePlic);
  w.prop_strings("compatible", {"sifive,plic-1.0.0", "riscv,plic0"});
  w.reg(kPlic.base, kPlic.size);
  w.prop_cells("interrupts-extended", plic_irqs);
  w.prop_u32("riscv,ndev", kPlicSources - 1);
  w.prop_empty("interrupt-controller");
  w.prop_u32("#interrupt-cells", 1);
  w.prop_u32("#address-cells", 0);
  w.end();

  w.begin(node("serial", kUart.base));
  w.prop("compatible", "ns16550a");
  w.reg(kUart.base, kUart.size);
  w.prop_u32("clock-frequency", 3686400);
  w.prop_u32("interrupt-parent", kPhandlePlic);
  w.prop_u32("interrupts", kUartIrq);
  w.end();

  w.begin(node("rtc", kRtc.base));
  w.prop("compatible", "google,goldfish-rtc");
  w.reg(kRtc.base, kRtc.size);
  w.prop_u32("interrupt-parent", kPhandlePlic);
  w.prop_u32("interrupts", kRtcIrq);
  w.end();

  w.begin(node("test", kTest.base));
  w.prop_u32("phandle", kPhandleTest);
  w.prop_strings("compatible", {"sifive,test1", "sifive,test0", "syscon"});
  w.reg(kTest.base, kTest.size);
  w.end();
  w.begin("poweroff");
  w.prop("compatible", "syscon-poweroff");
  w.prop_u32("regmap", kPhandleTest);
  w.prop_u32("offset", 0);
  w.prop_u32("value", 0x5555);
  w.end();
  w.begin("reboot");
  w.prop("compatible", "syscon-reboot");
  w.prop_u32("regmap", kPhandleTest);
  w.prop_u32("offset", 0);
  w.prop_u32("value", 0x7777);
  w.end();

  for (unsigned i = 0; i < c.virtio_slots; i++) {
    const uint64_t base = kVirtio.base + i * kVirtio.size;
    w.begin(node("virtio_mmio", base));
    w.prop("compatible", "virtio,mmio");
    w.reg(base, kVirtio.size);
    w.prop_u32("interrupt-parent", kPhandlePlic);
    w.prop_u32("interrupts", kVirtioIrqBase + i);
    w.end();
  }
  w.end();  // soc
  w.end();  // root
  return w.finish();
}

}  // namespace nimbus::machine::virt
