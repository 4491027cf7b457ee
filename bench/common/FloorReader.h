//===- bench/common/FloorReader.h - plain reads of memory -------*- C++ -*-===//
//
// The benchmarks' memory floor: how long plain loads take to read the bytes
// a kernel or layer reads (moe-bench-cpu-layer --read-floor, the read column
// of moe-bench-cpu-gemm), on as many threads as it runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_COMMON_FLOORREADER_H
#define MOE_BENCH_COMMON_FLOORREADER_H

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace moe_bench {

struct MemorySpan {
  const char *address;
  size_t bytes;
};

/// Reads spans of memory as fast as plain loads go, split
/// into one contiguous share per thread. The helper threads wait on a
/// condition variable between reads and spin at the start line, so that a
/// read's time holds no thread wake-up.
class FloorReader {
public:
  explicit FloorReader(int32_t threads) {
    for (int32_t t = 1; t < threads; ++t)
      helpers_.emplace_back([this, t] { helperLoop(t); });
  }
  ~FloorReader() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (std::thread &helper : helpers_)
      helper.join();
  }
  /// Seconds to read every byte of `spans` once.
  double read(const std::vector<MemorySpan> &spans) {
    spans_ = &spans;
    total_ = 0;
    for (const MemorySpan &span : spans)
      total_ += span.bytes;
    ready_ = 0;
    done_ = 0;
    go_ = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++generation_;
    }
    wake_.notify_all();
    while (ready_.load() < static_cast<int>(helpers_.size())) {
    }
    auto t0 = std::chrono::steady_clock::now();
    go_ = true;
    readShare(0);
    while (done_.load() < static_cast<int>(helpers_.size())) {
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
  }

private:
  void helperLoop(int32_t t) {
    uint64_t seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_)
          return;
      }
      ++ready_;
      while (!go_.load()) {
      }
      readShare(t);
      ++done_;
    }
  }
  // Thread t's bytes [total * t / T, total * (t + 1) / T) of the spans
  // laid end to end, as 8-byte words (a span's last few bytes one by one).
  void readShare(int32_t t) {
    size_t threads = helpers_.size() + 1;
    size_t begin = total_ * t / threads, end = total_ * (t + 1) / threads;
    uint64_t acc[8] = {};
    size_t end0 = 0; // where the spans so far end, laid end to end
    for (const MemorySpan &span : *spans_) {
      size_t start = end0;
      end0 += span.bytes;
      size_t from = std::max(begin, start), to = std::min(end, end0);
      if (from >= to)
        continue; // the span is another thread's
      const char *p = span.address + (from - start),
                 *last = span.address + (to - start);
      for (; p + 64 <= last; p += 64)
        for (int i = 0; i < 8; ++i) {
          uint64_t word;
          std::memcpy(&word, p + 8 * i, sizeof(word));
          acc[i] += word;
        }
      for (; p < last; ++p)
        acc[0] += static_cast<unsigned char>(*p);
    }
    uint64_t sum = 0;
    for (uint64_t a : acc)
      sum += a;
    sink_ += sum;
  }

  std::vector<std::thread> helpers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::atomic<int> ready_{0}, done_{0};
  std::atomic<bool> go_{false};
  const std::vector<MemorySpan> *spans_ = nullptr;
  size_t total_ = 0;
  std::atomic<uint64_t> sink_{0};
};

} // namespace moe_bench

#endif // MOE_BENCH_COMMON_FLOORREADER_H
