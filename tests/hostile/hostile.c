// The hostile guest: attacks every device of the virt board through MMIO, the way a
// malicious kernel could, then reports on the UART and idles in WFI. Booted by
// hostile_test.py in `nimbus vmm`; see README.md for what it does and what is asserted.
//
// Deterministic: one fixed PRNG seed, so a failure repeats. Every wild access may fault;
// the trap handler (start.S) skips the faulting instruction and counts it.
//
// Output lines (all start with "hostile: "):
//   FAIL <what>            an expectation on the device's behaviour did not hold
//   virtio slot=S id=D status=0xNN   final status of each device (0x40: NEEDS_RESET)
//   done                   the end; the program idles from here
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

extern volatile u64 trap_count, trap_last_cause;
volatile u64 trap_count, trap_last_cause;

// ---- the board (src/machine/virt/memory_map.h) ----
#define RAM_BASE 0x80000000ull
#define TEST_BASE 0x00100000ull  // the finisher: never touched (it would power off)
#define RTC_BASE 0x00101000ull
#define CLINT_BASE 0x02000000ull
#define CLINT_SIZE 0x10000ull
#define PLIC_BASE 0x0c000000ull
#define PLIC_SIZE 0x600000ull
#define UART_BASE 0x10000000ull
#define VIRTIO_BASE 0x10001000ull
#define VIRTIO_SLOTS 8

// virtio-mmio registers (virtio 1.2, 4.2.2).
enum {
  MAGIC = 0x000,
  VERSION = 0x004,
  DEVICE_ID = 0x008,
  DEV_FEATURES = 0x010,
  DEV_FEATURES_SEL = 0x014,
  DRV_FEATURES = 0x020,
  DRV_FEATURES_SEL = 0x024,
  QUEUE_SEL = 0x030,
  QUEUE_NUM_MAX = 0x034,
  QUEUE_NUM = 0x038,
  QUEUE_READY = 0x044,
  QUEUE_NOTIFY = 0x050,
  INT_STATUS = 0x060,
  INT_ACK = 0x064,
  STATUS = 0x070,
  QUEUE_DESC = 0x080,
  QUEUE_DRIVER = 0x090,
  QUEUE_DEVICE = 0x0a0,
  CONFIG_GEN = 0x0fc,
  CONFIG = 0x100,
};
enum {
  S_ACK = 1,
  S_DRIVER = 2,
  S_DRIVER_OK = 4,
  S_FEATURES_OK = 8,
  S_NEEDS_RESET = 64,
  S_FAILED = 128
};
#define F_INDIRECT (1u << 28)
#define F_EVENT_IDX (1u << 29)
// Descriptor flags.
enum { D_NEXT = 1, D_WRITE = 2, D_INDIRECT = 4 };

struct desc {
  u64 addr;
  u32 len;
  u16 flags, next;
};

// ---- fault-tolerant accessors: a skipped load reads as 0 ----
static u64 rd(u64 a, int size) {
  u64 v;
  switch (size) {
    case 1:
      __asm__ volatile("li %0, 0\n\tlbu %0, 0(%1)" : "=&r"(v) : "r"(a) : "memory");
      break;
    case 2:
      __asm__ volatile("li %0, 0\n\tlhu %0, 0(%1)" : "=&r"(v) : "r"(a) : "memory");
      break;
    case 4:
      __asm__ volatile("li %0, 0\n\tlwu %0, 0(%1)" : "=&r"(v) : "r"(a) : "memory");
      break;
    default:
      __asm__ volatile("li %0, 0\n\tld %0, 0(%1)" : "=&r"(v) : "r"(a) : "memory");
      break;
  }
  return v;
}

static void wr(u64 a, u64 v, int size) {
  switch (size) {
    case 1:
      __asm__ volatile("sb %0, 0(%1)" : : "r"(v), "r"(a) : "memory");
      break;
    case 2:
      __asm__ volatile("sh %0, 0(%1)" : : "r"(v), "r"(a) : "memory");
      break;
    case 4:
      __asm__ volatile("sw %0, 0(%1)" : : "r"(v), "r"(a) : "memory");
      break;
    default:
      __asm__ volatile("sd %0, 0(%1)" : : "r"(v), "r"(a) : "memory");
      break;
  }
}

static void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

static u64 now_ticks(void) {  // 10 MHz
  u64 t;
  __asm__ volatile("csrr %0, time" : "=r"(t));
  return t;
}

// ---- UART output ----
static void uart_reset(void) {
  wr(UART_BASE + 3, 0x03, 1);  // LCR: 8N1, DLAB off
  wr(UART_BASE + 1, 0x00, 1);  // IER: no interrupts
  wr(UART_BASE + 4, 0x00, 1);  // MCR: no loopback
  wr(UART_BASE + 2, 0x07, 1);  // FCR: FIFOs on and cleared
}

static void putc_(char c) {
  for (int i = 0; i < 100000 && !(rd(UART_BASE + 5, 1) & 0x20); i++) {
  }
  wr(UART_BASE, (u8)c, 1);
}

static void puts_(const char* s) {
  while (*s) putc_(*s++);
}

static void puthex(u64 v) {
  puts_("0x");
  int started = 0;
  for (int i = 60; i >= 0; i -= 4) {
    const int d = (v >> i) & 15;
    if (d || started || i == 0) {
      putc_("0123456789abcdef"[d]);
      started = 1;
    }
  }
}

