/*===- CacheFlush.c - drop memory from the CPU caches ---------------------===*/

#include "CacheFlush.h"

#include <stdint.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/* CLFLUSHOPT (CPUID.7.0:EBX bit 23) flushes lines in parallel; CLFLUSH,
   every x86-64's, is ordered and about 60x slower on uncached lines. */
static int hasClflushopt(void) {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 23));
}

__attribute__((target("clflushopt"))) static void flushOpt(const char *begin,
                                                           const char *end) {
  for (const char *p = begin; p < end; p += 64)
    _mm_clflushopt((void *)p);
}

int moe_bench_flush(const void *data, size_t bytes) {
  static int opt = -1;
  if (opt < 0)
    opt = hasClflushopt();
  const char *begin = (const char *)((uintptr_t)data & ~(uintptr_t)63);
  const char *end = (const char *)data + bytes;
  if (opt)
    flushOpt(begin, end);
  else
    for (const char *p = begin; p < end; p += 64)
      _mm_clflush(p);
  _mm_mfence();
  return 0;
}

#elif defined(__aarch64__)

int moe_bench_flush(const void *data, size_t bytes) {
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  size_t line = (size_t)4 << ((ctr >> 16) & 15); /* DminLine, in words */
  const char *p = (const char *)((uintptr_t)data & ~(uintptr_t)(line - 1));
  for (; p < (const char *)data + bytes; p += line)
    __asm__ volatile("dc civac, %0" ::"r"(p) : "memory");
  __asm__ volatile("dsb ish" ::: "memory");
  return 0;
}

#else

int moe_bench_flush(const void *data, size_t bytes) {
  (void)data;
  (void)bytes;
  return -1;
}

#endif
