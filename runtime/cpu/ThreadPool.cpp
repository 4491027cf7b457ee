//===- runtime/cpu/ThreadPool.cpp - The threads of one rank ---------------===//

#include "runtime/cpu/ThreadPool.h"

#include "runtime/common/Error.h"

#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <sched.h>
#endif

using namespace moert;
using namespace moert::cpu;

namespace {
// Tens of microseconds of polling (a pause is ~100 cycles) before sleeping.
constexpr int spinRounds = 1000;

inline void relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}
} // namespace

ThreadPool::ThreadPool(int size) {
  workspaces_.resize(size < 1 ? 1 : size);
  for (int t = 1; t < this->size(); ++t)
    workers_.emplace_back([this, t] { work(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread &worker : workers_)
    worker.join();
}

void ThreadPool::drain(int thread) {
  for (int64_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) {
    try {
      (*body_)(i, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure_)
        failure_ = std::current_exception();
      next_.store(count_); // the others stop taking indices
    }
  }
}

void ThreadPool::parallelFor(int64_t count, const Body &body) {
  if (count <= 0)
    return;
  if (workers_.empty() || count == 1) {
    for (int64_t i = 0; i < count; ++i)
      body(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    next_.store(0);
    busy_.store(static_cast<int>(workers_.size()));
    failure_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(0);
  // Workers finish their last index and check out.
  for (int spin = 0; busy_.load(std::memory_order_acquire) > 0; ++spin) {
    if (spin < spinRounds) {
      relax();
      continue;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_.load() == 0; });
  }
  body_ = nullptr;
  if (failure_)
    std::rethrow_exception(failure_);
}

void ThreadPool::work(int thread) {
  uint64_t seen = 0;
  while (true) {
    uint64_t generation = generation_.load(std::memory_order_acquire);
    for (int spin = 0; generation == seen && spin < spinRounds; ++spin) {
      relax();
      generation = generation_.load(std::memory_order_acquire);
    }
    if (generation == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      generation = generation_.load();
    }
    seen = generation;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_)
        return;
    }
    drain(thread);
    if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

int moert::cpu::threadsPerRank(int ranks) {
  if (const char *text = std::getenv("MOERT_CPU_THREADS")) {
    char *end = nullptr;
    long value = std::strtol(text, &end, 10);
    require(end != text && *end == '\0' && value >= 1 && value <= 1024,
            "MOERT_CPU_THREADS must be a thread count from 1 to 1024, not '",
            text, "'");
    return static_cast<int>(value);
  }
  int cores = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
    cores = CPU_COUNT(&allowed);
#endif
  int share = cores / (ranks < 1 ? 1 : ranks);
  return share < 1 ? 1 : share;
}
