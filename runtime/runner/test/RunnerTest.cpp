//===- runtime/runner/test/RunnerTest.cpp - Runner's host-side logic ------===//

#include "runtime/runner/Runner.h"
#include "runtime/runner/Npy.h"

#include "runtime/common/Error.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace moert;
using namespace moert::runner;

namespace {

launch::RankInfo launchedAs(int32_t rank, int32_t worldSize,
                            int32_t localRank = 0) {
  launch::RankInfo info;
  info.rank = rank;
  info.worldSize = worldSize;
  info.localRank = localRank;
  info.source = "torchrun";
  return info;
}

TEST(ProcessRanks, CpuRunsEveryRankAndReports) {
  // The launcher's variables do not matter: the CPU world is threads.
  ProcessRanks r = processRanks(MOERT_BACKEND_CPU, 2, 4, launchedAs(3, 8));
  EXPECT_EQ(r.first, 0);
  EXPECT_EQ(r.count, 8);
  EXPECT_EQ(r.worldSize, 8);
  EXPECT_TRUE(r.reports());
}

TEST(ProcessRanks, CudaRunsTheLaunchersRank) {
  ProcessRanks r0 = processRanks(MOERT_BACKEND_CUDA, 2, 4, launchedAs(0, 8));
  EXPECT_EQ(r0.first, 0);
  EXPECT_EQ(r0.count, 1);
  EXPECT_TRUE(r0.reports());
  ProcessRanks r5 = processRanks(MOERT_BACKEND_CUDA, 2, 4, launchedAs(5, 8, 1));
  EXPECT_EQ(r5.first, 5);
  EXPECT_FALSE(r5.reports());
  // A single GPU needs no launcher: the default RankInfo is rank 0 of 1.
  ProcessRanks single =
      processRanks(MOERT_BACKEND_CUDA, 1, 1, launch::RankInfo{});
  EXPECT_TRUE(single.reports());
}

TEST(ProcessRanks, CudaRejectsAWrongProcessCount) {
  try {
    processRanks(MOERT_BACKEND_CUDA, 2, 8, launchedAs(0, 8));
    ADD_FAILURE() << "8 processes accepted for a 2x8 plan";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), MOERT_INVALID_ARGUMENT);
    std::string message = e.what();
    EXPECT_NE(message.find("the torchrun launch has 8 processes but the mesh "
                           "2x8 needs 16"),
              std::string::npos)
        << message;
  }
}

TEST(ParseBackend, Names) {
  moert_backend_t backend = MOERT_BACKEND_CUDA;
  EXPECT_TRUE(parseBackend("cpu", backend));
  EXPECT_EQ(backend, MOERT_BACKEND_CPU);
  EXPECT_TRUE(parseBackend("cuda", backend));
  EXPECT_EQ(backend, MOERT_BACKEND_CUDA);
  EXPECT_FALSE(parseBackend("gpu", backend));
}

TEST(Npy, RoundTrip) {
  std::string path = MOERT_TEST_TMPDIR "/roundtrip.npy";
  NpyMatrix m{2, 3, {1, 2, 3, 4, 5, -6.5f}};
  writeNpy(path, m);
  NpyMatrix back = readNpy(path);
  EXPECT_EQ(back.rows, 2);
  EXPECT_EQ(back.cols, 3);
  EXPECT_EQ(back.data, m.data);
}

void expectNpyError(const std::string &bytes, moert_status_t status,
                    const std::string &fragment) {
  // One file per test: ctest runs the tests as parallel processes.
  std::string path =
      std::string(MOERT_TEST_TMPDIR "/bad-") +
      ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".npy";
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    readNpy(path);
    ADD_FAILURE() << "accepted; expected " << fragment;
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), status);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << e.what();
  }
}

std::string npyWithHeader(const std::string &dict, size_t dataBytes) {
  std::string header = dict;
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + std::string(dataBytes, '\0');
}

