//===- runtime/runner/Npy.cpp - 2-D float32 .npy files --------------------===//

#include "runtime/runner/Npy.h"

#include "runtime/common/Error.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace moert::runner {

NpyMatrix readNpy(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(MOERT_IO_ERROR, "cannot read ", path);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    fail(MOERT_FORMAT_ERROR, path, " is not a .npy file");
  auto byte = [&](size_t i) { return size_t(uint8_t(bytes[i])); };
  size_t headerLen = 0, start = 0;
  if (bytes[6] == 1) {
    headerLen = byte(8) | byte(9) << 8;
    start = 10;
  } else {
    if (bytes.size() < 12)
      fail(MOERT_IO_ERROR, path, ": truncated .npy header");
    headerLen = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
    start = 12;
  }
  if (start + headerLen > bytes.size())
    fail(MOERT_IO_ERROR, path, ": truncated .npy header");
  std::string header = bytes.substr(start, headerLen);
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': True") != std::string::npos)
    fail(MOERT_FORMAT_ERROR, path,
         ": only C-order float32 (<f4) arrays are supported");
  size_t open = header.find("'shape': (");
  if (open == std::string::npos)
    fail(MOERT_FORMAT_ERROR, path, ": no shape in the .npy header");
  std::string shape = header.substr(open + 10);
  shape = shape.substr(0, shape.find(')'));
  std::vector<int64_t> dims;
  std::istringstream fields(shape);
  for (std::string field; std::getline(fields, field, ',');) {
    if (field.find_first_not_of(' ') == std::string::npos)
      continue; // "(4,)" style trailing comma
    size_t used = 0;
    int64_t d = -1;
    try {
      d = std::stoll(field, &used);
    } catch (const std::exception &) {
    }
    if (d < 0 || field.find_first_not_of(' ', used) != std::string::npos)
      fail(MOERT_FORMAT_ERROR, path, ": bad shape (", shape, ")");
    dims.push_back(d);
  }
  if (dims.size() != 2)
    fail(MOERT_FORMAT_ERROR, path, ": expected a 2-D array, got shape (", shape,
         ")");
  NpyMatrix m;
  m.rows = dims[0];
  m.cols = dims[1];
  size_t need = size_t(m.rows * m.cols) * 4;
  if (bytes.size() - start - headerLen < need)
    fail(MOERT_IO_ERROR, path, ": truncated data");
  m.data.resize(size_t(m.rows * m.cols));
  std::memcpy(m.data.data(), bytes.data() + start + headerLen, need);
  return m;
}

void writeNpy(const std::string &path, const NpyMatrix &m) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(m.rows) + ", " + std::to_string(m.cols) +
                       "), }";
  // The data starts 64-byte aligned, as numpy writes it.
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(reinterpret_cast<const char *>(m.data.data()),
            std::streamsize(m.data.size() * 4));
  if (!out)
    fail(MOERT_IO_ERROR, "cannot write ", path);
}

} // namespace moert::runner
