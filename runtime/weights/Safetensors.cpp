//===- runtime/weights/Safetensors.cpp - safetensors read/write -----------===//

#include "runtime/weights/Safetensors.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/weights/Json.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>

using namespace moert;
using namespace moert::weights;

namespace {

// The reference implementation refuses headers above 100 MB.
constexpr uint64_t maxHeaderBytes = 100u << 20;

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

// Shapes that differ only by extents of 1 lay out the same bytes: ERNIE-4.5
// stores its `[E]` selection bias as `[1, E]`.
bool sameLayout(const std::vector<int64_t> &stored,
                const std::vector<int64_t> &expected) {
  auto squeeze = [](const std::vector<int64_t> &shape) {
    std::vector<int64_t> out;
    for (int64_t d : shape)
      if (d != 1)
        out.push_back(d);
    return out;
  };
  return stored == expected || squeeze(stored) == squeeze(expected);
}

} // namespace

bool moert::weights::dtypeFromName(const std::string &name,
                                   moert_dtype_t &dtype) {
  if (name == "F32")
    dtype = MOERT_F32;
  else if (name == "F16")
    dtype = MOERT_F16;
  else if (name == "BF16")
    dtype = MOERT_BF16;
  else if (name == "F8_E4M3")
    dtype = MOERT_F8_E4M3;
  else if (name == "U8")
    dtype = MOERT_U8;
  else
    return false;
  return true;
}

const char *moert::weights::dtypeToName(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_F32:
    return "F32";
  case MOERT_F16:
    return "F16";
  case MOERT_BF16:
    return "BF16";
  case MOERT_I32:
    return "I32";
  case MOERT_I64:
    return "I64";
  case MOERT_F8_E4M3:
    return "F8_E4M3";
  case MOERT_U8:
    return "U8";
  }
  return "?";
}

