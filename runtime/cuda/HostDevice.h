//===- runtime/cuda/HostDevice.h - __host__ __device__ marker ---*- C++ -*-===//
//
// Index arithmetic shared by the CUDA kernels and their CPU unit tests is
// written once, in headers that compile both with nvcc and as plain C++.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_HOSTDEVICE_H
#define MOERT_CUDA_HOSTDEVICE_H

#ifdef __CUDACC__
#define MOERT_HD __host__ __device__
#else
#define MOERT_HD
#endif

#endif // MOERT_CUDA_HOSTDEVICE_H
