//===- runtime/launch/Env.cpp - Rank and world from the environment -------===//

#include "runtime/launch/Launch.h"

#include "runtime/common/Error.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string>

using namespace moert;
using namespace moert::launch;

namespace {

// Strict decimal parse: the whole value, no sign games, within [lo, hi].
int32_t parseInt(const char *name, const char *value, long lo, long hi) {
  require(*value != '\0', "environment variable ", name, " is empty");
  errno = 0;
  char *end = nullptr;
  long parsed = std::strtol(value, &end, 10);
  require(errno == 0 && *end == '\0' && end != value &&
              (value[0] == '-' || (value[0] >= '0' && value[0] <= '9')),
          "environment variable ", name, "='", value,
          "' is not a decimal integer");
  require(parsed >= lo && parsed <= hi, "environment variable ", name, "=",
          parsed, " is outside [", lo, ", ", hi, "]");
  return static_cast<int32_t>(parsed);
}

struct Reader {
  const EnvLookup &env;
  const char *get(const char *name) const { return env(name); }
  bool has(const char *name) const { return env(name) != nullptr; }
  int32_t integer(const char *name, long lo, long hi = INT32_MAX) const {
    const char *value = env(name);
    require(value != nullptr, "environment variable ", name, " is not set");
    return parseInt(name, value, lo, hi);
  }
};

// Reads a launcher's variables: all of rank/size or none.
bool readSet(const Reader &r, const char *source, const char *rankVar,
             const char *sizeVar, const char *localVar,
             const char *localSizeVar, RankInfo &info) {
  bool hasRank = r.has(rankVar), hasSize = r.has(sizeVar);
  if (!hasRank && !hasSize)
    return false;
  require(hasRank && hasSize, source, " launch: ", hasRank ? sizeVar : rankVar,
          " is not set but ", hasRank ? rankVar : sizeVar, " is");
  info.source = source;
  info.worldSize = r.integer(sizeVar, 1);
  info.rank = r.integer(rankVar, 0);
  require(info.rank < info.worldSize, source, " launch: ", rankVar, "=",
          info.rank, " is not below ", sizeVar, "=", info.worldSize);
  if (localSizeVar && r.has(localSizeVar))
    info.localSize = r.integer(localSizeVar, 1, info.worldSize);
  if (r.has(localVar)) {
    info.localRank = r.integer(localVar, 0);
  } else {
    // The local rank picks the GPU: guessing could put two ranks on one.
    require(info.worldSize == 1, source, " launch: ", localVar,
            " is not set (it selects this rank's GPU)");
    info.localRank = 0;
  }
  if (info.localSize > 0)
    require(info.localRank < info.localSize, source, " launch: ", localVar, "=",
            info.localRank, " is not below ", localSizeVar, "=",
            info.localSize);
  require(info.localRank < info.worldSize, source, " launch: ", localVar, "=",
          info.localRank, " is not below the world size ", info.worldSize);
  return true;
}

} // namespace

RankInfo moert::launch::discoverRank(const EnvLookup &env) {
  Reader r{env};
  RankInfo info;
  info.source = "default";
  if (!readSet(r, "openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
               "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
               info) &&
      !readSet(r, "torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK",
               "LOCAL_WORLD_SIZE", info))
    readSet(r, "slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
            nullptr, info);

  // A second launcher's variables that disagree mean a stale export or a
  // nested launch: refuse instead of guessing which one is right.
  if (info.source == "openmpi" && r.has("RANK")) {
    int32_t other = r.integer("RANK", 0);
    require(other == info.rank, "RANK=", other,
            " disagrees with OMPI_COMM_WORLD_RANK=", info.rank);
  }
  if (info.source != "slurm" && info.source != "default" &&
      r.has("SLURM_PROCID") && r.has("SLURM_NTASKS")) {
    int32_t size = r.integer("SLURM_NTASKS", 1);
    // Inside an allocation with one srun task per process the sizes match;
    // an mpirun inside a single-task allocation legitimately differs.
    if (size == info.worldSize) {
      int32_t rank = r.integer("SLURM_PROCID", 0);
      require(rank == info.rank, "SLURM_PROCID=", rank, " disagrees with ",
              info.source, " rank ", info.rank);
    }
  }

  if (const char *addr = r.get("MASTER_ADDR")) {
    require(*addr != '\0', "environment variable MASTER_ADDR is empty");
    info.masterAddr = addr;
  }
  if (r.has("MOERT_RENDEZVOUS_PORT")) {
    info.masterPort = r.integer("MOERT_RENDEZVOUS_PORT", 1, 65535);
  } else if (r.has("MASTER_PORT")) {
    info.masterPort = r.integer("MASTER_PORT", 1, 65535);
    // torchrun's agent serves its own store on MASTER_PORT and tells its
    // workers so: the rendezvous takes the next port.
    const char *agentStore = r.get("TORCHELASTIC_USE_AGENT_STORE");
    if (agentStore && std::string(agentStore) == "True") {
      require(info.masterPort < 65535, "MASTER_PORT=", info.masterPort,
              " is torchrun's store and leaves no next port for the "
              "rendezvous: set MOERT_RENDEZVOUS_PORT");
      ++info.masterPort;
    }
  }
  return info;
}

RankInfo moert::launch::discoverRankFromProcessEnv() {
  return discoverRank([](const char *name) { return std::getenv(name); });
}

void moert::launch::checkMesh(const RankInfo &info, int32_t nodes,
                              int32_t gpusPerNode) {
  require(nodes >= 1 && gpusPerNode >= 1, "mesh must be at least 1x1, got ",
          nodes, "x", gpusPerNode);
  int64_t meshSize = int64_t(nodes) * gpusPerNode;
  require(info.worldSize == meshSize, "the ", info.source, " launch has ",
          info.worldSize, " processes but the mesh ", nodes, "x", gpusPerNode,
          " needs ", meshSize, " (one process per GPU)");
  require(info.localRank == info.rank % gpusPerNode, "rank ", info.rank,
          " has local rank ", info.localRank, " from the ", info.source,
          " launch, but the mesh ", nodes, "x", gpusPerNode,
          " puts it at local index ", info.rank % gpusPerNode,
          " (ranks must be placed node by node)");
  require(info.localSize < 0 || info.localSize == gpusPerNode, "the ",
          info.source, " launch runs ", info.localSize,
          " processes per node but the mesh has ", gpusPerNode,
          " GPUs per node");
}
