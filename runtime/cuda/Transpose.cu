//===- runtime/cuda/Transpose.cu - Chunk transpose (a2a layout) -----------===//

#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Layout.h"
#include "runtime/cuda/Transpose.h"
#include "runtime/nccl/Plan.h"

using namespace moert;
using namespace moert::cuda;

namespace {

// One block per destination chunk, 16-byte vectors when chunks allow.
template <typename V>
__global__ void transposeChunksKernel(const char *src, char *dst, int64_t rows,
                                      int64_t cols, int64_t chunkBytes) {
  int64_t vectors = chunkBytes / sizeof(V);
  for (int64_t d = blockIdx.x; d < rows * cols; d += gridDim.x) {
    const V *from = reinterpret_cast<const V *>(
        src + nccl::transposeSourceChunk(d, rows, cols) * chunkBytes);
    V *to = reinterpret_cast<V *>(dst + d * chunkBytes);
    for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x)
      to[v] = from[v];
  }
}

} // namespace

void moert::cuda::transposeChunks(const void *src, void *dst, int64_t rows,
                                  int64_t cols, int64_t chunkBytes,
                                  cudaStream_t stream) {
  if (rows * cols == 0 || chunkBytes == 0)
    return;
  auto *from = static_cast<const char *>(src);
  auto *to = static_cast<char *>(dst);
  unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows * cols, 65535));
  switch (vectorBytes(chunkBytes, reinterpret_cast<uintptr_t>(from),
                      reinterpret_cast<uintptr_t>(to))) {
  case 16:
    transposeChunksKernel<uint4>
        <<<grid, 128, 0, stream>>>(from, to, rows, cols, chunkBytes);
    break;
  case 8:
    transposeChunksKernel<uint2>
        <<<grid, 128, 0, stream>>>(from, to, rows, cols, chunkBytes);
    break;
  case 4:
    transposeChunksKernel<uint32_t>
        <<<grid, 128, 0, stream>>>(from, to, rows, cols, chunkBytes);
    break;
  case 2:
    transposeChunksKernel<uint16_t>
        <<<grid, 128, 0, stream>>>(from, to, rows, cols, chunkBytes);
    break;
  default:
    transposeChunksKernel<uint8_t>
        <<<grid, 128, 0, stream>>>(from, to, rows, cols, chunkBytes);
  }
  MOERT_CUDA_CHECK_LAUNCH();
}
