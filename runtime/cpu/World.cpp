//===- runtime/cpu/World.cpp - Worlds, rank threads, buffers --------------===//

#include "runtime/cpu/Backend.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

using namespace moert;
using namespace moert::cpu;

namespace {
constexpr int32_t defaultTimeoutMs = 60000;
// How often a waiting rank re-checks the abort flag and exited peers.
constexpr auto pollInterval = std::chrono::milliseconds(10);
} // namespace

std::shared_ptr<Rendezvous>
moert_world_s::getRendezvous(int tag, const std::vector<int32_t> &ranks) {
  std::lock_guard<std::mutex> lock(mutex);
  auto &slot = rendezvous[{tag, ranks}];
  if (!slot)
    slot = std::make_shared<Rendezvous>(ranks);
  return slot;
}

void moert_world_s::recordFailure(int32_t rank, moert_status_t status,
                                  const std::string &message) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (failedRank < 0) {
      failedRank = rank;
      failedStatus = status;
      failedMessage = message;
    }
  }
  aborted.store(true);
}

void moert::cpu::checkContext(moert_context_t ctx) {
  require(ctx != nullptr && ctx->world != nullptr, "null context");
}

char *moert::cpu::viewData(moert_view_t view, int64_t count, const char *name) {
  require(view.buffer != nullptr, "operand '", name, "' is absent");
  size_t elementSize = moert_dtype_size(view.dtype);
  require(elementSize != 0, "operand '", name, "' has unknown dtype ",
          static_cast<int>(view.dtype));
  require(view.offset >= 0 && count >= 0, "operand '", name,
          "' has negative offset ", view.offset, " or count ", count);
  size_t end = (static_cast<size_t>(view.offset) + count) * elementSize;
  require(end <= view.buffer->bytes, "operand '", name, "' (", count, " x ",
          dtypeName(view.dtype), " at element ", view.offset,
          ") runs past its buffer of ", view.buffer->bytes, " bytes");
  return static_cast<char *>(view.buffer->data) + view.offset * elementSize;
}

void moert::cpu::requireDtype(moert_view_t view, moert_dtype_t dtype,
                              const char *name) {
  require(view.dtype == dtype, "operand '", name, "' must be ",
          dtypeName(dtype), ", got ", dtypeName(view.dtype));
}

void moert::cpu::requireFloatDtype(moert_view_t view, const char *name) {
  require(isFloatType(view.dtype), "operand '", name,
          "' must be f32, f16 or bf16, got ", dtypeName(view.dtype));
}

void moert::cpu::checkFloatView(moert_view_t view, int64_t count,
                                const char *name) {
  requireFloatDtype(view, name);
  viewData(view, count, name);
}

void moert::cpu::checkOptionalFloatView(moert_view_t view, int64_t count,
                                        const char *name) {
  if (isPresent(view))
    checkFloatView(view, count, name);
}

const float *moert::cpu::floatInput(moert_context_t ctx, size_t slot,
                                    moert_view_t view, int64_t count,
                                    const char *name) {
  requireFloatDtype(view, name);
  char *data = viewData(view, count, name);
  if (view.dtype == MOERT_F32)
    return reinterpret_cast<const float *>(data);
  float *converted = ctx->scratchFloats(slot, count);
  convertToFloat(data, view.dtype, converted, count);
  return converted;
}

