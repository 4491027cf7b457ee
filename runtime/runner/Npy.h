//===- runtime/runner/Npy.h - 2-D float32 .npy files ------------*- C++ -*-===//
#ifndef MOERT_RUNNER_NPY_H
#define MOERT_RUNNER_NPY_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moert::runner {

struct NpyMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data; // C order
};

// C-order float32 ('<f4'), 2-D, no bytes after the data. Throws
// moert::Error naming the file (MOERT_IO_ERROR for an unreadable or truncated
// file, MOERT_FORMAT_ERROR for anything else).
NpyMatrix readNpy(const std::string &path);
// The same from the file's bytes; `path` only names it in errors.
NpyMatrix parseNpy(const std::string &path, std::string_view bytes);
void writeNpy(const std::string &path, const NpyMatrix &matrix);
// Any rank: `data` holds the product of `shape` floats, C order.
void writeNpy(const std::string &path, const std::vector<int64_t> &shape,
              const std::vector<float> &data);

} // namespace moert::runner

#endif // MOERT_RUNNER_NPY_H
