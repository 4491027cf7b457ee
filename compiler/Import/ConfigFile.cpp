//===- ConfigFile.cpp - a JSON model config with source locations --------===//

#include "compiler/Import/ConfigFile.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/SourceMgr.h"

#include <cctype>
#include <cmath>

using namespace mlir;
using namespace mlir::moe::import;
namespace json = llvm::json;

/// `value` as the user wrote it, shortened.
static std::string render(const json::Value &value) {
  std::string text = llvm::formatv("{0}", value).str();
  if (text.size() > 60)
    text = text.substr(0, 57) + "...";
  return text;
}

static const char *kindName(const json::Value &value) {
  switch (value.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return "a boolean";
  case json::Value::Number:
    return "a number";
  case json::Value::String:
    return "a string";
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  return "a value";
}

std::unique_ptr<ConfigFile> ConfigFile::parse(llvm::SourceMgr &sourceMgr,
                                              MLIRContext *context) {
  const llvm::MemoryBuffer *buffer =
      sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
  StringRef text = buffer->getBuffer();
  std::unique_ptr<ConfigFile> config(
      new ConfigFile(context, buffer->getBufferIdentifier()));

  // Line and column (both 1-based) of a byte offset.
  auto positionOf = [&](size_t offset) {
    Position pos;
    offset = std::min(offset, text.size());
    for (size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++pos.line;
        pos.column = 1;
      } else {
        ++pos.column;
      }
    }
    return pos;
  };

  // Refuse deep nesting before the recursive parser sees it (100,000
  // levels overflow its stack).
  unsigned depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      while (++i < text.size() && text[i] != '"')
        i += text[i] == '\\';
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) {
        emitError(config->makeLoc(positionOf(i)))
            << "JSON nested deeper than " << kMaxDepth << " levels";
        return nullptr;
      }
    } else if ((c == ']' || c == '}') && depth) {
      --depth;
    }
  }

  llvm::Expected<json::Value> parsed = json::parse(text);
  if (!parsed) {
    // llvm::json reports "[line:col, byte=N]: message"; the column is 0-based,
    // so recompute both from the byte offset.
    std::string message = llvm::toString(parsed.takeError());
    llvm::Regex pattern("^\\[[0-9]+:[0-9]+, byte=([0-9]+)\\]: (.*)$");
    llvm::SmallVector<StringRef, 3> groups;
    Position pos;
    if (pattern.match(message, &groups)) {
      size_t offset = 0;
      groups[1].getAsInteger(10, offset);
      // The parser reports the offset after the character it rejected.
      pos = positionOf(offset > 0 ? offset - 1 : 0);
      message = groups[2].str();
    }
    emitError(config->makeLoc(pos)) << "malformed JSON: " << message;
    return nullptr;
  }
  json::Object *object = parsed->getAsObject();
  if (!object) {
    size_t first = text.find_first_not_of(" \t\r\n");
    emitError(config->makeLoc(positionOf(first == StringRef::npos ? 0 : first)))
        << "a model config must be a JSON object, got " << kindName(*parsed);
    return nullptr;
  }
  config->root = std::move(*object);
  config->text = text.str();
  if (!config->indexLocations(text, Position()))
    return nullptr;
  return config;
}

std::unique_ptr<ConfigFile> ConfigFile::nested(StringRef key) {
  const json::Value *value = get(key);
  const json::Object *object = value ? value->getAsObject() : nullptr;
  auto it = positions.find(key);
  if (!object || it == positions.end()) {
    error(key) << "'" << key << "' must be an object";
    return nullptr;
  }
  std::unique_ptr<ConfigFile> child(new ConfigFile(context, fileName));
  child->root = *object;
  child->text = StringRef(text).drop_front(it->second.containerOffset).str();
  if (!child->indexLocations(child->text, it->second.container)) {
    hadError = true;
    return nullptr;
  }
  return child;
}