void moert::cpu::barrier(moert_context_t ctx, Rendezvous &rv,
                         const char *what) {
  moert_world_s &world = *ctx->world;
  if (world.aborted.load())
    fail(MOERT_ABORTED, "rank ", ctx->rank, " skipped ", what,
         ": another rank failed");
  std::unique_lock<std::mutex> lock(rv.mutex);
  uint64_t generation = rv.generation;
  if (++rv.arrived == static_cast<int32_t>(rv.ranks.size())) {
    rv.arrived = 0;
    ++rv.generation;
    rv.arrivedAll.notify_all();
    return;
  }
  int32_t timeoutMs = world.desc.collective_timeout_ms > 0
                          ? world.desc.collective_timeout_ms
                          : defaultTimeoutMs;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (rv.generation == generation) {
    rv.arrivedAll.wait_for(lock, pollInterval);
    if (rv.generation != generation)
      break;
    moert_status_t status = MOERT_ABORTED;
    std::string reason;
    if (world.aborted.load())
      reason = "another rank failed";
    for (int32_t peer : rv.ranks)
      if (reason.empty() && world.exited[peer].load())
        reason = "rank " + std::to_string(peer) + " exited without joining it";
    if (reason.empty() && std::chrono::steady_clock::now() > deadline) {
      status = MOERT_TIMEOUT;
      reason = "timed out after " + std::to_string(timeoutMs) + " ms (" +
               std::to_string(rv.arrived) + " of " +
               std::to_string(rv.ranks.size()) + " members arrived)";
    }
    if (!reason.empty()) {
      --rv.arrived; // withdraw so that a late peer cannot complete it
      fail(status, "rank ", ctx->rank, " in ", what, ": ", reason);
    }
  }
}

moert_status_t moert::cpu::runRankBody(moert_context_t ctx, moert_rank_fn_t fn,
                                       void *user, std::string &message) {
  try {
    moert_status_t status = fn(ctx, user);
    if (status != MOERT_OK)
      message = moert_last_error();
    return status;
  } catch (const Error &e) {
    message = e.what();
    return e.status();
  } catch (const std::exception &e) {
    message = std::string("uncaught exception: ") + e.what();
  } catch (...) {
    message = "uncaught unknown exception";
  }
  return MOERT_INTERNAL;
}

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
    auto world = std::make_unique<moert_world_s>();
    world->desc = *desc;
    world->size = desc->nodes * desc->gpus_per_node;
    world->exited = std::make_unique<std::atomic<bool>[]>(world->size);
    if (desc->backend == MOERT_BACKEND_CUDA) {
#if MOERT_WITH_CUDA
      cuda::api::createWorld(world.get());
#else
      fail(MOERT_UNSUPPORTED,
           "MOERT_BACKEND_CUDA: this libmoert was built without CUDA (nvcc "
           "and NCCL not found at configure time, or MOERT_ENABLE_CUDA=OFF)");
#endif
    }
    *outWorld = world.release();
  });
}

void moert_world_destroy(moert_world_t world) { delete world; }

int32_t moert_world_size(moert_world_t world) {
  return world ? world->size : 0;
}

