// RUN: moe-opt %s --moe-assign-parallelism="policy=latency report=json" -o /dev/null | FileCheck %s --check-prefix=AUTO
// RUN: moe-opt %s --moe-assign-parallelism="policy=latency all-to-all=flat report=json" -o /dev/null | FileCheck %s --check-prefix=FLAT
// RUN: moe-opt %s --moe-assign-parallelism="policy=latency all-to-all=flat" | FileCheck %s --check-prefix=IR

// 128 experts over 2 nodes of 8 (ep 16, 8 experts per rank). For a decode
// step the 8 remote-rank messages of a flat exchange cost more than the
// hierarchical one's extra intra-node pass: the cost model picks
// hierarchical, and its estimate is below the forced flat plan's.
// AUTO: "all_to_all":"hierarchical"
// AUTO: "seconds":6.{{[0-9]+}}e-05
// FLAT: "all_to_all":"flat"
// FLAT: "seconds":0.0002{{[0-9]+}}
// IR: moe.all_to_all to_experts flat %{{.*}} : tensor<128x?x64xbf16> -> tensor<8x?x64xbf16>
module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8>} {
  func.func @qwen3_like(%x: tensor<?x64xbf16>,
      %wg: tensor<128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<128x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<128x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<128x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<128x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x128xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<128x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<128x?x64xbf16>, tensor<128x128x64xbf16>, tensor<128x128x64xbf16>, tensor<128x64x128xbf16>) -> tensor<128x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<128x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}
