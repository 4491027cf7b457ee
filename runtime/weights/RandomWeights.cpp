//===- runtime/weights/RandomWeights.cpp - Seeded random weights ----------===//

#include "runtime/weights/RandomWeights.h"

#include "runtime/common/Error.h"

#include <cmath>
#include <cstdlib>

using namespace moert;
using namespace moert::weights;

namespace {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) from the top 53 bits.
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
};

const char *const placeholder = "{e}";

} // namespace

RandomTensorSpec
moert::weights::parseRandomTensorSpec(const std::string &spec) {
  RandomTensorSpec out;
  size_t equals = spec.find('=');
  require(equals != std::string::npos && equals > 0, "bad tensor spec '", spec,
          "': expected NAME=D0xD1[@E]");
  out.name = spec.substr(0, equals);
  std::string dims = spec.substr(equals + 1);
  if (size_t at = dims.find('@'); at != std::string::npos) {
    char *end;
    out.copies = std::strtoll(dims.c_str() + at + 1, &end, 10);
    require(*end == '\0' && out.copies >= 1 &&
                out.name.find(placeholder) != std::string::npos,
            "bad tensor spec '", spec, "': @E needs E >= 1 and {e} in NAME");
    dims.resize(at);
  } else {
    require(out.name.find(placeholder) == std::string::npos,
            "bad tensor spec '", spec, "': {e} in NAME needs a suffix @E");
  }
  for (const char *p = dims.c_str();;) {
    char *end;
    long long extent = std::strtoll(p, &end, 10);
    require(end != p && extent >= 1 && (*end == 'x' || *end == '\0'),
            "bad tensor spec '", spec,
            "': extents must be positive, 'x'-separated");
    out.shape.push_back(extent);
    if (*end == '\0')
      break;
    p = end + 1;
  }
  return out;
}

void moert::weights::addRandomTensors(
    SafetensorsWriter &writer, const std::vector<RandomTensorSpec> &specs,
    uint64_t seed, double scale, moert_dtype_t dtype) {
  SplitMix64 rng{seed};
  for (const RandomTensorSpec &spec : specs) {
    int64_t elements = 1;
    for (int64_t extent : spec.shape)
      elements *= extent;
    double bound = scale / std::sqrt(static_cast<double>(spec.shape.back()));
    std::vector<float> values(elements);
    for (int64_t e = 0; e < spec.copies; ++e) {
      std::string key = spec.name;
      if (size_t pos = key.find(placeholder); pos != std::string::npos)
        key.replace(pos, 3, std::to_string(e));
      for (float &v : values)
        v = static_cast<float>((2 * rng.uniform() - 1) * bound);
      writer.add(key, dtype, spec.shape, values.data());
    }
  }
}
