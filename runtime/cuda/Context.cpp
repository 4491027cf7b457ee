//===- runtime/cuda/Context.cpp - Stream, cuBLAS handle, scratch ----------===//

#include "runtime/cuda/Check.h"
#include "runtime/cuda/Kernels.h"

#include "runtime/common/Error.h"

#include <algorithm>

using namespace moert;
using namespace moert::cuda;

namespace {
// cuBLAS's recommended workspace on Hopper. Set explicitly so that a
// captured GEMM uses this fixed block instead of memory cuBLAS allocates
// during capture.
constexpr size_t blasWorkspaceBytes = 32u << 20;
} // namespace

Context::Context(cudaStream_t stream) : stream_(stream) {
  MOERT_CUBLAS_CHECK(cublasCreate(&blas_));
  MOERT_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  MOERT_CUDA_CHECK(cudaMalloc(&blasWorkspace_, blasWorkspaceBytes));
  MOERT_CUBLAS_CHECK(
      cublasSetWorkspace(blas_, blasWorkspace_, blasWorkspaceBytes));
  // Host alpha/beta arrays for the grouped GEMMs.
  MOERT_CUBLAS_CHECK(cublasSetPointerMode(blas_, CUBLAS_POINTER_MODE_HOST));
  MOERT_CUDA_CHECK(cudaMalloc(&errorWord_, sizeof(long long)));
  MOERT_CUDA_CHECK(
      cudaMemsetAsync(errorWord_, 0xff, sizeof(long long), stream_));
}

Context::~Context() {
  // Destructors must not throw: statuses are ignored on teardown.
  for (Block &b : blocks_)
    if (b.data)
      cudaFree(b.data);
  for (void *block : retired_)
    cudaFree(block);
  if (blasWorkspace_)
    cudaFree(blasWorkspace_);
  if (errorWord_)
    cudaFree(errorWord_);
  if (blas_)
    cublasDestroy(blas_);
}

void *Context::scratch(Scratch slot, size_t bytes) {
  Block &b = blocks_[static_cast<int>(slot)];
  if (b.bytes < bytes) {
    // cudaMalloc is not allowed while capturing; a direct step at the same
    // sizes grows every block first (the runner does one).
    if (capturing_)
      fail(MOERT_UNSUPPORTED, "scratch block ", static_cast<int>(slot),
           " needs ", bytes, " bytes, more than it grew to before the "
           "capture: run one step directly at this size before capturing");
    // Grow geometrically so that slowly growing shapes reallocate rarely.
    size_t want = std::max(bytes, b.bytes * 3 / 2);
    if (b.data)
      MOERT_CUDA_CHECK(release(b.data)); // cudaFree synchronises
    b.data = nullptr;
    b.bytes = 0;
    MOERT_CUDA_CHECK(cudaMalloc(&b.data, want));
    b.bytes = want;
  }
  return b.data;
}

void Context::synchronize() {
  long long bad = -1;
  MOERT_CUDA_CHECK(cudaMemcpyAsync(&bad, errorWord_, sizeof(bad),
                                   cudaMemcpyDeviceToHost, stream_));
  MOERT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (bad >= 0) {
    MOERT_CUDA_CHECK(
        cudaMemsetAsync(errorWord_, 0xff, sizeof(long long), stream_));
    fail(MOERT_INVALID_ARGUMENT, "entry ", bad,
         " is out of range: a routing choice (flat token*top_k + j) outside "
         "the expert-major buffer, or a token (decoder calls) whose id, "
         "sequence or position is outside the vocabulary or KV cache");
  }
}

void Context::beginCapture() {
  require(!capturing_, "moert_graph_capture: already capturing");
  capturing_ = true;
}

void Context::endCapture() { capturing_ = false; }

cudaError_t Context::release(void *block) {
  if (capturing_ || liveGraphs_ > 0) {
    retired_.push_back(block);
    return cudaSuccess;
  }
  return cudaFree(block);
}

void Context::graphDestroyed() {
  if (--liveGraphs_ > 0 || capturing_)
    return;
  for (void *block : retired_)
    MOERT_CUDA_CHECK(cudaFree(block));
  retired_.clear();
}

void Context::forbidInCapture(const char *call, const char *why) const {
  if (capturing_)
    fail(MOERT_UNSUPPORTED, call, " cannot be captured in a CUDA graph: ",
         why);
}
