//===- runtime/cuda/Quantized.cu - FFNs of quantized expert weights -------===//
//
// moert_quantized_experts on the GPU: FP8 e4m3 block-scaled and MXFP4
// weights stay quantized in device memory; each thread block dequantizes
// the 16 x 16 weight tile it is about to use into shared memory (fp32,
// Quantized.h's formulas) beside the matching X tile, and accumulates in
// fp32. Two launches: gate and up together with act(gate) * up into an fp32
// hidden panel, then down with the output rounding and the zeroing of
// unused rows. A straightforward tiled kernel, not a tuned one (no FP8
// tensor-core path yet); it builds for sm_80/sm_90 and has not run on a
// GPU here.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Activation.h"
#include "runtime/common/Error.h"
#include "runtime/common/Quantized.h"
#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/Kernels.h"
#include "runtime/cuda/Layout.h"

using namespace moert;
using namespace moert::cuda;

namespace {

constexpr int tile = 16;

// W's element (n, k) of expert e, dequantized; 0 outside [rows, cols).
__device__ float weightAt(const QuantizedLayout &layout, const uint8_t *data,
                          const void *scales, int64_t e, int64_t n, int64_t k) {
  if (n >= layout.rows || k >= layout.cols)
    return 0.0f;
  const uint8_t *expertData = data + e * layout.dataElements();
  const void *expertScales =
      layout.format == MOERT_WEIGHTS_MXFP4
          ? static_cast<const void *>(static_cast<const uint8_t *>(scales) +
                                      e * layout.scaleElements())
          : static_cast<const void *>(static_cast<const float *>(scales) +
                                      e * layout.scaleElements());
  return layout.at(expertData, expertScales, n, k);
}

// Per expert e and row r of its capacity, columns n of `width`:
// gated: hidden[e, r, n] = act(x . gate[e, n]) * (x . up[e, n]) (fp32);
// otherwise out[e, r, n] = x . w[e, n], rounded to outType, 0 on unused
// rows. grid (ceil(width / 16), ceil(capacity / 16), experts).
__global__ void quantizedLinearKernel(
    const void *x, moert_dtype_t xType, int64_t k, QuantizedLayout layout,
    const uint8_t *wData, const void *wScales, const uint8_t *upData,
    const void *upScales, moert_activation_t activation, int64_t capacity,
    int64_t blocks, const int32_t *rows, void *out, moert_dtype_t outType) {
  __shared__ float xs[tile][tile + 1], ws[tile][tile + 1], us[tile][tile + 1];
  int64_t e = blockIdx.z, width = layout.rows;
  int64_t r = blockIdx.y * tile + threadIdx.y;
  int64_t n = blockIdx.x * tile + threadIdx.x;
  int64_t row = e * capacity + r; // in the expert-major buffer
  bool inside = r < capacity && n < width;
  bool used = r < capacity && rowIsUsed(row, capacity, blocks, rows);
  float acc = 0.0f, accUp = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += tile) {
    int64_t kx = k0 + threadIdx.x;
    xs[threadIdx.y][threadIdx.x] =
        used && kx < k ? loadFloat(x, xType, row * k + kx) : 0.0f;
    // Thread (y, x) dequantizes W row n0 + y, column k0 + x of the tile.
    int64_t wn = blockIdx.x * tile + threadIdx.y;
    ws[threadIdx.y][threadIdx.x] = weightAt(layout, wData, wScales, e, wn, kx);
    if (upData)
      us[threadIdx.y][threadIdx.x] =
          weightAt(layout, upData, upScales, e, wn, kx);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < tile; ++i) {
      float xv = xs[threadIdx.y][i];
      acc = fmaf(xv, ws[threadIdx.x][i], acc);
      if (upData)
        accUp = fmaf(xv, us[threadIdx.x][i], accUp);
    }
    __syncthreads();
  }
  if (!inside)
    return;
  int64_t at = row * width + n;
  if (upData)
    static_cast<float *>(out)[at] =
        used ? activate(activation, acc) * accUp : 0.0f;
  else
    storeFloat(out, outType, at, used ? acc : 0.0f);
}

} // namespace

void moert::cuda::quantizedExperts(Context &ctx, const QuantizedFfnWeights &ffn,
                                   Tensor in, MutableTensor out, Rows usedRows,
                                   int64_t experts, int64_t capacity,
                                   int64_t blocks) {
  require(experts >= 1 && capacity >= 0 && blocks >= 1,
          "quantized experts: bad extents");
  if (capacity == 0)
    return;
  int64_t hidden = ffn.hidden, width = ffn.ffn;
  QuantizedLayout upLayout{ffn.format, width, hidden, ffn.blockRows,
                           ffn.blockCols};
  QuantizedLayout downLayout{ffn.format, hidden, width, ffn.blockRows,
                             ffn.blockCols};
  auto *h = static_cast<float *>(
      ctx.scratch(Scratch::Hidden, experts * capacity * width * sizeof(float)));
  dim3 threads(tile, tile);
  auto rowTiles = static_cast<unsigned>((capacity + tile - 1) / tile);
  dim3 first(static_cast<unsigned>((width + tile - 1) / tile), rowTiles,
             static_cast<unsigned>(experts));
  quantizedLinearKernel<<<first, threads, 0, ctx.stream()>>>(
      in.data, in.dtype, hidden, upLayout,
      static_cast<const uint8_t *>(ffn.gate.data.data), ffn.gate.scales.data,
      static_cast<const uint8_t *>(ffn.up.data.data), ffn.up.scales.data,
      ffn.activation, capacity, blocks, usedRows.device, h, MOERT_F32);
  MOERT_CUDA_CHECK_LAUNCH();
  dim3 second(static_cast<unsigned>((hidden + tile - 1) / tile), rowTiles,
              static_cast<unsigned>(experts));
  quantizedLinearKernel<<<second, threads, 0, ctx.stream()>>>(
      h, MOERT_F32, width, downLayout,
      static_cast<const uint8_t *>(ffn.down.data.data), ffn.down.scales.data,
      nullptr, nullptr, ffn.activation, capacity, blocks, usedRows.device,
      out.data, out.dtype);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::quantizedExpertsLinear(Context &ctx,
                                         const QuantizedLayout &layout,
                                         const QuantizedWeight &w, Tensor in,
                                         MutableTensor out, Rows usedRows,
                                         int64_t experts, int64_t capacity,
                                         int64_t blocks) {
  require(experts >= 1 && capacity >= 0 && blocks >= 1,
          "quantized experts linear: bad extents");
  if (capacity == 0)
    return;
  dim3 threads(tile, tile);
  dim3 grid(static_cast<unsigned>((layout.rows + tile - 1) / tile),
            static_cast<unsigned>((capacity + tile - 1) / tile),
            static_cast<unsigned>(experts));
  quantizedLinearKernel<<<grid, threads, 0, ctx.stream()>>>(
      in.data, in.dtype, layout.cols, layout,
      static_cast<const uint8_t *>(w.data.data), w.scales.data, nullptr,
      nullptr, MOERT_ACT_SILU /* unused: no up */, capacity, blocks,
      usedRows.device, out.data, out.dtype);
  MOERT_CUDA_CHECK_LAUNCH();
}
