//===- runtime/cpu/gemm/Amx.cpp - AMX kernels: bf16 and FP8 weights -------===//
//
// TDPBF16PS computes C[16 x 16] += A[16 x 32] . B where B holds k-pairs as
// rows (the VNNI layout). The weights are the A tiles: a weight row's 32
// bf16 of a k-step are one tile row, so bf16 [N, K] is read in place with no
// repacking. X is packed once per GEMM into the B layout, 16 rows a block:
// block b, pair row p holds (x[16b + j][2p], x[16b + j][2p + 1]) for j < 16;
// a split X has the plane of lo = x - hi after that of hi in each block.
// An item (two slabs) runs 2 x 2 accumulator tiles per pair of row blocks
// (2 x 1 per block, hi then lo, when split); k advances in chunks so the
// chunk of both slabs stays in L1 while every row block passes (one row
// block: one chunk). Accumulators are exact fp32 in memory between chunks.
//
// FP8 e4m3 block-scaled weights (amxFp8Kernels): the item's rows are
// widened once, in one stream, into bf16 A tiles in a staging block
// (Fp8Widening.h: exact, in the unpacks' order within each 64 values,
// which X's pair rows follow), then run in chunks as above; per scale
// block the tiles start from zero and acc += scale * tile, the scale per
// weight row (tile row) and block.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/Avx512Util.h"
#include "runtime/cpu/gemm/Fp8Widening.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#define MOERT_AMX                                                              \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,"         \
                        "avx512bf16,amx-tile,amx-bf16")))

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

constexpr int64_t step = 32;  // k per tile row
constexpr int64_t chunk = 512; // k per chunk (multiple of step)
constexpr int64_t tileFloats = 16 * 16;

int64_t rowBlocks(int64_t m) { return (m + 15) / 16; }

// X's k order in the packed pair rows: natural, or within each 64 values
// the FP8 widening's (packedPosition), so that a widened weight row is a
// tile row as it comes. Either keeps neighbouring pairs' values together.
enum class Order { Natural, Fp8Steps };

template <Order O> constexpr int64_t orderUnit() {
  return O == Order::Natural ? step : fp8InPlaceStep;
}
template <Order O> int64_t packedK(int64_t k) {
  return (k + orderUnit<O>() - 1) / orderUnit<O>() * orderUnit<O>();
}
// k padded to whole tile steps.
int64_t paddedK(int64_t k) { return packedK<Order::Natural>(k); }
// The pair row that holds natural pair `pair` (k = 2 pair, 2 pair + 1).
template <Order O> int64_t pairSlot(int64_t pair) {
  if constexpr (O == Order::Natural)
    return pair;
  constexpr int64_t pairs = fp8InPlaceStep / 2;
  return pair / pairs * pairs + packedPosition(2 * (pair % pairs)) / 2;
}
// bf16 elements of one plane, and of one block, of 16 packed rows.
template <Order O> int64_t planeElements(int64_t k) {
  return packedK<O>(k) * 16;
}
template <Order O> int64_t blockElements(const PackedRows &x) {
  return planeElements<O>(x.k) * (x.split ? 2 : 1);
}

template <Order O> size_t packedBytes(int64_t m, int64_t k, bool split) {
  return static_cast<size_t>(rowBlocks(m) * planeElements<O>(k)) *
         (split ? 2 : 1) * sizeof(uint16_t);
}

// Pad rows and pad k of every plane are zero: a product of the pad with a
// zero-padded weight chunk must be 0, never NaN.
template <Order O> void clearPadding(const PackedRows &x) {
  auto *planes = static_cast<uint16_t *>(x.data);
  int64_t count = rowBlocks(x.m) * (x.split ? 2 : 1);
  int64_t pairs = packedK<O>(x.k) / 2, lanes = x.m % 16;
  for (int64_t i = 0; i < count; ++i) {
    uint16_t *plane = planes + i * planeElements<O>(x.k);
    for (int64_t p = x.k / 2; p < pairs; ++p)
      std::memset(plane + pairSlot<O>(p) * 32, 0, 32 * sizeof(uint16_t));
    bool lastBlock = i / (x.split ? 2 : 1) == rowBlocks(x.m) - 1;
    if (lanes && lastBlock)
      for (int64_t p = 0; p < pairs; ++p)
        std::memset(plane + p * 32 + lanes * 2, 0,
                    (16 - lanes) * 2 * sizeof(uint16_t));
  }
}

