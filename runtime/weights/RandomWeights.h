//===- runtime/weights/RandomWeights.h - Seeded random weights --*- C++ -*-===//
//
// Deterministic random weights for examples and tests: the same seed gives
// the same file on every platform (splitmix64, no std:: distributions).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_WEIGHTS_RANDOMWEIGHTS_H
#define MOERT_WEIGHTS_RANDOMWEIGHTS_H

#include "runtime/weights/Safetensors.h"

#include <string>
#include <vector>

namespace moert::weights {

// "NAME=D0xD1[@E]": a NAME containing "{e}" with suffix @E expands to E
// tensors, e = 0..E-1.
struct RandomTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t copies = 1;
};

// Throws moert::Error(MOERT_INVALID_ARGUMENT) for a malformed spec.
RandomTensorSpec parseRandomTensorSpec(const std::string &spec);

// Adds uniform values in [-scale/sqrt(fan_in), scale/sqrt(fan_in)), fan_in =
// last extent, drawn in spec order from one stream seeded with `seed`.
void addRandomTensors(SafetensorsWriter &writer,
                      const std::vector<RandomTensorSpec> &specs, uint64_t seed,
                      double scale, moert_dtype_t dtype);

} // namespace moert::weights

#endif // MOERT_WEIGHTS_RANDOMWEIGHTS_H
