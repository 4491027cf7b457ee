// RUN: moe-opt %s -split-input-file --moe-assign-parallelism | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-assign-parallelism | moe-opt -split-input-file --verify-roundtrip > /dev/null

// A uniform Mixtral-shaped layer (8 experts, top-2, dropless) under the
// default throughput policy, with the mesh taken from the module: ep =
// min(experts, ranks); the ranks left over replicate (dp), because at 4096
// tokens per rank slicing would only add all-to-all traffic.

// One node of 8: one expert per rank, a flat exchange inside the node.
// CHECK-LABEL: func.func @mesh_1x8
// CHECK-SAME: %{{.*}}: tensor<8x64xbf16> {moe.shard = #moe.shard<[none, none]>, moe.weight = "model.layers.0.block_sparse_moe.gate.weight"}
// CHECK-SAME: %{{.*}}: tensor<1x128x64xbf16> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"}
// CHECK-SAME: %{{.*}}: tensor<1x128x64xbf16> {moe.shard = #moe.shard<[ep, tp, none]>
// CHECK-SAME: %{{.*}}: tensor<1x64x128xbf16> {moe.shard = #moe.shard<[ep, none, tp]>
// CHECK: %[[IDS:.*]], %[[W:.*]], %[[S:.*]], %{{.*}}, %[[CAP:.*]] = moe.gate
// Dropless: the exchanging ranks agree on the largest count first.
// CHECK: %[[SYNC:.*]] = moe.sync_capacity %[[CAP]] groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7]]
// CHECK: %[[BUF:.*]] = moe.dispatch %{{.*}}, %[[IDS]], %[[S]], %[[SYNC]] : {{.*}} -> tensor<8x?x64xbf16>
// CHECK: %[[IN:.*]] = moe.all_to_all to_experts flat %[[BUF]] groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7]] : tensor<8x?x64xbf16> -> tensor<1x?x64xbf16>
// CHECK: %[[OUT:.*]] = moe.experts silu %[[IN]] {{.*}} -> tensor<1x?x64xbf16>
// CHECK: %[[BACK:.*]] = moe.all_to_all from_experts flat %[[OUT]] groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7]] : tensor<1x?x64xbf16> -> tensor<8x?x64xbf16>
// CHECK: moe.combine %[[BACK]], %[[IDS]], %[[S]], %[[W]]
// CHECK: {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 1>}
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 8>} {
  func.func @mesh_1x8(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}

// -----

// Two nodes of 8: each node holds all 8 experts (ep 8 x dp 2), so the
// exchange never leaves a node.
// CHECK-LABEL: func.func @mesh_2x8
// CHECK-SAME: tensor<1x128x64xbf16>
// CHECK: moe.sync_capacity %{{.*}} groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]]
// CHECK: moe.all_to_all to_experts flat %{{.*}} groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]] : tensor<8x?x64xbf16> -> tensor<1x?x64xbf16>
// CHECK: moe.all_to_all from_experts flat
// CHECK: {moe.plan = #moe.plan<dp = 2, ep = 8, tp = 1>}
module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8>} {
  func.func @mesh_2x8(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}

// -----

// 16 nodes of 8 with 128 experts: one expert per rank, an exchange group
// spanning all 16 nodes; the hierarchical exchange sends one message per
// node instead of one per remote rank.
// CHECK-LABEL: func.func @mesh_16x8
// CHECK-SAME: tensor<1x128x64xbf16>
// CHECK: moe.all_to_all to_experts hierarchical %{{.*}} groups {{\[}}[0, 1, 2, {{.*}}, 126, 127]] ranks_per_node 8 : tensor<128x?x64xbf16> -> tensor<1x?x64xbf16>
// CHECK: moe.all_to_all from_experts hierarchical
// CHECK: {moe.plan = #moe.plan<dp = 1, ep = 128, tp = 1, all_to_all = hierarchical>}
module attributes {moe.mesh = #moe.mesh<nodes = 16, gpus_per_node = 8>} {
  func.func @mesh_16x8(%x: tensor<?x64xbf16>,
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

// -----

// 16 nodes of 8 with 8 experts: ep 8 inside each node, 16 replicas.
// CHECK-LABEL: func.func @mesh_16x8_few_experts
// CHECK: moe.all_to_all to_experts flat %{{.*}} groups {{\[}}[0, 1, 2, 3, 4, 5, 6, 7], [8, {{.*}}], [120, 121, 122, 123, 124, 125, 126, 127]] : tensor<8x?x64xbf16> -> tensor<1x?x64xbf16>
// CHECK: {moe.plan = #moe.plan<dp = 16, ep = 8, tp = 1>}
module attributes {moe.mesh = #moe.mesh<nodes = 16, gpus_per_node = 8>} {
  func.func @mesh_16x8_few_experts(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}

// -----

// A single GPU: nothing to exchange, weights stay whole.
// CHECK-LABEL: func.func @mesh_1x1
// CHECK-SAME: tensor<8x128x64xbf16> {moe.shard = #moe.shard<[ep, tp, none]>
// CHECK-NOT: moe.all_to_all
// CHECK-NOT: moe.sync_capacity
// CHECK: {moe.plan = #moe.plan<dp = 1, ep = 1, tp = 1>}
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 1>} {
  func.func @mesh_1x1(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}