static void putdec(u64 v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) putc_(buf[--n]);
}

static unsigned failures;
static void fail(const char* what, int slot, u64 detail) {
  failures++;
  puts_("hostile: FAIL ");
  puts_(what);
  puts_(" slot=");
  putdec((u64)slot);
  puts_(" detail=");
  puthex(detail);
  puts_("\n");
}

static void* memset_(void* p, int c, size_t n) {
  volatile u8* b = p;
  while (n--) *b++ = (u8)c;
  return p;
}

// ---- PRNG: xorshift64*, fixed seed ----
static u64 rng_state = 0x9e3779b97f4a7c15ull;
static u64 rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static u64 rnd_below(u64 n) { return rnd() % n; }

static u64 ram_end;  // from the device tree's place: the top 2 MiB of RAM

// Guest memory the devices may read and write: everything the fuzzer hands out as a
// "good" address lies here, never in this program.
#define ARENA_SIZE (4u << 20)
static u8 arena[ARENA_SIZE] __attribute__((aligned(4096)));
#define ARENA ((u64)(uintptr_t)arena)

// Addresses a driver should never give: outside RAM, in MMIO, wrapping, straddling the end.
static u64 wild_addr(void) {
  static const u64 table[] = {0,
                              8,
                              0x1000,
                              TEST_BASE,
                              RTC_BASE,
                              CLINT_BASE,
                              PLIC_BASE,
                              UART_BASE,
                              VIRTIO_BASE,
                              VIRTIO_BASE + 0x1000,
                              RAM_BASE - 16,
                              RAM_BASE - 0x1000,
                              0x100000000ull,
                              0x7fffffffffffffffull,
                              0x8000000000000000ull,
                              0xfffffffffffff000ull,
                              0xfffffffffffffff0ull,
                              0xffffffffffffffffull};
  const u64 pick = rnd_below(sizeof(table) / sizeof(table[0]) + 3);
  if (pick < sizeof(table) / sizeof(table[0])) return table[pick];
  if (pick == sizeof(table) / sizeof(table[0]))
    return ram_end - 8 - rnd_below(64);  // straddles the end
  if (pick == sizeof(table) / sizeof(table[0]) + 1) return ram_end + rnd_below(1ull << 32);
  return rnd();
}

static u64 any_addr(void) {
  if (rnd_below(3) == 0) return wild_addr();
  return ARENA + (rnd_below(ARENA_SIZE) & ~(u64)(rnd_below(2) ? 15 : 0));
}

static u32 wild_len(void) {
  static const u32 table[] = {0,        1,          2,           15,          16,
                              17,       512,        513,         4096,        65536,
                              1u << 20, 0x7fffffff, 0x80000000u, 0xfffffff0u, 0xffffffffu};
  if (rnd_below(4) == 0) return (u32)rnd();
  return table[rnd_below(sizeof(table) / sizeof(table[0]))];
}

static u32 wild_u32(void) {
  static const u32 table[] = {0,       1,          2,           3,           4,
                              7,       8,          0x10,        0x40,        0x7f,
                              0x80,    0xff,       0x100,       0x8000,      0xffff,
                              0x10000, 0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu};
  if (rnd_below(3) == 0) return (u32)rnd();
  return table[rnd_below(sizeof(table) / sizeof(table[0]))];
}

// ---- virtio-mmio driver pieces ----
static u64 slot_base(int s) { return VIRTIO_BASE + 0x1000ull * (u64)s; }
static u32 vr(int s, u32 off) { return (u32)rd(slot_base(s) + off, 4); }
static void vw(int s, u32 off, u32 v) { wr(slot_base(s) + off, v, 4); }
static void vw64(int s, u32 off, u64 v) {
  vw(s, off, (u32)v);
  vw(s, off + 4, (u32)(v >> 32));
}

// The queue every device reads when notified (its driver-to-device queue).
static unsigned kick_queue(u32 id) { return id == 1 || id == 3 ? 1 : 0; }
static unsigned queue_count(u32 id) { return id == 1 || id == 3 ? 2 : 1; }

// A split ring laid out in the arena: descriptors, driver area, device area.
struct ring {
  volatile struct desc* desc;
  volatile u16* avail;  // flags, idx, ring[n], used_event
  volatile u32* used;
  u16 n;
};

#define RING_AREA (ARENA + 0x300000)  // the last MiB of the arena holds the rings
static struct ring ring_at(unsigned q, u16 n) {
  const u64 base = RING_AREA + (u64)q * 0x40000;
  struct ring r = {(volatile struct desc*)base, (volatile u16*)(base + 0x10000),
                   (volatile u32*)(base + 0x20000), n};
  return r;
}

static void ring_clear(struct ring* r) { memset_((void*)r->desc, 0, 0x30000); }