// 16 fp32 as bf16 in the low half, and the fp32 value of those bf16.
MOERT_AMX inline __m512 roundedToBf16(__m512 v, __m256i &bf16) {
  bf16 = (__m256i)_mm512_cvtneps_pbh(v);
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16));
}

// 32 values of a row from `count` (1 to 32) elements, as 16 bf16 pairs
// in hi, and in lo what hi misses.
MOERT_AMX inline void loadPairs(const char *row, moert_dtype_t type,
                                int64_t count, __m512 &hi, __m512 &lo) {
  if (type == MOERT_BF16) {
    hi = _mm512_castsi512_ps(
        _mm512_maskz_loadu_epi16(halfLaneMask(count), row));
    lo = _mm512_setzero_ps();
    return;
  }
  __m512 values[2];
  for (int h = 0; h < 2; ++h) {
    __mmask16 mask = laneMask(count - 16 * h);
    values[h] = type == MOERT_F32
                    ? _mm512_maskz_loadu_ps(mask, row + 64 * h)
                    : _mm512_cvtph_ps(
                          _mm256_maskz_loadu_epi16(mask, row + 32 * h));
  }
  __m256i high[2], low[2];
  for (int h = 0; h < 2; ++h) {
    __m512 rest = _mm512_sub_ps(values[h], roundedToBf16(values[h], high[h]));
    roundedToBf16(rest, low[h]);
  }
  hi = _mm512_castsi512_ps(
      _mm512_inserti64x4(_mm512_castsi256_si512(high[0]), high[1], 1));
  lo = _mm512_castsi512_ps(
      _mm512_inserti64x4(_mm512_castsi256_si512(low[0]), low[1], 1));
}

// Rows [m0, m0 + rows) x columns [k0, k0 + cols) of src into the blocks:
// 16 rows x 16 pairs at a time, transposed so that a row becomes a column.
template <Order O>
MOERT_AMX void pack(const void *src, moert_dtype_t srcType, int64_t ld,
                    int64_t m0, int64_t rows, int64_t k0, int64_t cols,
                    const PackedRows &x) {
  auto *blocks = static_cast<uint16_t *>(x.data);
  size_t element = dtypeSize(srcType), rowBytes = ld * element;
  auto *in = static_cast<const char *>(src);
  for (int64_t first = m0; first < m0 + rows;) {
    int64_t block = first / 16, lane0 = first % 16;
    int64_t count = std::min(16 - lane0, m0 + rows - first);
    __mmask16 lanes = static_cast<__mmask16>(laneMask(count) << lane0);
    uint16_t *out = blocks + block * blockElements<O>(x);
    for (int64_t c = 0; c < cols; c += 32) {
      __m512 hi[16], lo[16];
      for (int64_t j = 0; j < 16; ++j) {
        int64_t r = block * 16 + j - m0;
        hi[j] = lo[j] = _mm512_setzero_ps();
        if (j >= lane0 && j < lane0 + count)
          loadPairs(in + r * rowBytes + c * element, srcType, cols - c, hi[j],
                    lo[j]);
      }
      int64_t pair0 = (k0 + c) / 2;
      int64_t pairs = (std::min<int64_t>(32, cols - c) + 1) / 2;
      for (int plane = 0; plane < (x.split ? 2 : 1); ++plane) {
        __m512 *v = plane ? lo : hi;
        transpose16(v);
        uint16_t *dst = out + plane * planeElements<O>(x.k);
        for (int64_t i = 0; i < pairs; ++i)
          _mm512_mask_storeu_epi32(dst + pairSlot<O>(pair0 + i) * 32, lanes,
                                   _mm512_castps_si512(v[i]));
      }
    }
    first += count;
  }
}

