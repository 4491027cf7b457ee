//===- runtime/cpu/gemm/Kernel.h - The contract of a GEMM kernel -*- C++ -*-===//
//
// A kernel computes out[m, n] = X[m, :] . W[n, :] for weights in the
// nn.Linear layout [N, K], read where they are: weights are never widened or
// copied per call beyond the cache-sized chunk in use. X is first packed
// into the kernel's own layout. Products are exact and sums fp32, except
// that a kernel multiplying bf16 (AMX, AVX-512-BF16) takes an f32 or f16 X
// as two bf16 terms, x = hi + lo, good to 2^-17 relative.
//
// One work item is a pair of 16-row weight slabs: columns [n0, n0 + 32) of
// one weight matrix, or columns [n0, n0 + 16) of two matrices of the same
// shape (the gate and up projections of a gated FFN, whose outputs are then
// at hand together). The kernel runs an item over every packed row.
//
// Each output element is a sum over k in one fixed order whatever the row
// count, the row's position and the item split, so a row gives the same bits
// in a GEMM of 1 row or of 1000 (expert-parallel runs equal single-rank runs).
// Only kernelsForQuantized picks a set by row count (FP8 on AMX).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_KERNEL_H
#define MOERT_CPU_GEMM_KERNEL_H

#include "runtime/moert.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace moert::cpu::gemm {

// Rows of a slab; the width of an item in output columns.
constexpr int64_t slabRows = 16;
inline int64_t itemColumns(bool paired) { return paired ? 16 : 32; }

struct Quantization;

// The weights of one GEMM: `first` [n, k], and for a paired GEMM `second`
// of the same shape. Quantized weights (Quantized.h) carry their scales in
// quantFirst/quantSecond and run through runQuantized, unless the kernel
// set reads them itself (KernelSet::readsQuantized).
struct Weights {
  const void *first;
  const void *second;
  moert_dtype_t dtype;
  int64_t n, k;
  const Quantization *quantFirst = nullptr, *quantSecond = nullptr;
  bool paired() const { return second != nullptr; }
  bool quantized() const { return quantFirst != nullptr; }
  int64_t items() const {
    return (n + itemColumns(paired()) - 1) / itemColumns(paired());
  }
};

// Receives finished fp32 outputs: rows [m0, m0 + rows), columns
// [n0, n0 + cols), row-major with leading dimension ld; `second` holds the
// second weights' block of a paired GEMM (null otherwise).
class Sink {
public:
  virtual ~Sink() = default;
  virtual void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
                     const float *first, const float *second, int64_t ld) = 0;
  // The same block column-major (column c's 16 rows at first + c * ld, m0 a
  // multiple of 16, rows past `rows` to be ignored), as a kernel whose
  // outputs come out that way has it; false: the sink wants store().
  virtual bool storeColumns(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
                            const float *first, const float *second,
                            int64_t ld) {
    return false;
  }
};

// The two slabs of an item as the 32 columns of a panel: column j < 16 is
// row n0 + j of the first slab, column 16 + j row j of the second.
class Slabs {
public:
  Slabs(const Weights &w, int64_t item)
      : paired_(w.paired()), n0_(item * itemColumns(w.paired())),
        rowBytes_(w.k * dtypeBytes(w.dtype)) {
    auto *first = static_cast<const char *>(w.first);
    base_[0] = first + n0_ * rowBytes_;
    valid_[0] = clampRows(w.n - n0_);
    base_[1] = paired_ ? static_cast<const char *>(w.second) + n0_ * rowBytes_
                       : base_[0] + slabRows * rowBytes_;
    valid_[1] = paired_ ? valid_[0] : clampRows(w.n - n0_ - slabRows);
  }
  // Slab s's first row and its rows inside the weights (0 to 16).
  const char *base(int s) const { return base_[s]; }
  int64_t valid(int s) const { return valid_[s]; }
  size_t rowBytes() const { return rowBytes_; }
  // Panel column j's weight row, or null past the weights' last row.
  const char *row(int64_t j) const {
    int s = j < slabRows ? 0 : 1;
    int64_t r = j - s * slabRows;
    return r < valid_[s] ? base_[s] + r * rowBytes_ : nullptr;
  }
  // Hands rows [m0, m0 + rows) of the item's fp32 panel outputs (32
  // columns, leading dimension ld) to the sink.
  void deliver(Sink &sink, int64_t m0, int64_t rows, const float *block,
               int64_t ld) const {
    if (paired_)
      sink.store(m0, rows, n0_, valid_[0], block, block + slabRows, ld);
    else
      sink.store(m0, rows, n0_, valid_[0] + valid_[1], block, nullptr, ld);
  }
  // The same from a column-major block (panel column j at block + j * ld);
  // false when the sink wants rows.
  bool deliverColumns(Sink &sink, int64_t m0, int64_t rows, const float *block,
                      int64_t ld) const {
    if (paired_)
      return sink.storeColumns(m0, rows, n0_, valid_[0], block,
                               block + slabRows * ld, ld);
    return sink.storeColumns(m0, rows, n0_, valid_[0] + valid_[1], block,
                             nullptr, ld);
  }

private:
  static int64_t clampRows(int64_t rows) {
    return rows < 0 ? 0 : rows > slabRows ? slabRows : rows;
  }
  static size_t dtypeBytes(moert_dtype_t dtype) {
    return dtype == MOERT_F32 ? 4 : dtype == MOERT_F8_E4M3 ? 1 : 2;
  }
  bool paired_;
  int64_t n0_;
  size_t rowBytes_;
  const char *base_[2];
  int64_t valid_[2];
};

// 64-byte aligned memory that only grows (a thread's kernel workspace).
class Workspace {
public:
  Workspace() = default;
  Workspace(Workspace &&other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  Workspace(const Workspace &) = delete;
  Workspace &operator=(const Workspace &) = delete;
  ~Workspace() { std::free(data_); }
  void *get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, size_);
      if (!data_)
        throw std::bad_alloc();
    }
    return data_;
  }

private:
  void *data_ = nullptr;
  size_t size_ = 0;
};

// X[m, k] in a kernel's layout. `split`: X is not bf16, so a kernel that
// multiplies bf16 keeps its second term.
struct PackedRows {
  void *data;
  int64_t m, k;
  bool split;
};

// The kernels for one weight dtype on one ISA.
struct KernelSet {
  // Bytes of a packing of m rows of k columns.
  size_t (*packedBytes)(int64_t m, int64_t k, bool split);
  // Zeroes the padding that packing never writes; before any pack.
  void (*clearPadding)(const PackedRows &x);
  // Packs rows [m0, m0 + rows) and columns [k0, k0 + cols) (k0 even) of
  // src, whose row r starts at src + r * ld elements of srcType.
  void (*pack)(const void *src, moert_dtype_t srcType, int64_t ld, int64_t m0,
               int64_t rows, int64_t k0, int64_t cols, const PackedRows &x);
  // Runs item `item` of w over every packed row into sink.
  void (*run)(const Weights &w, int64_t item, const PackedRows &x,
              Workspace &workspace, Sink &sink);
  // Optional (null: use pack): packs fp32 columns [k0, k0 + cols) of rows
  // [m0, m0 + rows) given column-major, column c's 16 rows at
  // src + 16 * c; m0 a multiple of 16.
  void (*packColumns)(const float *src, int64_t m0, int64_t rows, int64_t k0,
                      int64_t cols, const PackedRows &x);
  // run reads quantized weights itself; otherwise runQuantized widens each
  // item of them for this (fp32) set.
  bool readsQuantized = false;
};

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_KERNEL_H
