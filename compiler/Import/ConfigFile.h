//===- ConfigFile.h - a JSON model config with source locations -*- C++ -*-===//
//
// A top-level JSON object parsed with llvm::json, plus a small index of where
// every top-level key (and every element of a top-level array) starts in the
// raw text, so that every diagnostic points into the user's file:
//
//   config.json:12:3: error: 'num_experts_per_tok' must be an integer, got "2"
//
// Getters record which keys the importer consumed; `checkUnknownKeys` then
// rejects everything neither consumed nor known to be irrelevant. Type errors
// are emitted once and make `failed()` true; getters then return a neutral
// value so that a reader can fetch every key before checking.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_IMPORT_CONFIGFILE_H
#define MOE_COMPILER_IMPORT_CONFIGFILE_H

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"

#include <limits>
#include <memory>
#include <optional>
#include <string>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir::moe::import {

class ConfigFile {
public:
  static constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();
  /// JSON containers nest at most this deep (model configs nest a few
  /// levels): llvm::json::parse recurses once per level.
  static constexpr unsigned kMaxDepth = 64;

  /// Parses the main buffer of `sourceMgr`. Emits the diagnostic and returns
  /// null if it is not JSON or not a JSON object.
  static std::unique_ptr<ConfigFile> parse(llvm::SourceMgr &sourceMgr,
                                           mlir::MLIRContext *context);

  mlir::MLIRContext *getContext() const { return context; }

  /// The object under top-level `key` as a config of its own (Llama 4's
  /// `text_config`): its keys located where they are written in this file,
  /// consumed and checked on their own. Marks `key` consumed; emits the
  /// error and returns null if it is absent or not an object.
  std::unique_ptr<ConfigFile> nested(llvm::StringRef key);

  //===--- Locations ------------------------------------------------------===//

  /// The file itself (1:1).
  mlir::FileLineColLoc fileLoc() const;
  /// Where `key` is written; the file if it is absent.
  mlir::FileLineColLoc loc(llvm::StringRef key) const;
  /// Where element `index` of the top-level array `key` starts; the key if it
  /// is not an array that long.
  mlir::FileLineColLoc elementLoc(llvm::StringRef key, size_t index) const;

  /// Emits an error at `key` (or at the file) and makes `failed()` true.
  mlir::InFlightDiagnostic error(llvm::StringRef key);
  mlir::InFlightDiagnostic error(mlir::Location loc);
  bool failed() const { return hadError; }

  //===--- Values ---------------------------------------------------------===//
  // Every getter marks `key` consumed. Absent and `null` are the same.

  bool has(llvm::StringRef key) const;
  /// The raw value (null if absent), marking the key consumed.
  const llvm::json::Value *get(llvm::StringRef key);

  std::optional<int64_t> getInt(llvm::StringRef key);
  int64_t getInt(llvm::StringRef key, int64_t fallback);
  /// Errors if absent or not in [1, max]; returns 1 on failure so that later
  /// arithmetic stays defined.
  int64_t requirePositive(llvm::StringRef key, int64_t max = kNoLimit);
  /// Errors if present and not in [1, max].
  int64_t getPositive(llvm::StringRef key, int64_t fallback,
                      int64_t max = kNoLimit);
  /// Errors if present and not in [0, max].
  int64_t getNonNegative(llvm::StringRef key, int64_t fallback,
                         int64_t max = kNoLimit);
  /// Errors at `where` (about `what`, e.g. "'key'") if `value` > `max`.
  bool checkAtMost(mlir::Location where, llvm::StringRef what, int64_t value,
                   int64_t max);
  std::optional<double> getNumber(llvm::StringRef key);
  double getNumber(llvm::StringRef key, double fallback);
  /// Errors if present and not > 0 (the value as written); returns
  /// `fallback` then, or when absent.
  double getPositiveNumber(llvm::StringRef key, double fallback);
  std::optional<bool> getBool(llvm::StringRef key);
  bool getBool(llvm::StringRef key, bool fallback);
  std::optional<std::string> getString(llvm::StringRef key);
  std::string getString(llvm::StringRef key, llvm::StringRef fallback);
  std::string requireString(llvm::StringRef key);
  /// A list of integers (absent → empty).
  std::vector<int64_t> getIntList(llvm::StringRef key);

  /// Marks `keys` as known not to affect the FFN stack.
  void ignore(llvm::ArrayRef<llvm::StringRef> keys);
  /// Errors at every key neither consumed nor ignored.
  void checkUnknownKeys(llvm::StringRef modelType);

private:
  ConfigFile(mlir::MLIRContext *context, llvm::StringRef fileName)
      : context(context), fileName(fileName.str()) {}

  struct Position {
    unsigned line = 1, column = 1;
  };
  /// Where a key and, for arrays, each element start.
  struct KeyInfo {
    Position key;
    std::vector<Position> elements;
    /// Where an object or array value starts: byte offset and position.
    size_t containerOffset = 0;
    Position container;
  };

  /// Scans the raw text from `start` (the position of its first byte) to the
  /// end of the first container for the positions of that container's keys
  /// and of the elements of its arrays. Emits "duplicate key" diagnostics.
  bool indexLocations(llvm::StringRef text, Position start);
  mlir::FileLineColLoc makeLoc(Position pos) const;
  /// Emits "'key' must be <what>, got <value>".
  void typeError(llvm::StringRef key, llvm::StringRef what);

  mlir::MLIRContext *context;
  std::string fileName;
  /// The raw text this config's object starts at, for nested().
  std::string text;
  llvm::json::Object root;
  llvm::StringMap<KeyInfo> positions;
  /// Keys in file order, for deterministic unknown-key diagnostics.
  std::vector<std::string> keyOrder;
  llvm::StringSet<> consumed;
  bool hadError = false;
};

} // namespace mlir::moe::import

#endif // MOE_COMPILER_IMPORT_CONFIGFILE_H
