//===- runtime/nccl/Communicator.cpp - NCCL calls, errors, aborts ---------===//

#include "runtime/nccl/Communicator.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/cuda/Check.h"
#include "runtime/cuda/Transpose.h"

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

using namespace moert;
using namespace moert::nccl;

#define MOERT_NCCL_CHECK(call) settle((call), #call, __FILE__, __LINE__)

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto pollInterval = std::chrono::microseconds(200);

ncclDataType_t ncclType(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_F32:
    return ncclFloat32;
  case MOERT_F16:
    return ncclFloat16;
  case MOERT_BF16:
    return ncclBfloat16;
  case MOERT_I32:
    return ncclInt32;
  case MOERT_I64:
    return ncclInt64;
  case MOERT_U8:
    return ncclUint8;
  case MOERT_F8_E4M3:
    // Weights stay on the rank that loaded them.
    fail(MOERT_UNSUPPORTED, "collectives do not carry f8_e4m3");
  }
  fail(MOERT_INVALID_ARGUMENT, "unknown dtype ", static_cast<int>(dtype));
}

size_t elementBytes(moert_dtype_t dtype) {
  size_t bytes = moert::dtypeSize(dtype);
  require(bytes != 0, "unknown dtype ", static_cast<int>(dtype));
  return bytes;
}

// Initialisation before a communicator object exists: a plain check.
void checkInit(ncclResult_t result, const char *call) {
  if (result != ncclSuccess && result != ncclInProgress)
    fail(MOERT_INTERNAL, call, " failed: ", ncclGetErrorString(result), " (",
         ncclGetLastError(nullptr), ")");
}

ncclConfig_t nonBlockingConfig() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

} // namespace

Communicator::Communicator(ncclComm_t comm, int32_t timeoutMs, std::string name)
    : comm_(comm), timeoutMs_(timeoutMs), name_(std::move(name)) {
  // Non-blocking init: wait for it like any other call.
  settle(ncclInProgress, "ncclCommInitRankConfig", __FILE__, __LINE__);
  int value = 0;
  MOERT_NCCL_CHECK(ncclCommCount(comm_, &value));
  size_ = value;
  MOERT_NCCL_CHECK(ncclCommUserRank(comm_, &value));
  rank_ = value;
}

Communicator::~Communicator() {
  if (!comm_ || aborted_)
    return;
  // Finalize may be in progress on a non-blocking communicator; a failure
  // here cannot be reported from a destructor, so abort instead of waiting.
  ncclResult_t finalized = ncclCommFinalize(comm_);
  if (finalized == ncclSuccess || finalized == ncclInProgress) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs_);
    ncclResult_t state = ncclInProgress;
    while (state == ncclInProgress && Clock::now() < deadline) {
      ncclCommGetAsyncError(comm_, &state);
      std::this_thread::sleep_for(pollInterval);
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
      return;
    }
  }
  ncclCommAbort(comm_);
}

void Communicator::abort(moert_status_t status, const std::string &why) {
  if (!aborted_) {
    aborted_ = true;
    ncclCommAbort(comm_); // unblocks kernels waiting on the dead peer
  }
  fail(status, "NCCL communicator ", name_, " (rank ", rank_, " of ", size_,
       ") aborted: ", why);
}

void Communicator::requireLive() const {
  if (aborted_)
    fail(MOERT_ABORTED, "NCCL communicator ", name_, " was aborted earlier");
}

void Communicator::settle(ncclResult_t result, const char *call,
                          const char *file, int line) {
  requireLive();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs_);
  while (result == ncclInProgress) {
    if (Clock::now() > deadline)
      abort(MOERT_TIMEOUT, std::string(call) + " still in progress after " +
                               std::to_string(timeoutMs_) + " ms at " + file +
                               ":" + std::to_string(line));
    std::this_thread::sleep_for(pollInterval);
    ncclResult_t state = ncclSuccess;
    ncclResult_t query = ncclCommGetAsyncError(comm_, &state);
    result = query != ncclSuccess ? query : state;
  }
  if (result != ncclSuccess)
    abort(result == ncclRemoteError ? MOERT_ABORTED : MOERT_INTERNAL,
          std::string(call) + " failed at " + file + ":" +
              std::to_string(line) + ": " + ncclGetErrorString(result) + " (" +
              ncclGetLastError(comm_) + ")");
}

