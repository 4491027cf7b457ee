//===- runtime/tools/GenWeights.cpp - Seeded random safetensors -----------===//
//
// moert-gen-weights --out FILE [--seed N] [--dtype f32|f16|bf16]
//                   [--scale X] NAME=D0xD1[@E] ...
// e.g. moert-gen-weights --out w.safetensors --seed 7 --dtype bf16 \
//        'model.layers.0.mlp.experts.{e}.down_proj.weight=64x128@8'
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/weights/RandomWeights.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace moert;

namespace {

int usage(const std::string &message) {
  std::fprintf(stderr,
               "moert-gen-weights: %s\nusage: moert-gen-weights --out FILE "
               "[--seed N] [--dtype f32|f16|bf16] [--scale X] "
               "NAME=D0xD1[@E] ...\n",
               message.c_str());
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string out;
  uint64_t seed = 0;
  double scale = 1.0;
  moert_dtype_t dtype = MOERT_F32;
  std::vector<std::string> specs;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool hasValue = i + 1 < argc;
    if (arg == "--out" && hasValue)
      out = argv[++i];
    else if (arg == "--seed" && hasValue)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--scale" && hasValue)
      scale = std::strtod(argv[++i], nullptr);
    else if (arg == "--dtype" && hasValue) {
      std::string name = argv[++i];
      if (name == "f32")
        dtype = MOERT_F32;
      else if (name == "f16")
        dtype = MOERT_F16;
      else if (name == "bf16")
        dtype = MOERT_BF16;
      else
        return usage("unknown --dtype " + name);
    } else if (arg.rfind("--", 0) == 0)
      return usage("unknown or incomplete option " + arg);
    else
      specs.push_back(arg);
  }
  if (out.empty() || specs.empty())
    return usage("need --out and at least one NAME=SHAPE");
  try {
    std::vector<weights::RandomTensorSpec> parsed;
    for (const std::string &spec : specs)
      parsed.push_back(weights::parseRandomTensorSpec(spec));
    weights::SafetensorsWriter writer;
    writer.setMetadata("generator",
                       "moert-gen-weights seed " + std::to_string(seed));
    weights::addRandomTensors(writer, parsed, seed, scale, dtype);
    writer.write(out);
  } catch (const Error &e) {
    std::fprintf(stderr, "moert-gen-weights: %s\n", e.what());
    return 1;
  }
  return 0;
}
