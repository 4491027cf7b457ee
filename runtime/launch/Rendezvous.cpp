//===- runtime/launch/Rendezvous.cpp - TCP blob broadcast from rank 0 -----===//
//
// Protocol (all integers big-endian u32):
//   peer -> rank 0: magic, version, rank, world size
//   rank 0 -> peer: magic, status (0 ok, 1 rejected), length, bytes
// A rejected peer receives the reason as the bytes. Every wait is bounded by
// one deadline, so a missing peer or an unreachable rank 0 is an error.
//
//===----------------------------------------------------------------------===//

#include "runtime/launch/Launch.h"

#include "runtime/common/Error.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>

using namespace moert;
using namespace moert::launch;

namespace {

constexpr uint32_t magic = 0x4d4f4552; // "MOER"
constexpr uint32_t version = 1;

using Clock = std::chrono::steady_clock;

class Socket {
public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() { reset(); }
  Socket(Socket &&other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Socket &operator=(Socket &&other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  int fd() const { return fd_; }
  void reset() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_;
};

int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - Clock::now())
                  .count();
  return static_cast<int>(std::max<int64_t>(0, left));
}

// Waits for `events` on fd; false on timeout.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ready = ::poll(&p, 1, msLeft(deadline));
    if (ready > 0)
      return true;
    if (ready == 0)
      return false;
    if (errno != EINTR)
      fail(MOERT_IO_ERROR, "rendezvous: poll failed: ", std::strerror(errno));
  }
}