int moert::weights::dtypeBits(const std::string &name) {
  // Every dtype of the reference implementation, so that the byte size of a
  // tensor we cannot load is still checked.
  static const std::map<std::string, int> bits = {
      {"BOOL", 8},    {"U8", 8},   {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8},
      {"F8_E8M0", 8}, {"I16", 16}, {"U16", 16}, {"F16", 16},    {"BF16", 16},
      {"I32", 32},    {"U32", 32}, {"F32", 32}, {"F64", 64},    {"I64", 64},
      {"U64", 64},    {"C64", 64}, {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  auto it = bits.find(name);
  return it == bits.end() ? 0 : it->second;
}

namespace {

// One tensor entry of the header: {dtype, shape, data_offsets}, its byte
// size checked against its shape; dataBytes bounds its offsets.
TensorInfo parseTensor(const std::string &path, const std::string &name,
                       const json::Value &entry, uint64_t dataBytes) {
  auto bad = [&](const auto &...what) {
    fail(MOERT_FORMAT_ERROR, path, ": tensor '", name, "': ", what...);
  };
  if (entry.kind != json::Value::Kind::Object)
    bad("is not an object");
  for (const auto &field : entry.object)
    if (field.first != "dtype" && field.first != "shape" &&
        field.first != "data_offsets")
      bad("unknown field '", field.first, "'");
  const json::Value *dtype = entry.find("dtype");
  const json::Value *shape = entry.find("shape");
  const json::Value *offsets = entry.find("data_offsets");
  if (!dtype || dtype->kind != json::Value::Kind::String)
    bad("missing string 'dtype'");
  if (!shape || shape->kind != json::Value::Kind::Array)
    bad("missing array 'shape'");
  if (!offsets || offsets->kind != json::Value::Kind::Array ||
      offsets->array.size() != 2)
    bad("missing 'data_offsets' [begin, end]");
  TensorInfo tensor;
  tensor.dtype = dtype->string;
  int bits = dtypeBits(tensor.dtype);
  if (bits == 0)
    bad("unknown dtype '", tensor.dtype, "'");
  uint64_t elements = 1;
  bool overflow = false;
  for (const json::Value &dim : shape->array) {
    if (dim.kind != json::Value::Kind::Integer || dim.integer < 0)
      bad("shape holds a non-integer or negative extent");
    tensor.shape.push_back(dim.integer);
    overflow |=
        __builtin_mul_overflow(elements, uint64_t(dim.integer), &elements);
  }
  uint64_t totalBits = 0;
  if (overflow || __builtin_mul_overflow(elements, uint64_t(bits), &totalBits))
    bad("shape ", shapeString(tensor.shape), " of ", tensor.dtype,
        " overflows 64-bit byte sizes");
  if (totalBits % 8)
    bad("shape ", shapeString(tensor.shape), " of ", tensor.dtype,
        " is not a whole number of bytes");
  for (const json::Value &offset : offsets->array)
    if (offset.kind != json::Value::Kind::Integer || offset.integer < 0)
      bad("data_offsets must be non-negative integers");
  tensor.begin = offsets->array[0].integer;
  tensor.end = offsets->array[1].integer;
  if (tensor.begin > tensor.end)
    bad("data_offsets begin after they end");
  if (tensor.end > dataBytes)
    fail(MOERT_IO_ERROR, path, ": truncated: tensor '", name, "' data [",
         tensor.begin, ", ", tensor.end, ") runs past the ", dataBytes,
         " data bytes in the file");
  if (tensor.end - tensor.begin != totalBits / 8)
    fail(MOERT_FORMAT_ERROR, path, ": tensor '", name, "' has ",
         tensor.end - tensor.begin, " data bytes, its shape ",
         shapeString(tensor.shape), " of ", tensor.dtype, " needs ",
         totalBits / 8);
  return tensor;
}

} // namespace

SafetensorsLayout moert::weights::parseSafetensors(const std::string &path,
                                                   const char *bytes,
                                                   size_t size) {
  if (size < 8)
    fail(MOERT_IO_ERROR, path, ": truncated: ", size,
         " bytes, shorter than the 8-byte header length");
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; --i) // little-endian
    headerBytes = (headerBytes << 8) | static_cast<unsigned char>(bytes[i]);
  if (headerBytes > maxHeaderBytes)
    fail(MOERT_FORMAT_ERROR, path, ": header length ", headerBytes,
         " exceeds the 100 MB limit");
  if (8 + headerBytes > size)
    fail(MOERT_IO_ERROR, path, ": truncated: header length ", headerBytes,
         " runs past the end of the ", size, "-byte file");
  SafetensorsLayout layout;
  layout.dataOffset = 8 + headerBytes;
  uint64_t dataBytes = size - layout.dataOffset;

  // The header length must end the JSON object exactly, up to the spaces
  // the format allows as padding: a length off by one would shift the data.
  std::string_view text(bytes + 8, headerBytes);
  std::string_view object = text.substr(0, text.find_last_not_of(' ') + 1);
  json::Value header;
  try {
    header = json::parse(object);
  } catch (const Error &e) {
    fail(MOERT_FORMAT_ERROR, path, ": header: ", e.what());
  }
  if (header.kind != json::Value::Kind::Object)
    fail(MOERT_FORMAT_ERROR, path, ": header is not a JSON object");
  if (object.front() != '{' || object.back() != '}')
    fail(MOERT_FORMAT_ERROR, path,
         ": header must be a JSON object padded with trailing spaces only");
  for (const auto &[name, entry] : header.object) {
    if (name != "__metadata__") {
      layout.tensors[name] = parseTensor(path, name, entry, dataBytes);
      continue;
    }
    bool strings = entry.kind == json::Value::Kind::Object;
    for (const auto &[key, value] : entry.object) {
      strings &= value.kind == json::Value::Kind::String;
      layout.metadata[key] = value.string;
    }
    if (!strings)
      fail(MOERT_FORMAT_ERROR, path,
           ": header entry '__metadata__' must be an object of strings");
  }

  // Sorted by begin, each tensor starts where the one before ends and the
  // last ends the file: no byte belongs to two tensors or to none.
  std::vector<const std::pair<const std::string, TensorInfo> *> order;
  for (const auto &tensor : layout.tensors)
    order.push_back(&tensor);
  std::sort(order.begin(), order.end(), [](const auto *a, const auto *b) {
    return std::tie(a->second.begin, a->second.end) <
           std::tie(b->second.begin, b->second.end);
  });
  uint64_t expected = 0;
  const std::string *previous = nullptr;
  for (const auto *tensor : order) {
    if (tensor->second.begin != expected) {
      std::string after =
          previous ? ", where tensor '" + *previous + "' ends" : "";
      fail(MOERT_FORMAT_ERROR, path, ": tensor '", tensor->first,
           "' starts at byte ", tensor->second.begin, " of the data, expected ",
           expected, after, ": the tensors must tile the data section");
    }
    expected = tensor->second.end;
    previous = &tensor->first;
  }
  if (expected != dataBytes)
    fail(MOERT_FORMAT_ERROR, path, ": ", dataBytes - expected,
         " byte(s) after the last tensor: the tensors must tile the data "
         "section");
  return layout;
}

SafetensorsFile::SafetensorsFile(const std::string &path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(MOERT_IO_ERROR, path, ": cannot open: ", std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    fail(MOERT_IO_ERROR, path, ": cannot stat: ", std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail(MOERT_IO_ERROR, path, ": not a regular file");
  }
  fileSize_ = static_cast<size_t>(info.st_size);
  if (fileSize_ > 0) {
    mapping_ = ::mmap(nullptr, fileSize_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping_ == MAP_FAILED) {
      mapping_ = nullptr;
      int error = errno;
      ::close(fd);
      fail(MOERT_IO_ERROR, path, ": cannot map: ", std::strerror(error));
    }
  }
  fd_ = fd;
  try {
    const char *bytes = static_cast<const char *>(mapping_);
    layout_ = parseSafetensors(path, bytes, fileSize_);
    dataSection_ = bytes + layout_.dataOffset;
  } catch (...) {
    if (mapping_)
      ::munmap(mapping_, fileSize_);
    ::close(fd_);
    throw;
  }
}

SafetensorsFile::SafetensorsFile(const std::string &path, const char *bytes,
                                 size_t size)
    : path_(path), fileSize_(size),
      layout_(parseSafetensors(path, bytes, size)) {
  dataSection_ = bytes + layout_.dataOffset;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_)
    ::munmap(mapping_, fileSize_);
  if (fd_ >= 0)
    ::close(fd_);
}

void SafetensorsFile::readData(uint64_t offset, void *dst, size_t bytes) const {
  if (fd_ < 0) {
    std::memcpy(dst, dataSection_ + offset, bytes);
    return;
  }
  char *out = static_cast<char *>(dst);
  uint64_t at = layout_.dataOffset + offset;
  while (bytes > 0) {
    ssize_t n = ::pread(fd_, out, bytes, off_t(at));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) // the header checked the size: the file changed under us
      fail(MOERT_IO_ERROR, path_, ": cannot read ", bytes, " bytes at ", at,
           ": ", n < 0 ? std::strerror(errno) : "unexpected end of file");
    out += n;
    at += uint64_t(n);
    bytes -= size_t(n);
  }
}

