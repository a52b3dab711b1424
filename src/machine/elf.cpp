#include "machine/elf.h"

#include <elf.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace nimbus::machine {

namespace {

// True if [offset, offset+size) lies within a buffer of `total` bytes.
bool within(uint64_t offset, uint64_t size, uint64_t total) {
  return offset <= total && size <= total - offset;
}

void read_symbols(ElfImage& img, const Elf64_Ehdr& eh) {
  const uint64_t total = img.bytes.size();
  if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr)) return;
  if (!within(eh.e_shoff, uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr), total)) return;
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), img.bytes.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
  for (const Elf64_Shdr& s : sh) {
    if (s.sh_type != SHT_SYMTAB || s.sh_entsize != sizeof(Elf64_Sym)) continue;
    if (s.sh_link >= sh.size()) continue;
    const Elf64_Shdr& strtab = sh[s.sh_link];
    if (!within(s.sh_offset, s.sh_size, total) ||
        !within(strtab.sh_offset, strtab.sh_size, total)) {
      continue;
    }
    const char* strings = reinterpret_cast<const char*>(img.bytes.data() + strtab.sh_offset);
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, img.bytes.data() + s.sh_offset + off, sizeof(sym));
      if (sym.st_name == 0 || sym.st_name >= strtab.sh_size) continue;
      const char* name = strings + sym.st_name;
      size_t len = strnlen(name, strtab.sh_size - sym.st_name);
      if (len == strtab.sh_size - sym.st_name) continue;  // not terminated
      img.symbols.emplace(std::string(name, len), sym.st_value);
    }
  }
}

}  // namespace

Result<ElfImage> read_elf(const std::string& path) {
  // Only a regular file: a device such as /dev/zero would be read until memory runs out,
  // and opening a FIFO blocks.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::error(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return Status::error(fmt::format("'{}' is not a regular file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  std::vector<uint8_t> bytes;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::error(fmt::format("cannot read '{}'", path));
  return parse_elf(std::move(bytes), path);
}

Result<ElfImage> parse_elf(std::vector<uint8_t> bytes, const std::string& path) {
  ElfImage img;
  img.bytes = std::move(bytes);
  const uint64_t total = img.bytes.size();

  Elf64_Ehdr eh;
  if (total < EI_NIDENT || std::memcmp(img.bytes.data(), ELFMAG, SELFMAG) != 0) {
    return Status::error(fmt::format("'{}' is not an ELF file", path));
  }
  if (img.bytes[EI_CLASS] != ELFCLASS64) {
    return Status::error(fmt::format("'{}' is a 32-bit ELF file; Nimbus runs RV64 programs", path));
  }
  if (total < sizeof(eh))
    return Status::error(fmt::format("'{}' is truncated (no ELF header)", path));
  std::memcpy(&eh, img.bytes.data(), sizeof(eh));
  if (img.bytes[EI_DATA] != ELFDATA2LSB) {
    return Status::error(
        fmt::format("'{}' is big-endian; RISC-V programs are little-endian", path));
  }
  if (eh.e_machine != EM_RISCV) {
    return Status::error(
        fmt::format("'{}' is not a RISC-V program (ELF machine {})", path, eh.e_machine));
  }
  if (eh.e_type != ET_EXEC) {
    return Status::error(fmt::format(
        "'{}' is not an executable (ELF type {}); link it with -static and a fixed address", path,
        eh.e_type));
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr) ||
      !within(eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), total)) {
    return Status::error(
        fmt::format("'{}' is truncated or corrupt (program headers out of the file)", path));
  }
  img.entry = eh.e_entry;
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    std::memcpy(&ph, img.bytes.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz) {
      return Status::error(fmt::format(
          "'{}' is corrupt: segment {} has more file bytes than memory bytes", path, i));
    }
    if (!within(ph.p_offset, ph.p_filesz, total)) {
      return Status::error(
          fmt::format("'{}' is truncated: segment {} ends past the end of the file", path, i));
    }
    img.segments.push_back({ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
  }
  if (img.segments.empty()) return Status::error(fmt::format("'{}' has nothing to load", path));
  read_symbols(img, eh);
  return img;
}

Status load_elf(const ElfImage& img, mem::Bus& bus, const std::string& path) {
  for (const ElfSegment& s : img.segments) {
    if (bus.ram_ptr(s.paddr, s.memsz) == nullptr) {
      return Status::error(
          fmt::format("'{}': segment at {:#x} ({} bytes) lies outside RAM [{:#x}, {:#x})", path,
                      s.paddr, s.memsz, bus.ram_base(), bus.ram_base() + bus.ram_size()));
    }
  }
  for (const ElfSegment& s : img.segments) {
    uint8_t* dst = bus.ram_ptr(s.paddr, s.memsz);
    std::memcpy(dst, img.bytes.data() + s.offset, s.filesz);
    std::memset(dst + s.filesz, 0, s.memsz - s.filesz);
  }
  return {};
}

}  // namespace nimbus::machine
