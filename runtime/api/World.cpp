//===- runtime/api/World.cpp - Worlds, runs and contexts ------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Handles.h"
#include "runtime/cpu/Backend.h"
#include "runtime/cpu/ThreadPool.h"

#if MOERT_WITH_CUDA
#include "runtime/cuda/Backend.h"
#endif

using namespace moert;

namespace {

// The backend the world's descriptor names (its backend field is checked).
std::unique_ptr<Backend> createBackend(const moert_world_desc_t &desc) {
  if (desc.backend == MOERT_BACKEND_CPU)
    return std::make_unique<cpu::CpuBackend>(desc);
#if MOERT_WITH_CUDA
  return cuda::createBackend(desc);
#else
  fail(MOERT_UNSUPPORTED,
       "MOERT_BACKEND_CUDA: this libmoert was built without CUDA (nvcc "
       "and NCCL not found at configure time, or MOERT_ENABLE_CUDA=OFF)");
#endif
}

} // namespace

extern "C" {

moert_status_t moert_world_create(const moert_world_desc_t *desc,
                                  moert_world_t *outWorld) {
  return guard("moert_world_create", [&] {
    require(desc != nullptr && outWorld != nullptr, "null argument");
    *outWorld = nullptr;
    require(desc->backend == MOERT_BACKEND_CPU ||
                desc->backend == MOERT_BACKEND_CUDA,
            "unknown backend ", static_cast<int>(desc->backend));
    require(desc->nodes >= 1 && desc->gpus_per_node >= 1,
            "mesh must be at least 1x1, got ", desc->nodes, "x",
            desc->gpus_per_node);
    require(desc->cpu_threads <= 1024,
            "cpu_threads must be at most 1024, got ", desc->cpu_threads);
    auto world = std::make_unique<moert_world_s>();
    world->desc = *desc;
    world->size = desc->nodes * desc->gpus_per_node;
    // Resolved once, so that moert_world_cpu_threads reports what runs.
    world->desc.cpu_threads =
        desc->backend != MOERT_BACKEND_CPU ? 0
        : desc->cpu_threads > 0            ? desc->cpu_threads
                                           : cpu::threadsPerRank(world->size);
    world->backend = createBackend(world->desc);
    *outWorld = world.release();
  });
}

void moert_world_destroy(moert_world_t world) { delete world; }

int32_t moert_world_size(moert_world_t world) {
  return world ? world->size : 0;
}

int32_t moert_world_cpu_threads(moert_world_t world) {
  return world ? world->desc.cpu_threads : 0;
}

moert_status_t moert_world_run(moert_world_t world, moert_rank_fn_t fn,
                               void *user) {
  return guard("moert_world_run", [&] {
    require(world != nullptr && fn != nullptr, "null argument");
    require(!world->running.exchange(true), "world is already running");
    struct Finished {
      moert_world_s *world;
      ~Finished() { world->running.store(false); }
    } finished{world};
    // The contexts, and the groups they keep, outlive the backend's run: a
    // CUDA rank's communicators stay until its stream is drained.
    std::vector<std::unique_ptr<moert_context_s>> contexts;
    for (int32_t rank = 0; rank < world->size; ++rank)
      contexts.push_back(std::make_unique<moert_context_s>(world, rank));
    world->backend->run([&](int32_t rank, std::string &message) {
      return runRankFunction(contexts[rank].get(), fn, user, message);
    });
  });
}

int32_t moert_context_rank(moert_context_t ctx) { return ctx ? ctx->rank : -1; }

int32_t moert_context_world_size(moert_context_t ctx) {
  return ctx ? ctx->world->size : 0;
}

int32_t moert_context_node(moert_context_t ctx) {
  return ctx ? ctx->rank / ctx->world->desc.gpus_per_node : -1;
}

int32_t moert_context_local_rank(moert_context_t ctx) {
  return ctx ? ctx->rank % ctx->world->desc.gpus_per_node : -1;
}

} // extern "C"
