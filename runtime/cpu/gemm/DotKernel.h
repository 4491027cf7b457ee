//===- runtime/cpu/gemm/DotKernel.h - Row-dot FMA kernel --------*- C++ -*-===//
//
// The FMA kernel of the AVX2 and AVX-512 paths (fp32 rows of X, weights of
// any dtype widened in registers): each output is a dot product of an X row
// and a weight row, read in place along k, so a decode step streams every
// weight row once with no transposition and only a few streams at a time.
// A block of R X rows meets 8 (or 4) weight rows per k step, or, for a
// few short X rows, one weight row at a time; lane l of an accumulator
// sums k = l (mod lanes) in k order, reduced once at the end, so a row's
// bits never depend on the other rows, on the k chunks or on the order.
//
// Textual template: the includer defines MOERT_DOT_TARGET (its target
// attribute) and a vector type V with
//   using Reg (the accumulators), XReg, XElement (packed X's element);
//   static constexpr int64_t lanes (k per step), blockRows (1 to 3);
//   zero(), fmadd(XReg x, Reg w, Reg acc), store(float *, reg),
//   sums(const Reg acc[8], float out[8]) (each accumulator's lanes summed
//     in one fixed order: a tree over all 8, fewer shuffles than 8 sums),
//   loadX(const XElement *row, i, count) (k values [i, i + count) of a
//     packed row) and loadW<W>(const char *, count) (count of `lanes`
//     values; past it the lanes are 0),
//   xOffset(k0): where k0 (a multiple of lanes) starts in a packed row.
// The fp32 vectors' X is fp32 rows (FloatRows.h).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_DOTKERNEL_H
#define MOERT_CPU_GEMM_DOTKERNEL_H

#ifndef MOERT_DOT_TARGET
#error "define MOERT_DOT_TARGET before including DotKernel.h"
#endif

#include "runtime/cpu/gemm/FloatRows.h"
#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/Kernel.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

