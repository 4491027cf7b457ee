//===- runtime/cuda/Transpose.h - Chunk transpose ---------------*- C++ -*-===//
//
// dst[j][i] = src[i][j] over a rows x cols grid of chunkBytes-sized chunks:
// the layout transform between the stages of a hierarchical all-to-all and
// between expert-major and peer-major order (runtime/nccl/Plan.h).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_TRANSPOSE_H
#define MOERT_CUDA_TRANSPOSE_H

#include <cuda_runtime.h>

#include <cstdint>

namespace moert::cuda {

void transposeChunks(const void *src, void *dst, int64_t rows, int64_t cols,
                     int64_t chunkBytes, cudaStream_t stream);

} // namespace moert::cuda

#endif // MOERT_CUDA_TRANSPOSE_H
