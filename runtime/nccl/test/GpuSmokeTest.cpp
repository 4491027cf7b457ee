//===- runtime/nccl/test/GpuSmokeTest.cpp - CUDA kernels + NCCL, 1 GPU ----===//
//
// Runs on a machine with a GPU: the CUDA gate, dispatch and combine against
// runtime/cpu, a one-rank NCCL world (all-reduce, all-to-all plan), and
// every moert.h entry point on a MOERT_BACKEND_CUDA world against the CPU
// backend (CAbiComparison.cpp).
// Without a device it exits 77, which ctest reports as skipped, never as
// passed. Built here so that the CUDA/NCCL libraries are linked, not only
// compiled.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Gate.h"
#include "runtime/cuda/Check.h"
#include "runtime/cuda/Kernels.h"
#include "runtime/nccl/Communicator.h"
#include "runtime/nccl/test/CAbiComparison.h"

#include "runtime/common/Error.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace moert;

namespace {

int failures = 0;

void expect(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

template <typename T> T *upload(const std::vector<T> &host) {
  T *device = nullptr;
  MOERT_CUDA_CHECK(cudaMalloc(&device, host.size() * sizeof(T) + 16));
  MOERT_CUDA_CHECK(cudaMemcpy(device, host.data(), host.size() * sizeof(T),
                              cudaMemcpyHostToDevice));
  return device;
}

template <typename T> std::vector<T> download(const T *device, size_t n) {
  std::vector<T> host(n);
  MOERT_CUDA_CHECK(
      cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

void gateDispatchCombine() {
  const int64_t tokens = 333, hidden = 64;
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, 16, 2);
  cfg.capacity_factor = 1.0;
  cfg.drop_order = MOERT_DROP_CHOICE_MAJOR;
  cfg.norm = MOERT_NORM_KEPT;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> logits(tokens * cfg.experts), x(tokens * hidden);
  for (float &v : logits)
    v = normal(rng);
  for (float &v : x)
    v = normal(rng);
  int64_t choices = tokens * cfg.top_k;
  std::vector<int32_t> ids(choices), slots(choices), counts(cfg.experts);
  std::vector<float> weights(choices);
  int64_t capacity =
      computeGate(cfg, logits.data(), nullptr, tokens, ids.data(),
                  weights.data(), slots.data(), counts.data());

  cuda::Context ctx;
  float *dLogits = upload(logits), *dWeights = upload(weights);
  int32_t *dIds = upload(ids), *dSlots = upload(slots),
          *dCounts = upload(counts);
  int64_t got = cuda::gate(ctx, cfg, dLogits, {}, tokens, dIds, dWeights,
                           dSlots, dCounts);
  ctx.synchronize();
  expect(got == capacity, "gate capacity");
  expect(download(dIds, choices) == ids, "gate ids");
  expect(download(dSlots, choices) == slots, "gate slots");
  expect(download(dCounts, cfg.experts) == counts, "gate counts");
  std::vector<float> w = download(dWeights, choices);
  for (int64_t i = 0; i < choices; ++i)
    if (std::fabs(w[i] - weights[i]) > 1e-6f) {
      expect(false, "gate weights");
      break;
    }

  // dispatch then combine with unit weights: every kept token comes back
  // once per kept choice.
  float *dX = upload(x), *dOut = upload(x);
  float *dBuf = nullptr;
  MOERT_CUDA_CHECK(
      cudaMalloc(&dBuf, cfg.experts * capacity * hidden * sizeof(float)));
  cuda::dispatch(ctx, {dX, MOERT_F32}, dIds, dSlots, nullptr, {dBuf, MOERT_F32},
                 tokens, hidden, cfg.top_k, cfg.experts, capacity);
  std::vector<float> ones(choices, 1.0f);
  float *dOnes = upload(ones);
  cuda::combine(ctx, {dBuf, MOERT_F32}, dIds, dSlots, dOnes, {},
                {dOut, MOERT_F32}, tokens, hidden, cfg.top_k, cfg.experts,
                capacity);
  ctx.synchronize();
  std::vector<float> out = download(dOut, tokens * hidden);
  bool same = true;
  for (int64_t s = 0; s < tokens; ++s) {
    int kept = (slots[s * 2] >= 0) + (slots[s * 2 + 1] >= 0);
    for (int64_t h = 0; h < hidden; ++h)
      same = same && out[s * hidden + h] == kept * x[s * hidden + h];
  }
  expect(same, "dispatch + combine round trip");
  for (void *p :
       {(void *)dLogits, (void *)dWeights, (void *)dIds, (void *)dSlots,
        (void *)dCounts, (void *)dX, (void *)dOut, (void *)dBuf, (void *)dOnes})
    cudaFree(p);
}

void oneRankNccl() {
  launch::RankInfo info; // rank 0 of 1: no network needed
  auto world = nccl::Communicator::createWorld(info, 30000);
  expect(world->size() == 1 && world->rank() == 0, "world of one");
  cudaStream_t stream;
  MOERT_CUDA_CHECK(cudaStreamCreate(&stream));
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  float *send = upload(values), *recv = upload(std::vector<float>(6, -1));
  world->allReduce(send, recv, 6, MOERT_F32, MOERT_REDUCE_SUM, stream);
  world->wait(stream);
  expect(download(recv, 6) == values, "all_reduce of one rank");
  nccl::Exchange plan =
      nccl::flatAllToAll(MOERT_A2A_TO_EXPERTS, {1, 0, 2, 1, 3});
  world->exchange(plan, send, recv, MOERT_F32, stream);
  world->wait(stream);
  expect(download(recv, 6) == values, "all_to_all of one rank");
  cudaFree(send);
  cudaFree(recv);
  cudaStreamDestroy(stream);
}

} // namespace

int main() {
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    // The reason matters on a machine that has a GPU (driver too old, ...).
    std::printf("no CUDA device (cudaGetDeviceCount: %s): skipped\n",
                cudaGetErrorString(status));
    return 77;
  }
  try {
    gateDispatchCombine();
    oneRankNccl();
    failures += test::compareCAbiOnCudaWithCpu();
  } catch (const std::exception &e) { // moert::Error, moert::RuntimeError
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  std::printf("%s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}