// The 16 values of two columns as the block's pair row: column a in the low
// half of each 32-bit lane, b in the high half.
MOERT_AMX inline __m512i pairRow(__m256i a, __m256i b) {
  return _mm512_or_si512(_mm512_cvtepu16_epi32(a),
                         _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
}

// A column of the source is a column of the block's rows already: no
// transpose, the same hi and lo as pack() rounds.
template <Order O>
MOERT_AMX void packColumns(const float *src, int64_t m0, int64_t rows,
                           int64_t k0, int64_t cols, const PackedRows &x) {
  uint16_t *out =
      static_cast<uint16_t *>(x.data) + m0 / 16 * blockElements<O>(x);
  __mmask16 lanes = laneMask(rows);
  for (int64_t c = 0; c < cols; c += 2) {
    __m512 v[2] = {_mm512_loadu_ps(src + 16 * c),
                   c + 1 < cols ? _mm512_loadu_ps(src + 16 * (c + 1))
                                : _mm512_setzero_ps()};
    __m256i hi[2], lo[2];
    for (int h = 0; h < 2; ++h) {
      __m512 rest = _mm512_sub_ps(v[h], roundedToBf16(v[h], hi[h]));
      roundedToBf16(rest, lo[h]);
    }
    uint16_t *dst = out + pairSlot<O>((k0 + c) / 2) * 32;
    _mm512_mask_storeu_epi32(dst, lanes, pairRow(hi[0], hi[1]));
    if (x.split)
      _mm512_mask_storeu_epi32(dst + planeElements<O>(x.k), lanes,
                               pairRow(lo[0], lo[1]));
  }
}

struct TileConfig {
  uint8_t palette = 1, startRow = 0, reserved[14] = {};
  uint16_t columnBytes[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: accumulators (slab s, row block b) at 2 * b + s; 4-5 the
// slabs' weights, 6-7 the two row blocks' X.
MOERT_AMX void configureTiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.columnBytes[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
}

// Where a slab's chunk is read: in place, or a zero-padded copy when the
// slab has fewer than 16 rows or the chunk runs past k.
struct SlabChunk {
  const char *data;
  int64_t stride;
};

SlabChunk slabChunk(const Slabs &slabs, int s, int64_t k, int64_t k0,
                    int64_t count, uint16_t *staging) {
  if (slabs.valid(s) == 16 && k0 + count <= k)
    return {slabs.base(s) + k0 * sizeof(uint16_t),
            static_cast<int64_t>(slabs.rowBytes())};
  int64_t width = paddedK(count), inside = std::min(count, k - k0);
  std::memset(staging, 0, 16 * width * sizeof(uint16_t));
  for (int64_t r = 0; r < slabs.valid(s); ++r)
    std::memcpy(staging + r * width,
                slabs.base(s) + r * slabs.rowBytes() + k0 * sizeof(uint16_t),
                inside * sizeof(uint16_t));
  return {reinterpret_cast<const char *>(staging),
          static_cast<int64_t>(width * sizeof(uint16_t))};
}

// The k-step of 32 values at pair row i / 2 of a row block, or of two:
// tiles 4 and 5 the slabs' weights (w1 null: one slab), 6 X's block (hi),
// 7 the block's lo when split, else the next block; accumulator (block b,
// slab s) is tile 2 b + s.
MOERT_AMX inline __attribute__((always_inline)) void
tileStep(const void *w0, int64_t stride0, const void *w1, int64_t stride1,
         const uint16_t *x0, const uint16_t *x1, int64_t i, bool split,
         bool two) {
  _tile_loadd(4, w0, stride0);
  _tile_loadd(6, x0 + i * 16, 64);
  _tile_dpbf16ps(0, 4, 6);
  if (w1) {
    _tile_loadd(5, w1, stride1);
    _tile_dpbf16ps(1, 5, 6);
  }
  if (split) {
    _tile_loadd(7, x1 + i * 16, 64);
    _tile_dpbf16ps(0, 4, 7);
    if (w1)
      _tile_dpbf16ps(1, 5, 7);
  } else if (two) {
    _tile_loadd(7, x1 + i * 16, 64);
    _tile_dpbf16ps(2, 4, 7);
    if (w1)
      _tile_dpbf16ps(3, 5, 7);
  }
}

// acc[b][s]: 16 weight rows x 16 X rows, fp32.
MOERT_AMX void runChunk(const SlabChunk w[2], bool second, const PackedRows &x,
                        int64_t k0, int64_t count, float *acc) {
  auto *blocks = static_cast<const uint16_t *>(x.data);
  int64_t blocksCount = rowBlocks(x.m);
  int64_t stride = blockElements<Order::Natural>(x);
  int64_t lo = planeElements<Order::Natural>(x.k);
  for (int64_t b = 0; b < blocksCount; b += x.split ? 1 : 2) {
    // Split: tile 7 holds the block's lo; else the next block's hi.
    bool two = !x.split && b + 1 < blocksCount;
    float *a0 = acc + 2 * b * tileFloats;
    if (k0 == 0) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
    } else {
      _tile_loadd(0, a0, 64);
      _tile_loadd(1, a0 + tileFloats, 64);
      if (two) {
        _tile_loadd(2, a0 + 2 * tileFloats, 64);
        _tile_loadd(3, a0 + 3 * tileFloats, 64);
      }
    }
    const uint16_t *x0 = blocks + b * stride + k0 * 16;
    const uint16_t *x1 = x0 + (x.split ? lo : stride);
    // The second pass over a chunk runs from L1: it asks for the next
    // chunk's weight lines meanwhile, so that DRAM overlaps the tiles'
    // work (one pass, as at decode, is better left to the prefetchers).
    bool fetch = b == (x.split ? 1 : 2) && k0 + count < paddedK(x.k);
    for (int64_t i = 0; i < count; i += step) {
      if (fetch)
        for (int s = 0; s < (second ? 2 : 1); ++s)
          for (int r = 0; r < 16; ++r)
            _mm_prefetch(w[s].data + r * w[s].stride + (i + chunk) * 2,
                         _MM_HINT_T1);
      tileStep(w[0].data + i * 2, w[0].stride,
               second ? w[1].data + i * 2 : nullptr, w[1].stride, x0, x1, i,
               x.split, two);
    }
    _tile_stored(0, a0, 64);
    _tile_stored(1, a0 + tileFloats, 64);
    if (two) {
      _tile_stored(2, a0 + 2 * tileFloats, 64);
      _tile_stored(3, a0 + 3 * tileFloats, 64);
    }
  }
}

// One row block (decode) reads each weight line once, and nothing reads
// while an item's outputs are delivered: the first lines of every row of
// the next item are asked for meanwhile, so that its 32 streams are under
// way when its tiles start (1 token, Qwen3's layer, 1 core: experts 3 to
// 7% faster; more lines were slower).
MOERT_AMX void startNextItem(const Slabs &next) {
  constexpr int lines = 2;
  for (int s = 0; s < 2; ++s)
    for (int64_t r = 0; r < next.valid(s); ++r)
      for (int l = 0; l < lines; ++l)
        _mm_prefetch(next.base(s) + r * next.rowBytes() + 64 * l,
                     _MM_HINT_T0);
}

// Row block b's outputs as [16 rows][32 panel columns].
MOERT_AMX void transposeBlock(const float *acc, float *out) {
  for (int s = 0; s < 2; ++s) {
    __m512 v[16];
    for (int i = 0; i < 16; ++i)
      v[i] = _mm512_load_ps(acc + s * tileFloats + i * 16);
    transpose16(v);
    for (int i = 0; i < 16; ++i)
      _mm512_store_ps(out + i * 32 + s * 16, v[i]);
  }
}

// Hands the accumulators (tile (b, s) at acc + (2 b + s) * tileFloats) to
// the sink; rows: a 16 x 32 scratch block.
MOERT_AMX void deliverTiles(const Slabs &slabs, bool second, float *acc,
                            int64_t m, float *rows, Sink &sink) {
  for (int64_t b = 0; b < rowBlocks(m); ++b) {
    if (!second)
      std::memset(acc + (2 * b + 1) * tileFloats, 0, tileFloats * 4);
    // Tiles hold a weight row (panel column) per tile row: column-major.
    const float *tiles = acc + 2 * b * tileFloats;
    int64_t count = std::min<int64_t>(16, m - b * 16);
    if (slabs.deliverColumns(sink, b * 16, count, tiles, 16))
      continue;
    transposeBlock(tiles, rows);
    slabs.deliver(sink, b * 16, count, rows, 32);
  }
}

MOERT_AMX void run(const Weights &w, int64_t item, const PackedRows &x,
                   Workspace &workspace, Sink &sink) {
  Slabs slabs(w, item);
  int64_t k = w.k, m = x.m, blocksCount = rowBlocks(m);
  // One row block (decode) keeps no chunk for a second pass: k runs in one.
  int64_t kChunk = blocksCount == 1 ? paddedK(k) : chunk;
  size_t stagingElements = 16 * kChunk;
  size_t accFloats = (blocksCount + 1) * 2 * tileFloats;
  auto *acc = static_cast<float *>(workspace.get(
      (accFloats + 16 * 32) * sizeof(float) +
      2 * stagingElements * sizeof(uint16_t)));
  float *rows = acc + accFloats;
  auto *staging = reinterpret_cast<uint16_t *>(rows + 16 * 32);
  bool second = slabs.valid(1) > 0;
  if (k == 0)
    std::memset(acc, 0, accFloats * sizeof(float));
  configureTiles();
  for (int64_t k0 = 0; k0 < paddedK(k); k0 += kChunk) {
    int64_t count = std::min(kChunk, paddedK(k) - k0);
    SlabChunk chunks[2] = {
        slabChunk(slabs, 0, k, k0, count, staging),
        second ? slabChunk(slabs, 1, k, k0, count, staging + stagingElements)
               : SlabChunk{nullptr, 0}};
    runChunk(chunks, second, x, k0, count, acc);
  }
  if (blocksCount == 1 && item + 1 < w.items())
    startNextItem(Slabs(w, item + 1));
  _tile_release();
  deliverTiles(slabs, second, acc, m, rows, sink);
}

#define MOERT_AMX_FP8                                                          \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,"         \
                        "avx512bf16,avx512vbmi,amx-tile,amx-bf16")))

