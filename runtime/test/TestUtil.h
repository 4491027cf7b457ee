//===- runtime/test/TestUtil.h - Helpers for runtime unit tests -*- C++ -*-===//
#ifndef MOERT_TEST_TESTUTIL_H
#define MOERT_TEST_TESTUTIL_H

#include "runtime/moert.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace moert::test {

// Runs fn on a single-rank CPU world (kernels need a context).
inline void onOneRank(const World::RankFn &fn) {
  World world(1, 1);
  world.run(fn);
}

inline std::string tempPath(const std::string &name) {
  return std::string(MOERT_TEST_TMPDIR) + "/" + name;
}

// `count` floats uniform in [-scale, scale), reproducible by seed.
inline std::vector<float> randomFloats(size_t count, unsigned seed,
                                       float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> out(count);
  for (float &v : out)
    v = dist(rng);
  return out;
}

// Every element of `got` within `tolerance` of the double-precision oracle.
inline void expectClose(const std::vector<float> &got,
                        const std::vector<double> &want, double tolerance) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tolerance) << "element " << i;
}

// Expects status `expected` and a last-error message containing `fragment`.
#define EXPECT_MOERT_ERROR(call, expected, fragment)                           \
  do {                                                                         \
    moert_status_t status_ = (call);                                           \
    EXPECT_EQ(status_, expected) << moert_last_error();                        \
    EXPECT_NE(std::string(moert_last_error()).find(fragment),                  \
              std::string::npos)                                               \
        << "message: " << moert_last_error();                                  \
  } while (0)

} // namespace moert::test

#endif // MOERT_TEST_TESTUTIL_H
