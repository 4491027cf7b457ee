//===- runtime/cuda/Check.cpp - CUDA and cuBLAS errors as moert::Error ----===//

#include "runtime/cuda/Check.h"

#include "runtime/common/Error.h"

using namespace moert;

void moert::cuda::throwCudaError(cudaError_t status, const char *call,
                                 const char *file, int line) {
  moert_status_t code = status == cudaErrorMemoryAllocation
                            ? MOERT_OUT_OF_MEMORY
                            : MOERT_INTERNAL;
  fail(code, file, ":", line, ": ", call, " failed: ", cudaGetErrorName(status),
       " (", cudaGetErrorString(status), ")");
}

void moert::cuda::throwCublasError(cublasStatus_t status, const char *call,
                                   const char *file, int line) {
  moert_status_t code = status == CUBLAS_STATUS_ALLOC_FAILED
                            ? MOERT_OUT_OF_MEMORY
                        : status == CUBLAS_STATUS_NOT_SUPPORTED ||
                                status == CUBLAS_STATUS_ARCH_MISMATCH
                            ? MOERT_UNSUPPORTED
                            : MOERT_INTERNAL;
  fail(code, file, ":", line, ": ", call,
       " failed: ", cublasGetStatusName(status), " (",
       cublasGetStatusString(status), ")");
}