// FP8 k per chunk: whole scale blocks of both slabs, at least `chunk`
// where k allows; 64-value steps.
int64_t fp8ChunkSteps(const ItemRow *rows, int64_t k) {
  // Slab 0 always has rows; slab 1 may have none.
  int64_t a = rows[0].blockSteps;
  int64_t whole =
      std::lcm(a, rows[slabRows].data ? rows[slabRows].blockSteps : a);
  int64_t steps = whole * std::max<int64_t>(1, chunk / fp8InPlaceStep / whole);
  return std::min(steps, packedK<Order::Fp8Steps>(k) / fp8InPlaceStep);
}

// The item's valid weight rows widened to bf16 A tiles, whole: row j of
// slab s at staging + (16 s + j) * width, zero from k to width. Rows go
// in address order, each asking for its stream streamAhead bytes on: one
// stream from memory. Chunks of the 32 rows in turn, the next chunk asked
// into L1, took 8.9 against 6.7 ms (Qwen3's layer, every expert on AMX, 1
// token); into L2, at 16 to 128 tokens, they were within the noise.
MOERT_AMX_FP8 void widenItem(const ItemRow *rows, const int64_t valid[2],
                             int64_t k, int64_t width, uint16_t *staging) {
  constexpr uintptr_t streamAhead = 16384;
  const Widener widener(e4m3Tables());
  for (int s = 0; s < 2; ++s)
    for (int64_t j = 0; j < valid[s]; ++j) {
      const uint8_t *row = rows[slabRows * s + j].data;
      uint16_t *out = staging + (slabRows * s + j) * width;
      for (int64_t t = 0; t < width; t += fp8InPlaceStep) {
        // A hint, formed as an integer: it may point past the weights.
        __builtin_prefetch(
            reinterpret_cast<const void *>(reinterpret_cast<uintptr_t>(row) +
                                           t + streamAhead),
            0, 2);
        int64_t left = k - t;
        __m512i bytes = _mm512_setzero_si512();
        if (left >= fp8InPlaceStep)
          bytes = _mm512_loadu_si512(row + t);
        else if (left > 0)
          bytes = _mm512_maskz_loadu_epi8((1ull << left) - 1, row + t);
        __m512i first, second;
        widener.widen(bytes, first, second);
        _mm512_store_si512(out + t, first);
        _mm512_store_si512(out + t + 32, second);
      }
    }
}

