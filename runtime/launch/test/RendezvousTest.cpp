//===- runtime/launch/test/RendezvousTest.cpp - TCP blob broadcast --------===//
//
// Loopback only (127.0.0.0/8). Every test bounds its waits with a short
// rendezvous timeout, so a regression fails instead of hanging ctest.
//
//===----------------------------------------------------------------------===//

#include "runtime/launch/Launch.h"

#include "runtime/common/Error.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

using namespace moert;
using namespace moert::launch;

namespace {

// A socket bound to a port the kernel picks on `address`; sets `port`.
int boundSocket(uint32_t address, int32_t &port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(address);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

// A port nobody listens on right now (bound, then released).
int32_t freePort() {
  int32_t port = -1;
  ::close(boundSocket(INADDR_LOOPBACK, port));
  return port;
}

RankInfo loopback(int32_t rank, int32_t worldSize, int32_t port) {
  RankInfo info;
  info.rank = rank;
  info.worldSize = worldSize;
  info.localRank = rank;
  info.masterAddr = "127.0.0.1";
  info.masterPort = port;
  info.source = "test";
  return info;
}

std::vector<uint8_t> randomBlob(size_t bytes, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> blob(bytes);
  for (auto &b : blob)
    b = static_cast<uint8_t>(rng());
  return blob;
}

struct Outcome {
  std::vector<uint8_t> blob;
  moert_status_t status = MOERT_OK;
  std::string message;
};

Outcome attempt(const RankInfo &info, const std::vector<uint8_t> &blob,
                const RendezvousOptions &options) {
  Outcome out;
  try {
    out.blob = rendezvousBroadcast(info, blob, options);
  } catch (const Error &e) {
    out.status = e.status();
    out.message = e.what();
  }
  return out;
}

// Runs ranks [0, world) as threads; rank r starts after delayMs[r].
std::vector<Outcome> runThreads(int32_t world, const std::vector<int> &present,
                                const std::vector<uint8_t> &blob,
                                const RendezvousOptions &options,
                                std::vector<int> delayMs = {}) {
  int32_t port = freePort();
  std::vector<Outcome> outcomes(world);
  std::vector<std::thread> threads;
  for (int rank : present)
    threads.emplace_back([&, rank] {
      if (rank < static_cast<int>(delayMs.size()))
        std::this_thread::sleep_for(std::chrono::milliseconds(delayMs[rank]));
      // Peers pass an empty blob: only rank 0's may come back.
      outcomes[rank] =
          attempt(loopback(rank, world, port),
                  rank == 0 ? blob : std::vector<uint8_t>{}, options);
    });
  for (auto &t : threads)
    t.join();
  return outcomes;
}

TEST(Rendezvous, SingleRankNeedsNoNetwork) {
  RankInfo info; // no MASTER_ADDR at all
  std::vector<uint8_t> blob = randomBlob(128, 1);
  EXPECT_EQ(rendezvousBroadcast(info, blob), blob);
}

TEST(Rendezvous, ThreadsReceiveRankZerosBlob) {
  std::vector<uint8_t> blob = randomBlob(128, 2); // an ncclUniqueId's size
  RendezvousOptions options;
  options.timeoutMs = 10000;
  std::vector<Outcome> out = runThreads(6, {0, 1, 2, 3, 4, 5}, blob, options);
  for (int r = 0; r < 6; ++r) {
    EXPECT_EQ(out[r].status, MOERT_OK)
        << "rank " << r << ": " << out[r].message;
    EXPECT_EQ(out[r].blob, blob) << "rank " << r;
  }
}

TEST(Rendezvous, PeersRetryUntilRankZeroListens) {
  std::vector<uint8_t> blob = randomBlob(128, 3);
  RendezvousOptions options;
  options.timeoutMs = 10000;
  options.retryDelayMs = 10;
  // Rank 0 starts 400 ms late: the peers' first connects are refused.
  std::vector<Outcome> out =
      runThreads(3, {0, 1, 2}, blob, options, {400, 0, 0});
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(out[r].status, MOERT_OK) << out[r].message;
    EXPECT_EQ(out[r].blob, blob);
  }
}

TEST(Rendezvous, ProcessesReceiveRankZerosBlob) {
  const int32_t world = 4;
  int32_t port = freePort();
  std::vector<uint8_t> blob = randomBlob(128, 4);
  RendezvousOptions options;
  options.timeoutMs = 10000;
  std::vector<pid_t> children;
  for (int32_t rank = 1; rank < world; ++rank) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: exit 0 only if it got exactly rank 0's blob.
      Outcome got = attempt(loopback(rank, world, port), {}, options);
      ::_exit(got.status == MOERT_OK && got.blob == blob ? 0 : 1);
    }
    children.push_back(pid);
  }
  Outcome root = attempt(loopback(0, world, port), blob, options);
  EXPECT_EQ(root.status, MOERT_OK) << root.message;
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child " << pid << " status " << status;
  }
}