const TensorInfo *SafetensorsFile::find(const std::string &key) const {
  auto it = layout_.tensors.find(key);
  return it == layout_.tensors.end() ? nullptr : &it->second;
}

const TensorInfo &SafetensorsFile::get(const std::string &key) const {
  const TensorInfo *info = find(key);
  if (!info)
    fail(MOERT_NOT_FOUND, path_, ": no tensor '", key, "'");
  return *info;
}

std::vector<std::string> SafetensorsFile::keys() const {
  std::vector<std::string> names;
  for (const auto &entry : layout_.tensors)
    names.push_back(entry.first);
  return names;
}

const TensorInfo &SafetensorsFile::checkedTensor(
    const std::string &key, const std::vector<int64_t> &shape,
    moert_dtype_t dstType, moert_dtype_t &srcType) const {
  const TensorInfo &info = get(key);
  if (!dtypeFromName(info.dtype, srcType))
    fail(MOERT_UNSUPPORTED, path_, ": tensor '", key, "' has dtype ",
         info.dtype, "; only F32, F16, BF16, F8_E4M3 and U8 are supported");
  // Quantized values mean nothing without their scales: never converted.
  bool quantized = srcType == MOERT_F8_E4M3 || srcType == MOERT_U8;
  if ((quantized || dstType == MOERT_F8_E4M3 || dstType == MOERT_U8) &&
      srcType != dstType)
    fail(MOERT_INVALID_ARGUMENT, path_, ": tensor '", key, "' of dtype ",
         info.dtype, " cannot load into a ", dtypeName(dstType),
         " view: quantized weights and their scales load as stored");
  if (!sameLayout(info.shape, shape))
    fail(MOERT_FORMAT_ERROR, path_, ": tensor '", key, "' has shape ",
         shapeString(info.shape), ", expected ", shapeString(shape));
  return info;
}

