//===- runtime/launch/Launch.h - Rank discovery and rendezvous --*- C++ -*-===//
//
// One process per GPU: each process learns its rank from the launcher's
// environment (mpirun, torchrun, Slurm) and the ranks agree on an opaque
// blob (the NCCL unique id) through a small TCP rendezvous on
// MASTER_ADDR:MASTER_PORT. Plain C++ and POSIX sockets: no CUDA needed.
// Errors are moert::Error (runtime/common/Error.h) with a message naming the
// variable, peer or address at fault.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_LAUNCH_LAUNCH_H
#define MOERT_LAUNCH_LAUNCH_H

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moert::launch {

struct RankInfo {
  int32_t rank = 0;
  int32_t worldSize = 1;
  int32_t localRank = 0;
  int32_t localSize = -1; // -1: the launcher did not say
  std::string masterAddr; // empty: not given
  int32_t masterPort = -1; // the rendezvous port (see discoverRank)
  std::string source; // "openmpi", "torchrun", "slurm" or "default"
};

// Looks a variable up; returns null when it is unset.
using EnvLookup = std::function<const char *(const char *)>;

// Discovers rank/world from, in order: OpenMPI (OMPI_COMM_WORLD_*), torchrun
// style (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), Slurm
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID); none set: a single process.
// MASTER_ADDR / MASTER_PORT are read in every case; the rendezvous port is
// MOERT_RENDEZVOUS_PORT when set, else MASTER_PORT, plus one under torchrun
// (TORCHELASTIC_USE_AGENT_STORE=True: its agent's store holds MASTER_PORT).
// Rejects non-numeric or out-of-range values, half-given sets, and
// launchers that disagree.
RankInfo discoverRank(const EnvLookup &env);
RankInfo discoverRankFromProcessEnv();

// A CUDA world (one process per GPU) over a nodes x gpusPerNode mesh: the
// launcher's world size must be nodes * gpusPerNode, the local rank must be
// rank % gpusPerNode (moert_context_local_rank, and the device this process
// selects) and, when the launcher gives it, the local size gpusPerNode.
// Throws MOERT_INVALID_ARGUMENT naming the launcher and the mismatch.
void checkMesh(const RankInfo &info, int32_t nodes, int32_t gpusPerNode);

struct RendezvousOptions {
  int32_t timeoutMs = 60000; // whole rendezvous, connect retries included
  int32_t retryDelayMs = 50; // first retry delay; doubles up to 1 s
  int32_t maxBlobBytes = 1 << 20;
};

// Every rank calls this; rank 0 listens on masterPort (every interface of
// masterAddr's address family: a hostname may resolve to loopback on its
// own host), the others
// connect (retrying refused connections until the timeout). Rank 0 passes
// `blob`, waits for all world-1 peers, then sends it to each; every rank
// returns rank 0's blob. Fails with MOERT_TIMEOUT naming the missing ranks
// (rank 0) or the unreachable address (others), never hangs.
std::vector<uint8_t> rendezvousBroadcast(const RankInfo &info,
                                         const std::vector<uint8_t> &blob,
                                         const RendezvousOptions &options = {});

} // namespace moert::launch

#endif // MOERT_LAUNCH_LAUNCH_H
