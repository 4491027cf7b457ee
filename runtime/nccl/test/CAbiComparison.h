//===- runtime/nccl/test/CAbiComparison.h - CUDA vs CPU via moert.h -*- C++ -*-//
#ifndef MOERT_NCCL_TEST_CABICOMPARISON_H
#define MOERT_NCCL_TEST_CABICOMPARISON_H

namespace moert::test {

// Runs every moert.h entry point on a one-rank CUDA world and on the CPU
// backend with the same random inputs and compares; prints one line per
// case and returns the number of mismatching outputs. Needs a GPU.
int compareCAbiOnCudaWithCpu();

} // namespace moert::test

#endif // MOERT_NCCL_TEST_CABICOMPARISON_H