TEST(Npy, Rejects) {
  expectNpyError("hello", MOERT_FORMAT_ERROR, "not a .npy file");
  expectNpyError(npyWithHeader("{'descr': '<f8', 'fortran_order': False, "
                               "'shape': (2, 2), }",
                               32),
                 MOERT_FORMAT_ERROR, "float32");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 2, 2), }",
                               32),
                 MOERT_FORMAT_ERROR, "expected a 2-D array");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 2), }",
                               12),
                 MOERT_IO_ERROR, "truncated data");
  expectNpyError("", MOERT_FORMAT_ERROR, "not a .npy file");
}

TEST(Npy, ParsesTheHeaderDictAsPythonWritesIt) {
  std::string path = MOERT_TEST_TMPDIR "/dict.npy";
  for (const char *dict :
       {"{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
        "{\"shape\": ( 2 , 3 ), \"descr\": \"<f4\", \"fortran_order\": False}",
        "{ 'fortran_order' :\tFalse , 'descr' : '<f4' , 'shape' : (2, 3,) , "
        "}"}) {
    std::ofstream(path, std::ios::binary) << npyWithHeader(dict, 24);
    NpyMatrix m = readNpy(path);
    EXPECT_EQ(m.rows, 2) << dict;
    EXPECT_EQ(m.cols, 3) << dict;
  }
}

TEST(Npy, RejectsWhatItWouldMisread) {
  // Without the space numpy may omit, Fortran order was read as C order.
  expectNpyError(npyWithHeader("{'descr':'<f4','fortran_order':True,"
                               "'shape':(2,2)}",
                               16),
                 MOERT_FORMAT_ERROR, "Fortran order");
  // rows x cols x 4 overflows int64 (signed overflow, undefined behaviour).
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (4611686018427387904, 4), }",
                               16),
                 MOERT_FORMAT_ERROR,
                 "shape (4611686018427387904, 4) overflows");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (99999999999999999999, 4), }",
                               16),
                 MOERT_FORMAT_ERROR, "extent out of range");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 2), 'shape': (1, 4)}",
                               16),
                 MOERT_FORMAT_ERROR, "duplicate key 'shape'");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'shape': (2, 2)}", 16),
                 MOERT_FORMAT_ERROR, "no 'fortran_order'");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 2), 'extra': 1}",
                               16),
                 MOERT_FORMAT_ERROR, "unknown key 'extra'");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 2)} x",
                               16),
                 MOERT_FORMAT_ERROR, "after the header dict");
  expectNpyError(npyWithHeader("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 2)}",
                               17),
                 MOERT_FORMAT_ERROR, "1 byte(s) after the data");
}

TEST(Npy, ReadsAnEmptyArray) {
  // No data to copy (the fuzzer's memcpy from an empty vector's null data).
  std::string path = MOERT_TEST_TMPDIR "/empty.npy";
  std::ofstream(path, std::ios::binary) << npyWithHeader(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7777766010), }",
      0);
  NpyMatrix m = readNpy(path);
  EXPECT_EQ(m.rows, 0);
  EXPECT_EQ(m.cols, 7777766010);
}

TEST(Npy, ErrorsNameTheFile) {
  // A directory opens as a stream, then fails to read without a name.
  try {
    readNpy(MOERT_TEST_TMPDIR);
    ADD_FAILURE() << "a directory was read as .npy";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), MOERT_IO_ERROR);
    EXPECT_NE(std::string(e.what()).find(MOERT_TEST_TMPDIR), std::string::npos)
        << e.what();
  } catch (const std::exception &e) {
    ADD_FAILURE() << "not a moert::Error: " << e.what();
  }
  // A write error (here: no space) surfaces when the file is closed.
  try {
    writeNpy("/dev/full", NpyMatrix{1, 1, {1.0f}});
    ADD_FAILURE() << "writing /dev/full succeeded";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos)
        << e.what();
  }
}

} // namespace
