//===- runtime/fuzz/SafetensorsFuzzer.cpp - A weights file ----------------===//
//
// Any bytes as a safetensors file: rejected with a moert::Error, or every
// tensor of a loadable dtype is read whole (readBox, as moert_weights_load
// does) from exactly the input's bytes, so that AddressSanitizer sees any
// read outside them.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/weights/Safetensors.h"

#include <cstddef>
#include <cstdint>
#include <vector>

using namespace moert::weights;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    SafetensorsFile file("fuzz.safetensors",
                         reinterpret_cast<const char *>(data), size);
    for (const std::string &key : file.keys()) {
      const TensorInfo &info = file.get(key);
      moert_dtype_t dtype;
      // What moert_weights_load can ask for: rank 0..4, non-empty ranges.
      if (!dtypeFromName(info.dtype, dtype) || info.shape.size() > 4)
        continue;
      int64_t elements = 1;
      for (int64_t extent : info.shape)
        elements *= extent;
      if (elements == 0)
        continue;
      std::vector<int64_t> begin(info.shape.size(), 0);
      std::vector<float> out(static_cast<size_t>(elements));
      file.readBox(key, info.shape, begin, info.shape, out.data(), MOERT_F32);
      // A matrix read transposed: the strided gather of a fused tensor.
      if (info.shape.size() == 2)
        file.readView(key, info.shape, 0, {1, info.shape[1]}, {0, 0},
                      {info.shape[1], info.shape[0]}, out.data(), MOERT_F32);
    }
  } catch (const moert::Error &) {
  }
  return 0;
}
