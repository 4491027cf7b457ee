//===- runtime/cpu/ThreadPool.h - The threads of one rank -------*- C++ -*-===//
//
// A rank computes on `size` threads: its own and size - 1 workers that it
// owns. parallelFor hands out indices one at a time (the items of a GEMM
// differ in cost), each thread with its own kernel workspace. Workers spin
// briefly before they sleep, so that a decode step's short parallel regions
// do not pay a wake-up each.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_THREADPOOL_H
#define MOERT_CPU_THREADPOOL_H

#include "runtime/cpu/gemm/Kernel.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moert::cpu {

class ThreadPool {
public:
  explicit ThreadPool(int size);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return static_cast<int>(workspaces_.size()); }
  // Calls body(index, thread) for every index in [0, count) and returns
  // when all are done; the first exception is rethrown here. Not
  // reentrant.
  using Body = std::function<void(int64_t index, int thread)>;
  void parallelFor(int64_t count, const Body &body);
  gemm::Workspace &workspace(int thread) { return workspaces_[thread]; }

private:
  void work(int thread);
  void drain(int thread);

  std::vector<gemm::Workspace> workspaces_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  bool stopping_ = false;
  // The current parallelFor.
  const Body *body_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  std::exception_ptr failure_;
};

// Threads per rank: MOERT_CPU_THREADS when set, else the cores this process
// may run on shared among `ranks` (at least 1).
int threadsPerRank(int ranks);

} // namespace moert::cpu

#endif // MOERT_CPU_THREADPOOL_H
