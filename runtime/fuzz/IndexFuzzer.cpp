//===- runtime/fuzz/IndexFuzzer.cpp - A sharded checkpoint's index --------===//
//
// Any bytes as model.safetensors.index.json: rejected with a moert::Error, or
// every entry names a shard that stays in the index's directory.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/weights/Checkpoint.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace moert::weights;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    auto entries = parseIndex(
        "fuzz.index.json",
        std::string_view(reinterpret_cast<const char *>(data), size));
    for (const auto &entry : entries) {
      const std::string &shard = entry.second;
      if (shard.empty() || shard.front() == '/' || shard == ".." ||
          shard.rfind("../", 0) == 0 ||
          shard.find("/../") != std::string::npos ||
          (shard.size() >= 3 && shard.compare(shard.size() - 3, 3, "/..") == 0))
        std::abort(); // accepted a shard outside the directory
    }
  } catch (const moert::Error &) {
  }
  return 0;
}
