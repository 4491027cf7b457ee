//===- bench/common/FloorReader.h - plain reads of memory -------*- C++ -*-===//
//
// The benchmarks' memory floor: how long plain loads take to read the bytes
// a kernel or layer reads (moe-bench-cpu-layer --read-floor, the read column
// of moe-bench-cpu-gemm), on as many threads as it runs. Which way of
// reading is fastest depends on the CPU, so reads take two in turn and the
// floor is the faster one's median: one stream per thread (the only way
// until 2026-12-07, near the kernels' rate on Zen 4), and each thread's
// share as 8 streams side by side, each asking for its line 256 bytes
// ahead. On the Xeon (family 6 model 207), 1 core, 512 MB from DRAM,
// medians of 7 in turn: one stream 8.7 GB/s, 8 streams 13.8; 1, 4, 16, 32
// or 64 streams, other distances or hints 8.9 to 13.0. The one stream read
// slower than the AMX kernels, whose %floor then passed 100.
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
  /// Reads every byte of `spans` once, the patterns in turn; returns the
  /// seconds and keeps them for floor().
  double sample(const std::vector<MemorySpan> &spans) {
    double seconds = read(spans);
    samples_[pattern_].push_back(seconds);
    pattern_ = (pattern_ + 1) % patterns;
    return seconds;
  }
  /// Seconds: the faster pattern's median read (0 without samples); the
  /// next samples start anew.
  double floor() {
    double best = 0;
    for (std::vector<double> &times : samples_) {
      if (times.empty())
        continue;
      std::nth_element(times.begin(), times.begin() + times.size() / 2,
                       times.end());
      double median = times[times.size() / 2];
      best = best == 0 ? median : std::min(best, median);
      times.clear();
    }
    pattern_ = 0;
    return best;
  }

private:
  static constexpr int patterns = 2;
  static constexpr size_t streams = 8, streamAhead = 256;

  // Seconds to read every byte of `spans` once with pattern_. Thread t's
  // bytes are [total * t / T, total * (t + 1) / T) of the spans laid end to
  // end: one stream, or `streams` equal parts of them, planned before the
  // clock starts.
  double read(const std::vector<MemorySpan> &spans) {
    size_t total = 0;
    for (const MemorySpan &span : spans)
      total += span.bytes;
    size_t threads = helpers_.size() + 1, parts = pattern_ == 0 ? 1 : streams;
    plans_.assign(threads, {});
    for (size_t t = 0; t < threads; ++t) {
      size_t begin = total * t / threads, end = total * (t + 1) / threads;
      for (size_t s = 0; s < parts; ++s)
        plans_[t].push_back(pieces(spans, begin + (end - begin) * s / parts,
                                   begin + (end - begin) * (s + 1) / parts));
    }
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
  // Bytes [begin, end) of the spans laid end to end, as pieces of them.
  static std::vector<MemorySpan> pieces(const std::vector<MemorySpan> &spans,
                                        size_t begin, size_t end) {
    std::vector<MemorySpan> out;
    size_t end0 = 0; // where the spans so far end, laid end to end
    for (const MemorySpan &span : spans) {
      size_t start = end0;
      end0 += span.bytes;
      size_t from = std::max(begin, start), to = std::min(end, end0);
      if (from < to)
        out.push_back({span.address + (from - start), to - from});
    }
    return out;
  }
  // Adds the 64-byte line at p into acc as 8-byte words.
  static void readLine(const char *p, uint64_t acc[8]) {
    for (int i = 0; i < 8; ++i) {
      uint64_t word;
      std::memcpy(&word, p + 8 * i, sizeof(word));
      acc[i] += word;
    }
  }
  // A stream's place: its current piece [at, end) and the pieces after it.
  struct Cursor {
    const char *at = nullptr, *end = nullptr;
    const std::vector<MemorySpan> *rest = nullptr;
    size_t next = 0;
    bool advance() {
      while (at == end && next < rest->size()) {
        at = (*rest)[next].address;
        end = at + (*rest)[next++].bytes;
      }
      return at != end;
    }
  };
  // Thread t's plan, as 8-byte words (a piece's last few bytes one by one):
  // one stream in order, or its streams a line at a time in turn.
  void readShare(int32_t t) {
    const std::vector<std::vector<MemorySpan>> &plan = plans_[t];
    uint64_t acc[8] = {};
    auto tail = [&](const char *p, const char *last) {
      for (; p < last; ++p)
        acc[0] += static_cast<unsigned char>(*p);
    };
    if (plan.size() == 1) {
      for (const MemorySpan &piece : plan[0]) {
        const char *p = piece.address, *last = p + piece.bytes;
        for (; p + 64 <= last; p += 64)
          readLine(p, acc);
        tail(p, last);
      }
    } else {
      Cursor cursors[streams];
      for (size_t s = 0; s < streams; ++s)
        cursors[s].rest = &plan[s];
      for (bool any = true; any;) {
        any = false;
        for (Cursor &c : cursors) {
          if (!c.advance())
            continue;
          any = true;
          if (c.at + 64 > c.end) {
            tail(c.at, c.end);
            c.at = c.end;
            continue;
          }
          // A hint: an address past the span reads nothing.
          __builtin_prefetch(reinterpret_cast<const void *>(
              reinterpret_cast<uintptr_t>(c.at) + streamAhead));
          readLine(c.at, acc);
          c.at += 64;
        }
      }
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
  // Per thread, its streams' pieces (read() plans them, readShare reads).
  std::vector<std::vector<std::vector<MemorySpan>>> plans_;
  std::atomic<uint64_t> sink_{0};
  int pattern_ = 0; // the next read's: 0 one stream, 1 `streams` streams
  std::vector<double> samples_[patterns];
};

} // namespace moe_bench

#endif // MOE_BENCH_COMMON_FLOORREADER_H
