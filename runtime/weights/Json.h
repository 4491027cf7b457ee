//===- runtime/weights/Json.h - Minimal JSON reader -------------*- C++ -*-===//
//
// Just enough JSON for safetensors headers (objects, arrays, strings,
// integers, numbers, literals); no external dependency.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_WEIGHTS_JSON_H
#define MOERT_WEIGHTS_JSON_H

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moert::json {

struct Value {
  enum class Kind { Null, Bool, Integer, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0; // Kind::Integer: exact
  double number = 0;   // Kind::Integer and Kind::Number
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object; // in file order

  const Value *find(std::string_view key) const;
};

// Throws moert::Error(MOERT_FORMAT_ERROR) with the byte offset of the fault,
// also for a key repeated in one object, nesting deeper than 64 levels, more
// than 4M values and number literals over 256 characters.
Value parse(std::string_view text);

// Appends text as a JSON string literal (quoted, escaped).
void appendQuoted(std::string &out, std::string_view text);

} // namespace moert::json

#endif // MOERT_WEIGHTS_JSON_H
