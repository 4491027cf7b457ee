//===- runtime/common/Backend.h - The interface of a backend ----*- C++ -*-===//
//
// What runtime/cpu and runtime/cuda implement, as peers: one virtual per
// operation of runtime/moert.h, called by runtime/api once it has checked
// the arguments (extents, dtypes, view bounds), with the checked views
// resolved to Operands. The API layer picks the backend when a world is
// created (as IREE's HAL dispatches through iree/hal/device.h's vtable).
// A rank is a world rank this process hosts inside moert_world_run. Errors
// are moert::Error; the API layer turns them into a status. The types the
// operations take are here, the operations in BackendOperations.def.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_BACKEND_H
#define MOERT_COMMON_BACKEND_H

#include "runtime/common/Convert.h"
#include "runtime/common/KvCache.h"
#include "runtime/common/LatentCache.h"
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

// A quantized weight's data and scales, stacked over experts.
struct QuantizedOperand {
  Operand data, scales;
};

// moert_quantized_ffn_desc_t with its weights checked: each expert's gate
// and up are [ffn, hidden], its down [hidden, ffn] (layouts in Quantized.h).
struct QuantizedFfnOperands {
  moert_weight_format_t format;
  int64_t blockRows, blockCols;
  moert_activation_t activation;
  int64_t hidden, ffn;
  QuantizedOperand gate, up, down;
};

// moert_quantized_experts_linear's weight with its views checked: each
// expert's [n, k] data and scales (layout() in Quantized.h).
struct QuantizedLinearOperands {
  moert_weight_format_t format;
  int64_t blockRows, blockCols;
  int64_t n, k;
  QuantizedOperand w;
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

// The operations, one virtual each: runtime/common/BackendOperations.def.
class Backend {
public:
  virtual ~Backend() = default;

#define MOERT_BACKEND_OPERATION(Result, Name, Parameters)                      \
  virtual Result Name Parameters = 0;
#include "runtime/common/BackendOperations.def"
};

} // namespace moert

#endif // MOERT_COMMON_BACKEND_H