void sendAll(int fd, const void *data, size_t bytes, Clock::time_point deadline,
             const std::string &peer) {
  auto *p = static_cast<const char *>(data);
  while (bytes > 0) {
    if (!waitFor(fd, POLLOUT, deadline))
      fail(MOERT_TIMEOUT, "rendezvous: timed out sending to ", peer);
    ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      fail(MOERT_IO_ERROR, "rendezvous: send to ", peer,
           " failed: ", std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void recvAll(int fd, void *data, size_t bytes, Clock::time_point deadline,
             const std::string &peer) {
  auto *p = static_cast<char *>(data);
  while (bytes > 0) {
    if (!waitFor(fd, POLLIN, deadline))
      fail(MOERT_TIMEOUT, "rendezvous: timed out waiting for data from ", peer);
    ssize_t n = ::recv(fd, p, bytes, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      fail(MOERT_IO_ERROR, "rendezvous: receive from ", peer,
           " failed: ", std::strerror(errno));
    if (n == 0)
      fail(MOERT_IO_ERROR, "rendezvous: ", peer,
           " closed the connection early");
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void putU32(std::vector<uint8_t> &out, uint32_t value) {
  uint32_t be = htonl(value);
  size_t at = out.size();
  out.resize(at + 4);
  std::memcpy(out.data() + at, &be, 4);
}

uint32_t getU32(const uint8_t *p) {
  uint32_t be;
  std::memcpy(&be, p, 4);
  return ntohl(be);
}

std::string endpoint(const RankInfo &info) {
  return info.masterAddr + ":" + std::to_string(info.masterPort);
}

addrinfo *resolve(const RankInfo &info) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *result = nullptr;
  std::string port = std::to_string(info.masterPort);
  int rc =
      ::getaddrinfo(info.masterAddr.c_str(), port.c_str(), &hints, &result);
  if (rc != 0)
    fail(MOERT_IO_ERROR, "rendezvous: cannot resolve MASTER_ADDR '",
         info.masterAddr, "': ", ::gai_strerror(rc));
  return result;
}

// The wildcard address of the family MASTER_ADDR resolves to (first): on
// its own host a hostname may resolve to loopback (Debian's 127.0.1.1),
// which peers on other nodes cannot reach.
addrinfo *wildcardsFor(const RankInfo &info) {
  addrinfo *named = resolve(info);
  int family = named->ai_family;
  ::freeaddrinfo(named);
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo *result = nullptr;
  std::string port = std::to_string(info.masterPort);
  int rc = ::getaddrinfo(nullptr, port.c_str(), &hints, &result);
  if (rc != 0)
    fail(MOERT_IO_ERROR, "rendezvous: no wildcard address for port ", port,
         ": ", ::gai_strerror(rc));
  return result;
}

Socket listenOn(const RankInfo &info, int backlog) {
  addrinfo *addrs = wildcardsFor(info);
  std::string lastError = "no address";
  Socket result;
  for (addrinfo *a = addrs; a; a = a->ai_next) {
    Socket s(
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (s.fd() < 0) {
      lastError = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(s.fd(), a->ai_addr, a->ai_addrlen) != 0 ||
        ::listen(s.fd(), backlog) != 0) {
      lastError = std::strerror(errno);
      continue;
    }
    result = std::move(s);
    break;
  }
  ::freeaddrinfo(addrs);
  if (result.fd() < 0)
    fail(MOERT_IO_ERROR, "rendezvous: rank 0 cannot listen on port ",
         info.masterPort, " (", endpoint(info), "): ", lastError,
         " (MOERT_RENDEZVOUS_PORT picks another)");
  return result;
}

// One non-blocking connect attempt bounded by the deadline; returns an
// invalid socket and sets lastError when the peer is not there (yet).
Socket tryConnect(const addrinfo *a, Clock::time_point deadline,
                  std::string &lastError) {
  Socket s(
      ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
  if (s.fd() < 0) {
    lastError = std::strerror(errno);
    return Socket();
  }
  int flags = ::fcntl(s.fd(), F_GETFL, 0);
  ::fcntl(s.fd(), F_SETFL, flags | O_NONBLOCK);
  if (::connect(s.fd(), a->ai_addr, a->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      lastError = std::strerror(errno);
      return Socket();
    }
    if (!waitFor(s.fd(), POLLOUT, deadline)) {
      lastError = "connect timed out";
      return Socket();
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      lastError = std::strerror(err);
      return Socket();
    }
  }
  int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return s;
}

std::vector<uint8_t> reply(uint32_t status, const uint8_t *data, size_t bytes) {
  std::vector<uint8_t> out;
  putU32(out, magic);
  putU32(out, status);
  putU32(out, static_cast<uint32_t>(bytes));
  size_t at = out.size();
  out.resize(at + bytes);
  if (bytes)
    std::memcpy(out.data() + at, data, bytes);
  return out;
}

void rejectPeer(int fd, const std::string &reason, Clock::time_point deadline) {
  std::vector<uint8_t> msg =
      reply(1, reinterpret_cast<const uint8_t *>(reason.data()), reason.size());
  try {
    sendAll(fd, msg.data(), msg.size(), deadline, "a rejected peer");
  } catch (const Error &) {
    // The peer is being refused anyway; rank 0's own error says why.
  }
}

std::vector<uint8_t> serve(const RankInfo &info,
                           const std::vector<uint8_t> &blob,
                           Clock::time_point deadline,
                           const RendezvousOptions &options) {
  Socket listener = listenOn(info, info.worldSize);
  std::vector<Socket> peers(info.worldSize);
  std::set<int32_t> missing;
  for (int32_t r = 1; r < info.worldSize; ++r)
    missing.insert(r);
  while (!missing.empty()) {
    if (!waitFor(listener.fd(), POLLIN, deadline)) {
      std::string names;
      for (int32_t r : missing)
        names += (names.empty() ? "" : ", ") + std::to_string(r);
      fail(MOERT_TIMEOUT, "rendezvous: rank 0 timed out after ",
           options.timeoutMs, " ms on ", endpoint(info), " waiting for ",
           missing.size(), " of ", info.worldSize - 1, " peers (ranks ", names,
           ")");
    }
    Socket peer(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    if (peer.fd() < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
        continue;
      fail(MOERT_IO_ERROR, "rendezvous: accept failed: ", std::strerror(errno));
    }
    uint8_t hello[16];
    recvAll(peer.fd(), hello, sizeof(hello), deadline,
            "a peer that connected to rank 0");
    uint32_t peerMagic = getU32(hello), peerVersion = getU32(hello + 4);
    int32_t rank = static_cast<int32_t>(getU32(hello + 8));
    int32_t size = static_cast<int32_t>(getU32(hello + 12));
    if (peerMagic != magic || peerVersion != version) {
      // Not one of ours (a port scan, a stale job): ignore it.
      continue;
    }
    std::string reason;
    if (size != info.worldSize)
      reason = "rank " + std::to_string(rank) + " has world size " +
               std::to_string(size) + ", rank 0 has " +
               std::to_string(info.worldSize);
    else if (rank < 1 || rank >= info.worldSize)
      reason = "rank " + std::to_string(rank) + " is not a peer rank in [1, " +
               std::to_string(info.worldSize) + ")";
    else if (!missing.count(rank))
      reason = "rank " + std::to_string(rank) + " joined twice";
    if (!reason.empty()) {
      rejectPeer(peer.fd(), reason, deadline);
      fail(MOERT_INVALID_ARGUMENT, "rendezvous: ", reason);
    }
    missing.erase(rank);
    peers[rank] = std::move(peer);
  }
  std::vector<uint8_t> msg = reply(0, blob.data(), blob.size());
  for (int32_t r = 1; r < info.worldSize; ++r)
    sendAll(peers[r].fd(), msg.data(), msg.size(), deadline,
            "rank " + std::to_string(r));
  return blob;
}

std::vector<uint8_t> join(const RankInfo &info, Clock::time_point deadline,
                          const RendezvousOptions &options) {
  addrinfo *addrs = resolve(info);
  std::string lastError = "no address";
  Socket s;
  int attempts = 0;
  int delayMs = std::max(1, options.retryDelayMs);
  while (s.fd() < 0) {
    for (addrinfo *a = addrs; a && s.fd() < 0; a = a->ai_next)
      s = tryConnect(a, deadline, lastError);
    ++attempts;
    if (s.fd() >= 0)
      break;
    if (msLeft(deadline) == 0) {
      ::freeaddrinfo(addrs);
      fail(MOERT_TIMEOUT, "rendezvous: rank ", info.rank,
           " could not connect to rank 0 at ", endpoint(info), " within ",
           options.timeoutMs, " ms (", attempts,
           " attempts, last error: ", lastError, ")");
    }
    // Rank 0 may not listen yet: retry with a bounded exponential backoff.
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::min(delayMs, msLeft(deadline))));
    delayMs = std::min(delayMs * 2, 1000);
  }
  ::freeaddrinfo(addrs);
  std::string peer = "rank 0 at " + endpoint(info);
  std::vector<uint8_t> hello;
  putU32(hello, magic);
  putU32(hello, version);
  putU32(hello, static_cast<uint32_t>(info.rank));
  putU32(hello, static_cast<uint32_t>(info.worldSize));
  sendAll(s.fd(), hello.data(), hello.size(), deadline, peer);
  uint8_t header[12];
  recvAll(s.fd(), header, sizeof(header), deadline, peer);
  if (getU32(header) != magic)
    fail(MOERT_IO_ERROR, "rendezvous: ", peer,
         " is not a moert rendezvous (bad magic)");
  uint32_t status = getU32(header + 4), length = getU32(header + 8);
  if (length > static_cast<uint32_t>(options.maxBlobBytes))
    fail(MOERT_IO_ERROR, "rendezvous: ", peer, " announced ", length,
         " bytes, more than the limit of ", options.maxBlobBytes);
  std::vector<uint8_t> data(length);
  recvAll(s.fd(), data.data(), length, deadline, peer);
  if (status != 0)
    fail(MOERT_INVALID_ARGUMENT, "rendezvous: rank 0 rejected rank ", info.rank,
         ": ", std::string(data.begin(), data.end()));
  return data;
}

} // namespace

std::vector<uint8_t>
moert::launch::rendezvousBroadcast(const RankInfo &info,
                                   const std::vector<uint8_t> &blob,
                                   const RendezvousOptions &options) {
  require(info.worldSize >= 1 && info.rank >= 0 && info.rank < info.worldSize,
          "rendezvous: rank ", info.rank, " outside world of ", info.worldSize);
  require(options.timeoutMs > 0, "rendezvous: timeout must be > 0 ms");
  if (info.rank == 0)
    require(blob.size() <= static_cast<size_t>(options.maxBlobBytes),
            "rendezvous: blob of ", blob.size(), " bytes exceeds the limit of ",
            options.maxBlobBytes);
  if (info.worldSize == 1)
    return blob;
  require(!info.masterAddr.empty(), "rendezvous of ", info.worldSize,
          " ranks needs MASTER_ADDR (the host of rank 0)");
  require(info.masterPort >= 1 && info.masterPort <= 65535, "rendezvous of ",
          info.worldSize,
          " ranks needs MASTER_PORT (a free TCP port on rank 0's host)");
  auto deadline = Clock::now() + std::chrono::milliseconds(options.timeoutMs);
  return info.rank == 0 ? serve(info, blob, deadline, options)
                        : join(info, deadline, options);
}
