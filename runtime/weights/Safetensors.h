//===- runtime/weights/Safetensors.h - safetensors files --------*- C++ -*-===//
//
// Format: 8-byte little-endian header length N, N bytes of JSON mapping each
// tensor name to {dtype, shape, data_offsets [begin, end)} relative to the
// data section that follows (plus an optional "__metadata__" string map).
// Files are memory-mapped; every offset is checked against the file size.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_WEIGHTS_SAFETENSORS_H
#define MOERT_WEIGHTS_SAFETENSORS_H

#include "runtime/moert.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moert::weights {

struct TensorInfo {
  std::string dtype; // as spelled in the file: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; // byte range in the data section
};

class SafetensorsFile {
public:
  // Throws moert::Error (IO_ERROR: unreadable or truncated; FORMAT_ERROR:
  // malformed header) naming the path.
  explicit SafetensorsFile(const std::string &path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  const std::string &path() const { return path_; }
  const TensorInfo *find(const std::string &key) const;
  // Throws MOERT_NOT_FOUND naming the file and key.
  const TensorInfo &get(const std::string &key) const;
  const char *data(const TensorInfo &info) const {
    return dataSection_ + info.begin;
  }
  std::vector<std::string> keys() const;
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }

  // Copies the box [begin, end) of tensor `key` (which must have exactly
  // `shape`) to dst as dense dstType. Returns the elements written.
  int64_t readBox(const std::string &key, const std::vector<int64_t> &shape,
                  const std::vector<int64_t> &begin,
                  const std::vector<int64_t> &end, void *dst,
                  moert_dtype_t dstType) const;

private:
  std::string path_;
  void *mapping_ = nullptr;
  size_t fileSize_ = 0;
  const char *dataSection_ = nullptr;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Maps a file dtype name to a storage dtype; false if unsupported.
bool dtypeFromName(const std::string &name, moert_dtype_t &dtype);
const char *dtypeToName(moert_dtype_t dtype);

// Collects tensors and writes a safetensors file (tensors sorted by name,
// header padded to 8 bytes, as the reference implementation does).
class SafetensorsWriter {
public:
  // values are fp32 and are rounded to dtype.
  void add(const std::string &name, moert_dtype_t dtype,
           const std::vector<int64_t> &shape, const float *values);
  // Raw bytes under any dtype name (lets tests write unsupported dtypes).
  void addRaw(const std::string &name, const std::string &dtypeName,
              const std::vector<int64_t> &shape, std::vector<char> bytes);
  void setMetadata(const std::string &key, const std::string &value);
  // Throws MOERT_IO_ERROR if the file cannot be written.
  void write(const std::string &path) const;

private:
  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<char> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

} // namespace moert::weights

#endif // MOERT_WEIGHTS_SAFETENSORS_H
