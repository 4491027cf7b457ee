//===- runtime/common/HostDevice.h - __host__ __device__ marker -*- C++ -*-===//
//
// Formulas and index arithmetic shared by the CPU backend, the CUDA kernels
// and their host unit tests are written once, in headers that compile both
// with nvcc and as plain C++.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_HOSTDEVICE_H
#define MOERT_COMMON_HOSTDEVICE_H

#ifdef __CUDACC__
#define MOERT_HD __host__ __device__
#else
#define MOERT_HD
#endif

#endif // MOERT_COMMON_HOSTDEVICE_H
