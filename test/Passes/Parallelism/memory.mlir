// RUN: moe-opt %s --moe-assign-parallelism="policy=throughput" | FileCheck %s --check-prefix=ROOMY
// RUN: moe-opt %s --moe-assign-parallelism="policy=throughput memory-gib=0.56" | FileCheck %s --check-prefix=TIGHT

// Memory decides between replicating and slicing. At 4096 tokens per rank the
// throughput policy replicates each Mixtral expert (ep 8 x dp 2): 336 MiB of
// weights + 256 MiB of buffers = 592 MiB per rank. With 0.56 GiB (573 MiB)
// that does not fit, so each expert is sliced over two ranks instead: 168 MiB
// of weights + 384 MiB of buffers = 552 MiB.
// ROOMY: {moe.plan = #moe.plan<dp = 2, ep = 8, tp = 1>}
// TIGHT: tensor<1x7168x4096xbf16> {moe.shard = #moe.shard<[ep, tp, none]>
// TIGHT: {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 2>}
module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8>} {
  func.func @mixtral_on_2x8(%x: tensor<?x4096xbf16>,
      %wg: tensor<8x4096xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x14336x4096xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x14336x4096xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x4096x14336xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x4096xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x4096xbf16> {
      %l = moe.router %h, %wg : tensor<?x4096xbf16>, tensor<8x4096xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x4096xbf16>, tensor<?x2xi32> -> tensor<8x?x4096xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x4096xbf16>, tensor<8x14336x4096xbf16>, tensor<8x14336x4096xbf16>, tensor<8x4096x14336xbf16>) -> tensor<8x?x4096xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<8x?x4096xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x4096xbf16>
    }
    return %y : tensor<?x4096xbf16>
  }
}
