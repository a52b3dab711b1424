/*
 * nimbus-fpbench: floating-point CPU work (the F and D extensions), three phases
 * whose sizes scale with SCALE:
 *   nbody   double precision: 5-body gravity simulation, SCALE x 20000 steps
 *           (fadd/fsub/fmul/fmadd, fdiv, fsqrt)
 *   matmul  double precision: 48x48 matrix products, SCALE x 24 of them
 *           (fmadd-dominated, loads/stores of doubles)
 *   mandel  single precision: a 160x120 Mandelbrot set, SCALE frames of up to
 *           64 iterations per point (fmul.s/fadd.s, compares, fcvt)
 * Prints the time of each phase, then
 *   "nimbus-fpbench: scale=N elapsed=S s instret=I checksum=C"
 * The checksum combines the bit patterns of the results: IEEE 754 arithmetic
 * with round-to-nearest makes it depend only on SCALE.
 *
 * usage: nimbus-fpbench [SCALE]   (default 10)
 */
#include "common.h"

#include <math.h>

static uint64_t bits_of(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  return h;
}

enum { NB = 5 };
struct body { double x, y, z, vx, vy, vz, m; };

static uint64_t nbody(uint64_t steps) {
  struct body b[NB] = {
      {0, 0, 0, 0, 0, 0, 39.47841760435743},
      {4.84143144246472090, -1.16032004402742839, -0.103622044471123109, 0.606326392995832,
       2.81198684491626, -0.02521836165988763, 0.037693674870389},
      {8.34336671824457987, 4.12479856412430479, -0.403523417114321381, -1.01077434617730,
       1.82566237123041, 0.008415761376584154, 0.011286326131968767},
      {12.8943695621391310, -15.1111514016986312, -0.223307578892655734, 1.08279100644154,
       0.868713018169608, -0.01083270493751983, 0.0017237240570597112},
      {15.3796971148509165, -25.9193146099879641, 0.179258772950371181, 0.979090732243898,
       0.594698998647676, -0.034755955504078104, 0.0020336868699246304},
  };
  const double dt = 0.01;
  for (uint64_t s = 0; s < steps; s++) {
    for (int i = 0; i < NB; i++) {
      for (int j = i + 1; j < NB; j++) {
        double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
        double d2 = dx * dx + dy * dy + dz * dz;
        double mag = dt / (d2 * sqrt(d2));
        b[i].vx -= dx * b[j].m * mag; b[i].vy -= dy * b[j].m * mag; b[i].vz -= dz * b[j].m * mag;
        b[j].vx += dx * b[i].m * mag; b[j].vy += dy * b[i].m * mag; b[j].vz += dz * b[i].m * mag;
      }
    }
    for (int i = 0; i < NB; i++) {
      b[i].x += dt * b[i].vx; b[i].y += dt * b[i].vy; b[i].z += dt * b[i].vz;
    }
  }
  uint64_t h = 0;
  for (int i = 0; i < NB; i++) h = mix(mix(mix(h, bits_of(b[i].x)), bits_of(b[i].y)), bits_of(b[i].vz));
  return h;
}

enum { MN = 48 };

static uint64_t matmul(uint64_t reps) {
  static double a[MN][MN], bm[MN][MN], c[MN][MN];
  for (int i = 0; i < MN; i++)
    for (int j = 0; j < MN; j++) {
      a[i][j] = (double)((i * 7 + j * 3) % 17) / 16.0 - 0.5;
      bm[i][j] = (double)((i * 5 + j * 11) % 13) / 12.0 - 0.25;
    }
  uint64_t h = 0;
  for (uint64_t r = 0; r < reps; r++) {
    for (int i = 0; i < MN; i++)
      for (int j = 0; j < MN; j++) {
        double s = 0;
        for (int k = 0; k < MN; k++) s += a[i][k] * bm[k][j];
        c[i][j] = s;
      }
    /* feed the result back (scaled) so every product differs */
    for (int i = 0; i < MN; i++)
      for (int j = 0; j < MN; j++) a[i][j] = c[i][j] * (1.0 / MN) + 0.001 * (double)(r & 7);
    h = mix(h, bits_of(c[r % MN][(r * 7) % MN]));
  }
  return h;
}

static uint64_t mandel(uint64_t frames) {
  enum { W = 160, H = 120, MAXIT = 64 };
  uint64_t total = 0;
  for (uint64_t f = 0; f < frames; f++) {
    float zoom = 1.0f + 0.25f * (float)(f & 3);
    for (int py = 0; py < H; py++) {
      float ci = ((float)py / (float)H - 0.5f) * 2.4f / zoom;
      for (int px = 0; px < W; px++) {
        float cr = ((float)px / (float)W - 0.7f) * 3.2f / zoom;
        float zr = 0, zi = 0;
        int it = 0;
        while (it < MAXIT && zr * zr + zi * zi <= 4.0f) {
          float t = zr * zr - zi * zi + cr;
          zi = 2.0f * zr * zi + ci;
          zr = t;
          it++;
        }
        total += (uint64_t)it + (uint64_t)(int64_t)(zr * 16.0f);
      }
    }
  }
  return total;
}

int main(int argc, char **argv) {
  if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
    fprintf(stderr, "usage: %s [SCALE]\n"
                    "  floating-point benchmark: n-body (double), 48x48 matmul (double),\n"
                    "  Mandelbrot (float); default SCALE 10; prints time, rdinstret and a checksum\n",
            argv[0]);
    return 2;
  }
  uint64_t scale = argc == 2 ? parse_count("scale", argv[1]) : 10;

  (void)instret_readable();
  double t0 = now_seconds();
  uint64_t i0 = instret_begin();
  uint64_t h = nbody(scale * 20000);
  double t1 = now_seconds();
  h = mix(h, matmul(scale * 24));
  double t2 = now_seconds();
  h = mix(h, mandel(scale));
  uint64_t insns = instret_since(i0);
  double t3 = now_seconds();
  printf("  nbody:  %.3f s\n  matmul: %.3f s\n  mandel: %.3f s\n", t1 - t0, t2 - t1, t3 - t2);
  printf("nimbus-fpbench: scale=%llu elapsed=%.3f s instret=%llu checksum=%016llx\n",
         (unsigned long long)scale, t3 - t0, (unsigned long long)insns, (unsigned long long)h);
  return 0;
}