namespace moert::cpu::gemm::dot {

constexpr int64_t panelColumns = 2 * slabRows;
// Weight rows per block: 8 streams keep the prefetchers on, and 8 x R
// accumulators fit the registers.
constexpr int64_t groupRows = 8;
constexpr int halfGroup = groupRows / 2;
// Past 48 rows (AVX2's only: AVX-512 has the lane-class kernels there), k
// runs in chunks so that the item's chunk of all 32 weight rows (32 KB as
// fp32) stays in L1 while every row block of a panel passes: X is then read
// once per item, as in an outer-product kernel. Panels bound the
// accumulators kept between chunks.
constexpr int64_t chunk = 256, panelRows = 96;
// k per chunk of half a group when several passes read it in place (Zen 4,
// bf16, k 4096, 12 and 24 rows: 512 was 11 to 13% slower).
constexpr int64_t halfChunk = 2048;

template <moert_dtype_t W> constexpr size_t elementBytes() {
  return W == MOERT_F32 ? 4 : 2;
}

// A half group's pass also asks for its own rows this far ahead of its
// loads: with 4 streams and the FMAs of 4 to 12 X rows between two loads,
// the hardware prefetchers alone keep too few reads in flight. Zen 4, 1
// core, from DRAM, a kernel run with and without in turn in one process
// (moe-bench-cpu-gemm, k 1024 to 14336, 117 MB per matrix): bf16 at 4 to 8
// rows 5 to 30% faster, f32 0 to 25%; 1 KB ahead gained about half as much,
// 8 KB less; whole groups (8 streams, 1 to 3 rows) were mostly 0 to 10%
// slower with it. Past a row's end it runs on into the next row in memory, the
// stream's next (ItemRows). Every line: asking for every other one (the
// adjacent-line prefetcher to fetch the rest) was 1 to 8% slower from DRAM
// (bf16 k 4096, 2 to 12 rows). Only for steps of a whole cache line (AVX-512):
// AVX2's 16 or 32 bytes would ask for each line 2 or 4 times, and its loop is
// short of issue slots already (bf16, 2 to 8 rows: 18 to 29% slower).
constexpr uintptr_t streamAhead = 2048;
// The pass that streams a half group's chunk (the first) also asks for its
// rows into L1 this far ahead when they are 4 KB or more (8 KB past two
// passes). Same runs, bf16 k 2048 to 14336 and f32 k 1024 to 4096: 4 to 6
// rows (one pass) 5 to 25% faster, 8 rows 5 to 17%, 12 to 24 rows at 8 KB
// or more 0 to 14%; 2 cores 2 to 7%. The layer at 16 tokens, single passes
// then first passes, each against the step before: Mixtral 1% then 4 to 5%,
// DeepSeek-V3 6 to 7% then 0 to 3%; at 128 tokens Qwen3 2 to 4%. Not for
// shorter rows (bf16 k 1024, one pass: 2 to 9% slower), for 4 KB rows past
// two passes (f32 k 1024, 16 to 20 rows: 4 to 5%; their X rows fill L1),
// nor for whole groups or rowDot (1 to 3 rows: 2 to 18% slower).
constexpr uintptr_t nearAhead = 1024;
constexpr int64_t nearAheadRowBytes = 4096;
// Decode::GroupsAhead: each of a whole group's rows asks for its line this
// far ahead into L1. Xeon (family 6 model 207), 1 core, from DRAM: plain
// reads went 13.8 GB/s as 8 streams asking so, 8.7 as one stream and 10.9
// as 32 (AMX's tiles). Kernels with and without in turn in one process
// (moe-bench-cpu-gemm): f32 at 1 row 0 to 11% faster than Rowwise, 2 and 3
// rows 6 to 29%; bf16 in 0.73 to 0.96 of AMX's time at 1 and 2 rows, 0.80
// to 1.06 at 3 (Kernels.h: amxBf16Rows). At 1 row 128 and 512 bytes ahead
// were within 3% of 256, 1024 up to 8% slower.
constexpr uintptr_t ownLineAhead = 256;

// Prefetches are hints: an address past the weights reads nothing, so it
// is formed as an integer, never as a pointer past its object.
template <int Locality> inline void prefetchAddress(uintptr_t address) {
  __builtin_prefetch(reinterpret_cast<const void *>(address), 0, Locality);
}
inline void prefetchToL2(uintptr_t address) { prefetchAddress<2>(address); }
inline void prefetchToL2(const char *at, uintptr_t ahead) {
  prefetchToL2(reinterpret_cast<uintptr_t>(at) + ahead);
}
inline void prefetchToL1(const char *at, uintptr_t ahead) {
  prefetchAddress<3>(reinterpret_cast<uintptr_t>(at) + ahead);
}

constexpr int64_t cacheLine = 64;

// The next item's weights, asked for toward L2 in address order (its two
// slabs), a line for each weight line a single pass of half groups loads: a
// whole item ahead as one stream, beside the rows' own prefetches (4
// streams, a group ahead). Zen 4, 1 core, cold, runs with and without in
// turn in one process (moe-bench-cpu-gemm, 117 MB per matrix): bf16 and
// f32, k 1024 to 14336, 4 to 6 rows 3 to 25% faster (the most at short
// rows); past one pass (8 to 16 rows) -5 to +3%, so only there. The layer
// at 16 tokens, with half groups from 2 rows (runInPlace): 1 core 2 to 17%
// faster (Qwen3, OLMoE 2 to 3%, Mixtral 4 to 5%, DeepSeek-V3 7 to 9%, small 12
// to 17%), 2 cores -1 to +5%.
class NextItemStream {
public:
  // Where the stream stands: its next line and the end of that line's slab.
  // A block keeps a copy in registers while it runs.
  struct Cursor {
    uintptr_t at = 0, end = 0;
  };
  NextItemStream() = default;
  explicit NextItemStream(const Slabs &next)
      : second_(address(next.base(1))), slabBytes_(slabRows * next.rowBytes()) {
    cursor_.at = address(next.base(0));
    cursor_.end = cursor_.at + slabBytes_;
  }
  Cursor &cursor() { return cursor_; }
  bool active() const {
    return cursor_.at < cursor_.end || cursor_.end != lastEnd();
  }
  // Asks for the next Lines lines from c on toward L2; false once the stream
  // has ended. One test a step while c stays inside its slab.
  template <int Lines> bool ask(Cursor &c) const {
    if (c.at + Lines * cacheLine > c.end)
      return askAcross(c, Lines);
    for (int j = 0; j < Lines; ++j)
      prefetchToL2(c.at + j * cacheLine);
    c.at += Lines * cacheLine;
    return true;
  }

private:
  static uintptr_t address(const char *at) {
    return reinterpret_cast<uintptr_t>(at);
  }
  uintptr_t lastEnd() const { return second_ + slabBytes_; }
  // Moves c on from the first slab's end into the second; false past the
  // second's.
  bool turn(Cursor &c) const {
    if (c.end == lastEnd())
      return false;
    c.at = second_ + (c.at - c.end);
    c.end = lastEnd();
    return true;
  }
  bool askAcross(Cursor &c, int lines) const {
    for (int j = 0; j < lines; ++j, c.at += cacheLine) {
      if (c.at >= c.end && !turn(c))
        return false;
      prefetchToL2(c.at);
    }
    return c.at < c.end || turn(c);
  }