// Reset, ACK, DRIVER, features (VERSION_1 plus `lo`), FEATURES_OK. Returns false if the
// device refused the features.
static int begin_setup(int s, u32 lo) {
  vw(s, STATUS, 0);
  vw(s, STATUS, S_ACK);
  vw(s, STATUS, S_ACK | S_DRIVER);
  vw(s, DRV_FEATURES_SEL, 0);
  vw(s, DRV_FEATURES, lo);
  vw(s, DRV_FEATURES_SEL, 1);
  vw(s, DRV_FEATURES, 1);  // VERSION_1
  vw(s, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  return (vr(s, STATUS) & S_FEATURES_OK) != 0;
}

static void setup_queue(int s, unsigned q, const struct ring* r) {
  vw(s, QUEUE_SEL, q);
  vw(s, QUEUE_NUM, r->n);
  vw64(s, QUEUE_DESC, (u64)(uintptr_t)r->desc);
  vw64(s, QUEUE_DRIVER, (u64)(uintptr_t)r->avail);
  vw64(s, QUEUE_DEVICE, (u64)(uintptr_t)r->used);
  vw(s, QUEUE_READY, 1);
}

static void driver_ok(int s) { vw(s, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK); }

// Waits up to `ms` for a status bit (devices work on their own threads).
// Elapsed time by difference: the CLINT attack may have moved mtime anywhere.
static int wait_status(int s, u32 bit, unsigned ms) {
  const u64 start = now_ticks();
  do {
    if (vr(s, STATUS) & bit) return 1;
  } while (now_ticks() - start < (u64)ms * 10000);
  return 0;
}

static int wait_used(volatile u16* used_idx, u16 want, unsigned ms) {
  const u64 start = now_ticks();
  do {
    fence();
    if (*used_idx == want) return 1;
  } while (now_ticks() - start < (u64)ms * 10000);
  return 0;
}

// ---- targeted ring attacks: each must leave the device in NEEDS_RESET ----
// `make` fills ring r (size 8, avail idx already 1 with head 0 unless it changes them).
typedef void (*ring_attack)(struct ring* r);

static void a_head_out_of_range(struct ring* r) { r->avail[2] = 200; }
static void a_head_ffff(struct ring* r) { r->avail[2] = 0xffff; }
static void a_loop2(struct ring* r) {
  r->desc[0] = (struct desc){ARENA, 16, D_NEXT, 1};
  r->desc[1] = (struct desc){ARENA + 16, 16, D_NEXT, 0};
}
static void a_self_loop(struct ring* r) { r->desc[0] = (struct desc){ARENA, 16, D_NEXT, 0}; }
static void a_chain_past_size(struct ring* r) {
  for (u16 i = 0; i < 8; i++) r->desc[i] = (struct desc){ARENA + 16 * i, 16, D_NEXT, (u16)(i + 1)};
}
static void a_next_ffff(struct ring* r) { r->desc[0] = (struct desc){ARENA, 16, D_NEXT, 0xffff}; }
static void a_huge_len(struct ring* r) { r->desc[0] = (struct desc){ARENA, 0xffffffffu, 0, 0}; }
static void a_beyond_ram(struct ring* r) { r->desc[0] = (struct desc){0x100000000ull, 16, 0, 0}; }
static void a_past_ram_end(struct ring* r) { r->desc[0] = (struct desc){ram_end - 8, 16, 0, 0}; }
static void a_mmio(struct ring* r) { r->desc[0] = (struct desc){VIRTIO_BASE, 0x100, 0, 0}; }
static void a_plic(struct ring* r) { r->desc[0] = (struct desc){PLIC_BASE, 0x1000, D_WRITE, 0}; }
static void a_wrap(struct ring* r) {
  r->desc[0] = (struct desc){0xfffffffffffff000ull, 0x2000, 0, 0};
}
static void a_below_ram(struct ring* r) { r->desc[0] = (struct desc){RAM_BASE - 8, 16, 0, 0}; }
static void a_read_after_write(struct ring* r) {
  r->desc[0] = (struct desc){ARENA, 16, D_WRITE | D_NEXT, 1};
  r->desc[1] = (struct desc){ARENA + 16, 16, 0, 0};
}
static void a_indirect_self(struct ring* r) {
  r->desc[0] = (struct desc){(u64)(uintptr_t)r->desc, 16 * 8, D_INDIRECT, 0};
}
static void a_indirect_next(struct ring* r) {
  r->desc[0] = (struct desc){ARENA, 16, D_INDIRECT | D_NEXT, 1};
  r->desc[1] = (struct desc){ARENA + 16, 16, 0, 0};
}
static void a_indirect_len0(struct ring* r) { r->desc[0] = (struct desc){ARENA, 0, D_INDIRECT, 0}; }
static void a_indirect_len17(struct ring* r) {
  r->desc[0] = (struct desc){ARENA, 17, D_INDIRECT, 0};
}
static void a_indirect_huge(struct ring* r) {
  r->desc[0] = (struct desc){ARENA, 16 * 1025, D_INDIRECT, 0};
}
static void a_indirect_wild(struct ring* r) {
  r->desc[0] = (struct desc){0xfffffffffffffff0ull, 32, D_INDIRECT, 0};
}
static void a_indirect_loop(struct ring* r) {
  volatile struct desc* t = (volatile struct desc*)(ARENA + 0x1000);
  t[0] = (struct desc){ARENA, 16, D_NEXT, 1};
  t[1] = (struct desc){ARENA + 16, 16, D_NEXT, 0};
  r->desc[0] = (struct desc){ARENA + 0x1000, 32, D_INDIRECT, 0};
}
static void a_indirect_next_out(struct ring* r) {
  volatile struct desc* t = (volatile struct desc*)(ARENA + 0x1000);
  t[0] = (struct desc){ARENA, 16, D_NEXT, 5};
  r->desc[0] = (struct desc){ARENA + 0x1000, 32, D_INDIRECT, 0};
}
static void a_indirect_in_table_wild(struct ring* r) {
  volatile struct desc* t = (volatile struct desc*)(ARENA + 0x1000);
  t[0] = (struct desc){CLINT_BASE, 64, 0, 0};
  r->desc[0] = (struct desc){ARENA + 0x1000, 16, D_INDIRECT, 0};
}
static void a_avail_jump(struct ring* r) { r->avail[1] = 0x8000; }
static void a_avail_jump9(struct ring* r) { r->avail[1] = 9; }

static const struct {
  const char* name;
  ring_attack make;
} ring_attacks[] = {
    {"head_out_of_range", a_head_out_of_range},
    {"head_ffff", a_head_ffff},
    {"desc_loop", a_loop2},
    {"desc_self_loop", a_self_loop},
    {"chain_past_queue_size", a_chain_past_size},
    {"next_ffff", a_next_ffff},
    {"huge_len", a_huge_len},
    {"beyond_ram", a_beyond_ram},
    {"past_ram_end", a_past_ram_end},
    {"in_virtio_mmio", a_mmio},
    {"in_plic", a_plic},
    {"wrapping", a_wrap},
    {"below_ram", a_below_ram},
    {"readable_after_writable", a_read_after_write},
    {"indirect_self", a_indirect_self},
    {"indirect_with_next", a_indirect_next},
    {"indirect_len0", a_indirect_len0},
    {"indirect_len17", a_indirect_len17},
    {"indirect_huge", a_indirect_huge},
    {"indirect_wild", a_indirect_wild},
    {"indirect_loop", a_indirect_loop},
    {"indirect_next_out", a_indirect_next_out},
    {"indirect_entry_in_clint", a_indirect_in_table_wild},
    {"avail_idx_jump", a_avail_jump},
    {"avail_idx_past_size", a_avail_jump9},
};

// One ring attack on the device's kick queue; true if it ended in NEEDS_RESET.
static int run_ring_attack(int s, u32 id, ring_attack make, u32 features) {
  const unsigned q = kick_queue(id);
  struct ring r = ring_at(q, 8);
  ring_clear(&r);
  memset_((void*)(ARENA + 0x1000), 0, 0x1000);
  if (!begin_setup(s, features)) return 0;
  setup_queue(s, q, &r);
  driver_ok(s);
  r.desc[0] = (struct desc){ARENA, 64, 0, 0};
  r.avail[2] = 0;
  make(&r);
  fence();
  if (r.avail[1] == 0) r.avail[1] = 1;
  fence();
  vw(s, QUEUE_NOTIFY, q);
  return wait_status(s, S_NEEDS_RESET, 2000);
}

// Queue configurations the transport must refuse at QueueReady (it sets NEEDS_RESET).
static int bad_queue_config(int s, u32 id, int which) {
  const unsigned q = kick_queue(id);
  struct ring r = ring_at(q, 8);
  if (!begin_setup(s, F_INDIRECT)) return 0;
  vw(s, QUEUE_SEL, q);
  u64 d = (u64)(uintptr_t)r.desc, a = (u64)(uintptr_t)r.avail, u = (u64)(uintptr_t)r.used;
  u32 n = 8;
  switch (which) {
    case 0:
      n = 0;
      break;
    case 1:
      n = 3;
      break;
    case 2:
      n = 0xffff;
      break;
    case 3:
      n = 0x10000;
      break;
    case 4:
      n = 0xffffffffu;
      break;
    case 5:
      d = 0x100000000ull;
      break;
    case 6:
      d = VIRTIO_BASE;
      break;
    case 7:
      d = 0xfffffffffffffff0ull;
      break;
    case 8:
      d += 8;
      break;  // misaligned descriptor table
    case 9:
      a += 1;
      break;  // misaligned driver area
    case 10:
      u += 2;
      break;  // misaligned device area
    case 11:
      u = (ram_end - 16) & ~3ull;
      break;  // device area straddles the end of RAM
    case 12:
      a = ram_end;
      break;
    default:
      n = 0x200;
      break;  // larger than QueueNumMax
  }
  vw(s, QUEUE_NUM, n);
  vw64(s, QUEUE_DESC, d);
  vw64(s, QUEUE_DRIVER, a);
  vw64(s, QUEUE_DEVICE, u);
  vw(s, QUEUE_READY, 1);
  const int refused = vr(s, QUEUE_READY) == 0;
  return refused && (vr(s, STATUS) & S_NEEDS_RESET);
}
#define BAD_QUEUE_CONFIGS 14

#ifndef FUZZ_ROUNDS
#define FUZZ_ROUNDS 100000
#endif
#ifndef NOTIFIES
#define NOTIFIES 4000000
#endif

// ---- protocol abuse that must not break anything ----
static void protocol_abuse(int s, u32 id) {
  // Every register at every width, aligned and not.
  for (u32 off = 0; off < 0x1000; off += 4) {
    (void)rd(slot_base(s) + off, 4);
    (void)rd(slot_base(s) + off, 1);
    (void)rd(slot_base(s) + off + 1, 2);
    (void)rd(slot_base(s) + off + 2, 4);
    if ((off & 7) == 0) (void)rd(slot_base(s) + off, 8);
  }
  // Status out of order: DRIVER_OK with nothing negotiated, then a notify of every queue.
  vw(s, STATUS, 0);
  vw(s, STATUS, S_DRIVER_OK);
  for (u32 q = 0; q < 4; q++) vw(s, QUEUE_NOTIFY, q);
  vw(s, STATUS, S_FEATURES_OK | S_DRIVER_OK | S_FAILED | S_NEEDS_RESET);
  vw(s, STATUS, 0xffffffffu);
  // Garbage features: all bits, at selectors far away; FEATURES_OK must be refused.
  vw(s, STATUS, 0);
  vw(s, STATUS, S_ACK | S_DRIVER);
  for (u32 sel = 0; sel < 4; sel++) {
    vw(s, DRV_FEATURES_SEL, sel);
    vw(s, DRV_FEATURES, 0xffffffffu);
  }
  vw(s, DRV_FEATURES_SEL, 0xffffffffu);
  vw(s, DRV_FEATURES, 0xffffffffu);
  vw(s, DEV_FEATURES_SEL, 0xffffffffu);
  (void)vr(s, DEV_FEATURES);
  vw(s, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  if (vr(s, STATUS) & S_FEATURES_OK) fail("garbage_features_accepted", s, vr(s, STATUS));
  // Without VERSION_1.
  vw(s, STATUS, 0);
  vw(s, STATUS, S_ACK | S_DRIVER);
  vw(s, DRV_FEATURES_SEL, 1);
  vw(s, DRV_FEATURES, 0);
  vw(s, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  if (vr(s, STATUS) & S_FEATURES_OK) fail("features_without_version1", s, vr(s, STATUS));
  // Queue selectors out of range, with writes to every queue register.
  const u32 sels[] = {queue_count(id), 7, 0xffff, 0x10000, 0xffffffffu};
  for (unsigned i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
    vw(s, QUEUE_SEL, sels[i]);
    vw(s, QUEUE_NUM, 8);
    vw64(s, QUEUE_DESC, ARENA);
    vw(s, QUEUE_READY, 1);
    if (vr(s, QUEUE_NUM_MAX) != 0) fail("queue_num_max_of_missing_queue", s, sels[i]);
    if (vr(s, QUEUE_READY) != 0) fail("missing_queue_ready", s, sels[i]);
    vw(s, QUEUE_NOTIFY, sels[i]);
  }
  vw(s, INT_ACK, 0xffffffffu);
  // Configuration space: writes everywhere past it (and in it) at every width.
  u64 cfg_before[8];
  for (int i = 0; i < 8; i++) cfg_before[i] = rd(slot_base(s) + CONFIG + 8 * i, 8);
  for (u32 off = CONFIG; off < 0x1000; off += 4) {
    wr(slot_base(s) + off, rnd(), 4);
    wr(slot_base(s) + off + 1, rnd(), 1);
    wr(slot_base(s) + off + 2, rnd(), 2);
    if ((off & 7) == 0) wr(slot_base(s) + off, rnd(), 8);
  }
  wr(slot_base(s) + 0xfff, 0xff, 1);
  wr(slot_base(s) + 0xffe, 0xffff, 2);
  wr(slot_base(s) + 0xffc, 0xffffffffu, 4);
  wr(slot_base(s) + 0xff8, ~0ull, 8);
  // Read-only configuration (blk capacity and limits, net MAC, ...) stays as it was. The
  // net status field (offset 6) follows the link and is left out.
  for (int i = 0; i < 8; i++) {
    u64 now = rd(slot_base(s) + CONFIG + 8 * i, 8), before = cfg_before[i];
    if (id == 1 && i == 0) {
      now &= 0x0000ffffffffffffull;
      before &= 0x0000ffffffffffffull;
    }
    if (now != before) fail("config_space_changed_by_writes", s, (u64)i);
  }
  vw(s, STATUS, 0);
}

// Notifies on a ready, empty queue (and now and then on queues that do not exist),
// with every queue of the device ready; the device must stay healthy (no NEEDS_RESET,
// nothing used) and the VMM must not pile up work for each notify.
static void notify_storm(int s, u32 id, unsigned q, u32 count) {
  struct ring rings[2];
  if (!begin_setup(s, F_INDIRECT | F_EVENT_IDX)) {
    fail("setup_refused", s, vr(s, STATUS));
    return;
  }
  for (unsigned i = 0; i < queue_count(id); i++) {
    rings[i] = ring_at(i, 8);
    ring_clear(&rings[i]);
    setup_queue(s, i, &rings[i]);
  }
  driver_ok(s);
  for (u32 i = 0; i < count; i++) {
    const u32 v = (i & 7) == 7 ? wild_u32() : q;
    vw(s, QUEUE_NOTIFY, v);
  }
  if (vr(s, STATUS) & S_NEEDS_RESET) fail("notify_storm_needs_reset", s, vr(s, STATUS));
  fence();
  for (unsigned i = 0; i < queue_count(id); i++) {
    const u16 used = ((volatile u16*)rings[i].used)[1];
    if (used != 0) fail("notify_storm_used_something", s, used);
  }
  vw(s, STATUS, 0);
}

// ---- working requests after all that (the device recovers through reset) ----
static void blk_roundtrip(int s) {
  struct ring r = ring_at(0, 8);
  ring_clear(&r);
  if (!begin_setup(s, F_INDIRECT)) {
    fail("blk_setup_refused", s, vr(s, STATUS));
    return;
  }
  setup_queue(s, 0, &r);
  driver_ok(s);
  volatile u64* hdr = (volatile u64*)(ARENA + 0x10000);
  volatile u8* data = (volatile u8*)(ARENA + 0x11000);
  volatile u8* st = (volatile u8*)(ARENA + 0x12000);
  const u64 capacity = rd(slot_base(s) + CONFIG, 8);
  // Requests: write sector 1 (pattern), read it back, then reads at and far past the end
  // and with a sector number that overflows when multiplied by 512.
  const u64 sectors[] = {1, 1, capacity, capacity - 1, 0x0080000000000000ull, ~0ull};
  const u32 types[] = {1, 0, 0, 0, 0, 1};
  const u8 want[] = {0, 0, 1, 1, 1, 1};  // OK, OK, IOERR for the rest
  for (u16 i = 0; i < 6; i++) {
    hdr[0] = types[i];
    hdr[1] = sectors[i];
    for (int b = 0; b < 1024; b++) data[b] = types[i] == 1 ? (u8)(b * 7 + 3) : 0;
    *st = 0xee;
    // capacity - 1 with 1024 bytes runs past the end.
    r.desc[0] = (struct desc){ARENA + 0x10000, 16, D_NEXT, 1};
    r.desc[1] =
        (struct desc){ARENA + 0x11000, 1024, (u16)(D_NEXT | (types[i] == 0 ? D_WRITE : 0)), 2};
    r.desc[2] = (struct desc){ARENA + 0x12000, 1, D_WRITE, 0};
    r.avail[2 + (i % 8)] = 0;
    fence();
    r.avail[1] = (u16)(i + 1);
    fence();
    vw(s, QUEUE_NOTIFY, 0);
    if (!wait_used((volatile u16*)r.used + 1, (u16)(i + 1), 2000)) {
      fail("blk_request_not_completed", s, i);
      break;
    }
    if (*st != want[i]) fail("blk_request_status", s, ((u64)i << 8) | *st);
    if (i == 1) {
      for (int b = 0; b < 1024; b++) {
        if (data[b] != (u8)(b * 7 + 3)) {
          fail("blk_readback_differs", s, (u64)b);
          break;
        }
      }
    }
  }
  if (vr(s, STATUS) & S_NEEDS_RESET) fail("blk_roundtrip_needs_reset", s, vr(s, STATUS));
  vw(s, STATUS, 0);
}

static void rng_request(int s) {
  struct ring r = ring_at(0, 8);
  ring_clear(&r);
  if (!begin_setup(s, 0)) {
    fail("rng_setup_refused", s, vr(s, STATUS));
    return;
  }
  setup_queue(s, 0, &r);
  driver_ok(s);
  r.desc[0] = (struct desc){ARENA + 0x20000, 64, D_WRITE, 0};
  r.avail[2] = 0;
  fence();
  r.avail[1] = 1;
  fence();
  vw(s, QUEUE_NOTIFY, 0);
  if (!wait_used((volatile u16*)r.used + 1, 1, 2000))
    fail("rng_request_not_completed", s, 0);
  else if (r.used[2] != 64)
    fail("rng_used_len", s, r.used[2]);
  vw(s, STATUS, 0);
}

// ---- the random phase: structured garbage through every register ----
static const u32 regs[] = {
    DEV_FEATURES_SEL, DRV_FEATURES, DRV_FEATURES_SEL, QUEUE_SEL,  QUEUE_NUM,      QUEUE_READY,
    QUEUE_NOTIFY,     INT_ACK,      STATUS,           QUEUE_DESC, QUEUE_DESC + 4, QUEUE_DRIVER,
    QUEUE_DRIVER + 4, QUEUE_DEVICE, QUEUE_DEVICE + 4, CONFIG_GEN, MAGIC,          VERSION};

static void random_ring(struct ring* r) {
  const u16 n = r->n ? r->n : 8;
  for (u16 i = 0; i < n && i < 64; i++) {
    u16 flags = (u16)(rnd() & 7);
    if (rnd_below(4)) flags &= (u16)~D_INDIRECT;
    r->desc[i] = (struct desc){any_addr(), wild_len(), flags,
                               (u16)(rnd_below(4) ? rnd_below(n + 1) : rnd())};
  }
  // An indirect table in the arena for whichever descriptor is indirect.
  volatile struct desc* t = (volatile struct desc*)(ARENA + 0x1000);
  for (int i = 0; i < 16; i++)
    t[i] = (struct desc){any_addr(), wild_len(), (u16)(rnd() & 7), (u16)rnd_below(18)};
  for (u16 i = 0; i < n && i < 64; i++)
    r->avail[2 + i] = (u16)(rnd_below(4) ? rnd_below(n) : rnd());
  fence();
  r->avail[1] = (u16)(r->avail[1] + (rnd_below(8) ? 1 + rnd_below(4) : rnd()));
  fence();
}

static void fuzz_virtio(int s, u32 id, unsigned rounds) {
  for (unsigned k = 0; k < rounds; k++) {
    const unsigned q = (unsigned)rnd_below(queue_count(id));
    static const u16 sizes[] = {1, 2, 4, 8, 16, 64, 256, 3, 0};
    struct ring r = ring_at(q, sizes[rnd_below(sizeof(sizes) / sizeof(sizes[0]))]);
    switch (rnd_below(6)) {
      case 0: {  // a plausible setup with a garbage ring
        u32 f = (u32)(rnd() & (F_INDIRECT | F_EVENT_IDX | 0xffff));
        if (!begin_setup(s, f)) begin_setup(s, f & (F_INDIRECT | F_EVENT_IDX));
        setup_queue(s, q, &r);
        driver_ok(s);
        random_ring(&r);
        vw(s, QUEUE_NOTIFY, q);
        break;
      }
      case 1:  // more garbage in the current ring, and a kick
        random_ring(&r);
        vw(s, QUEUE_NOTIFY, (u32)rnd_below(4));
        break;
      case 2: {  // one register, one value
        const u32 off = regs[rnd_below(sizeof(regs) / sizeof(regs[0]))];
        u64 v = wild_u32();
        if (off >= QUEUE_DESC && off <= QUEUE_DEVICE + 4) {
          const u64 a = any_addr();
          vw64(s, off & ~7u, a);
          break;
        }
        vw(s, off, (u32)v);
        break;
      }
      case 3: {  // odd widths and offsets anywhere in the slot
        const int w = 1 << rnd_below(4);
        const u64 a = slot_base(s) + rnd_below(0x1000);
        if (rnd_below(2)) {
          (void)rd(a, w);
        } else {
          const u64 off = a - slot_base(s);
          // Queue address registers only get addresses from any_addr() (case 2): a random
          // value there could point the device at this program.
          if (off >= QUEUE_DESC - 7 && off < QUEUE_DEVICE + 8) break;
          wr(a, rnd(), w);
        }
        break;
      }
      case 4:
        vw(s, STATUS, wild_u32() & 0xff);
        break;
      default:
        for (int i = 0; i < 50; i++) vw(s, QUEUE_NOTIFY, (u32)rnd_below(3));
        break;
    }
  }
  vw(s, STATUS, 0);
}

// ---- the other devices: every offset, every width, aligned or not ----
static void poke_region(u64 base, u64 size, unsigned count, int writes) {
  for (unsigned i = 0; i < count; i++) {
    const int w = 1 << rnd_below(4);
    u64 off = rnd_below(size + 0x100);  // a little past the end too
    if (rnd_below(4) == 0) off &= ~(u64)(w - 1);
    if (writes && rnd_below(2)) {
      wr(base + off, rnd_below(3) ? wild_u32() : rnd(), w);
    } else {
      (void)rd(base + off, w);
    }
  }
}

static void read_every_register(u64 base, u64 size) {
  for (u64 off = 0; off < size; off += 4) {
    (void)rd(base + off, 4);
    (void)rd(base + off, 1);
    (void)rd(base + off + 1, 2);
    (void)rd(base + off + 3, 4);
    if ((off & 7) == 0) (void)rd(base + off, 8);
  }
}

static void attack_platform(void) {
  // UART: every register, all widths; loopback and DLAB get exercised by the writes.
  read_every_register(UART_BASE, 0x100);
  poke_region(UART_BASE, 0x100, 20000, 1);
  uart_reset();
  puts_("hostile: uart survived\n");
  // RTC (goldfish): time, alarm, interrupt registers.
  read_every_register(RTC_BASE, 0x1000);
  poke_region(RTC_BASE, 0x1000, 20000, 1);
  // CLINT: msip, mtimecmp, mtime (and what lies between), at odd widths.
  read_every_register(CLINT_BASE, CLINT_SIZE);
  poke_region(CLINT_BASE, CLINT_SIZE, 20000, 1);
  wr(CLINT_BASE + 0x4000, ~0ull, 8);  // mtimecmp back to never
  wr(CLINT_BASE, 0, 4);               // msip off
  // PLIC: priorities, pending, enables, thresholds and claims of contexts that exist and
  // do not; the first 64 KiB read fully, the rest sampled.
  read_every_register(PLIC_BASE, 0x10000);
  poke_region(PLIC_BASE, PLIC_SIZE, 40000, 1);
  for (u64 ctx = 0; ctx < 20; ctx++) {
    (void)rd(PLIC_BASE + 0x200004 + 0x1000 * ctx, 4);            // claim
    wr(PLIC_BASE + 0x200004 + 0x1000 * ctx, rnd_below(100), 4);  // complete
  }
  // Empty virtio slots and the holes between devices fault; they must not do more.
  for (int s = 0; s < VIRTIO_SLOTS; s++) poke_region(slot_base(s) + 0x100, 0x100, 200, 0);
  // (Each poke may reach 0x100 past the size given: the finisher, virtio slot 0 and RAM
  // stay out of reach.)
  poke_region(0x0, TEST_BASE - 0x100, 2000, 0);
  poke_region(UART_BASE + 0x100, 0xe00, 2000, 1);
  poke_region(ram_end, 0x10000, 200, 1);
  poke_region(RAM_BASE - 0x10100, 0x10000, 200, 1);
  // Accesses straddling two devices, a device and a hole, RAM and a hole.
  static const u64 seams[] = {VIRTIO_BASE,       VIRTIO_BASE + 0x1000,    VIRTIO_BASE + 0x8000,
                              UART_BASE + 0x100, CLINT_BASE + CLINT_SIZE, PLIC_BASE + PLIC_SIZE,
                              RTC_BASE,          RTC_BASE + 0x1000,       RAM_BASE};
  for (unsigned i = 0; i < sizeof(seams) / sizeof(seams[0]); i++) {
    for (u64 back = 1; back < 8; back++) {
      (void)rd(seams[i] - back, 8);
      (void)rd(seams[i] - (back & 3), 4);
      (void)rd(seams[i] - 1, 2);
      // Writes only where the far side holds nothing a write could point at this
      // program (MagicValue is read-only; RAM's first 2 MiB are unused).
      wr(seams[i] - back, ~0ull, 8);
      wr(seams[i] - 1, 0xffff, 2);
    }
  }
  for (u64 back = 1; back < 8; back++) {
    (void)rd(ram_end - back, 8);
    wr(ram_end - back, 0, 8);  // the last bytes of RAM: the end of the device tree's area
  }
  puts_("hostile: platform devices survived, faults=");
  putdec(trap_count);
  puts_("\n");
}

int main(u64 hartid, u64 dtb) {
  (void)hartid;
  ram_end = dtb + (2ull << 20);  // the VMM puts the device tree 2 MiB below the end of RAM
  uart_reset();
  puts_("hostile: start, RAM ends at ");
  puthex(ram_end);
  puts_("\n");

  int slots[VIRTIO_SLOTS];
  u32 ids[VIRTIO_SLOTS];
  int n = 0;
  for (int s = 0; s < VIRTIO_SLOTS; s++) {
    if (vr(s, MAGIC) != 0x74726976 || vr(s, DEVICE_ID) == 0) continue;
    slots[n] = s;
    ids[n++] = vr(s, DEVICE_ID);
    puts_("hostile: found virtio slot=");
    putdec((u64)s);
    puts_(" id=");
    putdec(vr(s, DEVICE_ID));
    puts_("\n");
  }

  for (int i = 0; i < n; i++) {
    const int s = slots[i];
    const u32 id = ids[i];
    protocol_abuse(s, id);
    unsigned hit = 0, total = 0;
    for (unsigned a = 0; a < sizeof(ring_attacks) / sizeof(ring_attacks[0]); a++) {
      total++;
      if (run_ring_attack(s, id, ring_attacks[a].make, F_INDIRECT)) {
        hit++;
      } else {
        puts_("hostile: FAIL ring attack ");
        puts_(ring_attacks[a].name);
        puts_(" did not set NEEDS_RESET, slot=");
        putdec((u64)s);
        puts_(" status=");
        puthex(vr(s, STATUS));
        puts_("\n");
        failures++;
      }
    }
    // An indirect descriptor without the feature negotiated.
    total++;
    if (run_ring_attack(s, id, a_indirect_loop, 0))
      hit++;
    else
      fail("indirect_without_feature_accepted", s, vr(s, STATUS));
    for (int c = 0; c < BAD_QUEUE_CONFIGS; c++) {
      total++;
      if (bad_queue_config(s, id, c))
        hit++;
      else
        fail("bad_queue_config_accepted", s, (u64)c);
    }
    for (unsigned q = 0; q < queue_count(id); q++) notify_storm(s, id, q, NOTIFIES);
    puts_("hostile: slot=");
    putdec((u64)s);
    puts_(" targeted attacks ");
    putdec(hit);
    puts_("/");
    putdec(total);
    puts_(" set NEEDS_RESET\n");
  }

  attack_platform();

  for (int i = 0; i < n; i++) fuzz_virtio(slots[i], ids[i], FUZZ_ROUNDS);
  // Interleaved: devices attacked one after another in random order.
  for (int k = 0; k < FUZZ_ROUNDS && n > 0; k++) {
    const int i = (int)rnd_below((u64)n);
    fuzz_virtio(slots[i], ids[i], 1);
  }
  puts_("hostile: fuzzing done, faults=");
  putdec(trap_count);
  puts_("\n");

  // The devices still work after a reset.
  for (int i = 0; i < n; i++) {
    if (ids[i] == 2) blk_roundtrip(slots[i]);
    if (ids[i] == 4) rng_request(slots[i]);
  }

  // Leave every device broken by a last attack: its status must say NEEDS_RESET, and it
  // must stay quiet while the guest idles.
  for (int i = 0; i < n; i++) {
    if (!run_ring_attack(slots[i], ids[i], a_loop2, F_INDIRECT))
      fail("final_attack", slots[i], vr(slots[i], STATUS));
    puts_("hostile: virtio slot=");
    putdec((u64)slots[i]);
    puts_(" id=");
    putdec(ids[i]);
    puts_(" status=");
    puthex(vr(slots[i], STATUS));
    puts_("\n");
  }
  uart_reset();
  puts_("hostile: failures=");
  putdec(failures);
  puts_("\nhostile: done\n");
  return 0;
}
