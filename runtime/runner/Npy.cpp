//===- runtime/runner/Npy.cpp - 2-D float32 .npy files --------------------===//

#include "runtime/runner/Npy.h"

#include "runtime/common/Error.h"
#include "runtime/common/TextCursor.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sys/stat.h>

namespace moert::runner {

namespace {

// The header is a Python dict literal (numpy writes it with ast-compatible
// syntax, and readers use ast.literal_eval): exactly the keys 'descr',
// 'fortran_order' and 'shape', any whitespace, an optional trailing comma.
class NpyHeader : TextCursor {
public:
  NpyHeader(const std::string &path, std::string_view text)
      : TextCursor(text), path(path) {}

  std::string descr;
  bool fortranOrder = false;
  std::vector<int64_t> shape;

  void parse() {
    expect('{');
    std::set<std::string> keys;
    while (!consume('}')) {
      std::string key = parseString();
      if (!keys.insert(key).second)
        error("duplicate key '", key, "'");
      expect(':');
      if (key == "descr")
        descr = parseString();
      else if (key == "fortran_order")
        fortranOrder = parseBool();
      else if (key == "shape")
        parseShape();
      else
        error("unknown key '", key, "'");
      if (!consume(',')) {
        expect('}');
        break;
      }
    }
    skipSpace();
    if (pos != text.size())
      error("characters after the header dict");
    for (const char *key : {"descr", "fortran_order", "shape"})
      if (!keys.count(key))
        error("no '", key, "'");
  }

private:
  const std::string &path;

  template <typename... Parts> [[noreturn]] void error(const Parts &...what) {
    fail(MOERT_FORMAT_ERROR, path, ": .npy header at byte ", pos, ": ",
         what...);
  }

  void expect(char c) {
    if (!consume(c))
      error("expected '", c, "'");
  }

  std::string parseString() {
    skipSpace();
    char quote = pos < text.size() ? text[pos] : '\0';
    if (quote != '\'' && quote != '"')
      error("expected a quoted string");
    size_t end = text.find(quote, pos + 1);
    if (end == std::string_view::npos)
      error("unterminated string");
    std::string value(text.substr(pos + 1, end - pos - 1));
    if (value.find('\\') != std::string::npos)
      error("escapes are not supported");
    pos = end + 1;
    return value;
  }

  bool parseBool() {
    skipSpace();
    for (bool value : {true, false}) {
      std::string_view word = value ? "True" : "False";
      if (text.substr(pos, word.size()) == word) {
        pos += word.size();
        return value;
      }
    }
    error("expected True or False");
  }

  void parseShape() {
    expect('(');
    while (!consume(')')) {
      skipSpace();
      size_t first = pos;
      int64_t extent = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
        if (__builtin_mul_overflow(extent, 10, &extent) ||
            __builtin_add_overflow(extent, text[pos++] - '0', &extent))
          error("extent out of range");
      if (pos == first)
        error("expected a non-negative integer extent");
      shape.push_back(extent);
      if (!consume(',')) {
        expect(')');
        break;
      }
    }
  }
};

} // namespace

NpyMatrix parseNpy(const std::string &path, std::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != "\x93NUMPY")
    fail(MOERT_FORMAT_ERROR, path, " is not a .npy file");
  auto byte = [&](size_t i) { return size_t(uint8_t(bytes[i])); };
  size_t headerLen = 0, start = 0;
  int major = bytes[6];
  if (major == 1) {
    headerLen = byte(8) | byte(9) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      fail(MOERT_IO_ERROR, path, ": truncated .npy header");
    headerLen = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
    start = 12;
  } else {
    fail(MOERT_FORMAT_ERROR, path, ": unknown .npy format version ", major);
  }
  if (headerLen > bytes.size() - start)
    fail(MOERT_IO_ERROR, path, ": truncated .npy header");
  NpyHeader header(path, bytes.substr(start, headerLen));
  header.parse();
  if (header.descr != "<f4" || header.fortranOrder)
    fail(MOERT_FORMAT_ERROR, path,
         ": only C-order float32 (<f4) arrays are supported, got '",
         header.descr, "'", header.fortranOrder ? " in Fortran order" : "");
  std::string shape;
  for (size_t i = 0; i < header.shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(header.shape[i]);
  if (header.shape.size() != 2)
    fail(MOERT_FORMAT_ERROR, path, ": expected a 2-D array, got shape (", shape,
         ")");
  NpyMatrix m;
  m.rows = header.shape[0];
  m.cols = header.shape[1];
  int64_t elements = 0, need = 0;
  if (__builtin_mul_overflow(m.rows, m.cols, &elements) ||
      __builtin_mul_overflow(elements, int64_t(4), &need))
    fail(MOERT_FORMAT_ERROR, path, ": shape (", shape,
         ") overflows 64-bit byte sizes");
  size_t have = bytes.size() - start - headerLen;
  if (have < uint64_t(need))
    fail(MOERT_IO_ERROR, path, ": truncated data: ", have, " bytes, shape (",
         shape, ") needs ", need);
  if (have > uint64_t(need))
    fail(MOERT_FORMAT_ERROR, path, ": ", have - need,
         " byte(s) after the data of shape (", shape, ")");
  m.data.resize(size_t(elements));
  if (need > 0) // an empty vector's data() may be null
    std::memcpy(m.data.data(), bytes.data() + start + headerLen, size_t(need));
  return m;
}

NpyMatrix readNpy(const std::string &path) {
  // A directory would open as a stream and fail only when read; a device
  // such as /dev/zero would never end.
  struct stat info;
  if (::stat(path.c_str(), &info) != 0)
    fail(MOERT_IO_ERROR, "cannot read ", path, ": ", std::strerror(errno));
  if (!S_ISREG(info.st_mode) && !S_ISFIFO(info.st_mode))
    fail(MOERT_IO_ERROR, "cannot read ", path, ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(MOERT_IO_ERROR, "cannot read ", path, ": ", std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad())
    fail(MOERT_IO_ERROR, "cannot read ", path);
  return parseNpy(path, bytes);
}

void writeNpy(const std::string &path, const NpyMatrix &m) {
  writeNpy(path, {m.rows, m.cols}, m.data);
}

void writeNpy(const std::string &path, const std::vector<int64_t> &shape,
              const std::vector<float> &data) {
  std::string dims;
  for (int64_t d : shape)
    dims += std::to_string(d) + ", ";
  if (shape.size() > 1)
    dims.resize(dims.size() - 2);
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // The data starts 64-byte aligned, as numpy writes it.
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(reinterpret_cast<const char *>(data.data()),
            std::streamsize(data.size() * 4));
  // Buffered bytes are written, and may fail (a full disk), on close.
  out.close();
  if (!out)
    fail(MOERT_IO_ERROR, "cannot write ", path, ": ", std::strerror(errno));
}

} // namespace moert::runner