bool ConfigFile::indexLocations(StringRef text, Position start) {
  // A container being scanned. `expectItem`: the next string is a key (in an
  // object) or the next token starts an element (in an array).
  struct Frame {
    bool object;
    bool expectItem;
    std::string key;
  };
  llvm::SmallVector<Frame> stack;
  std::string topKey;
  bool ok = true;
  Position pos = start;
  for (size_t i = 0; i < text.size(); ++i, ++pos.column) {
    char c = text[i];
    if (c == '\n') {
      ++pos.line;
      pos.column = 0;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c)))
      continue;
    // An element of a top-level array starts here.
    if (stack.size() == 2 && !stack[1].object && stack[1].expectItem &&
        c != ']') {
      positions[stack[1].key].elements.push_back(pos);
      stack[1].expectItem = false;
    }
    switch (c) {
    case '{':
    case '[':
      if (stack.size() == 1 && !topKey.empty()) {
        positions[topKey].containerOffset = i;
        positions[topKey].container = pos;
      }
      stack.push_back({c == '{', true, stack.size() == 1 ? topKey : ""});
      break;
    case '}':
    case ']':
      if (!stack.empty())
        stack.pop_back();
      if (stack.empty()) // the end of this config's object
        i = text.size();
      break;
    case ',':
      if (!stack.empty())
        stack.back().expectItem = true;
      break;
    case '"': {
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"')
        end += text[end] == '\\' ? 2 : 1;
      bool isKey =
          !stack.empty() && stack.back().object && stack.back().expectItem;
      if (isKey && stack.size() == 1) {
        // Decode escapes the way the parser did.
        std::string key = text.slice(i + 1, end).str();
        if (StringRef(key).contains('\\')) {
          if (llvm::Expected<json::Value> decoded =
                  json::parse(text.slice(i, end + 1)))
            key = decoded->getAsString().value_or(key).str();
          else
            llvm::consumeError(decoded.takeError());
        }
        auto [it, inserted] = positions.try_emplace(key);
        if (!inserted) {
          emitError(makeLoc(pos))
              << "duplicate key '" << key << "' (first at line "
              << it->second.key.line << ")";
          ok = false;
        } else {
          it->second.key = pos;
          keyOrder.push_back(key);
        }
        topKey = key;
      }
      if (isKey)
        stack.back().expectItem = false;
      pos.column += end - i;
      i = end;
      break;
    }
    default:
      break;
    }
  }
  hadError |= !ok;
  return ok;
}

FileLineColLoc ConfigFile::makeLoc(Position pos) const {
  return FileLineColLoc::get(context, fileName, pos.line, pos.column);
}

FileLineColLoc ConfigFile::fileLoc() const { return makeLoc(Position()); }

FileLineColLoc ConfigFile::loc(StringRef key) const {
  auto it = positions.find(key);
  return it == positions.end() ? fileLoc() : makeLoc(it->second.key);
}

FileLineColLoc ConfigFile::elementLoc(StringRef key, size_t index) const {
  auto it = positions.find(key);
  if (it == positions.end() || index >= it->second.elements.size())
    return loc(key);
  return makeLoc(it->second.elements[index]);
}

InFlightDiagnostic ConfigFile::error(StringRef key) { return error(loc(key)); }

InFlightDiagnostic ConfigFile::error(Location where) {
  hadError = true;
  return emitError(where);
}

