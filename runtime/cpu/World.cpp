//===- runtime/cpu/World.cpp - Rank threads, barriers, buffers ------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Error.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <thread>

using namespace moert;
using namespace moert::cpu;

namespace {
constexpr int32_t defaultTimeoutMs = 60000;
// How often a waiting rank re-checks the abort flag and exited peers.
constexpr auto pollInterval = std::chrono::milliseconds(10);
} // namespace

const float *moert::cpu::floatInput(Scratch &scratch, size_t slot,
                                    Operand operand, int64_t count) {
  if (operand.dtype == MOERT_F32)
    return operand.as<const float>();
  float *converted = scratch.floats(slot, count);
  convertToFloat(operand.data, operand.dtype, converted, count);
  return converted;
}

CpuBackend::CpuBackend(const moert_world_desc_t &desc)
    : desc_(desc), size_(desc.nodes * desc.gpus_per_node),
      exited_(std::make_unique<std::atomic<bool>[]>(size_)) {}

std::unique_ptr<Group> CpuBackend::makeGroup(RendezvousTag tag,
                                             std::vector<int32_t> ranks,
                                             int32_t member) {
  std::shared_ptr<Rendezvous> rv;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto &slot = rendezvous_[{tag, ranks}];
    if (!slot)
      slot = std::make_shared<Rendezvous>(ranks);
    rv = slot;
  }
  return std::make_unique<Group>(std::move(ranks), member, std::move(rv));
}

void CpuBackend::recordFailure(int32_t rank, moert_status_t status,
                               const std::string &message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failedRank_ < 0) {
      failedRank_ = rank;
      failedStatus_ = status;
      failedMessage_ = message;
    }
  }
  aborted_.store(true);
}

void CpuBackend::synchronize(int32_t rank, Rendezvous &rv, const char *what) {
  if (aborted_.load())
    fail(MOERT_ABORTED, "rank ", rank, " skipped ", what,
         ": another rank failed");
  std::unique_lock<std::mutex> lock(rv.mutex);
  uint64_t generation = rv.generation;
  if (++rv.arrived == static_cast<int32_t>(rv.ranks.size())) {
    rv.arrived = 0;
    ++rv.generation;
    rv.arrivedAll.notify_all();
    return;
  }
  int32_t timeoutMs = desc_.collective_timeout_ms > 0
                          ? desc_.collective_timeout_ms
                          : defaultTimeoutMs;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (rv.generation == generation) {
    rv.arrivedAll.wait_for(lock, pollInterval);
    if (rv.generation != generation)
      break;
    moert_status_t status = MOERT_ABORTED;
    std::string reason;
    if (aborted_.load())
      reason = "another rank failed";
    for (int32_t peer : rv.ranks)
      if (reason.empty() && exited_[peer].load())
        reason = "rank " + std::to_string(peer) + " exited without joining it";
    if (reason.empty() && std::chrono::steady_clock::now() > deadline) {
      status = MOERT_TIMEOUT;
      reason = "timed out after " + std::to_string(timeoutMs) + " ms (" +
               std::to_string(rv.arrived) + " of " +
               std::to_string(rv.ranks.size()) + " members arrived)";
    }
    if (!reason.empty()) {
      --rv.arrived; // withdraw so that a late peer cannot complete it
      fail(status, "rank ", rank, " in ", what, ": ", reason);
    }
  }
}

void CpuBackend::run(const RankBody &body) {
  // Groups live for one run; a fresh run starts with clean barriers.
  rendezvous_.clear();
  aborted_.store(false);
  failedRank_ = -1;
  failedStatus_ = MOERT_OK;
  failedMessage_.clear();
  for (int32_t r = 0; r < size_; ++r)
    exited_[r].store(false);
  scratch_ = std::vector<Scratch>(size_);
  // ranks x threads = the cores to use (moert_world_create resolved the
  // count); each rank's workers start for the run.
  int rankThreads =
      desc_.cpu_threads > 0 ? desc_.cpu_threads : threadsPerRank(size_);
  gemm_.clear();
  for (int32_t r = 0; r < size_; ++r)
    gemm_.push_back(std::make_unique<GemmContext>(rankThreads));

  auto runRank = [this, &body](int32_t rank) {
    std::string message;
    moert_status_t status = body(rank, message);
    if (status != MOERT_OK)
      recordFailure(rank, status, message);
    exited_[rank].store(true);
  };

  std::vector<std::thread> threads;
  threads.reserve(size_);
  for (int32_t r = 1; r < size_; ++r)
    threads.emplace_back(runRank, r);
  runRank(0); // rank 0 on the caller's thread
  for (std::thread &t : threads)
    t.join();
  rendezvous_.clear();
  scratch_.clear();
  gemm_.clear();
  if (failedRank_ >= 0)
    fail(failedStatus_, "rank ", failedRank_, " failed: ", failedMessage_);
}

void *moert::cpu::allocateHost(size_t bytes) {
  // Filling GBs of 4 KB pages costs a fault each, and a weight stream
  // crossing them misses the TLB.
  constexpr size_t hugePage = 2u << 20;
  size_t alignment = bytes >= 4 * hugePage ? hugePage : 64;
  size_t rounded =
      (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
  void *data = std::aligned_alloc(alignment, rounded);
  if (data && alignment == hugePage)
    ::madvise(data, rounded, MADV_HUGEPAGE); // advice only: may be refused
  return data;
}

void *CpuBackend::allocate(int32_t rank, size_t bytes) {
  void *data = allocateHost(bytes);
  if (!data)
    fail(MOERT_OUT_OF_MEMORY, "cannot allocate ", bytes, " bytes");
  return data;
}

void CpuBackend::release(int32_t rank, void *data) { std::free(data); }

void CpuBackend::upload(int32_t rank, Operand dst, const void *src,
                        int64_t count) {
  if (count > 0)
    std::memcpy(dst.data, src, count * dtypeSize(dst.dtype));
}

void CpuBackend::download(int32_t rank, void *dst, Operand src, int64_t count) {
  if (count > 0)
    std::memcpy(dst, src.data, count * dtypeSize(src.dtype));
}

void CpuBackend::copy(int32_t rank, Operand src, Operand dst, int64_t count) {
  convert(src.data, src.dtype, dst.data, dst.dtype, count);
}

void CpuBackend::fill(int32_t rank, Operand dst, int64_t count, double value) {
  switch (dst.dtype) {
  case MOERT_I32:
    std::fill_n(dst.as<int32_t>(), count, static_cast<int32_t>(value));
    return;
  case MOERT_I64:
    std::fill_n(dst.as<int64_t>(), count, static_cast<int64_t>(value));
    return;
  default: {
    char element[8];
    float asFloat = static_cast<float>(value);
    convertFromFloat(&asFloat, element, dst.dtype, 1);
    size_t size = dtypeSize(dst.dtype);
    char *data = dst.as<char>();
    for (int64_t i = 0; i < count; ++i)
      std::memcpy(data + i * size, element, size);
  }
  }
}

void *CpuBackend::hostAddress(int32_t, Operand dst) { return dst.data; }

void CpuBackend::writeFromHost(int32_t rank, Operand dst, int64_t count,
                               const std::function<void(void *host)> &produce) {
  produce(dst.data); // host memory already
}