// acc rows += scale_r * the partial tile's rows (16 weight rows, per-row
// scales of scale block `block`), the partial just stored from a tile.
MOERT_AMX_FP8 void addScaled(const ItemRow *rows, int64_t valid, int64_t block,
                             const float *partial, float *acc) {
  for (int64_t r = 0; r < valid; ++r) {
    __m512 scale = _mm512_set1_ps(rows[r].scales[block]);
    _mm512_store_ps(acc + 16 * r,
                    _mm512_fmadd_ps(_mm512_load_ps(partial + 16 * r), scale,
                                    _mm512_load_ps(acc + 16 * r)));
  }
}

// Every row block over k [k0, k0 + count) of the widened item (rows
// `width` apart), as runChunk; at each scale block's end (per slab) the
// block's tiles go into acc scaled.
MOERT_AMX_FP8 void runFp8Chunk(const uint16_t *staging, int64_t width,
                               const ItemRow *rows, const int64_t valid[2],
                               const PackedRows &x, int64_t k0, int64_t count,
                               float *partial, float *acc) {
  constexpr Order o = Order::Fp8Steps;
  auto *blocks = static_cast<const uint16_t *>(x.data);
  int64_t blocksCount = rowBlocks(x.m), stride = blockElements<o>(x);
  int64_t lo = planeElements<o>(x.k), widthBytes = width * 2;
  bool second = valid[1] > 0;
  const uint16_t *w0 = staging + k0, *w1 = w0 + slabRows * width;
  for (int64_t b = 0; b < blocksCount; b += x.split ? 1 : 2) {
    bool two = !x.split && b + 1 < blocksCount;
    float *a0 = acc + 2 * b * tileFloats;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint16_t *x0 = blocks + b * stride + k0 * 16;
    const uint16_t *x1 = x0 + (x.split ? lo : stride);
    for (int64_t i = 0; i < count; i += step) {
      tileStep(w0 + i, widthBytes, second ? w1 + i : nullptr, widthBytes, x0,
               x1, i, x.split, two);
      int64_t end = k0 + i + step;
      if (end % fp8InPlaceStep && i + step < count)
        continue;
      int64_t steps = (end + fp8InPlaceStep - 1) / fp8InPlaceStep;
      bool last = i + step >= count;
      const ItemRow *slab1 = rows + slabRows;
      // Tile numbers are immediates: (row block, slab) (0, 0) is tile 0,
      // (0, 1) tile 1, (1, 0) tile 2, (1, 1) tile 3.
      if (steps % rows[0].blockSteps == 0 || last) {
        int64_t block = (steps - 1) / rows[0].blockSteps;
        _tile_stored(0, partial, 64);
        _tile_zero(0);
        addScaled(rows, valid[0], block, partial, a0);
        if (two) {
          _tile_stored(2, partial, 64);
          _tile_zero(2);
          addScaled(rows, valid[0], block, partial, a0 + 2 * tileFloats);
        }
      }
      if (second && (steps % slab1->blockSteps == 0 || last)) {
        int64_t block = (steps - 1) / slab1->blockSteps;
        _tile_stored(1, partial, 64);
        _tile_zero(1);
        addScaled(slab1, valid[1], block, partial, a0 + tileFloats);
        if (two) {
          _tile_stored(3, partial, 64);
          _tile_zero(3);
          addScaled(slab1, valid[1], block, partial, a0 + 3 * tileFloats);
        }
      }
    }
  }
}