moert_status_t moert_world_run(moert_world_t world, moert_rank_fn_t fn,
                               void *user) {
  return guard("moert_world_run", [&] {
    require(world != nullptr && fn != nullptr, "null argument");
    require(!world->running.exchange(true), "world is already running");
    // Groups live for one run; a fresh run starts with clean barriers.
    world->rendezvous.clear();
    world->aborted.store(false);
    world->failedRank = -1;
    world->failedStatus = MOERT_OK;
    world->failedMessage.clear();
    for (int32_t r = 0; r < world->size; ++r)
      world->exited[r].store(false);
#if MOERT_WITH_CUDA
    if (world->device) {
      // One process per GPU: fn runs once, for this process's rank.
      struct Finished {
        moert_world_s *world;
        ~Finished() { world->running.store(false); }
      } finished{world};
      cuda::api::runWorld(world, fn, user);
      return;
    }
#endif

    auto runRank = [world, fn, user](int32_t rank) {
      moert_context_s ctx;
      ctx.world = world;
      ctx.rank = rank;
      std::string message;
      moert_status_t status = runRankBody(&ctx, fn, user, message);
      if (status != MOERT_OK)
        world->recordFailure(rank, status, message);
      world->exited[rank].store(true);
    };

    std::vector<std::thread> threads;
    threads.reserve(world->size);
    for (int32_t r = 1; r < world->size; ++r)
      threads.emplace_back(runRank, r);
    runRank(0); // rank 0 on the caller's thread
    for (std::thread &t : threads)
      t.join();
    world->running.store(false);
    world->rendezvous.clear();
    if (world->failedRank >= 0)
      fail(world->failedStatus, "rank ", world->failedRank,
           " failed: ", world->failedMessage);
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

moert_status_t moert_buffer_alloc(moert_context_t ctx, size_t bytes,
                                  moert_buffer_t *outBuffer) {
  return guard("moert_buffer_alloc", [&] {
    checkContext(ctx);
    require(outBuffer != nullptr, "null output");
    *outBuffer = nullptr;
    MOERT_ROUTE_DEVICE(ctx, bufferAlloc(ctx, bytes, outBuffer));
    constexpr size_t alignment = 64;
    size_t rounded =
        (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
    void *data = std::aligned_alloc(alignment, rounded);
    if (!data)
      fail(MOERT_OUT_OF_MEMORY, "cannot allocate ", bytes, " bytes");
    auto *buffer = new moert_buffer_s;
    buffer->data = data;
    buffer->bytes = bytes;
    *outBuffer = buffer;
  });
}

void moert_buffer_free(moert_context_t ctx, moert_buffer_t buffer) {
  if (!buffer)
    return;
  if (ctx && ctx->world)
    MOERT_ROUTE_DEVICE(ctx, bufferFree(ctx, buffer));
  std::free(buffer->data);
  delete buffer;
}

size_t moert_buffer_size(moert_buffer_t buffer) {
  return buffer ? buffer->bytes : 0;
}

moert_status_t moert_buffer_upload(moert_context_t ctx, moert_view_t dst,
                                   const void *src, int64_t count) {
  return guard("moert_buffer_upload", [&] {
    checkContext(ctx);
    char *data = viewData(dst, count, "dst");
    require(src != nullptr || count == 0, "null source");
    MOERT_ROUTE_DEVICE(ctx, bufferUpload(ctx, dst, src, count));
    if (count > 0)
      std::memcpy(data, src, count * moert_dtype_size(dst.dtype));
  });
}

moert_status_t moert_buffer_download(moert_context_t ctx, void *dst,
                                     moert_view_t src, int64_t count) {
  return guard("moert_buffer_download", [&] {
    checkContext(ctx);
    const char *data = viewData(src, count, "src");
    require(dst != nullptr || count == 0, "null destination");
    MOERT_ROUTE_DEVICE(ctx, bufferDownload(ctx, dst, src, count));
    if (count > 0)
      std::memcpy(dst, data, count * moert_dtype_size(src.dtype));
  });
}

moert_status_t moert_buffer_copy(moert_context_t ctx, moert_view_t src,
                                 moert_view_t dst, int64_t count) {
  return guard("moert_buffer_copy", [&] {
    checkContext(ctx);
    const char *from = viewData(src, count, "src");
    char *to = viewData(dst, count, "dst");
    MOERT_ROUTE_DEVICE(ctx, bufferCopy(ctx, src, dst, count));
    convert(from, src.dtype, to, dst.dtype, count);
  });
}

moert_status_t moert_buffer_fill(moert_context_t ctx, moert_view_t dst,
                                 int64_t count, double value) {
  return guard("moert_buffer_fill", [&] {
    checkContext(ctx);
    char *data = viewData(dst, count, "dst");
    MOERT_ROUTE_DEVICE(ctx, bufferFill(ctx, dst, count, value));
    switch (dst.dtype) {
    case MOERT_I32:
      std::fill_n(reinterpret_cast<int32_t *>(data), count,
                  static_cast<int32_t>(value));
      return;
    case MOERT_I64:
      std::fill_n(reinterpret_cast<int64_t *>(data), count,
                  static_cast<int64_t>(value));
      return;
    default: {
      char element[8];
      float asFloat = static_cast<float>(value);
      convertFromFloat(&asFloat, element, dst.dtype, 1);
      size_t size = moert_dtype_size(dst.dtype);
      for (int64_t i = 0; i < count; ++i)
        std::memcpy(data + i * size, element, size);
    }
    }
  });
}

} // extern "C"