std::unique_ptr<Communicator>
Communicator::createWorld(const launch::RankInfo &info, int32_t timeoutMs) {
  ncclUniqueId id;
  std::vector<uint8_t> blob;
  if (info.rank == 0) {
    checkInit(ncclGetUniqueId(&id), "ncclGetUniqueId");
    blob.assign(reinterpret_cast<const uint8_t *>(&id),
                reinterpret_cast<const uint8_t *>(&id) + sizeof(id));
  }
  launch::RendezvousOptions options;
  options.timeoutMs = timeoutMs;
  blob = launch::rendezvousBroadcast(info, blob, options);
  require(blob.size() == sizeof(id), "rendezvous delivered ", blob.size(),
          " bytes, an ncclUniqueId has ", sizeof(id));
  std::memcpy(&id, blob.data(), sizeof(id));
  ncclConfig_t config = nonBlockingConfig();
  ncclComm_t comm = nullptr;
  checkInit(
      ncclCommInitRankConfig(&comm, info.worldSize, id, info.rank, &config),
      "ncclCommInitRankConfig");
  return std::unique_ptr<Communicator>(
      new Communicator(comm, timeoutMs, "world"));
}

std::unique_ptr<Communicator> Communicator::split(int32_t color, int32_t key) {
  ncclConfig_t config = nonBlockingConfig();
  ncclComm_t comm = nullptr;
  MOERT_NCCL_CHECK(ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color,
                                 key, &comm, &config));
  if (color < 0)
    return nullptr;
  return std::unique_ptr<Communicator>(
      new Communicator(comm, timeoutMs_, name_ + "/" + std::to_string(color)));
}

void Communicator::exchange(const Exchange &plan, const void *send, void *recv,
                            moert_dtype_t dtype, cudaStream_t stream) {
  ncclDataType_t type = ncclType(dtype);
  size_t bytes = elementBytes(dtype);
  requireLive(); // before the group opens
  // NCCL's group depth is per thread: a throw between Start and End must
  // still close the group, or every later NCCL call of the thread would be
  // deferred into it and never run.
  struct GroupCloser {
    bool open = false;
    ~GroupCloser() {
      if (open)
        (void)ncclGroupEnd(); // unwinding: the first error is reported
    }
  } group;
  MOERT_NCCL_CHECK(ncclGroupStart());
  group.open = true;
  for (const Transfer &t : plan.sends)
    if (t.count > 0)
      MOERT_NCCL_CHECK(
          ncclSend(static_cast<const char *>(send) + t.offset * bytes,
                   static_cast<size_t>(t.count), type, t.peer, comm_, stream));
  for (const Transfer &t : plan.recvs)
    if (t.count > 0)
      MOERT_NCCL_CHECK(ncclRecv(static_cast<char *>(recv) + t.offset * bytes,
                                static_cast<size_t>(t.count), type, t.peer,
                                comm_, stream));
  group.open = false;
  MOERT_NCCL_CHECK(ncclGroupEnd());
}

void Communicator::allReduce(const void *send, void *recv, int64_t count,
                             moert_dtype_t dtype, moert_reduce_op_t op,
                             cudaStream_t stream) {
  require(op == MOERT_REDUCE_SUM || op == MOERT_REDUCE_MAX,
          "unknown reduce op ", static_cast<int>(op));
  MOERT_NCCL_CHECK(
      ncclAllReduce(send, recv, static_cast<size_t>(count), ncclType(dtype),
                    op == MOERT_REDUCE_SUM ? ncclSum : ncclMax, comm_, stream));
}