int64_t SafetensorsFile::readBox(const std::string &key,
                                 const std::vector<int64_t> &shape,
                                 const std::vector<int64_t> &begin,
                                 const std::vector<int64_t> &end, void *dst,
                                 moert_dtype_t dstType) const {
  moert_dtype_t srcType;
  const TensorInfo &info = checkedTensor(key, shape, dstType, srcType);
  size_t rank = shape.size();
  size_t srcSize = dtypeSize(srcType), dstSize = dtypeSize(dstType);
  if (rank == 0) { // scalar
    char value[8];
    readData(info.begin, value, srcSize);
    convert(value, srcType, dst, dstType, 1);
    return 1;
  }
  std::vector<int64_t> strides(rank, 1);
  for (size_t d = rank - 1; d > 0; --d)
    strides[d - 1] = strides[d] * shape[d];
  // One run is contiguous in the file: the last dimension's range, extended
  // over the dimensions before it while the box covers those after whole.
  size_t inner = rank - 1;
  int64_t runLength = end[inner] - begin[inner];
  while (inner > 0 && begin[inner] == 0 && end[inner] == shape[inner]) {
    --inner;
    runLength *= end[inner] - begin[inner];
  }
  int64_t runs = 1;
  for (size_t d = 0; d < inner; ++d)
    runs *= end[d] - begin[d];
  // Another dtype goes through a bounded buffer (also aligns the values).
  std::vector<char> staging(
      srcType == dstType ? 0 : size_t(std::min<int64_t>(runLength, 1 << 18)) *
                                   srcSize);
  int64_t stagingElements = int64_t(staging.size() / srcSize);
  std::vector<int64_t> index(begin.begin(), begin.begin() + inner);
  char *out = static_cast<char *>(dst);
  for (int64_t run = 0; run < runs; ++run) {
    int64_t element = begin[inner] * strides[inner];
    for (size_t d = 0; d < inner; ++d)
      element += index[d] * strides[d];
    uint64_t offset = info.begin + uint64_t(element) * srcSize;
    if (srcType == dstType) {
      readData(offset, out, size_t(runLength) * srcSize);
      out += runLength * dstSize;
    } else {
      for (int64_t done = 0; done < runLength; done += stagingElements) {
        int64_t n = std::min(stagingElements, runLength - done);
        readData(offset + uint64_t(done) * srcSize, staging.data(),
                 size_t(n) * srcSize);
        convert(staging.data(), srcType, out, dstType, n);
        out += n * dstSize;
      }
    }
    for (size_t d = inner; d-- > 0;) { // odometer over the outer dims
      if (++index[d] < end[d])
        break;
      index[d] = begin[d];
    }
  }
  return runs * runLength;
}

