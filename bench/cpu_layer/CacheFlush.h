/*===- CacheFlush.h - drop memory from the CPU caches -------------*- C -*-===*
 *
 * For the cold benchmark: both moe-bench-cpu-layer and the PyTorch worker
 * (through ctypes, libmoe-bench-cache-flush.so) flush a layer's weights
 * before each timed run, so that every byte is read from DRAM whatever the
 * cache's replacement history (reading other memory alone leaves part of a
 * set that was read many times).
 *
 *===----------------------------------------------------------------------===*/
#ifndef MOE_BENCH_CACHE_FLUSH_H
#define MOE_BENCH_CACHE_FLUSH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes back and drops [data, data + bytes) from every cache level, then
   fences. Returns 0, or -1 where this CPU has no flush instruction that
   user code may run (then nothing happened). */
int moe_bench_flush(const void *data, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
