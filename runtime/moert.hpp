//===- runtime/moert.hpp - C++ convenience over the C ABI -------*- C++ -*-===//
//
// Header-only RAII wrappers and a throwing check() for host code and tests.
// Everything goes through runtime/moert.h; nothing here is part of the
// compiler <-> runtime contract.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_MOERT_HPP
#define MOERT_MOERT_HPP

#include "runtime/moert.h"

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moert {

class RuntimeError : public std::runtime_error {
public:
  RuntimeError(moert_status_t status, const std::string &message)
      : std::runtime_error(std::string(moert_status_name(status)) + ": " +
                           message),
        status_(status) {}
  moert_status_t status() const { return status_; }

private:
  moert_status_t status_;
};

inline void check(moert_status_t status) {
  if (status != MOERT_OK)
    throw RuntimeError(status, moert_last_error());
}

class World {
public:
  using RankFn = std::function<void(moert_context_t)>;

  World(int32_t nodes, int32_t gpusPerNode, int32_t timeoutMs = 0,
        moert_backend_t backend = MOERT_BACKEND_CPU, int32_t cpuThreads = 0) {
    moert_world_desc_t desc{backend, nodes, gpusPerNode, timeoutMs,
                            cpuThreads};
    check(moert_world_create(&desc, &world_));
  }
  ~World() { moert_world_destroy(world_); }
  World(const World &) = delete;
  World &operator=(const World &) = delete;

  int32_t size() const { return moert_world_size(world_); }
  moert_world_t get() const { return world_; }

  // Runs fn on every rank; a throw in fn fails that rank (and the run).
  moert_status_t tryRun(const RankFn &fn) {
    return moert_world_run(world_, &trampoline, const_cast<RankFn *>(&fn));
  }
  void run(const RankFn &fn) { check(tryRun(fn)); }

private:
  // A failed check() returns the call's status; its message is still this
  // thread's last error. Other exceptions are caught by moert_world_run.
  static moert_status_t trampoline(moert_context_t ctx, void *user) {
    try {
      (*static_cast<RankFn *>(user))(ctx);
      return MOERT_OK;
    } catch (const RuntimeError &e) {
      return e.status();
    }
  }
  moert_world_t world_ = nullptr;
};

class Buffer {
public:
  Buffer(moert_context_t ctx, size_t bytes) : ctx_(ctx) {
    check(moert_buffer_alloc(ctx, bytes, &buffer_));
  }
  // A buffer holding `values`, of dtype.
  template <typename T>
  Buffer(moert_context_t ctx, const std::vector<T> &values, moert_dtype_t dtype)
      : Buffer(ctx, values.size() * sizeof(T)) {
    check(moert_buffer_upload(ctx, view(dtype), values.data(),
                              values.size() * sizeof(T) /
                                  moert_dtype_size(dtype)));
  }
  ~Buffer() { moert_buffer_free(ctx_, buffer_); }
  Buffer(Buffer &&other) noexcept
      : ctx_(other.ctx_), buffer_(std::exchange(other.buffer_, nullptr)) {}
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;

  moert_view_t view(moert_dtype_t dtype, int64_t offset = 0) const {
    return moert_make_view(buffer_, offset, dtype);
  }
  template <typename T>
  std::vector<T> download(moert_dtype_t dtype, int64_t count) const {
    std::vector<T> out(count * moert_dtype_size(dtype) / sizeof(T));
    check(moert_buffer_download(ctx_, out.data(), view(dtype), count));
    return out;
  }

private:
  moert_context_t ctx_;
  moert_buffer_t buffer_ = nullptr;
};

class Group {
public:
  Group(moert_context_t ctx, const std::vector<int32_t> &ranks) {
    check(moert_group_create(ctx, ranks.data(),
                             static_cast<int32_t>(ranks.size()), &group_));
  }
  ~Group() { moert_group_destroy(group_); }
  Group(const Group &) = delete;
  Group &operator=(const Group &) = delete;
  moert_group_t get() const { return group_; }
  int32_t size() const { return moert_group_size(group_); }
  int32_t member() const { return moert_group_member(group_); }

private:
  moert_group_t group_ = nullptr;
};

class Weights {
public:
  explicit Weights(const std::string &path) {
    check(moert_weights_open(path.c_str(), &weights_));
  }
  ~Weights() { moert_weights_close(weights_); }
  Weights(const Weights &) = delete;
  Weights &operator=(const Weights &) = delete;
  moert_weights_t get() const { return weights_; }

private:
  moert_weights_t weights_ = nullptr;
};

} // namespace moert

#endif // MOERT_MOERT_HPP
