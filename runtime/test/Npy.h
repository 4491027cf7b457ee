//===- runtime/test/Npy.h - Minimal .npy reader/writer ----------*- C++ -*-===//
//
// For the numeric test driver only: little-endian C-order arrays of float32,
// int32 and int64 (NPY format version 1.0 and 2.0 headers).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_TEST_NPY_H
#define MOERT_TEST_NPY_H

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace moert::npy {

struct Array {
  std::string descr; // "<f4", "<i4", "<i8"
  std::vector<int64_t> shape;
  std::vector<char> data;

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  template <typename T> const T *as() const {
    return reinterpret_cast<const T *>(data.data());
  }
};

inline Array load(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw std::runtime_error(path + ": not an .npy file");
  uint32_t headerLength = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char *>(b), 2);
    headerLength = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char *>(b), 4);
    headerLength = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  }
  std::string header(headerLength, '\0');
  in.read(header.data(), headerLength);
  Array array;
  auto field = [&](const char *key) {
    size_t at = header.find(key);
    if (at == std::string::npos)
      throw std::runtime_error(path + ": header lacks " + key);
    return at + std::strlen(key);
  };
  size_t d = header.find('\'', field("'descr':"));
  array.descr = header.substr(d + 1, header.find('\'', d + 1) - d - 1);
  if (header.find("True", field("'fortran_order':")) <
      header.find(',', field("'fortran_order':")))
    throw std::runtime_error(path + ": Fortran order unsupported");
  size_t open = header.find('(', field("'shape':"));
  size_t close = header.find(')', open);
  std::string dims = header.substr(open + 1, close - open - 1);
  for (size_t pos = 0; pos < dims.size();) {
    size_t comma = dims.find(',', pos);
    std::string item = dims.substr(pos, comma - pos);
    if (item.find_first_of("0123456789") != std::string::npos)
      array.shape.push_back(std::stoll(item));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  size_t elementSize = array.descr == "<i8" ? 8 : 4;
  if (array.descr != "<f4" && array.descr != "<i4" && array.descr != "<i8")
    throw std::runtime_error(path + ": unsupported dtype " + array.descr);
  array.data.resize(array.size() * elementSize);
  in.read(array.data.data(), array.data.size());
  if (!in)
    throw std::runtime_error(path + ": truncated data");
  return array;
}

inline void save(const std::string &path, const std::string &descr,
                 const std::vector<int64_t> &shape, const void *data,
                 size_t bytes) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, "
                       "'shape': (";
  for (int64_t d : shape)
    header += std::to_string(d) + ",";
  header += "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t length = static_cast<uint16_t>(header.size());
  char lengthBytes[2] = {static_cast<char>(length & 0xff),
                         static_cast<char>(length >> 8)};
  out.write(lengthBytes, 2);
  out.write(header.data(), header.size());
  out.write(static_cast<const char *>(data), bytes);
  if (!out)
    throw std::runtime_error("cannot write " + path);
}

} // namespace moert::npy

#endif // MOERT_TEST_NPY_H