int64_t SafetensorsFile::readView(const std::string &key,
                                  const std::vector<int64_t> &shape,
                                  int64_t offset,
                                  const std::vector<int64_t> &strides,
                                  const std::vector<int64_t> &begin,
                                  const std::vector<int64_t> &end, void *dst,
                                  moert_dtype_t dstType) const {
  moert_dtype_t srcType;
  const TensorInfo &info = checkedTensor(key, shape, dstType, srcType);
  size_t rank = strides.size();
  size_t srcSize = dtypeSize(srcType), dstSize = dtypeSize(dstType);
  int64_t rowLength = end[rank - 1] - begin[rank - 1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < rank; ++d)
    rows *= end[d] - begin[d];
  bool contiguous = strides[rank - 1] == 1;
  std::vector<char> row(size_t(rowLength) * srcSize);
  std::vector<int64_t> index(begin.begin(), begin.end() - 1);
  char *out = static_cast<char *>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t first = offset + begin[rank - 1] * strides[rank - 1];
    for (size_t d = 0; d + 1 < rank; ++d)
      first += index[d] * strides[d];
    if (contiguous) {
      readData(info.begin + uint64_t(first) * srcSize, row.data(), row.size());
    } else {
      const char *base = dataSection_ + info.begin;
      for (int64_t i = 0; i < rowLength; ++i)
        std::memcpy(row.data() + i * srcSize,
                    base + (first + i * strides[rank - 1]) * srcSize, srcSize);
    }
    convert(row.data(), srcType, out, dstType, rowLength);
    out += rowLength * dstSize;
    for (size_t d = rank - 1; d-- > 0;) { // odometer over leading dims
      if (++index[d] < end[d])
        break;
      index[d] = begin[d];
    }
  }
  return rows * rowLength;
}

void SafetensorsWriter::add(const std::string &name, moert_dtype_t dtype,
                            const std::vector<int64_t> &shape,
                            const float *values) {
  int64_t elements = 1;
  for (int64_t dim : shape)
    elements *= dim;
  std::vector<char> bytes(elements * dtypeSize(dtype));
  convertFromFloat(values, bytes.data(), dtype, elements);
  addRaw(name, dtypeToName(dtype), shape, std::move(bytes));
}

void SafetensorsWriter::addRaw(const std::string &name,
                               const std::string &dtypeName,
                               const std::vector<int64_t> &shape,
                               std::vector<char> bytes) {
  require(name != "__metadata__", "tensor name __metadata__ is reserved");
  entries_[name] = Entry{dtypeName, shape, std::move(bytes)};
}

void SafetensorsWriter::setMetadata(const std::string &key,
                                    const std::string &value) {
  metadata_[key] = value;
}

void SafetensorsWriter::write(const std::string &path) const {
  std::string header = "{";
  bool first = true;
  auto separator = [&] {
    if (!first)
      header += ",";
    first = false;
  };
  if (!metadata_.empty()) {
    separator();
    header += "\"__metadata__\":{";
    bool firstMeta = true;
    for (const auto &[key, value] : metadata_) {
      if (!firstMeta)
        header += ",";
      firstMeta = false;
      json::appendQuoted(header, key);
      header += ":";
      json::appendQuoted(header, value);
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto &[name, entry] : entries_) {
    separator();
    json::appendQuoted(header, name);
    header += ":{\"dtype\":";
    json::appendQuoted(header, entry.dtype);
    header += ",\"shape\":" + shapeString(entry.shape);
    header += ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + entry.bytes.size()) + "]}";
    offset += entry.bytes.size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    fail(MOERT_IO_ERROR, path, ": cannot create: ", std::strerror(errno));
  char length[8];
  uint64_t headerBytes = header.size();
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<char>((headerBytes >> (8 * i)) & 0xff);
  out.write(length, 8);
  out.write(header.data(), header.size());
  for (const auto &entry : entries_)
    out.write(entry.second.bytes.data(), entry.second.bytes.size());
  out.close();
  if (!out)
    fail(MOERT_IO_ERROR, path, ": write failed");
}
