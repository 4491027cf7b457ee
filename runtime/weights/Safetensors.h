//===- runtime/weights/Safetensors.h - safetensors files --------*- C++ -*-===//
//
// Format: 8-byte little-endian header length N, N bytes of JSON mapping each
// tensor name to {dtype, shape, data_offsets [begin, end)} relative to the
// data section that follows (plus an optional "__metadata__" string map).
// Files are memory-mapped and checked to follow the format exactly (see
// parseSafetensors), so that no byte is read from the wrong place.
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

// The checked header of a safetensors file.
struct SafetensorsLayout {
  uint64_t dataOffset = 0; // where the data section starts: 8 + header length
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// Checks that the `size` bytes at `bytes` are exactly a safetensors file: the
// header length ends a JSON object that starts the header and is padded with
// trailing spaces only; keys are unique; every tensor has a known dtype,
// exactly the fields dtype, shape and data_offsets, and
// product(shape) x dtype size = end - begin; and the tensors, sorted by
// begin, tile the data section with no gap, overlap or bytes left over.
// Throws moert::Error (IO_ERROR: truncated; FORMAT_ERROR: anything else)
// naming `path` and the tensor.
SafetensorsLayout parseSafetensors(const std::string &path, const char *bytes,
                                   size_t size);

class SafetensorsFile {
public:
  // Throws moert::Error (IO_ERROR: unreadable or truncated; FORMAT_ERROR:
  // malformed header) naming the path.
  explicit SafetensorsFile(const std::string &path);
  // Over `size` bytes in memory that outlive this object (the fuzzer's
  // input); `path` only names them in errors.
  SafetensorsFile(const std::string &path, const char *bytes, size_t size);
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
  // Copies the box [begin, end) of a view of tensor `key` (which must have
  // exactly `shape`) to dst as dense dstType: view element i is tensor
  // element offset + sum_d i_d * strides[d]. The caller has checked that the
  // view stays inside the tensor. Contiguous rows (strides.back() == 1) are
  // read with pread; other views are gathered from the mapping.
  int64_t readView(const std::string &key, const std::vector<int64_t> &shape,
                   int64_t offset, const std::vector<int64_t> &strides,
                   const std::vector<int64_t> &begin,
                   const std::vector<int64_t> &end, void *dst,
                   moert_dtype_t dstType) const;
  std::vector<std::string> keys() const;
  // Bytes after the header: the tensors' data.
  uint64_t dataBytes() const { return fileSize_ - layout_.dataOffset; }
  const std::map<std::string, std::string> &metadata() const {
    return layout_.metadata;
  }

  // Copies the box [begin, end) of tensor `key` (which must have exactly
  // `shape`) to dst as dense dstType. Returns the elements written. From a
  // file, each contiguous run of the box is read with pread (straight into
  // dst when the dtypes match): faulting in the mapping page by page would
  // cost more than the copy.
  int64_t readBox(const std::string &key, const std::vector<int64_t> &shape,
                  const std::vector<int64_t> &begin,
                  const std::vector<int64_t> &end, void *dst,
                  moert_dtype_t dstType) const;

private:
  // Tensor `key`, checked to have a readable dtype (returned in srcType)
  // that converts to dstType, and exactly `shape`.
  const TensorInfo &checkedTensor(const std::string &key,
                                  const std::vector<int64_t> &shape,
                                  moert_dtype_t dstType,
                                  moert_dtype_t &srcType) const;
  // Reads `bytes` at `offset` of the data section into dst.
  void readData(uint64_t offset, void *dst, size_t bytes) const;

  std::string path_;
  int fd_ = -1; // -1: over memory (the fuzzer's input)
  void *mapping_ = nullptr;
  size_t fileSize_ = 0;
  const char *dataSection_ = nullptr;
  SafetensorsLayout layout_;
};

// The bits per element of a safetensors dtype name; 0 if unknown.
int dtypeBits(const std::string &name);
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
