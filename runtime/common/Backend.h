//===- runtime/common/Backend.h - The interface of a backend ----*- C++ -*-===//
//
// What runtime/cpu and runtime/cuda implement, as peers: one virtual per
// operation of runtime/moert.h, called by runtime/api once it has checked
// the arguments (extents, dtypes, view bounds), with the checked views
// resolved to Operands. The API layer picks the backend when a world is
// created (as IREE's HAL dispatches through iree/hal/device.h's vtable).
// A rank is a world rank this process hosts inside moert_world_run. Errors
// are moert::Error; the API layer turns them into a status.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_BACKEND_H
#define MOERT_COMMON_BACKEND_H

#include "runtime/common/Convert.h"
#include "runtime/moert.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moert {

// A checked view: the address of its first element in the backend's memory
// (host memory on the CPU, device memory on CUDA) and its dtype. An absent
// optional operand has no data.
struct Operand {
  void *data = nullptr;
  moert_dtype_t dtype = MOERT_F32;

  bool present() const { return data != nullptr; }
  template <typename T> T *as() const { return static_cast<T *>(data); }
  // The operand `elements` elements further on.
  Operand at(int64_t elements) const {
    return {static_cast<char *>(data) + elements * dtypeSize(dtype), dtype};
  }
};

// moert_ffn_desc_t with its weights checked (absent ones have no data).
struct FfnOperands {
  moert_ffn_kind_t kind;
  moert_activation_t activation;
  int64_t hidden, ffn;
  Operand wGate, wUp, wDown, b1, b2;
  bool gated() const { return kind == MOERT_FFN_GATED; }
};

// moert_packed_ffn_desc_t with its weights checked.
struct PackedFfnOperands {
  moert_activation_t activation;
  int64_t hidden, ffn;
  Operand wGateUp, wDown;
};

// A rank group: its members' world ranks in member order and this rank's
// member index. Backends derive their state of the group from it.
class GroupState {
public:
  GroupState(std::vector<int32_t> ranks, int32_t member)
      : ranks(std::move(ranks)), member(member) {}
  virtual ~GroupState() = default;
  int32_t size() const { return static_cast<int32_t>(ranks.size()); }

  const std::vector<int32_t> ranks;
  const int32_t member;
};

// A captured step (moert_graph_capture).
class GraphState {
public:
  virtual ~GraphState() = default;
};

// moert_world_run's body for one rank, as the API layer wraps the caller's
// function: its status, and in `message` the error when it is not OK.
using RankBody =
    std::function<moert_status_t(int32_t rank, std::string &message)>;
// The step moert_graph_capture records, on the capturing rank's context.
using StepBody = std::function<moert_status_t(std::string &message)>;

class Backend {
public:
  virtual ~Backend() = default;

  // Runs body once for every rank this process hosts; throws the first
  // failure.
  virtual void run(const RankBody &body) = 0;

  // Buffers (an Operand's data is inside an allocation of the same rank).
  virtual void *allocate(int32_t rank, size_t bytes) = 0;
  // Frees an allocation; a failure throws after the memory is given up.
  virtual void release(int32_t rank, void *data) = 0;
  virtual void upload(int32_t rank, Operand dst, const void *src,
                      int64_t count) = 0;
  virtual void download(int32_t rank, void *dst, Operand src,
                        int64_t count) = 0;
  virtual void fill(int32_t rank, Operand dst, int64_t count, double value) = 0;
  virtual void copy(int32_t rank, Operand src, Operand dst, int64_t count) = 0;
  // Weights: `produce` writes `count` elements of dst's dtype into the host
  // memory it is given (dst itself when the backend's memory is the host's).
  virtual void
  writeFromHost(int32_t rank, Operand dst, int64_t count,
                const std::function<void(void *host)> &produce) = 0;

  // Router and gate; the gate and its slot stage return the capacity C.
  virtual void router(int32_t rank, Operand x, Operand wg, Operand bias,
                      Operand logits, int64_t tokens, int64_t hidden,
                      int64_t experts) = 0;
  virtual int64_t gate(int32_t rank, const moert_gate_config_t &cfg,
                       Operand logits, Operand correctionBias, int64_t tokens,
                       Operand ids, Operand weights, Operand slots,
                       Operand counts) = 0;
  virtual void gateScores(int32_t rank, const moert_gate_config_t &cfg,
                          Operand logits, int64_t tokens, Operand scores) = 0;
  virtual void gateSelect(int32_t rank, const moert_gate_config_t &cfg,
                          Operand scores, Operand correctionBias,
                          int64_t tokens, Operand ids, Operand weights) = 0;
  virtual int64_t gateSlots(int32_t rank, const moert_gate_config_t &cfg,
                            Operand ids, Operand weights, int64_t tokens,
                            Operand slots, Operand counts) = 0;
  virtual void gateNormalize(int32_t rank, const moert_gate_config_t &cfg,
                             Operand slots, int64_t tokens,
                             Operand weights) = 0;