void ConfigFile::typeError(StringRef key, StringRef what) {
  error(key) << "'" << key << "' must be " << what << ", got "
             << render(*root.get(key));
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

bool ConfigFile::has(StringRef key) const {
  const json::Value *value = root.get(key);
  return value && value->kind() != json::Value::Null;
}

const json::Value *ConfigFile::get(StringRef key) {
  consumed.insert(key);
  const json::Value *value = root.get(key);
  return value && value->kind() != json::Value::Null ? value : nullptr;
}

std::optional<int64_t> ConfigFile::getInt(StringRef key) {
  const json::Value *value = get(key);
  if (!value)
    return std::nullopt;
  // llvm::json accepts 4.0 as an integer; Python's int() in HF would too.
  std::optional<int64_t> result = value->getAsInteger();
  if (!result || value->kind() != json::Value::Number)
    typeError(key, "an integer");
  return result;
}

int64_t ConfigFile::getInt(StringRef key, int64_t fallback) {
  return getInt(key).value_or(fallback);
}

bool ConfigFile::checkAtMost(Location where, StringRef what, int64_t value,
                             int64_t max) {
  if (value <= max)
    return true;
  error(where) << what << " must be at most " << max << ", got " << value;
  return false;
}

int64_t ConfigFile::requirePositive(StringRef key, int64_t max) {
  if (!root.get(key)) {
    consumed.insert(key);
    error(fileLoc()) << "missing required key '" << key << "'";
    return 1;
  }
  if (!has(key)) {
    consumed.insert(key);
    typeError(key, "a positive integer");
    return 1;
  }
  return getPositive(key, 1, max);
}

int64_t ConfigFile::getPositive(StringRef key, int64_t fallback, int64_t max) {
  std::optional<int64_t> value = getInt(key);
  if (!value)
    return fallback;
  if (*value <= 0) {
    error(key) << "'" << key << "' must be positive, got " << *value;
    return fallback > 0 ? fallback : 1;
  }
  if (!checkAtMost(loc(key), "'" + key.str() + "'", *value, max))
    return fallback > 0 ? fallback : 1;
  return *value;
}

int64_t ConfigFile::getNonNegative(StringRef key, int64_t fallback,
                                   int64_t max) {
  std::optional<int64_t> value = getInt(key);
  if (!value)
    return fallback;
  if (*value < 0) {
    error(key) << "'" << key << "' must be >= 0, got " << *value;
    return fallback;
  }
  if (!checkAtMost(loc(key), "'" + key.str() + "'", *value, max))
    return fallback;
  return *value;
}

std::optional<double> ConfigFile::getNumber(StringRef key) {
  const json::Value *value = get(key);
  if (!value)
    return std::nullopt;
  std::optional<double> result = value->getAsNumber();
  if (!result)
    typeError(key, "a number");
  return result;
}

double ConfigFile::getNumber(StringRef key, double fallback) {
  return getNumber(key).value_or(fallback);
}

double ConfigFile::getPositiveNumber(StringRef key, double fallback) {
  std::optional<double> value = getNumber(key);
  if (!value)
    return fallback;
  if (!(std::isfinite(*value) && *value > 0.0)) {
    error(key) << "'" << key << "' must be positive, got "
               << render(*root.get(key));
    return fallback;
  }
  return *value;
}

std::optional<bool> ConfigFile::getBool(StringRef key) {
  const json::Value *value = get(key);
  if (!value)
    return std::nullopt;
  std::optional<bool> result = value->getAsBoolean();
  if (!result)
    typeError(key, "true or false");
  return result;
}

bool ConfigFile::getBool(StringRef key, bool fallback) {
  return getBool(key).value_or(fallback);
}

std::optional<std::string> ConfigFile::getString(StringRef key) {
  const json::Value *value = get(key);
  if (!value)
    return std::nullopt;
  std::optional<StringRef> result = value->getAsString();
  if (!result) {
    typeError(key, "a string");
    return std::nullopt;
  }
  return result->str();
}

std::string ConfigFile::getString(StringRef key, StringRef fallback) {
  return getString(key).value_or(fallback.str());
}

std::string ConfigFile::requireString(StringRef key) {
  consumed.insert(key);
  if (!root.get(key)) {
    error(fileLoc()) << "missing required key '" << key << "'";
    return "";
  }
  if (!has(key)) {
    typeError(key, "a string");
    return "";
  }
  return getString(key).value_or("");
}

std::vector<int64_t> ConfigFile::getIntList(StringRef key) {
  const json::Value *value = get(key);
  std::vector<int64_t> result;
  if (!value)
    return result;
  const json::Array *array = value->getAsArray();
  if (!array) {
    typeError(key, "a list of integers");
    return result;
  }
  for (auto [index, element] : llvm::enumerate(*array)) {
    std::optional<int64_t> item = element.getAsInteger();
    if (!item || element.kind() != json::Value::Number) {
      error(elementLoc(key, index))
          << "element " << index << " of '" << key
          << "' must be an integer, got " << render(element);
      continue;
    }
    result.push_back(*item);
  }
  return result;
}

void ConfigFile::ignore(ArrayRef<StringRef> keys) {
  for (StringRef key : keys)
    consumed.insert(key);
}

void ConfigFile::checkUnknownKeys(StringRef modelType) {
  for (const std::string &key : keyOrder)
    if (!consumed.contains(key))
      error(key) << "unknown key '" << key << "' for model_type '" << modelType
                 << "': it may change the MoE semantics";
}
