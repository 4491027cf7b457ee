//===- runtime/cuda/Check.h - CUDA and cuBLAS status checks -----*- C++ -*-===//
//
// Every CUDA runtime and cuBLAS call goes through one of these macros; a
// failure throws moert::Error naming the call, file:line and the library's
// status string (out-of-memory maps to MOERT_OUT_OF_MEMORY).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_CHECK_H
#define MOERT_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace moert::cuda {

[[noreturn]] void throwCudaError(cudaError_t status, const char *call,
                                 const char *file, int line);
[[noreturn]] void throwCublasError(cublasStatus_t status, const char *call,
                                   const char *file, int line);

} // namespace moert::cuda

#define MOERT_CUDA_CHECK(call)                                                 \
  do {                                                                         \
    cudaError_t moertStatus_ = (call);                                         \
    if (moertStatus_ != cudaSuccess)                                           \
      ::moert::cuda::throwCudaError(moertStatus_, #call, __FILE__, __LINE__);  \
  } while (0)

#define MOERT_CUBLAS_CHECK(call)                                               \
  do {                                                                         \
    cublasStatus_t moertStatus_ = (call);                                      \
    if (moertStatus_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::moert::cuda::throwCublasError(moertStatus_, #call, __FILE__,           \
                                      __LINE__);                               \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, faults
// inside the kernel at the next synchronising call.
#define MOERT_CUDA_CHECK_LAUNCH() MOERT_CUDA_CHECK(cudaGetLastError())

#endif // MOERT_CUDA_CHECK_H
