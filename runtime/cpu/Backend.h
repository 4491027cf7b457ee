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

// What a rendezvous serves: user groups and the sub-groups of hierarchical
// all-to-alls never share a barrier.
enum RendezvousTag { userGroupTag = 0, intraNodeTag = 1, interNodeTag = 2 };

class CpuBackend final : public Backend {
public:
  explicit CpuBackend(const moert_world_desc_t &desc);

  void run(const RankBody &body) override;

  void *allocate(int32_t rank, size_t bytes) override;
  void release(int32_t rank, void *data) override;
  void upload(int32_t rank, Operand dst, const void *src,
              int64_t count) override;
  void download(int32_t rank, void *dst, Operand src, int64_t count) override;
  void fill(int32_t rank, Operand dst, int64_t count, double value) override;
  void copy(int32_t rank, Operand src, Operand dst, int64_t count) override;
  void writeFromHost(int32_t rank, Operand dst, int64_t count,
                     const std::function<void(void *host)> &produce) override;

  void router(int32_t rank, Operand x, Operand wg, Operand bias, Operand logits,
              int64_t tokens, int64_t hidden, int64_t experts) override;
  int64_t gate(int32_t rank, const moert_gate_config_t &cfg, Operand logits,
               Operand correctionBias, int64_t tokens, Operand ids,
               Operand weights, Operand slots, Operand counts) override;
  void gateScores(int32_t rank, const moert_gate_config_t &cfg, Operand logits,
                  int64_t tokens, Operand scores) override;
  void gateSelect(int32_t rank, const moert_gate_config_t &cfg, Operand scores,
                  Operand correctionBias, int64_t tokens, Operand ids,
                  Operand weights) override;
  int64_t gateSlots(int32_t rank, const moert_gate_config_t &cfg, Operand ids,
                    Operand weights, int64_t tokens, Operand slots,
                    Operand counts) override;
  void gateNormalize(int32_t rank, const moert_gate_config_t &cfg,
                     Operand slots, int64_t tokens, Operand weights) override;

  void dispatch(int32_t rank, Operand x, Operand ids, Operand slots,
                Operand buf, int64_t tokens, int64_t hidden, int64_t topK,
                int64_t experts, int64_t capacity) override;
  void combine(int32_t rank, Operand y, Operand ids, Operand slots,
               Operand weights, Operand addend, Operand out, int64_t tokens,
               int64_t hidden, int64_t topK, int64_t experts,
               int64_t capacity) override;
  void fusedCombine(int32_t rank, Operand y, Operand ids, Operand slots,
                    Operand weights, Operand mlpOut, Operand wc, Operand bc,
                    Operand shared, Operand wSg, Operand x, Operand addend,
                    Operand out, int64_t tokens, int64_t hidden, int64_t topK,
                    int64_t experts, int64_t capacity) override;

  void experts(int32_t rank, const FfnOperands &ffn, Operand in, Operand out,
               Operand rows, int64_t experts, int64_t capacity,
               int64_t blocks) override;
  void expertsLinear(int32_t rank, Operand w, Operand in, Operand out,
                     Operand rows, int64_t experts, int64_t capacity,
                     int64_t blocks, int64_t n, int64_t k) override;
  void activation(int32_t rank, moert_activation_t activation, Operand x,
                  Operand out, int64_t count) override;
  void multiply(int32_t rank, Operand a, Operand b, Operand out,
                int64_t count) override;
  void fusedExperts(int32_t rank, const PackedFfnOperands &ffn, Operand in,
                    Operand out, Operand rows, int64_t experts,
                    int64_t capacity, int64_t blocks,
                    const PackedFfnOperands *shared, Operand sharedX,
                    Operand sharedOut, int64_t tokens) override;
  void denseFfn(int32_t rank, const FfnOperands &ffn, Operand x, Operand out,
                int64_t tokens) override;

  void residualMix(int32_t rank, Operand x, Operand wc, Operand bc,
                   Operand moeOut, Operand mlpOut, Operand out, int64_t tokens,
                   int64_t hidden) override;
  void sharedAdd(int32_t rank, Operand routed, Operand shared, Operand x,
                 Operand wSg, Operand out, int64_t tokens,
                 int64_t hidden) override;
  void add(int32_t rank, Operand a, Operand b, Operand out,
           int64_t count) override;

  std::unique_ptr<GroupState> createGroup(int32_t rank,
                                          std::vector<int32_t> ranks,
                                          int32_t member) override;
  void barrier(int32_t rank, GroupState &group) override;
  void allReduce(int32_t rank, GroupState &group, moert_reduce_op_t op,
                 Operand send, Operand recv, int64_t count) override;
  void allGather(int32_t rank, GroupState &group, Operand send, Operand recv,
                 int64_t count) override;
  void reduceScatter(int32_t rank, GroupState &group, Operand send,
                     Operand recv, int64_t count) override;
  int64_t allReduceI64(int32_t rank, GroupState &group, moert_reduce_op_t op,
                       int64_t value) override;
  void allToAll(int32_t rank, GroupState &group,
                moert_a2a_direction_t direction,
                moert_a2a_algorithm_t algorithm, Operand send, Operand recv,
                int64_t expertsLocal, int64_t capacity, int64_t hidden,
                int64_t slices) override;

  std::unique_ptr<GraphState> captureGraph(int32_t rank,
                                           const StepBody &step) override;
  void replayGraph(int32_t rank, GraphState &graph) override;
  void destroyGraph(int32_t rank, GraphState &graph) override;

  // The helpers of the collectives.
  Scratch &scratch(int32_t rank) { return scratch_[rank]; }
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
  // First failure of the current run.
  int32_t failedRank_ = -1;
  moert_status_t failedStatus_ = MOERT_OK;
  std::string failedMessage_;
};

} // namespace moert::cpu

#endif // MOERT_CPU_BACKEND_H