void Communicator::allGather(const void *send, void *recv, int64_t count,
                             moert_dtype_t dtype, cudaStream_t stream) {
  MOERT_NCCL_CHECK(ncclAllGather(send, recv, static_cast<size_t>(count),
                                 ncclType(dtype), comm_, stream));
}

void Communicator::reduceScatter(const void *send, void *recv, int64_t count,
                                 moert_dtype_t dtype, cudaStream_t stream) {
  MOERT_NCCL_CHECK(ncclReduceScatter(send, recv, static_cast<size_t>(count),
                                     ncclType(dtype), ncclSum, comm_, stream));
}

void Communicator::wait(cudaStream_t stream) { waitAll({this}, stream); }

void Communicator::waitAll(const std::vector<Communicator *> &comms,
                           cudaStream_t stream) {
  require(!comms.empty(), "waitAll: no communicator");
  int32_t timeoutMs = comms.front()->timeoutMs_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  // Kernels of every communicator of the call may wait on the dead peer:
  // abort them all, then throw from the one at fault.
  auto abortAll = [&](Communicator &culprit, moert_status_t status,
                      const std::string &why) {
    for (Communicator *c : comms)
      if (c != &culprit && !c->aborted_) {
        c->aborted_ = true;
        ncclCommAbort(c->comm_);
      }
    culprit.abort(status, why);
  };
  for (;;) {
    cudaError_t done = cudaStreamQuery(stream);
    if (done == cudaSuccess)
      return;
    if (done != cudaErrorNotReady)
      MOERT_CUDA_CHECK(done);
    for (Communicator *c : comms) {
      ncclResult_t state = ncclSuccess;
      c->settle(ncclCommGetAsyncError(c->comm_, &state),
                "ncclCommGetAsyncError", __FILE__, __LINE__);
      if (state != ncclSuccess && state != ncclInProgress)
        abortAll(*c, MOERT_ABORTED,
                 std::string("asynchronous NCCL error: ") +
                     ncclGetErrorString(state) + " (" +
                     ncclGetLastError(c->comm_) + ")");
    }
    if (Clock::now() > deadline)
      abortAll(*comms.front(), MOERT_TIMEOUT,
               "stream not done after " + std::to_string(timeoutMs) +
                   " ms (a peer failed or hangs)");
    std::this_thread::sleep_for(pollInterval);
  }
}

void moert::nccl::hierarchicalAllToAll(
    Communicator &intra, Communicator &inter, moert_a2a_direction_t direction,
    const Extents &x, int32_t nodes, int32_t perNode, const void *send,
    void *recv, void *scratch, moert_dtype_t dtype, cudaStream_t stream) {
  require(nodes * perNode == x.members && intra.size() == perNode &&
              inter.size() == nodes,
          "hierarchical all_to_all: communicators do not match ", nodes, " x ",
          perNode);
  size_t bytes = elementBytes(dtype);
  int64_t rows = x.capacity * x.hidden, chunk = x.expertsLocal * rows;
  int64_t total = x.members * chunk;
  char *a = static_cast<char *>(scratch), *b = a + total * bytes,
       *c = b + total * bytes;
  HierarchicalPlan plan = hierarchicalChunks(nodes, perNode, x.member, chunk);
  const void *in = send;
  void *out = recv;
  if (direction == MOERT_A2A_FROM_EXPERTS) {
    // [E_local][q][rows] -> [q][E_local][rows]: destination-major.
    cuda::transposeChunks(send, c, x.expertsLocal, x.members, rows * bytes,
                          stream);
    in = c;
  } else {
    out = c; // staged source-major, transposed into recv at the end
  }
  cuda::transposeChunks(in, a, nodes, perNode, chunk * bytes, stream);
  intra.exchange(plan.intra, a, b, dtype, stream);
  cuda::transposeChunks(b, a, perNode, nodes, chunk * bytes, stream);
  inter.exchange(plan.inter, a, out, dtype, stream);
  if (direction == MOERT_A2A_TO_EXPERTS) // [p][E_local] -> [E_local][p]
    cuda::transposeChunks(c, recv, x.members, x.expertsLocal, rows * bytes,
                          stream);
}
