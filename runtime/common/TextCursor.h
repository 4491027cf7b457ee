//===- runtime/common/TextCursor.h - A position in a small text -*- C++ -*-===//
//
// The scanning both hand-written readers share (the safetensors header's
// JSON, the .npy header's Python dict): whitespace as JSON defines it, and
// single-character punctuation.
//
//===----------------------------------------------------------------------===//

#ifndef MOERT_COMMON_TEXTCURSOR_H
#define MOERT_COMMON_TEXTCURSOR_H

#include <cstddef>
#include <string_view>

namespace moert {

struct TextCursor {
  explicit TextCursor(std::string_view text) : text(text) {}

  std::string_view text;
  size_t pos = 0;

  void skipSpace() {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' ||
                                 text[pos] == '\r' || text[pos] == '\n'))
      ++pos;
  }

  /// Skips whitespace, then `c` if it is next.
  bool consume(char c) {
    skipSpace();
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
};

} // namespace moert

#endif // MOERT_COMMON_TEXTCURSOR_H
