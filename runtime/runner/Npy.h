//===- runtime/runner/Npy.h - 2-D float32 .npy files ------------*- C++ -*-===//
#ifndef MOERT_RUNNER_NPY_H
#define MOERT_RUNNER_NPY_H

#include <cstdint>
#include <string>
#include <vector>

namespace moert::runner {

struct NpyMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data; // C order
};

// C-order float32 ('<f4'), 2-D. Throws moert::Error (MOERT_IO_ERROR for a
// missing or truncated file, MOERT_FORMAT_ERROR for anything else).
NpyMatrix readNpy(const std::string &path);
void writeNpy(const std::string &path, const NpyMatrix &matrix);

} // namespace moert::runner

#endif // MOERT_RUNNER_NPY_H
