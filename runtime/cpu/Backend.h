//===- runtime/cpu/Backend.h - The CPU backend ------------------*- C++ -*-===//
//
// The CPU backend runs every rank as a thread of one process. Buffers are
// host memory, collectives are shared-memory exchanges through a Rendezvous
// per rank group. Any wait gives up when a peer failed or exited (the
// world's abort flag) or after the world's timeout, so a broken rank never
// hangs the others. Arguments arrive checked by runtime/api.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_BACKEND_H
#define MOERT_CPU_BACKEND_H

#include "runtime/common/Backend.h"
#include "runtime/cpu/GroupedGemm.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace moert::cpu {

// Shared state of one rank group: a reusable barrier plus one published
// pointer per member for the exchange that follows the barrier.
struct Rendezvous {
  explicit Rendezvous(std::vector<int32_t> ranks)
      : ranks(std::move(ranks)), published(this->ranks.size(), nullptr) {}
  std::vector<int32_t> ranks;
  std::mutex mutex;
  std::condition_variable arrivedAll;
  int32_t arrived = 0;
  uint64_t generation = 0;
  std::vector<const void *> published;
};

struct Group : GroupState {
  Group(std::vector<int32_t> ranks, int32_t member,
        std::shared_ptr<Rendezvous> rendezvous)
      : GroupState(std::move(ranks), member),
        rendezvous(std::move(rendezvous)) {}
  std::shared_ptr<Rendezvous> rendezvous;
  // Hierarchical all-to-all sub-groups, made on first use.
  std::unique_ptr<Group> intraNode, interNode;
};

// A rank's fp32 and byte panels, reused across calls (indexed by purpose).
class Scratch {
public:
  float *floats(size_t slot, size_t count) {
    if (floats_.size() <= slot)
      floats_.resize(slot + 1);
    if (floats_[slot].size() < count)
      floats_[slot].resize(count);
    return floats_[slot].data();
  }
  char *bytes(size_t slot, size_t count) {
    if (bytes_[slot].size() < count)
      bytes_[slot].resize(count);
    return bytes_[slot].data();
  }

private:
  std::vector<std::vector<float>> floats_;
  std::vector<char> bytes_[3];
};

// An fp32 pointer to a float operand's `count` elements: the operand itself
// when it is f32, else a copy widened into the scratch panel `slot`.
const float *floatInput(Scratch &scratch, size_t slot, Operand operand,
                        int64_t count);

// Host memory as buffers get it: large ones (a model's weights) on 2 MB
// pages where the kernel grants them; null when out of memory. Freed with
// std::free.
void *allocateHost(size_t bytes);

// Runs row(t, buffer) for every t in [0, tokens) on the rank's threads, 16
// rows a task; `buffer` is `floats` floats of the running thread's own.
template <typename Row>
void parallelRows(ThreadPool &pool, int64_t tokens, int64_t floats, Row row) {
  constexpr int64_t rowsPerTask = 16;
  std::vector<std::vector<float>> buffers(pool.size());
  pool.parallelFor((tokens + rowsPerTask - 1) / rowsPerTask,
                   [&](int64_t task, int thread) {
                     std::vector<float> &buffer = buffers[thread];
                     buffer.resize(floats);
                     int64_t end = std::min(tokens, (task + 1) * rowsPerTask);
                     for (int64_t t = task * rowsPerTask; t < end; ++t)
                       row(t, buffer.data());
                   });
}

// The sum over i in [0, n) of term(i) in double: 8 independent chains
// added at the end (one chain waits out every add).
template <typename Term> double laneSum(int64_t n, Term term) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int64_t j = 0; j < 8; ++j)
      lanes[j] += term(i + j);
  for (; i < n; ++i)
    lanes[i % 8] += term(i);
  double sum = 0;
  for (double lane : lanes)
    sum += lane;
  return sum;
}

// What a rendezvous serves: user groups and the sub-groups of hierarchical
// all-to-alls never share a barrier.
enum RendezvousTag { userGroupTag = 0, intraNodeTag = 1, interNodeTag = 2 };

class CpuBackend final : public Backend {
public:
  explicit CpuBackend(const moert_world_desc_t &desc);

  // Every operation of the interface.
#define MOERT_BACKEND_OPERATION(Result, Name, Parameters)                      \
  Result Name Parameters override;
#include "runtime/common/BackendOperations.def"

  // The helpers of the collectives and kernels.
  Scratch &scratch(int32_t rank) { return scratch_[rank]; }
  GemmContext &gemm(int32_t rank) { return *gemm_[rank]; }
  std::unique_ptr<Group> makeGroup(RendezvousTag tag,
                                   std::vector<int32_t> ranks, int32_t member);
  // Blocks until every member of `rv` arrived; fails with ABORTED when the
  // world aborts or a member has exited, and with TIMEOUT after the world
  // timeout.
  void synchronize(int32_t rank, Rendezvous &rv, const char *what);
  int32_t gpusPerNode() const { return desc_.gpus_per_node; }

private:
  void recordFailure(int32_t rank, moert_status_t status,
                     const std::string &message);

  const moert_world_desc_t desc_;
  const int32_t size_;
  std::mutex mutex_; // guards rendezvous_ and the failure record
  std::map<std::pair<int, std::vector<int32_t>>, std::shared_ptr<Rendezvous>>
      rendezvous_;
  std::atomic<bool> aborted_{false};
  std::unique_ptr<std::atomic<bool>[]> exited_;
  // Per rank, for one run.
  std::vector<Scratch> scratch_;
  std::vector<std::unique_ptr<GemmContext>> gemm_;
  // First failure of the current run.
  int32_t failedRank_ = -1;
  moert_status_t failedStatus_ = MOERT_OK;
  std::string failedMessage_;
};

} // namespace moert::cpu

#endif // MOERT_CPU_BACKEND_H