  uintptr_t second_ = 0;
  size_t slabBytes_ = 0;
  Cursor cursor_;
};

// acc[r][c] over `count` values of X rows x + r * ldx and weight rows w[c],
// c < C; `partial` holds the R x C accumulators between chunks. On the last
// chunk, out[r * panelColumns + c] = sum, for the group's 8 rows: a half
// group (C = 4) is the second, and `firstHalf` holds the first's final
// R x 4 accumulators. Rows `ahead` (null: none), the next to stream, are
// asked for toward L2 at the same offsets meanwhile. A half group also asks
// for its own rows streamAhead on toward L2: with `near` all of them, and
// nearAhead on toward L1 too; else those whose slot has an ahead row.
// With OwnAhead, each row asks for its own line ownLineAhead on into L1.
// Each step also asks for C lines of `stream` (null or ended: none).
//
// Which rows have an ahead row, and `near`, are template arguments of the
// step loop (blockSteps): tested at every step, they and the stream's
// per-line bounds took more issue slots than the FMAs left. Zen 4, 1 core,
// the old and new loop in turn in one process (moe-bench-cpu-gemm, bf16 k
// 2048 to 7168, f32 k 4096): from DRAM 3 to 6 rows (one pass, streaming the
// next item) 0.65 to 0.92 of the old time, 8 and 12 rows 0.86 to 0.89, 2 and
// 16 rows 0.94 to 1.04; in cache 2 to 16 rows 0.80 to 0.90. Layers
// (moe-bench-cpu-layer, 16 tokens, the same switch): small with its weights
// in cache 0.90; cold (Mixtral, DeepSeek-V3, Qwen3, small; 1 and 2 cores)
// 0.87 to 1.06, one row moving by up to 0.18 between runs: no gain past the
// day's noise, at 24 to 27 GB/s those read at about the bandwidth anyway.
enum class AheadRows { None, Some, All };

template <class V, moert_dtype_t W, int R, int C, bool OwnAhead, AheadRows A,
          bool Near>
MOERT_DOT_TARGET void
blockSteps(const typename V::XElement *x, int64_t ldx, const char *const *w,
           const char *const *ahead, NextItemStream *stream, int64_t count,
           typename V::Reg *partial, bool first, bool last,
           const typename V::Reg *firstHalf, float *out) {
  using Reg = typename V::Reg;
  constexpr int64_t lanes = V::lanes;
  constexpr size_t e = elementBytes<W>();
  constexpr bool streamed = C == halfGroup && lanes * e >= cacheLine;
  Reg acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      acc[r][c] = first ? V::zero() : partial[r * C + c];
  NextItemStream *asking = stream && stream->active() ? stream : nullptr;
  NextItemStream::Cursor cursor =
      asking ? asking->cursor() : NextItemStream::Cursor{};
  bool streaming = asking;
  int64_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    if (streaming)
      streaming = asking->template ask<C>(cursor);
    typename V::XReg xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      xv[r] = V::loadX(x + r * ldx, i, lanes);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      bool hasAhead = A == AheadRows::All || (A == AheadRows::Some && ahead[c]);
      if (hasAhead)
        prefetchToL2(ahead[c] + i * e, 0);
      if constexpr (OwnAhead)
        prefetchToL1(w[c] + i * e, ownLineAhead);
      if constexpr (streamed) {
        if (Near || hasAhead)
          prefetchToL2(w[c] + i * e, streamAhead);
        if constexpr (Near)
          prefetchToL1(w[c] + i * e, nearAhead);
      }
      Reg wv = V::template loadW<W>(w[c] + i * e, lanes);
      // One load per weight vector, not one per FMA: loads bound the loop.
      __asm__("" : "+v"(wv));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[r][c] = V::fmadd(xv[r], wv, acc[r][c]);
    }
  }
  if (asking)
    asking->cursor() = cursor;
  if (i < count) {
    typename V::XReg xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      xv[r] = V::loadX(x + r * ldx, i, count - i);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      Reg wv = V::template loadW<W>(w[c] + i * e, count - i);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[r][c] = V::fmadd(xv[r], wv, acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    if (last) {
      constexpr int before = groupRows - C;
      Reg eight[groupRows];
#pragma GCC unroll 8
      for (int c = 0; c < groupRows; ++c)
        eight[c] = c < before ? firstHalf[r * before + c] : acc[r][c - before];
      V::sums(eight, out + r * panelColumns);
      continue;
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      partial[r * C + c] = acc[r][c];
  }
}

// The step loop for the rows `ahead` names and for `near`.
template <class V, moert_dtype_t W, int R, int C = groupRows,
          bool OwnAhead = false>
MOERT_DOT_TARGET void block(const typename V::XElement *x, int64_t ldx,
                            const char *const *w, const char *const *ahead,
                            bool near, NextItemStream *stream, int64_t count,
                            typename V::Reg *partial, bool first, bool last,
                            const typename V::Reg *firstHalf, float *out) {
  constexpr bool streamed =
      C == halfGroup && V::lanes * elementBytes<W>() >= cacheLine;
  using Steps =
      decltype(&blockSteps<V, W, R, C, OwnAhead, AheadRows::None, false>);
  // [AheadRows][near]: near only asks more of a streamed half group.
  static constexpr Steps steps[3][2] = {
      {blockSteps<V, W, R, C, OwnAhead, AheadRows::None, false>,
       blockSteps<V, W, R, C, OwnAhead, AheadRows::None, streamed>},
      {blockSteps<V, W, R, C, OwnAhead, AheadRows::Some, false>,
       blockSteps<V, W, R, C, OwnAhead, AheadRows::Some, streamed>},
      {blockSteps<V, W, R, C, OwnAhead, AheadRows::All, false>,
       blockSteps<V, W, R, C, OwnAhead, AheadRows::All, streamed>}};
  int asked = 0;
  for (int c = 0; ahead && c < C; ++c)
    asked += ahead[c] != nullptr;
  AheadRows rows = asked == 0   ? AheadRows::None
                   : asked == C ? AheadRows::All
                                : AheadRows::Some;
  steps[static_cast<int>(rows)][near](x, ldx, w, ahead, stream, count, partial,
                                      first, last, firstHalf, out);
}

// Row blocks of up to V::blockRows rows (3 with 32 vector registers: 8 x 3
// accumulators and 3 X vectors); up to directRows rows read the weights in
// place (Zen 4, 13 to 48 rows: 1.2 to 1.6x the copying kernel below).
constexpr int64_t directRows = 48;

template <class V, moert_dtype_t W> using BlockFn = decltype(&block<V, W, 1>);
template <class V, moert_dtype_t W, int C, bool OwnAhead, int... R>
constexpr BlockFn<V, W> blockFns[] = {block<V, W, R + 1, C, OwnAhead>...};
template <class V, moert_dtype_t W, int C, bool OwnAhead = false, int... R>
constexpr const BlockFn<V, W> *blockTable(std::integer_sequence<int, R...>) {
  return blockFns<V, W, C, OwnAhead, R...>;
}
// blocks[R - 1]: R rows against a group's 8 weight rows, R <= blockRows;
// aheadBlocks the same with OwnAhead.
template <class V, moert_dtype_t W>
constexpr const BlockFn<V, W> *blocks = blockTable<V, W, groupRows>(
    std::make_integer_sequence<int, V::blockRows>());
template <class V, moert_dtype_t W>
constexpr const BlockFn<V, W> *aheadBlocks = blockTable<V, W, groupRows, true>(
    std::make_integer_sequence<int, V::blockRows>());
// halfBlocks[R - 1]: against half a group's weight rows, up to twice the
// rows: the same accumulators, so each weight load feeds twice the FMAs.
// Quarter groups (2 weight rows, up to 9 X rows in one pass) did not pay:
// Zen 4, bf16, in turn in one process, in cache: at k 512 7 and 8 rows
// even, 9 rows 2x slower (spills); at k 2048 7, 8 and 12 to 32 rows 1.16
// to 1.39x slower (X rows of 4 KB no longer stay in L1); from DRAM (k
// 4096, 7 to 16 rows) 1.05 to 1.9x.
template <class V, moert_dtype_t W>
constexpr const BlockFn<V, W> *halfBlocks = blockTable<V, W, halfGroup>(
    std::make_integer_sequence<int, 2 * V::blockRows>());

// The item's 32 weight rows by group: slot c of group g is panel column
// g + groups * c, so that each of a group's 8 streams walks `groups`
// consecutive rows across the groups. With rows of 1 to 2 KB, 8 adjacent
// rows would span only 2 pages and every stream would end with its group:
// on Zen 4 such streams read 16 to 22 GB/s where these read 25 to 29.
// Slots past the weights compute on the group's first row (a valid one
// whenever any of the group is) and are dropped.
struct ItemRows {
  static constexpr int64_t groups = panelColumns / groupRows;
  const char *rows[panelColumns];
  bool used[groups] = {};
  // The first `filled` groups' slots (the rest unset: the next item's
  // passes ask only for its first group).
  explicit ItemRows(const Slabs &slabs, int64_t filled = groups) {
    for (int64_t g = 0; g < filled; ++g) {
      const char **slot = rows + g * groupRows;
      bool any = false;
      for (int64_t c = 0; c < groupRows; ++c) {
        slot[c] = slabs.row(g + groups * c);
        any |= slot[c] != nullptr;
      }
      used[g] = any;
      for (int64_t c = 1; c < groupRows; ++c)
        if (!slot[c])
          slot[c] = slot[0];
    }
  }
  // Puts each of m rows of slot-ordered sums (panelColumns apart) into
  // panel column order and hands them to the sink.
  static void deliver(const Slabs &slabs, Sink &sink, float *out, int64_t m) {
    // In column order: in slot order GCC makes the stores scatters, slow on
    // Zen 4. With the group-wise slot fill above and runInPlace's pass
    // bounds computed once, Zen 4, 1 core, with and without in turn: items
    // of 3 to 16 rows in cache (1 to 2 MB of weights) 10 to 15% faster at
    // k 512 and 3 to 5% at k 2048 (bf16; f32 k 512 7 to 10%); the layer at
    // 16 tokens, cold, 0 to 5%.
    for (int64_t r = 0; r < m; ++r) {
      float *row = out + r * panelColumns, slots[panelColumns];
      std::memcpy(slots, row, sizeof(slots));
      for (int64_t c = 0; c < groupRows; ++c)
        for (int64_t g = 0; g < groups; ++g)
          row[g + groups * c] = slots[g * groupRows + c];
    }
    for (int64_t r0 = 0; r0 < m; r0 += slabRows)
      slabs.deliver(sink, r0, std::min(slabRows, m - r0),
                    out + r0 * panelColumns, panelColumns);
  }
};

// acc[r] = X row r (x + r * ldx) . weight row w over `count` values: the
// same sum, step by step, as block()'s accumulator of the pair.
template <class V, moert_dtype_t W, int R>
MOERT_DOT_TARGET void rowDot(const typename V::XElement *x, int64_t ldx,
                             const char *w, int64_t count,
                             typename V::Reg *acc) {
  constexpr int64_t lanes = V::lanes;
  constexpr size_t e = elementBytes<W>();
  typename V::Reg sum[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    sum[r] = V::zero();
  int64_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    typename V::Reg wv = V::template loadW<W>(w + i * e, lanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      sum[r] = V::fmadd(V::loadX(x + r * ldx, i, lanes), wv, sum[r]);
  }
  if (i < count) {
    typename V::Reg wv = V::template loadW<W>(w + i * e, count - i);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      sum[r] = V::fmadd(V::loadX(x + r * ldx, i, count - i), wv, sum[r]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    acc[r] = sum[r];
}

// Decode of up to rowwiseRows rows whose packed X fits in rowwiseXBytes:
// the item's weight rows one after the other, whole, so that its 32 rows
// (16 and 16 when paired) stream in address order, one stream where a
// group's 8 rows at once are 8. Zen 4, 1 core, one layer run both ways in
// turn in one process (moe-bench-cpu-layer, cold): at 1 token Qwen3's and
// OLMoE's bf16 experts 10% faster, Mixtral's and DeepSeek-V3's 4 to 5%,
// f32 0 to 2%; at 16 tokens (mostly 1 or 2 rows an expert) Qwen3 and OLMoE
// bf16 5 to 8%; small's 3 and 4 rows were 3 to 12% slower, hence 2. Each
// weight row reads the X rows again: past 8 KB they no longer stay in L1
// beside the stream (Mixtral's down projection, 28 KB: 15% slower).
constexpr int64_t rowwiseRows = 2, rowwiseXBytes = 8192;

template <class V, moert_dtype_t W, int R>
MOERT_DOT_TARGET void runRowwise(const Weights &w, int64_t index,
                                 const typename V::XElement *x, int64_t ldx,
                                 Workspace &workspace, Sink &sink) {
  using Reg = typename V::Reg;
  Slabs slabs(w, index);
  auto *out =
      static_cast<float *>(workspace.get(R * panelColumns * sizeof(float)));
  for (int64_t g = 0; g < panelColumns; g += groupRows) {
    Reg eight[R][groupRows], acc[R];
    for (int64_t c = 0; c < groupRows; ++c) {
      const char *row = slabs.row(g + c);
      if (row)
        rowDot<V, W, R>(x, ldx, row, w.k, acc);
      for (int r = 0; r < R; ++r)
        eight[r][c] = row ? acc[r] : V::zero();
    }
    for (int r = 0; r < R; ++r)
      V::sums(eight[r], out + r * panelColumns + g);
  }
  slabs.deliver(sink, 0, R, out, panelColumns);
}

template <class V, moert_dtype_t W>
using RowwiseFn = decltype(&runRowwise<V, W, 1>);
template <class V, moert_dtype_t W, int... R>
constexpr RowwiseFn<V, W> rowwiseFns[] = {runRowwise<V, W, R + 1>...};
template <class V, moert_dtype_t W, int... R>
constexpr const RowwiseFn<V, W> *
rowwiseTable(std::integer_sequence<int, R...>) {
  return rowwiseFns<V, W, R...>;
}
// rowwise[R - 1]: runRowwise of R rows.
template <class V, moert_dtype_t W>
constexpr const RowwiseFn<V, W> *rowwise =
    rowwiseTable<V, W>(std::make_integer_sequence<int, rowwiseRows>());

// Decode: each weight row streams once, in place. With Decode::GroupsAhead
// (steps of whole lines), up to one row block passes a group's 8 rows once,
// whole, each row asking for its own line ahead. With Rowwise, past the
// rowwise case, 1 row (and up to one row block where a step is less than a
// line) passes a group's 8 rows once, whole. Past them, each half group (4
// weight rows) meets blocks of up to twice the rows: one pass up to 2 x
// blockRows rows, which also streams the next item (NextItemStream), else a
// chunk of the half passes every block while it is in L1, so that the
// stream from memory never waits for a second pass. Meanwhile the passes ask for the next rows to
// stream (the group's second half, the next group, the next item's first
// group after the last) at the same offsets: rows of a page or two start no
// prefetcher stream. Packed row r at x + r * ldx.
template <class V, moert_dtype_t W, Decode D = Decode::Rowwise>
MOERT_DOT_TARGET void runInPlace(const Weights &w, int64_t index,
                                 const typename V::XElement *x, int64_t ldx,
                                 int64_t m, Workspace &workspace, Sink &sink) {
  using Reg = typename V::Reg;
  constexpr int64_t blockRows = V::blockRows;
  constexpr size_t e = elementBytes<W>();
  constexpr bool wholeLines = V::lanes * e >= cacheLine;
  bool groupsAhead = D == Decode::GroupsAhead && wholeLines && m <= blockRows;
  if (!groupsAhead && m >= 1 && m <= rowwiseRows &&
      m * ldx * static_cast<int64_t>(sizeof(typename V::XElement)) <=
          rowwiseXBytes)
    return rowwise<V, W>[m - 1](w, index, x, ldx, workspace, sink);
  constexpr int64_t groups = ItemRows::groups;
  Slabs slabs(w, index);
  ItemRows item(slabs);
  bool hasNext = index + 1 < w.items();
  Slabs nextSlabs = hasNext ? Slabs(w, index + 1) : slabs;
  ItemRows next(nextSlabs, 1);
  int64_t k = w.k;
  size_t outBytes = (m * panelColumns * sizeof(float) + 63) / 64 * 64;
  // With steps of whole lines (AVX-512) and Rowwise, half groups streaming
  // the next item beat whole groups from 2 rows on Zen 4: 2 rows 2 to 6%
  // faster, 3 rows 4 to 15% (measured as for NextItemStream); without the
  // stream they were 4 to 13% slower, and 1 row was 4% slower even with it.
  bool halves = m > blockRows || (!groupsAhead && wholeLines && m >= 2);
  int64_t width = halves ? halfGroup : groupRows;
  int64_t passRows = halves ? 2 * blockRows : blockRows;
  int64_t passes = (m + passRows - 1) / passRows;
  int64_t step = passes == 1 ? std::max<int64_t>(k, 1) : halfChunk;
  const BlockFn<V, W> *fns = halves        ? halfBlocks<V, W>
                             : groupsAhead ? aheadBlocks<V, W>
                                           : blocks<V, W>;
  bool longRows = k * static_cast<int64_t>(e) >=
                  (passes <= 2 ? nearAheadRowBytes : 2 * nearAheadRowBytes);
  // Pass p takes rows [bounds[p], bounds[p + 1]) (no pass when m is 0).
  int64_t bounds[directRows + 1];
  for (int64_t pass = 0; pass <= passes; ++pass)
    bounds[pass] = pass == passes ? m : m * pass / passes;
  NextItemStream stream;
  if (wholeLines && hasNext && halves && passes == 1)
    stream = NextItemStream(nextSlabs);
  auto *out = static_cast<float *>(
      workspace.get(outBytes + m * groupRows * sizeof(Reg)));
  auto *partial =
      reinterpret_cast<Reg *>(reinterpret_cast<char *>(out) + outBytes);
  for (int64_t g = 0; g < groups; ++g) {
    const char *const *nextGroup = nullptr;
    if (g + 1 < groups && item.used[g + 1])
      nextGroup = item.rows + (g + 1) * groupRows;
    else if (hasNext)
      nextGroup = next.rows;
    for (int64_t h = 0; item.used[g] && h * width < groupRows; ++h) {
      const char *const *rows = item.rows + g * groupRows + h * width;
      const char *const *following =
          (h + 1) * width < groupRows ? rows + width : nextGroup;
      for (int64_t k0 = 0; k0 < k || k0 == 0; k0 += step) {
        const char *at[groupRows];
        for (int64_t c = 0; c < width; ++c)
          at[c] = rows[c] + k0 * e;
        // A first half keeps its final accumulators for the second.
        bool last = k0 + step >= k && (h + 1) * width == groupRows;
        // Passes take the rows in near-equal blocks (8 rows: 4 + 4, not
        // 6 + 2); row c is asked for ahead in pass c mod passes.
        for (int64_t pass = 0; pass < passes; ++pass) {
          const char *ahead[groupRows];
          for (int64_t c = 0; c < width; ++c)
            ahead[c] = following && c % passes == pass ? following[c] + k0 * e
                                                       : nullptr;
          bool near = longRows && pass == 0;
          int64_t r0 = bounds[pass], r1 = bounds[pass + 1];
          fns[r1 - r0 - 1](x + r0 * ldx + V::xOffset(k0), ldx, at, ahead, near,
                           &stream, std::min(step, k - k0),
                           partial + (h * m + r0) * width, k0 == 0, last,
                           partial + r0 * width,
                           out + r0 * panelColumns + g * groupRows);
        }
      }
    }
  }
  ItemRows::deliver(slabs, sink, out, m);
}

template <class V, moert_dtype_t W, Decode D>
MOERT_DOT_TARGET void run(const Weights &w, int64_t item,
                          const PackedRows &packed, Workspace &workspace,
                          Sink &sink) {
  using Reg = typename V::Reg;
  constexpr int64_t blockRows = V::blockRows;
  Slabs slabs(w, item);
  int64_t k = w.k, m = packed.m;
  auto *x = static_cast<const float *>(packed.data);
  if (m <= directRows)
    return runInPlace<V, W, D>(w, item, x, k, m, workspace, sink);
  ItemRows itemRows(slabs);
  const char *const *rows = itemRows.rows;
  const bool *used = itemRows.used;
  size_t outBytes = (m * panelColumns * sizeof(float) + 63) / 64 * 64;
  constexpr size_t e = elementBytes<W>();
  // Rows k apart share L1 sets when k is a power of two: a chunk of the 32
  // rows is copied (as fp32) into one dense L1-sized block first.
  int64_t panel = std::min(m, panelRows);
  size_t copyBytes = panelColumns * chunk * sizeof(float);
  size_t partialBytes = panel * panelColumns * sizeof(Reg);
  auto *out =
      static_cast<float *>(workspace.get(outBytes + copyBytes + partialBytes));
  auto *copy =
      reinterpret_cast<float *>(reinterpret_cast<char *>(out) + outBytes);
  auto *partial = reinterpret_cast<Reg *>(copy + panelColumns * chunk);
  const char *copied[panelColumns];
  for (int64_t j = 0; j < panelColumns; ++j)
    copied[j] = reinterpret_cast<const char *>(copy + j * chunk);
  for (int64_t p0 = 0; p0 < m; p0 += panel) {
    int64_t pRows = std::min(panel, m - p0);
    for (int64_t k0 = 0; k0 < k || k0 == 0; k0 += chunk) {
      int64_t count = std::min(chunk, k - k0);
      bool first = k0 == 0, last = k0 + chunk >= k;
      // Each row's next chunk is asked for while this one is copied: with
      // the hardware prefetchers alone the 32 rows' copies wait on memory
      // (OLMoE f32 at 128 tokens on Zen 4: AVX-512 1 to 16% slower, AVX2
      // 20%).
      for (int64_t j = 0; j < panelColumns; ++j)
        if (used[j / groupRows])
          for (int64_t i = 0; i < count; i += V::lanes) {
            if (k0 + chunk + i < k)
              __builtin_prefetch(rows[j] + (k0 + chunk + i) * e, 0, 2);
            V::store(copy + j * chunk + i,
                     V::template loadW<W>(rows[j] + (k0 + i) * e, count - i));
          }
      for (int64_t r0 = 0; r0 < pRows; r0 += blockRows) {
        int64_t n = std::min(blockRows, pRows - r0);
        for (int64_t g = 0; g < panelColumns / groupRows; ++g)
          if (used[g])
            blocks<V, MOERT_F32>[n - 1](
                x + (p0 + r0) * k + k0, k, copied + g * groupRows, nullptr,
                false, nullptr, count,
                partial + (r0 * (panelColumns / groupRows) + g * n) * groupRows,
                first, last, nullptr,
                out + (p0 + r0) * panelColumns + g * groupRows);
      }
    }
  }
  ItemRows::deliver(slabs, sink, out, m);
}

template <class V, moert_dtype_t W, Decode D = Decode::Rowwise>
KernelSet kernels() {
  return {floatRowsBytes, clearFloatRows, packFloatRows, run<V, W, D>, nullptr};
}

} // namespace moert::cpu::gemm::dot

#endif // MOERT_CPU_GEMM_DOTKERNEL_H
