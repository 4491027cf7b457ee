//===- runtime/cuda/Backend.h - The CUDA backend ----------------*- C++ -*-===//
//
// MOERT_BACKEND_CUDA worlds: one process per GPU. The launch environment
// names this process's rank (runtime/launch); the backend selects device
// LOCAL_RANK, makes a stream and the NCCL world communicator, and runs the
// kernels of Kernels.h and the collectives of runtime/nccl. Plain C++ (no
// CUDA types): runtime/api includes it to create the backend.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_BACKEND_H
#define MOERT_CUDA_BACKEND_H

#include "runtime/common/Backend.h"

#include <memory>

namespace moert::cuda {

// Throws MOERT_UNSUPPORTED when no usable device is present, and
// MOERT_INVALID_ARGUMENT when the launch does not match the mesh.
std::unique_ptr<Backend> createBackend(const moert_world_desc_t &desc);

} // namespace moert::cuda

#endif // MOERT_CUDA_BACKEND_H
