//===- runtime/cpu/Backend.h - CPU backend objects --------------*- C++ -*-===//
//
// The CPU backend runs every rank as a thread of one process. Buffers are
// host memory, collectives are shared-memory exchanges through a Rendezvous
// per rank group. Any wait gives up when a peer failed or exited (the world's
// abort flag) or after the world's timeout, so a broken rank never hangs the
// others.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_BACKEND_H
#define MOERT_CPU_BACKEND_H

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/moert.h"

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

} // namespace moert::cpu

namespace moert {
// A device backend's state behind a world or group (MOERT_BACKEND_CUDA:
// runtime/cuda/Api.cpp). The CPU objects own it; virtual destruction keeps
// the CPU backend free of any link dependency on the device libraries.
struct DeviceWorld {
  virtual ~DeviceWorld() = default;
};
struct DeviceGroup {
  virtual ~DeviceGroup() = default;
};
} // namespace moert

struct moert_world_s {
  moert_world_desc_t desc;
  int32_t size = 0;
  std::mutex mutex; // guards rendezvous, failure
  // Keyed by (purpose tag, member ranks): user groups and the sub-groups of
  // hierarchical all-to-alls never share a barrier.
  std::map<std::pair<int, std::vector<int32_t>>,
           std::shared_ptr<moert::cpu::Rendezvous>>
      rendezvous;
  std::atomic<bool> aborted{false};
  std::unique_ptr<std::atomic<bool>[]> exited;
  std::atomic<bool> running{false};
  // First failure of the current run.
  int32_t failedRank = -1;
  moert_status_t failedStatus = MOERT_OK;
  std::string failedMessage;
  // MOERT_BACKEND_CUDA: this process's device, stream and communicators.
  std::unique_ptr<moert::DeviceWorld> device;

  std::shared_ptr<moert::cpu::Rendezvous>
  getRendezvous(int tag, const std::vector<int32_t> &ranks);
  void recordFailure(int32_t rank, moert_status_t status,
                     const std::string &message);
};

struct moert_context_s {
  moert_world_s *world = nullptr;
  int32_t rank = 0;
  // moert_context_keep_group's groups, by slot (owned: destroyed with the
  // context when the rank's body returns).
  std::vector<std::unique_ptr<moert_group_s>> keptGroups;
  // Per-rank fp32 scratch panels, reused across calls (indexed by purpose).
  std::vector<std::vector<float>> scratch;
  std::vector<char> byteScratch[3];

  float *scratchFloats(size_t slot, size_t count) {
    if (scratch.size() <= slot)
      scratch.resize(slot + 1);
    if (scratch[slot].size() < count)
      scratch[slot].resize(count);
    return scratch[slot].data();
  }
  char *scratchBytes(size_t slot, size_t bytes) {
    if (byteScratch[slot].size() < bytes)
      byteScratch[slot].resize(bytes);
    return byteScratch[slot].data();
  }
};

struct moert_buffer_s {
  void *data = nullptr;
  size_t bytes = 0;
};

struct moert_group_s {
  moert_world_s *world = nullptr;
  std::vector<int32_t> ranks;
  int32_t member = 0;
  std::shared_ptr<moert::cpu::Rendezvous> rendezvous;
  // Hierarchical all-to-all sub-groups, made on first use.
  std::unique_ptr<moert_group_s> intraNode, interNode;
  // MOERT_BACKEND_CUDA: the group's NCCL communicators.
  std::unique_ptr<moert::DeviceGroup> device;
};

namespace moert::cpu {

void checkContext(moert_context_t ctx);

// Runs one rank's body: its status, and in `message` the error of a failing
// body (a non-OK return or any exception, which never escapes).
moert_status_t runRankBody(moert_context_t ctx, moert_rank_fn_t fn, void *user,
                           std::string &message);

// Pointer to `count` elements of an operand, after checking it is present,
// in bounds and of a known dtype.
char *viewData(moert_view_t view, int64_t count, const char *name);
void requireDtype(moert_view_t view, moert_dtype_t dtype, const char *name);
void requireFloatDtype(moert_view_t view, const char *name);
inline bool isPresent(moert_view_t view) { return view.buffer != nullptr; }
// A float operand of `count` elements in bounds (optional: absent is fine);
// what floatInput checks, for operands checked before a device route.
void checkFloatView(moert_view_t view, int64_t count, const char *name);
void checkOptionalFloatView(moert_view_t view, int64_t count,
                            const char *name);

// fp32 copy of an operand (no copy when it already is f32).
const float *floatInput(moert_context_t ctx, size_t slot, moert_view_t view,
                        int64_t count, const char *name);

// Blocks until every member of `rv` arrived; fails with ABORTED when the world
// aborts or a member has exited, and with TIMEOUT after the world timeout.
void barrier(moert_context_t ctx, Rendezvous &rv, const char *what);

inline bool onDevice(moert_context_t ctx) {
  return ctx->world->device != nullptr;
}

} // namespace moert::cpu

// Backend dispatch: every entry point validates its arguments here in
// runtime/cpu (the one place for shapes, dtypes and view bounds), then
// MOERT_ROUTE_DEVICE hands a CUDA world's call to runtime/cuda/Api.h before
// any host access to the views. Builds without CUDA never create a device
// world, so the route compiles away.
#if MOERT_WITH_CUDA
#include "runtime/cuda/Api.h"
#define MOERT_ROUTE_DEVICE(ctx, call)                                          \
  if (::moert::cpu::onDevice(ctx))                                             \
  return ::moert::cuda::api::call
#else
#define MOERT_ROUTE_DEVICE(ctx, call) static_cast<void>(0)
#endif

#endif // MOERT_CPU_BACKEND_H
