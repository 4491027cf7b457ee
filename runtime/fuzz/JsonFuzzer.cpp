//===- runtime/fuzz/JsonFuzzer.cpp - The safetensors header's JSON --------===//
//
// Any bytes: parsed, or rejected with a moert::Error; nothing else.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/weights/Json.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    moert::json::parse(
        std::string_view(reinterpret_cast<const char *>(data), size));
  } catch (const moert::Error &) {
  }
  return 0;
}
