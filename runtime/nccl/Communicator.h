//===- runtime/nccl/Communicator.h - NCCL communicators ---------*- C++ -*-===//
//
// One NCCL communicator per rank group, split from the world communicator
// (whose unique id travels over runtime/launch's rendezvous). Every
// communicator is non-blocking: each NCCL call and each wait polls
// ncclCommGetAsyncError against a deadline and aborts the communicator
// (ncclCommAbort) on an error or timeout, so a failed or hung peer ends the
// run with moert::Error (MOERT_ABORTED / MOERT_TIMEOUT), never a silent hang.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_NCCL_COMMUNICATOR_H
#define MOERT_NCCL_COMMUNICATOR_H

#include "runtime/launch/Launch.h"
#include "runtime/moert.h"
#include "runtime/nccl/Plan.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <vector>

namespace moert::nccl {

class Communicator {
public:
  // The world: rank 0 creates the unique id, the rendezvous broadcasts it.
  static std::unique_ptr<Communicator> createWorld(const launch::RankInfo &info,
                                                   int32_t timeoutMs);
  // Collective over this communicator: members passing the same color form
  // one new communicator, ordered by key. color < 0: not a member (returns
  // null).
  std::unique_ptr<Communicator> split(int32_t color, int32_t key);
  ~Communicator();
  Communicator(const Communicator &) = delete;
  Communicator &operator=(const Communicator &) = delete;

  int32_t size() const { return size_; }
  int32_t rank() const { return rank_; }

  // The sends and receives of `plan` in one ncclGroupStart/End.
  void exchange(const Exchange &plan, const void *send, void *recv,
                moert_dtype_t dtype, cudaStream_t stream);
  void allReduce(const void *send, void *recv, int64_t count,
                 moert_dtype_t dtype, moert_reduce_op_t op,
                 cudaStream_t stream);
  void allGather(const void *send, void *recv, int64_t count,
                 moert_dtype_t dtype, cudaStream_t stream);
  void reduceScatter(const void *send, void *recv, int64_t count,
                     moert_dtype_t dtype, cudaStream_t stream);

  // Blocks until `stream` is done, polling NCCL's async error; aborts and
  // throws on an error or after the timeout.
  void wait(cudaStream_t stream);
  // The same over several communicators whose calls share the stream
  // (hierarchical all-to-all): an error or timeout aborts all of them.
  static void waitAll(const std::vector<Communicator *> &comms,
                      cudaStream_t stream);

private:
  Communicator(ncclComm_t comm, int32_t timeoutMs, std::string name);
  // Throws MOERT_ABORTED once the communicator was aborted.
  void requireLive() const;
  // Waits out ncclInProgress of the last call, then checks its result.
  void settle(ncclResult_t result, const char *call, const char *file,
              int line);
  [[noreturn]] void abort(moert_status_t status, const std::string &why);

  ncclComm_t comm_;
  int32_t size_ = 0, rank_ = 0, timeoutMs_;
  std::string name_;
  bool aborted_ = false;
};

// Hierarchical expert-major all-to-all (moert_all_to_all HIERARCHICAL):
// intra and inter are this rank's node and same-local-rank communicators;
// scratch holds 3 x the buffer.
void hierarchicalAllToAll(Communicator &intra, Communicator &inter,
                          moert_a2a_direction_t direction, const Extents &x,
                          int32_t nodes, int32_t perNode, const void *send,
                          void *recv, void *scratch, moert_dtype_t dtype,
                          cudaStream_t stream);

} // namespace moert::nccl

#endif // MOERT_NCCL_COMMUNICATOR_H
