/*
 * Measures the processor's FP32 peak: every core runs independent chains of vector fused multiply-adds
 * (no memory traffic), as wide as the compiler targets (-march=native: 16 lanes with AVX-512, 8 with AVX2).
 * 24 accumulators cover FMA latency × FMA ports on current x86 cores. Prints one JSON line:
 *   {"threads":T,"lanes":L,"gflops":G}  with G = threads × iterations × accumulators × lanes × 2 / seconds.
 * Build: cc -O3 -march=native -ffp-contract=fast -pthread fma_peak.c -o fma_peak
 * Usage: fma_peak [threads] [seconds]  (defaults: online CPUs, 0.5 s); best of 5 rounds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
#define ACCUMULATORS 24

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

struct job {
  long iterations;
  float sink;
};

static void *run(void *arg) {
  struct job *job = arg;
  vec acc[ACCUMULATORS];
  vec a, b;
  for (int l = 0; l < LANES; l++) {
    a[l] = 0.999999f;
    b[l] = 1e-7f;
  }
  for (int i = 0; i < ACCUMULATORS; i++) acc[i] = a * (float)i;
  for (long n = 0; n < job->iterations; n++) {
    /* The compiler contracts a*b+c into one FMA with -mfma / AVX-512. */
#pragma GCC unroll 24
    for (int i = 0; i < ACCUMULATORS; i++) acc[i] = acc[i] * a + b;
    __asm__ volatile("" : "+v"(a));
  }
  float s = 0;
  for (int i = 0; i < ACCUMULATORS; i++)
    for (int l = 0; l < LANES; l++) s += acc[i][l];
  job->sink = s;
  return NULL;
}

static double round_gflops(int threads, long iterations) {
  pthread_t ids[256];
  struct job jobs[256];
  double start = now();
  for (int t = 0; t < threads; t++) {
    jobs[t].iterations = iterations;
    pthread_create(&ids[t], NULL, run, &jobs[t]);
  }
  for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
  double seconds = now() - start;
  return (double)threads * iterations * ACCUMULATORS * LANES * 2 / seconds / 1e9;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
  double seconds = argc > 2 ? atof(argv[2]) : 0.5;
  if (threads < 1 || threads > 256 || !(seconds > 0)) {
    fprintf(stderr, "usage: fma_peak [threads 1..256] [seconds > 0]\n");
    return 2;
  }
  /* Calibrate the iteration count on one thread so each round lasts about `seconds`. */
  long iterations = 1000000;
  double start = now();
  struct job probe = {iterations, 0};
  run(&probe);
  iterations = (long)(iterations * seconds / (now() - start));
  double best = 0;
  for (int r = 0; r < 5; r++) {
    double g = round_gflops(threads, iterations);
    if (g > best) best = g;
  }
  printf("{\"threads\":%d,\"lanes\":%d,\"gflops\":%.1f}\n", threads, LANES, best);
  return 0;
}
