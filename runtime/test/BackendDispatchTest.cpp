//===- runtime/test/BackendDispatchTest.cpp - CUDA worlds on the host -----===//
//
// What a MOERT_BACKEND_CUDA world does on a machine (or build) without CUDA,
// and how it maps the launch environment onto the mesh. Runs everywhere; on
// a machine with a GPU the tests that expect no device are skipped.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <cstdlib>
#include <initializer_list>
#include <utility>

using namespace moert;
using namespace moert::test;

namespace {

// The launchers' variables, set for one test and cleared after it.
class LaunchEnv {
public:
  explicit LaunchEnv(
      std::initializer_list<std::pair<const char *, const char *>> vars) {
    clear();
    for (const auto &[name, value] : vars)
      setenv(name, value, 1);
  }
  ~LaunchEnv() { clear(); }

private:
  static void clear() {
    for (const char *name :
         {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
          "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "RANK",
          "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_PROCID",
          "SLURM_NTASKS", "SLURM_LOCALID", "MASTER_ADDR", "MASTER_PORT"})
      unsetenv(name);
  }
};

moert_status_t createCudaWorld(int32_t nodes, int32_t gpusPerNode) {
  moert_world_desc_t desc{MOERT_BACKEND_CUDA, nodes, gpusPerNode, 0};
  moert_world_t world = nullptr;
  moert_status_t status = moert_world_create(&desc, &world);
  EXPECT_EQ(status == MOERT_OK, world != nullptr);
  moert_world_destroy(world);
  return status;
}

TEST(CudaWorld, FailsWithUnsupportedWithoutCudaOrDevice) {
  LaunchEnv env({});
  moert_status_t status = createCudaWorld(1, 1);
  if (status == MOERT_OK)
    GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(status, MOERT_UNSUPPORTED) << moert_last_error();
#if MOERT_WITH_CUDA
  EXPECT_NE(std::string(moert_last_error()).find("no usable CUDA device"),
            std::string::npos)
      << moert_last_error();
#else
  EXPECT_NE(std::string(moert_last_error()).find("built without CUDA"),
            std::string::npos)
      << moert_last_error();
#endif
}

// The mesh is checked against the launch environment before any device is
// touched, so these run on the host.
#if MOERT_WITH_CUDA
TEST(CudaWorld, WorldSizeMustMatchTheMesh) {
  LaunchEnv env({{"RANK", "1"},
                 {"WORLD_SIZE", "4"},
                 {"LOCAL_RANK", "1"},
                 {"MASTER_ADDR", "127.0.0.1"},
                 {"MASTER_PORT", "29500"}});
  EXPECT_MOERT_ERROR(createCudaWorld(1, 2), MOERT_INVALID_ARGUMENT,
                     "torchrun launch has 4 processes but the mesh 1x2 needs "
                     "2");
}

TEST(CudaWorld, LocalRankMustBeTheMeshColumn) {
  LaunchEnv env({{"OMPI_COMM_WORLD_RANK", "2"},
                 {"OMPI_COMM_WORLD_SIZE", "4"},
                 {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                 {"MASTER_ADDR", "127.0.0.1"},
                 {"MASTER_PORT", "29500"}});
  EXPECT_MOERT_ERROR(createCudaWorld(2, 2), MOERT_INVALID_ARGUMENT,
                     "puts it at local index 0");
}

TEST(CudaWorld, MalformedLaunchVariablesAreErrors) {
  LaunchEnv env({{"RANK", "one"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}});
  EXPECT_MOERT_ERROR(createCudaWorld(1, 2), MOERT_INVALID_ARGUMENT, "RANK");
}

TEST(CudaWorld, NoLauncherIsAWorldOfOne) {
  LaunchEnv env({});
  EXPECT_MOERT_ERROR(createCudaWorld(2, 1), MOERT_INVALID_ARGUMENT,
                     "default launch has 1 processes but the mesh 2x1");
}
#endif

TEST(CudaWorld, CpuWorldsStayOnTheCpu) {
  // A CUDA-enabled build routes nothing of a CPU world to the device.
  onOneRank([](moert_context_t ctx) {
    Buffer a(ctx, 4 * sizeof(float));
    check(moert_buffer_fill(ctx, a.view(MOERT_F32), 4, 2.0));
    check(moert_add(ctx, a.view(MOERT_F32), a.view(MOERT_F32),
                    a.view(MOERT_F32), 4));
    EXPECT_EQ(a.download<float>(MOERT_F32, 4),
              (std::vector<float>{4, 4, 4, 4}));
  });
}

TEST(CudaWorld, CpuBuffersHaveHostAddresses) {
  // A view's host address is its element in the buffer: writes through it
  // are what download reads, and the view is bounds-checked like any other.
  onOneRank([](moert_context_t ctx) {
    Buffer a(ctx, 4 * sizeof(float));
    check(moert_buffer_fill(ctx, a.view(MOERT_F32), 4, 0.0));
    moert_view_t second = a.view(MOERT_F32);
    second.offset = 1;
    void *address = nullptr;
    check(moert_buffer_host_address(ctx, second, &address));
    static_cast<float *>(address)[0] = 5.0f;
    EXPECT_EQ(a.download<float>(MOERT_F32, 4),
              (std::vector<float>{0, 5, 0, 0}));
    moert_view_t past = second;
    past.offset = 4; // one past the last element
    EXPECT_MOERT_ERROR(moert_buffer_host_address(ctx, past, &address),
                       MOERT_INVALID_ARGUMENT, "runs past its buffer");
    EXPECT_EQ(address, nullptr);
  });
}

TEST(CudaWorld, FusedExpertsValidatesOnEveryBackend) {
  // The checks run before the backend is chosen (here: the CPU one).
  onOneRank([](moert_context_t ctx) {
    const int64_t experts = 2, capacity = 3, hidden = 4, ffn = 2;
    Buffer gateUp(ctx, experts * 2 * ffn * hidden * sizeof(float));
    Buffer down(ctx, experts * hidden * ffn * sizeof(float));
    Buffer in(ctx, experts * capacity * hidden * sizeof(float));
    Buffer out(ctx, experts * capacity * hidden * sizeof(float));
    moert_packed_ffn_desc_t desc{MOERT_ACT_SILU, hidden, ffn,
                                 gateUp.view(MOERT_F32), down.view(MOERT_F32)};
    moert_packed_ffn_desc_t tooWide = desc;
    tooWide.ffn = 3; // [E, 2F, H] no longer fits the buffer
    EXPECT_MOERT_ERROR(
        moert_fused_experts(ctx, &tooWide, in.view(MOERT_F32),
                            out.view(MOERT_F32), moert_absent_view(), experts,
                            capacity, 1, nullptr, moert_absent_view(),
                            moert_absent_view(), 0),
        MOERT_INVALID_ARGUMENT, "w_gate_up");
    EXPECT_MOERT_ERROR(
        moert_fused_experts(ctx, &desc, in.view(MOERT_F32), out.view(MOERT_F32),
                            moert_absent_view(), experts, capacity, 1, &desc,
                            in.view(MOERT_F32), in.view(MOERT_F32), 2),
        MOERT_INVALID_ARGUMENT, "must not alias");
  });
}

} // namespace
