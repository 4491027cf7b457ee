//===- runtime/test/RandomWeightsTest.cpp - Seeded weight generation ------===//

#include "TestUtil.h"

#include "runtime/common/Error.h"
#include "runtime/weights/RandomWeights.h"

#include <fstream>
#include <iterator>

using namespace moert;
using namespace moert::test;
using namespace moert::weights;

namespace {

std::string generate(const std::string &name, uint64_t seed) {
  SafetensorsWriter writer;
  addRandomTensors(writer,
                   {parseRandomTensorSpec("experts.{e}.w1.weight=4x16@3"),
                    parseRandomTensorSpec("gate.weight=3x16")},
                   seed, 1.0, MOERT_F32);
  std::string path = tempPath(name);
  writer.write(path);
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(RandomWeights, SameSeedSameBytesOtherSeedOtherBytes) {
  EXPECT_EQ(generate("seed1a.safetensors", 1),
            generate("seed1b.safetensors", 1));
  EXPECT_NE(generate("seed1c.safetensors", 1),
            generate("seed2.safetensors", 2));
}

TEST(RandomWeights, ExpandsExpertsWithinTheFanInBound) {
  generate("expand.safetensors", 5);
  SafetensorsFile file(tempPath("expand.safetensors"));
  EXPECT_EQ(file.keys(), (std::vector<std::string>{
                             "experts.0.w1.weight", "experts.1.w1.weight",
                             "experts.2.w1.weight", "gate.weight"}));
  std::vector<float> values(64);
  file.readBox("experts.2.w1.weight", {4, 16}, {0, 0}, {4, 16}, values.data(),
               MOERT_F32);
  float largest = 0, sum = 0;
  for (float v : values) {
    largest = std::max(largest, std::fabs(v));
    sum += v;
  }
  EXPECT_LE(largest, 0.25f); // 1 / sqrt(16)
  EXPECT_GT(largest, 0.1f);  // not all zero or tiny
  EXPECT_LT(std::fabs(sum / 64), 0.1f);
}

TEST(RandomWeights, RejectsBadSpecs) {
  EXPECT_THROW(parseRandomTensorSpec("w=4x0"), Error);
  EXPECT_THROW(parseRandomTensorSpec("w=4x"), Error);
  EXPECT_THROW(parseRandomTensorSpec("w.{e}=4"), Error); // needs @E
  EXPECT_THROW(parseRandomTensorSpec("w=4@2"), Error);   // needs {e}
  EXPECT_THROW(parseRandomTensorSpec("noshape"), Error);
  EXPECT_EQ(parseRandomTensorSpec("w.{e}=2x3@5").copies, 5);
}

} // namespace