MOERT_AMX_FP8 void runFp8(const Weights &w, int64_t item, const PackedRows &x,
                          Workspace &workspace, Sink &sink) {
  Weights bytes = w;
  bytes.dtype = MOERT_F8_E4M3;
  Slabs slabs(bytes, item);
  ItemRow rows[2 * slabRows];
  int64_t n0 = item * itemColumns(w.paired());
  for (int64_t c = 0; c < 2 * slabRows; ++c)
    rows[c] = itemRow(w, n0, c);
  int64_t valid[2] = {slabs.valid(0), slabs.valid(1)};
  int64_t k = w.k, m = x.m, blocksCount = rowBlocks(m);
  int64_t width = packedK<Order::Fp8Steps>(k);
  int64_t chunkK = fp8ChunkSteps(rows, k) * fp8InPlaceStep;
  size_t accFloats = (blocksCount + 1) * 2 * tileFloats;
  auto *acc = static_cast<float *>(
      workspace.get((accFloats + tileFloats + 16 * 32) * sizeof(float) +
                    2 * slabRows * width * sizeof(uint16_t)));
  float *partial = acc + accFloats, *out = partial + tileFloats;
  auto *staging = reinterpret_cast<uint16_t *>(out + 16 * 32);
  std::memset(acc, 0, accFloats * sizeof(float));
  // Rows past the weights stay zero: never NaN times a pad.
  for (int s = 0; s < 2; ++s)
    std::memset(staging + (slabRows * s + valid[s]) * width, 0,
                (slabRows - valid[s]) * width * sizeof(uint16_t));
  widenItem(rows, valid, k, width, staging);
  configureTiles();
  for (int64_t k0 = 0; k0 < width; k0 += chunkK)
    runFp8Chunk(staging, width, rows, valid, x, k0,
                std::min(chunkK, width - k0), partial, acc);
  _tile_release();
  deliverTiles(slabs, valid[1] > 0, acc, m, out, sink);
}

} // namespace

const KernelSet &moert::cpu::gemm::amxKernels() {
  constexpr Order o = Order::Natural;
  static const KernelSet set = {packedBytes<o>, clearPadding<o>, pack<o>, run,
                                packColumns<o>};
  return set;
}

const KernelSet &moert::cpu::gemm::amxFp8Kernels() {
  constexpr Order o = Order::Fp8Steps;
  static const KernelSet set = {packedBytes<o>, clearPadding<o>, pack<o>,
                                runFp8,         packColumns<o>,  true};
  return set;
}