TEST(Rendezvous, MissingRankTimesOutNamingIt) {
  RendezvousOptions options;
  options.timeoutMs = 600;
  auto start = std::chrono::steady_clock::now();
  std::vector<Outcome> out =
      runThreads(4, {0, 1, 3}, randomBlob(128, 5), options);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_LT(seconds, 5.0) << "the rendezvous did not respect its timeout";
  EXPECT_EQ(out[0].status, MOERT_TIMEOUT) << out[0].message;
  EXPECT_NE(out[0].message.find("(ranks 2)"), std::string::npos)
      << out[0].message;
  // The peers that came fail too (timeout or rank 0 closing), not hang.
  for (int r : {1, 3})
    EXPECT_NE(out[r].status, MOERT_OK) << "rank " << r;
}

TEST(Rendezvous, RefusedConnectionRetriesThenFails) {
  RendezvousOptions options;
  options.timeoutMs = 500;
  options.retryDelayMs = 10;
  // Nobody listens on this port: every connect is refused.
  Outcome out = attempt(loopback(1, 2, freePort()), {}, options);
  EXPECT_EQ(out.status, MOERT_TIMEOUT);
  EXPECT_NE(out.message.find("Connection refused"), std::string::npos)
      << out.message;
  size_t at = out.message.find(" attempts");
  ASSERT_NE(at, std::string::npos) << out.message;
  size_t begin = out.message.rfind('(', at);
  int attempts = std::atoi(out.message.c_str() + begin + 1);
  EXPECT_GE(attempts, 2) << out.message;
}

TEST(Rendezvous, WorldSizeMismatchIsRejectedOnBothSides) {
  int32_t port = freePort();
  RendezvousOptions options;
  options.timeoutMs = 5000;
  Outcome root, peer;
  std::thread t0([&] {
    root = attempt(loopback(0, 2, port), randomBlob(16, 6), options);
  });
  std::thread t1([&] { peer = attempt(loopback(1, 3, port), {}, options); });
  t0.join();
  t1.join();
  EXPECT_EQ(root.status, MOERT_INVALID_ARGUMENT) << root.message;
  EXPECT_NE(root.message.find("world size 3"), std::string::npos)
      << root.message;
  EXPECT_EQ(peer.status, MOERT_INVALID_ARGUMENT) << peer.message;
  EXPECT_NE(peer.message.find("rejected rank 1"), std::string::npos)
      << peer.message;
}

TEST(Rendezvous, DuplicateRankIsRejected) {
  RendezvousOptions options;
  options.timeoutMs = 3000;
  int32_t port = freePort();
  Outcome root, a, b;
  std::thread t0([&] {
    root = attempt(loopback(0, 3, port), randomBlob(16, 7), options);
  });
  std::thread t1([&] { a = attempt(loopback(1, 3, port), {}, options); });
  std::thread t2([&] { b = attempt(loopback(1, 3, port), {}, options); });
  t0.join();
  t1.join();
  t2.join();
  EXPECT_EQ(root.status, MOERT_INVALID_ARGUMENT) << root.message;
  EXPECT_NE(root.message.find("rank 1 joined twice"), std::string::npos)
      << root.message;
  EXPECT_NE(a.status, MOERT_OK);
  EXPECT_NE(b.status, MOERT_OK);
}

TEST(Rendezvous, MissingMasterAddressIsAClearError) {
  RankInfo info = loopback(1, 2, 1234);
  info.masterAddr.clear();
  Outcome out = attempt(info, {}, {});
  EXPECT_EQ(out.status, MOERT_INVALID_ARGUMENT);
  EXPECT_NE(out.message.find("MASTER_ADDR"), std::string::npos);
  info = loopback(1, 2, -1);
  out = attempt(info, {}, {});
  EXPECT_EQ(out.status, MOERT_INVALID_ARGUMENT);
  EXPECT_NE(out.message.find("MASTER_PORT"), std::string::npos);
}

TEST(Rendezvous, RankZeroListensOnEveryAddress) {
  // Rank 0 names 127.0.0.1, the peer reaches it at 127.0.0.2: as a peer on
  // another node reaches a host whose name resolves to loopback locally.
  int32_t port = freePort();
  std::vector<uint8_t> blob = randomBlob(64, 7);
  RendezvousOptions options;
  options.timeoutMs = 10000;
  Outcome root, peer;
  std::thread t0([&] { root = attempt(loopback(0, 2, port), blob, options); });
  std::thread t1([&] {
    RankInfo info = loopback(1, 2, port);
    info.masterAddr = "127.0.0.2";
    peer = attempt(info, {}, options);
  });
  t0.join();
  t1.join();
  EXPECT_EQ(root.status, MOERT_OK) << root.message;
  EXPECT_EQ(peer.status, MOERT_OK) << peer.message;
  EXPECT_EQ(peer.blob, blob);
}

TEST(Rendezvous, BusyPortNamesTheOverride) {
  // Another listener on the port (torchrun's store, say).
  int32_t port = -1;
  int fd = boundSocket(INADDR_ANY, port);
  ASSERT_EQ(::listen(fd, 1), 0);
  RendezvousOptions options;
  options.timeoutMs = 2000;
  Outcome out = attempt(loopback(0, 2, port), randomBlob(16, 8), options);
  ::close(fd);
  EXPECT_EQ(out.status, MOERT_IO_ERROR) << out.message;
  EXPECT_NE(out.message.find("MOERT_RENDEZVOUS_PORT"), std::string::npos)
      << out.message;
}

} // namespace
