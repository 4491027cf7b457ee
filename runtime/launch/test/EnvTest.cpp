//===- runtime/launch/test/EnvTest.cpp - Rank discovery from env ----------===//

#include "runtime/launch/Launch.h"

#include "runtime/common/Error.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

using namespace moert;
using namespace moert::launch;

namespace {

using Env = std::map<std::string, std::string>;

RankInfo discover(const Env &env) {
  return discoverRank([&](const char *name) -> const char * {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// Expects discovery to fail with INVALID_ARGUMENT and a message naming
// `fragment`.
void expectRejected(const Env &env, const std::string &fragment) {
  try {
    RankInfo info = discover(env);
    ADD_FAILURE() << "accepted, rank " << info.rank << " of " << info.worldSize
                  << "; expected an error about " << fragment;
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), MOERT_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message: " << e.what();
  }
}

TEST(LaunchEnv, NothingSetIsOneProcess) {
  RankInfo info = discover({});
  EXPECT_EQ(info.source, "default");
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.worldSize, 1);
  EXPECT_EQ(info.localRank, 0);
  EXPECT_EQ(info.localSize, -1);
  EXPECT_TRUE(info.masterAddr.empty());
  EXPECT_EQ(info.masterPort, -1);
}

TEST(LaunchEnv, RendezvousPort) {
  Env torchrun = {{"RANK", "0"},
                  {"WORLD_SIZE", "2"},
                  {"LOCAL_RANK", "0"},
                  {"MASTER_ADDR", "node0"},
                  {"MASTER_PORT", "29500"}};
  EXPECT_EQ(discover(torchrun).masterPort, 29500);
  // torchrun's agent keeps its store on MASTER_PORT: the next one.
  Env agent = torchrun;
  agent["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  EXPECT_EQ(discover(agent).masterPort, 29501);
  Env chosen = agent;
  chosen["MOERT_RENDEZVOUS_PORT"] = "31000";
  EXPECT_EQ(discover(chosen).masterPort, 31000);
}

TEST(LaunchEnv, OpenMpi) {
  RankInfo info = discover({{"OMPI_COMM_WORLD_RANK", "5"},
                            {"OMPI_COMM_WORLD_SIZE", "8"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                            {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                            {"MASTER_ADDR", "node0"},
                            {"MASTER_PORT", "29500"}});
  EXPECT_EQ(info.source, "openmpi");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.worldSize, 8);
  EXPECT_EQ(info.localRank, 1);
  EXPECT_EQ(info.localSize, 4);
  EXPECT_EQ(info.masterAddr, "node0");
  EXPECT_EQ(info.masterPort, 29500);
}

TEST(LaunchEnv, Torchrun) {
  RankInfo info = discover({{"RANK", "3"},
                            {"WORLD_SIZE", "4"},
                            {"LOCAL_RANK", "3"},
                            {"LOCAL_WORLD_SIZE", "4"},
                            {"MASTER_ADDR", "127.0.0.1"},
                            {"MASTER_PORT", "1"}});
  EXPECT_EQ(info.source, "torchrun");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.worldSize, 4);
  EXPECT_EQ(info.localRank, 3);
  EXPECT_EQ(info.localSize, 4);
  EXPECT_EQ(info.masterPort, 1);
}

TEST(LaunchEnv, Slurm) {
  RankInfo info = discover(
      {{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "2"}});
  EXPECT_EQ(info.source, "slurm");
  EXPECT_EQ(info.rank, 6);
  EXPECT_EQ(info.worldSize, 16);
  EXPECT_EQ(info.localRank, 2);
}

TEST(LaunchEnv, OpenMpiWinsWhenLaunchersAgree) {
  RankInfo info = discover({{"OMPI_COMM_WORLD_RANK", "1"},
                            {"OMPI_COMM_WORLD_SIZE", "2"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                            {"RANK", "1"},
                            {"WORLD_SIZE", "2"},
                            {"SLURM_PROCID", "1"},
                            {"SLURM_NTASKS", "2"}});
  EXPECT_EQ(info.source, "openmpi");
  EXPECT_EQ(info.rank, 1);
}

TEST(LaunchEnv, MpirunInsideOneTaskAllocationIsFine) {
  RankInfo info = discover({{"OMPI_COMM_WORLD_RANK", "3"},
                            {"OMPI_COMM_WORLD_SIZE", "4"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "3"},
                            {"SLURM_PROCID", "0"},
                            {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(info.rank, 3);
}

TEST(LaunchEnv, LaunchersThatDisagreeAreRejected) {
  expectRejected({{"OMPI_COMM_WORLD_RANK", "1"},
                  {"OMPI_COMM_WORLD_SIZE", "2"},
                  {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                  {"RANK", "0"}},
                 "disagrees with OMPI_COMM_WORLD_RANK");
  expectRejected({{"RANK", "1"},
                  {"WORLD_SIZE", "2"},
                  {"LOCAL_RANK", "1"},
                  {"SLURM_PROCID", "0"},
                  {"SLURM_NTASKS", "2"}},
                 "SLURM_PROCID=0 disagrees");
}

TEST(LaunchEnv, HalfGivenSetsAreRejected) {
  expectRejected({{"RANK", "0"}}, "WORLD_SIZE is not set");
  expectRejected({{"WORLD_SIZE", "2"}}, "RANK is not set");
  expectRejected({{"OMPI_COMM_WORLD_SIZE", "2"}},
                 "OMPI_COMM_WORLD_RANK is not set");
  expectRejected({{"RANK", "1"}, {"WORLD_SIZE", "2"}}, "LOCAL_RANK is not set");
}

TEST(LaunchEnv, MalformedNumbersAreRejected) {
  for (const char *bad :
       {"", "x", "1x", " 1", "+1", "0x10", "1.0", "99999999999999999999"})
    expectRejected({{"RANK", bad}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}},
                   "RANK");
  expectRejected({{"RANK", "-1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}},
                 "outside");
  expectRejected({{"RANK", "0"}, {"WORLD_SIZE", "0"}, {"LOCAL_RANK", "0"}},
                 "WORLD_SIZE=0 is outside");
}

TEST(LaunchEnv, InconsistentValuesAreRejected) {
  expectRejected({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}},
                 "RANK=4 is not below WORLD_SIZE=4");
  expectRejected({{"RANK", "1"},
                  {"WORLD_SIZE", "4"},
                  {"LOCAL_RANK", "2"},
                  {"LOCAL_WORLD_SIZE", "2"}},
                 "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2");
  expectRejected({{"RANK", "1"},
                  {"WORLD_SIZE", "4"},
                  {"LOCAL_RANK", "0"},
                  {"LOCAL_WORLD_SIZE", "8"}},
                 "LOCAL_WORLD_SIZE=8 is outside");
  expectRejected(
      {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "5"}},
      "not below the world size");
}

TEST(LaunchEnv, MasterAddressAndPortAreChecked) {
  expectRejected({{"MASTER_PORT", "0"}}, "MASTER_PORT=0 is outside");
  expectRejected({{"MASTER_PORT", "65536"}}, "MASTER_PORT=65536 is outside");
  expectRejected({{"MASTER_PORT", "http"}}, "MASTER_PORT='http'");
  expectRejected({{"MASTER_PORT", "65535"},
                  {"TORCHELASTIC_USE_AGENT_STORE", "True"}},
                 "set MOERT_RENDEZVOUS_PORT");
  expectRejected({{"MOERT_RENDEZVOUS_PORT", "0"}},
                 "MOERT_RENDEZVOUS_PORT=0 is outside");
  expectRejected({{"MASTER_ADDR", ""}}, "MASTER_ADDR is empty");
}

TEST(LaunchEnv, ReadsTheProcessEnvironment) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "3", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  RankInfo info = discoverRankFromProcessEnv();
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("LOCAL_RANK");
  // The test runner itself must not be inside a launcher for this to hold.
  if (info.source == "openmpi" || std::getenv("OMPI_COMM_WORLD_RANK"))
    GTEST_SKIP() << "running under mpirun";
  EXPECT_EQ(info.source, "torchrun");
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.worldSize, 3);
}


// Expects checkMesh to reject `info` on a nodes x perNode mesh with a
// message naming `fragment`.
void expectMeshRejected(const RankInfo &info, int32_t nodes, int32_t perNode,
                        const std::string &fragment) {
  try {
    checkMesh(info, nodes, perNode);
    ADD_FAILURE() << "mesh " << nodes << "x" << perNode << " accepted rank "
                  << info.rank << " of " << info.worldSize;
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), MOERT_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message: " << e.what();
  }
}

TEST(LaunchMesh, SingleProcessFitsOneByOne) {
  checkMesh(discover({}), 1, 1);
  expectMeshRejected(discover({}), 1, 2, "has 1 processes but the mesh 1x2");
}

TEST(LaunchMesh, TorchrunWorldMustMatchTheMesh) {
  Env env{{"RANK", "5"},
          {"WORLD_SIZE", "8"},
          {"LOCAL_RANK", "1"},
          {"LOCAL_WORLD_SIZE", "4"}};
  checkMesh(discover(env), 2, 4);
  expectMeshRejected(discover(env), 4, 4, "torchrun launch has 8 processes");
  expectMeshRejected(discover(env), 1, 8, "local rank 1");
  expectMeshRejected(discover(env), 4, 2, "runs 4 processes per node");
}

TEST(LaunchMesh, LocalSizeMustBeGpusPerNode) {
  RankInfo info = discover({{"OMPI_COMM_WORLD_RANK", "3"},
                            {"OMPI_COMM_WORLD_SIZE", "4"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                            {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  expectMeshRejected(info, 2, 2, "runs 4 processes per node");
  EXPECT_THROW(checkMesh(info, 0, 4), Error);
}

} // namespace
