//===- runtime/weights/Json.cpp - Minimal JSON reader ---------------------===//

#include "runtime/weights/Json.h"

#include "runtime/common/Error.h"
#include "runtime/common/TextCursor.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <unordered_set>

using namespace moert;
using namespace moert::json;

const Value *Value::find(std::string_view key) const {
  for (const auto &[name, value] : object)
    if (name == key)
      return &value;
  return nullptr;
}

namespace {

class Parser : TextCursor {
public:
  explicit Parser(std::string_view text) : TextCursor(text) {}

  Value parseDocument() {
    Value value = parseValue(0);
    skipSpace();
    if (pos != text.size())
      error("trailing characters after the JSON value");
    return value;
  }

private:
  // Bounds that keep hostile input from exhausting the stack (one frame set
  // per level) or the memory (a Value is ~100 bytes, a "0," is 2).
  static constexpr int maxDepth = 64;
  static constexpr size_t maxValues = size_t(4) << 20;
  static constexpr size_t maxNumberLength = 256;
  size_t values = 0;

  template <typename... Parts>
  [[noreturn]] void errorAt(size_t at, const Parts &...what) {
    fail(MOERT_FORMAT_ERROR, "malformed JSON at byte ", at, ": ", what...);
  }
  [[noreturn]] void error(const char *what) { errorAt(pos, what); }

  void expect(char c, const char *what) {
    if (!consume(c))
      error(what);
  }

  Value parseValue(int depth) {
    if (depth > maxDepth)
      errorAt(pos, "nesting deeper than ", maxDepth, " levels");
    if (++values > maxValues)
      errorAt(pos, "more than ", maxValues, " values");
    skipSpace();
    if (pos >= text.size())
      error("unexpected end of input");
    char c = text[pos];
    if (c == '{')
      return parseObject(depth);
    if (c == '[')
      return parseArray(depth);
    Value value;
    if (c == '"') {
      value.kind = Value::Kind::String;
      value.string = parseString();
      return value;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
      return parseNumber();
    for (auto [word, kind, flag] :
         {std::tuple{"true", Value::Kind::Bool, true},
          std::tuple{"false", Value::Kind::Bool, false},
          std::tuple{"null", Value::Kind::Null, false}}) {
      size_t length = std::strlen(word);
      if (text.substr(pos, length) == word) {
        pos += length;
        value.kind = kind;
        value.boolean = flag;
        return value;
      }
    }
    error("unexpected character");
  }

  Value parseObject(int depth) {
    Value value;
    value.kind = Value::Kind::Object;
    ++pos; // '{'
    if (consume('}'))
      return value;
    // A repeated key would make the value depend on which one a reader uses.
    std::unordered_set<std::string> keys;
    do {
      skipSpace();
      if (pos >= text.size() || text[pos] != '"')
        error("expected a string key");
      size_t keyPos = pos;
      std::string key = parseString();
      if (!keys.insert(key).second)
        errorAt(keyPos, "duplicate key '", key, "'");
      expect(':', "expected ':' after an object key");
      value.object.emplace_back(std::move(key), parseValue(depth + 1));
    } while (consume(','));
    expect('}', "expected ',' or '}' in an object");
    return value;
  }

  Value parseArray(int depth) {
    Value value;
    value.kind = Value::Kind::Array;
    ++pos; // '['
    if (consume(']'))
      return value;
    do
      value.array.push_back(parseValue(depth + 1));
    while (consume(','));
    expect(']', "expected ',' or ']' in an array");
    return value;
  }

  Value parseNumber() {
    size_t start = pos;
    bool integral = true;
    if (text[pos] == '-')
      ++pos;
    if (text.substr(pos, 1) == "0" && pos + 1 < text.size() &&
        text[pos + 1] >= '0' && text[pos + 1] <= '9')
      error("leading zero in a number");
    auto digits = [&] {
      size_t first = pos;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
        ++pos;
      if (pos == first)
        error("expected digits in a number");
    };
    digits();
    if (pos < text.size() && text[pos] == '.') {
      integral = false;
      ++pos;
      digits();
    }
    if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
      integral = false;
      ++pos;
      if (pos < text.size() && (text[pos] == '+' || text[pos] == '-'))
        ++pos;
      digits();
    }
    // strtod on a long literal is slow and no header needs one.
    if (pos - start > maxNumberLength)
      errorAt(start, "number longer than ", maxNumberLength, " characters");
    std::string literal(text.substr(start, pos - start));
    Value value;
    value.number = std::strtod(literal.c_str(), nullptr);
    value.kind = Value::Kind::Number;
    if (integral) {
      errno = 0;
      long long parsed = std::strtoll(literal.c_str(), nullptr, 10);
      if (errno == ERANGE)
        error("integer out of range");
      value.kind = Value::Kind::Integer;
      value.integer = parsed;
    }
    return value;
  }

  void appendUtf8(std::string &out, uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xc0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xe0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    }
  }

  uint32_t parseHex4() {
    if (pos + 4 > text.size())
      error("truncated \\u escape");
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text[pos++];
      code <<= 4;
      if (c >= '0' && c <= '9')
        code |= c - '0';
      else if (c >= 'a' && c <= 'f')
        code |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        code |= c - 'A' + 10;
      else
        error("bad hex digit in \\u escape");
    }
    return code;
  }

  std::string parseString() {
    ++pos; // '"'
    std::string out;
    while (true) {
      if (pos >= text.size())
        error("unterminated string");
      char c = text[pos++];
      if (c == '"')
        return out;
      if (static_cast<unsigned char>(c) < 0x20)
        error("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos >= text.size())
        error("unterminated escape");
      char escape = text[pos++];
      switch (escape) {
      case '"':
      case '\\':
      case '/':
        out += escape;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t code = parseHex4();
        if (code >= 0xd800 && code < 0xdc00) { // surrogate pair
          if (text.substr(pos, 2) != "\\u")
            error("unpaired surrogate");
          pos += 2;
          uint32_t low = parseHex4();
          if (low < 0xdc00 || low >= 0xe000)
            error("bad low surrogate");
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        } else if (code >= 0xdc00 && code < 0xe000) {
          error("unpaired low surrogate");
        }
        appendUtf8(out, code);
        break;
      }
      default:
        error("unknown escape");
      }
    }
  }
};

} // namespace

Value moert::json::parse(std::string_view text) {
  return Parser(text).parseDocument();
}

void moert::json::appendQuoted(std::string &out, std::string_view text) {
  out += '"';
  for (char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
        out += escaped;
      } else {
        out += c;
      }
    }
  }
  out += '"';
}
