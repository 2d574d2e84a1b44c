/* The fp32 FMA ceiling of this CPU: the arithmetic rate no convolution can beat.
 *
 * Built and run by unet_edge.bench.roofline.fma_ceiling:
 *     cc -O2 -fopenmp fma.c -o fma && OMP_NUM_THREADS=T ./fma STEPS
 * prints one JSON line: {"gflops": ..., "isa": ..., "threads": ..., "sink": ...}.
 *
 * Every thread runs CHAINS independent chains c = c * a + b on full vectors.
 * They are independent so that each FMA unit always has one ready to issue,
 * whatever its latency: the loop is then bound by FMA throughput alone. One
 * kernel per instruction set (AVX-512, AVX2 with FMA) is built into the same
 * binary with a target attribute, and the CPU picks at run time, so one build
 * serves either machine. The best of 5 runs is reported.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAINS 12
#define REPEATS 5

/* X(W, i) for every chain i: the chains spelled out as named variables (not
 * an array), so that the compiler keeps each in its own register. */
#define EACH_CHAIN(X, W) \
  X(W, 0) X(W, 1) X(W, 2) X(W, 3) X(W, 4) X(W, 5) X(W, 6) X(W, 7) X(W, 8) X(W, 9) X(W, 10) X(W, 11)

/* The intrinsics of W-bit vectors: __m512 and _mm512_fmadd_ps for W = 512. */
#define DECLARE(W, i) __m##W c##i = _mm##W##_set1_ps((float)(i));
#define STEP(W, i) c##i = _mm##W##_fmadd_ps(c##i, a, b);
#define TOTAL(W, i) s = _mm##W##_add_ps(s, c##i);

/* static float kW(long n): n steps of every chain on W-bit vectors, built for
 * instruction set ISA; returns the sum of every lane so nothing is optimised away. */
#define FMA_KERNEL(W, ISA)                                                          \
  __attribute__((target(ISA))) static float k##W(long n) {                          \
    __m##W a = _mm##W##_set1_ps(1.0000001f), b = _mm##W##_set1_ps(-1e-7f);          \
    __m##W s = _mm##W##_set1_ps(0.f);                                               \
    EACH_CHAIN(DECLARE, W)                                                          \
    for (long k = 0; k < n; k++) {                                                  \
      EACH_CHAIN(STEP, W)                                                           \
    }                                                                               \
    EACH_CHAIN(TOTAL, W)                                                            \
    float out[W / 32], t = 0;                                                       \
    memcpy(out, &s, sizeof out);                                                    \
    for (int i = 0; i < W / 32; i++) t += out[i];                                   \
    return t;                                                                       \
  }

FMA_KERNEL(512, "avx512f")
FMA_KERNEL(256, "avx2,fma")

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s STEPS\n", argv[0]);
    return 2;
  }
  long n = atol(argv[1]);
  int wide = __builtin_cpu_supports("avx512f");
  int lanes = (wide ? 512 : 256) / 32;
  double best = 0;
  float sink = 0;
  for (int r = 0; r < REPEATS; r++) {
    double t = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    sink += wide ? k512(n) : k256(n);
    t = omp_get_wtime() - t;
    /* An FMA is 2 FLOPs per lane. */
    double g = 2.0 * CHAINS * lanes * (double)n * omp_get_max_threads() / t / 1e9;
    if (g > best) best = g;
  }
  printf("{\"gflops\": %.3f, \"isa\": \"%s\", \"threads\": %d, \"sink\": %g}\n", best,
         wide ? "avx512f" : "avx2+fma", omp_get_max_threads(), (double)sink);
  return 0;
}
