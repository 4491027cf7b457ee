//===- runtime/weights/Checkpoint.h - checkpoints as published --*- C++ -*-===//
//
// A checkpoint as Hugging Face publishes it: one .safetensors file, or
// shards named by an index (model.safetensors.index.json):
//
//   {"metadata": {"total_size": N, ...},
//    "weight_map": {"<tensor>": "model-00001-of-00002.safetensors", ...}}
//
// Every shard is mapped and its header checked when the checkpoint opens, so
// a missing, truncated or inconsistent shard is an error before any weight
// is loaded; tensors are then resolved through the index.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_WEIGHTS_CHECKPOINT_H
#define MOERT_WEIGHTS_CHECKPOINT_H

#include "runtime/weights/Safetensors.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moert::weights {

inline constexpr const char *kIndexFileName = "model.safetensors.index.json";
inline constexpr const char *kSingleFileName = "model.safetensors";

// The entries of an index's "weight_map": tensor and shard file name, in
// file order. Throws MOERT_FORMAT_ERROR naming `path` (and the tensor) unless
// `text` is a JSON object with a non-empty "weight_map" object of strings,
// each a shard name that stays in the index's directory (no absolute path,
// no ".." component).
std::vector<std::pair<std::string, std::string>>
parseIndex(const std::string &path, std::string_view text);

// The weights file of checkpoint directory `dir`: its index if it has one,
// else its model.safetensors, else "" (a directory with only a config).
std::string findCheckpointWeights(const std::string &dir);

class Checkpoint {
public:
  // `path`: a .safetensors file, an index .json, or a directory holding
  // either (findCheckpointWeights). Throws moert::Error naming the path, the
  // shard and the tensor: IO_ERROR (missing, unreadable or truncated shard),
  // FORMAT_ERROR (malformed index or shard, a shard outside the index's
  // directory, a tensor the index lists but its shard lacks).
  explicit Checkpoint(const std::string &path);

  // What was opened: the file or the index.
  const std::string &path() const { return path_; }
  // The shard holding `key`; throws MOERT_NOT_FOUND naming path() and key.
  const SafetensorsFile &fileOf(const std::string &key) const;
  // SafetensorsFile::readBox on the shard holding `key`, counted in stats().
  int64_t readBox(const std::string &key, const std::vector<int64_t> &shape,
                  const std::vector<int64_t> &begin,
                  const std::vector<int64_t> &end, void *dst,
                  moert_dtype_t dstType) const;
  // SafetensorsFile::readView on the shard holding `key`, counted.
  int64_t readView(const std::string &key, const std::vector<int64_t> &shape,
                   int64_t offset, const std::vector<int64_t> &strides,
                   const std::vector<int64_t> &begin,
                   const std::vector<int64_t> &end, void *dst,
                   moert_dtype_t dstType) const;
  std::vector<std::string> keys() const;

  struct Stats {
    int64_t files = 0, filesRead = 0; // shards, and those read from
    int64_t bytes = 0, bytesRead = 0; // tensor data in them, and read
  };
  // Safe to call while other threads load.
  Stats stats() const;

private:
  // The shard holding `key` (throws MOERT_NOT_FOUND) and its index.
  size_t shardOf(const std::string &key) const;
  void countRead(size_t shard, const std::string &key, int64_t elements) const;
  void openSingle(const std::string &file);
  void openIndex(const std::string &index);

  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_; // tensor -> index into files_
  int64_t bytes_ = 0;
  // Counters of what loads read (readBox is const and runs on many ranks).
  mutable std::atomic<int64_t> bytesRead_{0};
  mutable std::unique_ptr<std::atomic<bool>[]> fileRead_;
};

} // namespace moert::weights

#endif // MOERT_WEIGHTS_CHECKPOINT_H
