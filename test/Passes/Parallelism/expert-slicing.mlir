// RUN: moe-opt %s -split-input-file --moe-assign-parallelism="policy=latency" | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-assign-parallelism="policy=throughput tp=2" | FileCheck %s --check-prefix=FORCED

// More ranks than experts. For a decode step (latency policy, 8 tokens) the
// step is bound by reading expert weights, so the cost model slices each
// expert over 2 ranks (ep 8 x tp 2) instead of replicating it: gate/up are
// column-split, down row-split, and the returning exchange sums the two
// partial outputs of every expert.
// CHECK-LABEL: func.func @mixtral_on_2x8
// CHECK-SAME: tensor<1x7168x4096xbf16> {moe.shard = #moe.shard<[ep, tp, none]>
// CHECK-SAME: tensor<1x7168x4096xbf16> {moe.shard = #moe.shard<[ep, tp, none]>
// CHECK-SAME: tensor<1x4096x7168xbf16> {moe.shard = #moe.shard<[ep, none, tp]>
// CHECK: moe.all_to_all to_experts hierarchical %{{.*}} groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]] ranks_per_node 8 {slices = 2 : i64} : tensor<8x?x4096xbf16> -> tensor<1x?x4096xbf16>
// CHECK: moe.experts silu %{{.*}} : (tensor<1x?x4096xbf16>, tensor<1x7168x4096xbf16>, tensor<1x7168x4096xbf16>, tensor<1x4096x7168xbf16>) -> tensor<1x?x4096xbf16>
// CHECK: moe.all_to_all from_experts hierarchical %{{.*}} {slices = 2 : i64}
// CHECK: {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 2, all_to_all = hierarchical>}

// Forcing tp = 2 under the throughput policy gives the same split with a
// flat exchange (large messages: the extra intra-node pass does not pay).
// FORCED-LABEL: func.func @mixtral_on_2x8
// FORCED: moe.all_to_all to_experts flat {{.*}} {slices = 2 : i64}
// FORCED: {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 2>}
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

// -----

// A Qwen2-MoE-style layer: its shared expert is a dense MLP, tensor-parallel
// over the same tp ranks: tokens are all-gathered over the tp axis of the
// layer's grid, the sliced MLP runs, and the partial sums are reduce-scattered
// back to the ranks that own the tokens.
// CHECK: shard.grid @grid_dp1_ep8_tp2(shape = 1x8x2)
// CHECK-LABEL: func.func @shared_expert_on_2x8
// CHECK-SAME: tensor<7168x4096xbf16> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "model.layers.0.mlp.shared_expert.gate_proj.weight"}
// CHECK-SAME: tensor<7168x4096xbf16> {moe.shard = #moe.shard<[tp, none]>
// CHECK-SAME: tensor<4096x7168xbf16> {moe.shard = #moe.shard<[none, tp]>
// CHECK-SAME: tensor<1x4096xbf16> {moe.shard = #moe.shard<[none, none]>
// CHECK: %[[ALL:.*]] = shard.all_gather %[[H:.*]] on @grid_dp1_ep8_tp2 grid_axes = [2] gather_axis = 0 : tensor<?x4096xbf16> -> tensor<?x4096xbf16>
// CHECK: %[[PART:.*]] = moe.dense_ffn silu %[[ALL]]
// CHECK: %[[MINE:.*]] = shard.reduce_scatter %[[PART]] on @grid_dp1_ep8_tp2 grid_axes = [2] scatter_axis = 0 : tensor<?x4096xbf16> -> tensor<?x4096xbf16>
// CHECK: moe.shared_add %{{.*}}, %[[MINE]] gated(%[[H]]
// CHECK: {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 2, all_to_all = hierarchical>}
// FORCED-LABEL: func.func @shared_expert_on_2x8
// FORCED: shard.all_gather
// FORCED: shard.reduce_scatter
module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8>} {
  func.func @shared_expert_on_2x8(%x: tensor<?x4096xbf16>,
      %wg: tensor<8x4096xbf16> {moe.weight = "model.layers.0.mlp.gate.weight"},
      %w1: tensor<8x14336x4096xbf16> {moe.weight = "model.layers.0.mlp.experts.{e}.gate_proj.weight"},
      %w3: tensor<8x14336x4096xbf16> {moe.weight = "model.layers.0.mlp.experts.{e}.up_proj.weight"},
      %w2: tensor<8x4096x14336xbf16> {moe.weight = "model.layers.0.mlp.experts.{e}.down_proj.weight"},
      %sg: tensor<14336x4096xbf16> {moe.weight = "model.layers.0.mlp.shared_expert.gate_proj.weight"},
      %su: tensor<14336x4096xbf16> {moe.weight = "model.layers.0.mlp.shared_expert.up_proj.weight"},
      %sd: tensor<4096x14336xbf16> {moe.weight = "model.layers.0.mlp.shared_expert.down_proj.weight"},
      %wsg: tensor<1x4096xbf16> {moe.weight = "model.layers.0.mlp.shared_expert_gate.weight"}) -> tensor<?x4096xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x4096xbf16> {
      %l = moe.router %h, %wg : tensor<?x4096xbf16>, tensor<8x4096xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2> : tensor<?x8xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x4096xbf16>, tensor<?x2xi32> -> tensor<8x?x4096xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x4096xbf16>, tensor<8x14336x4096xbf16>, tensor<8x14336x4096xbf16>, tensor<8x4096x14336xbf16>) -> tensor<8x?x4096xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<8x?x4096xbf16>, tensor<?x2xi32>
      %sh = moe.dense_ffn silu %h gate %sg up %su down %sd : (tensor<?x4096xbf16>, tensor<14336x4096xbf16>, tensor<14336x4096xbf16>, tensor<4096x14336xbf16>) -> tensor<?x4096xbf16>
      %r = moe.shared_add %o, %sh gated(%h, %wsg : tensor<?x4096xbf16>, tensor<1x4096xbf16>) : tensor<?x4096xbf16>
      moe.yield %r : tensor<?x4096xbf16>
    }
    return %y : tensor<?x4096xbf16>
  }
}
