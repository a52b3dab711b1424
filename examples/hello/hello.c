// The bundled bare-metal demo: prints through HTIF's console and exercises the CPU a
// little (integer, multiply/divide, floating point), then exits with status 0.
#include <stdint.h>

extern volatile uint64_t tohost;
extern volatile uint64_t fromhost;

static void putc_htif(char c) {
  tohost = (1ull << 56) | (1ull << 48) | (uint8_t)c;
  while (tohost != 0) {
  }
}

static void puts_htif(const char* s) {
  while (*s) putc_htif(*s++);
}

static void put_u64(uint64_t v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  puts_htif(&buf[i]);
}

int main(void) {
  puts_htif("Hello from a Nimbus RV64GC hart.\n");
  uint64_t a = 0, b = 1;
  for (int i = 0; i < 90; i++) {
    uint64_t t = a + b;
    a = b;
    b = t;
  }
  puts_htif("fib(90) = ");
  put_u64(a);
  puts_htif("\n");
  volatile double x = 2.0;
  double r = x;
  for (int i = 0; i < 6; i++) r = 0.5 * (r + x / r);  // Newton's square root
  puts_htif("sqrt(2) * 1e9 = ");
  put_u64((uint64_t)(r * 1e9));
  puts_htif("\n");
  return a == 2880067194370816120ull ? 0 : 1;
}