  // Permutation between token-major and expert-major rows.
  virtual void dispatch(int32_t rank, Operand x, Operand ids, Operand slots,
                        Operand buf, int64_t tokens, int64_t hidden,
                        int64_t topK, int64_t experts, int64_t capacity) = 0;
  virtual void combine(int32_t rank, Operand y, Operand ids, Operand slots,
                       Operand weights, Operand addend, Operand out,
                       int64_t tokens, int64_t hidden, int64_t topK,
                       int64_t experts, int64_t capacity) = 0;
  virtual void fusedCombine(int32_t rank, Operand y, Operand ids, Operand slots,
                            Operand weights, Operand mlpOut, Operand wc,
                            Operand bc, Operand shared, Operand wSg, Operand x,
                            Operand addend, Operand out, int64_t tokens,
                            int64_t hidden, int64_t topK, int64_t experts,
                            int64_t capacity) = 0;

  // FFNs. rows: the [experts, blocks] used-row counts, absent when every
  // row is used; their values are the backend's to check.
  virtual void experts(int32_t rank, const FfnOperands &ffn, Operand in,
                       Operand out, Operand rows, int64_t experts,
                       int64_t capacity, int64_t blocks) = 0;
  virtual void expertsLinear(int32_t rank, Operand w, Operand in, Operand out,
                             Operand rows, int64_t experts, int64_t capacity,
                             int64_t blocks, int64_t n, int64_t k) = 0;
  virtual void activation(int32_t rank, moert_activation_t activation,
                          Operand x, Operand out, int64_t count) = 0;
  virtual void multiply(int32_t rank, Operand a, Operand b, Operand out,
                        int64_t count) = 0;
  // shared: the folded shared expert, or null (then tokens is 0).
  virtual void fusedExperts(int32_t rank, const PackedFfnOperands &ffn,
                            Operand in, Operand out, Operand rows,
                            int64_t experts, int64_t capacity, int64_t blocks,
                            const PackedFfnOperands *shared, Operand sharedX,
                            Operand sharedOut, int64_t tokens) = 0;
  virtual void denseFfn(int32_t rank, const FfnOperands &ffn, Operand x,
                        Operand out, int64_t tokens) = 0;

  // Element-wise mixes.
  virtual void residualMix(int32_t rank, Operand x, Operand wc, Operand bc,
                           Operand moeOut, Operand mlpOut, Operand out,
                           int64_t tokens, int64_t hidden) = 0;
  virtual void sharedAdd(int32_t rank, Operand routed, Operand shared,
                         Operand x, Operand wSg, Operand out, int64_t tokens,
                         int64_t hidden) = 0;
  virtual void add(int32_t rank, Operand a, Operand b, Operand out,
                   int64_t count) = 0;

  // Groups and collectives.
  virtual std::unique_ptr<GroupState>
  createGroup(int32_t rank, std::vector<int32_t> ranks, int32_t member) = 0;
  virtual void barrier(int32_t rank, GroupState &group) = 0;
  virtual void allReduce(int32_t rank, GroupState &group, moert_reduce_op_t op,
                         Operand send, Operand recv, int64_t count) = 0;
  virtual void allGather(int32_t rank, GroupState &group, Operand send,
                         Operand recv, int64_t count) = 0;
  virtual void reduceScatter(int32_t rank, GroupState &group, Operand send,
                             Operand recv, int64_t count) = 0;
  virtual int64_t allReduceI64(int32_t rank, GroupState &group,
                               moert_reduce_op_t op, int64_t value) = 0;
  virtual void allToAll(int32_t rank, GroupState &group,
                        moert_a2a_direction_t direction,
                        moert_a2a_algorithm_t algorithm, Operand send,
                        Operand recv, int64_t expertsLocal, int64_t capacity,
                        int64_t hidden, int64_t slices) = 0;

  // Captured steps.
  virtual std::unique_ptr<GraphState> captureGraph(int32_t rank,
                                                   const StepBody &step) = 0;
  virtual void replayGraph(int32_t rank, GraphState &graph) = 0;
  // Tears a graph down before the API layer deletes it; may throw.
  virtual void destroyGraph(int32_t rank, GraphState &graph) = 0;
};

} // namespace moert

#endif // MOERT_COMMON_BACKEND_H
