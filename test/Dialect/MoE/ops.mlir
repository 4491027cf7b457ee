// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip --mlir-print-op-generic | moe-opt | FileCheck %s

// Every op and every routing parameter round-trips through the custom and
// the generic form.

// CHECK-LABEL: func.func @mixtral_layer
// CHECK-SAME: {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"}
func.func @mixtral_layer(%x: tensor<?x64xbf16>,
    %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
    %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
    %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
    %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"})
    -> tensor<?x64xbf16> {
  // CHECK: %[[Y:.*]] = moe.layer 0 (%[[H:.*]] = %{{.*}}) : tensor<?x64xbf16> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
    // CHECK: %[[L:.*]] = moe.router %[[H]], %{{.*}} : tensor<?x64xbf16>, tensor<8x64xbf16>
    %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
    // CHECK: %[[IDS:.*]], %[[W:.*]], %[[S:.*]], %{{.*}}, %[[CAP:.*]] = moe.gate %[[L]] <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    // CHECK: %[[B:.*]] = moe.dispatch %[[H]], %[[IDS]], %[[S]], %[[CAP]] : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
    // CHECK: %[[E:.*]] = moe.experts silu %[[B]] gate %{{.*}} up %{{.*}} down %{{.*}} : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
    %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
    // CHECK: %[[O:.*]] = moe.combine %[[E]], %[[IDS]], %[[S]], %[[W]] : tensor<8x?x64xbf16>, tensor<?x2xi32>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
    // CHECK: moe.yield %[[O]] : tensor<?x64xbf16>
    moe.yield %o : tensor<?x64xbf16>
  }
  // CHECK: return %[[Y]]
  return %y : tensor<?x64xbf16>
}

// ERNIE-4.5: the bias selects among softmax probabilities, which are divided
// by max(their sum, 1e-12).
// CHECK-LABEL: func.func @ernie_gate
func.func @ernie_gate(%l: tensor<4x64xf32>, %bias: tensor<64xf32>) -> tensor<4x6xf32> {
  // CHECK: moe.gate %{{.*}} correction %{{.*}} <scoring = softmax, top_k = 6, normalize = selected_clamped, norm_epsilon = 1.0e-12> : tensor<4x64xf32>, tensor<64xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l correction %bias <scoring = softmax, top_k = 6, normalize = selected_clamped, norm_epsilon = 1.0e-12> : tensor<4x64xf32>, tensor<64xf32>
  return %w : tensor<4x6xf32>
}

// DBRX with moe_normalize_expert_weights = 2: the top-4 weights divided by
// their 2-norm.
// CHECK-LABEL: func.func @dbrx_pnorm_gate
func.func @dbrx_pnorm_gate(%l: tensor<4x16xf32>) -> tensor<4x4xf32> {
  // CHECK: moe.gate %{{.*}} <scoring = softmax, top_k = 4, normalize = pnorm, norm_p = 2.0> : tensor<4x16xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 4, normalize = pnorm, norm_p = 2.0> : tensor<4x16xf32>
  return %w : tensor<4x4xf32>
}

// PhiMoE: sparsemixer's top-2, each weight a softmax over the logits within
// 2 * jitter_eps (relative) of the choice.
// CHECK-LABEL: func.func @phimoe_sparsemixer_gate
func.func @phimoe_sparsemixer_gate(%l: tensor<4x16xf32>) -> tensor<4x2xf32> {
  // CHECK: moe.gate %{{.*}} <scoring = sparsemixer, top_k = 2, jitter_eps = 0.01> : tensor<4x16xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = sparsemixer, top_k = 2, jitter_eps = 0.01> : tensor<4x16xf32>
  return %w : tensor<4x2xf32>
}

// Llama 4: the sigmoid weight of each choice scales the dispatched row; the
// combine sums the rows unweighted (also fused).
// CHECK-LABEL: func.func @llama4_input_weights
func.func @llama4_input_weights(%x: tensor<4x8xf32>, %l: tensor<4x16xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  // CHECK: moe.gate %{{.*}} <scoring = sigmoid, top_k = 1, weights = input> : tensor<4x16xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 1, weights = input> : tensor<4x16xf32>
  // CHECK: moe.dispatch %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} weights %{{.*}} : tensor<4x8xf32>, tensor<4x1xi32> -> tensor<16x?x8xf32>
  %buf = moe.dispatch %x, %ids, %s, %cap weights %w : tensor<4x8xf32>, tensor<4x1xi32> -> tensor<16x?x8xf32>
  // CHECK: moe.combine %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}} : tensor<16x?x8xf32>, tensor<4x1xi32>
  %y = moe.combine %buf, %ids, %s : tensor<16x?x8xf32>, tensor<4x1xi32>
  // CHECK: moe.fused_combine %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}} shared(%{{.*}} : tensor<4x8xf32>) : tensor<16x?x8xf32>, tensor<4x1xi32> -> tensor<4x8xf32>
  %f = moe.fused_combine %buf, %ids, %s shared(%x : tensor<4x8xf32>) : tensor<16x?x8xf32>, tensor<4x1xi32> -> tensor<4x8xf32>
  return %y, %f : tensor<4x8xf32>, tensor<4x8xf32>
}

// CHECK-LABEL: func.func @deepseek_v3_gate
func.func @deepseek_v3_gate(%l: tensor<4x256xf32>, %bias: tensor<256xf32>) -> tensor<4x8xf32> {
  // CHECK: moe.gate %{{.*}} correction %{{.*}} <scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4, group_score = top2_sum, normalize = selected, norm_epsilon = 1.0e-20, routed_scaling_factor = 2.5> : tensor<4x256xf32>, tensor<256xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l correction %bias <scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4, group_score = top2_sum, normalize = selected, norm_epsilon = 1.0e-20, routed_scaling_factor = 2.5> : tensor<4x256xf32>, tensor<256xf32>
  // CHECK: moe.fused_gate %{{.*}} correction %{{.*}} <scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4, group_score = top2_sum, normalize = selected, norm_epsilon = 1.0e-20, routed_scaling_factor = 2.5> : tensor<4x256xf32>, tensor<256xf32>
  %fids, %fw, %fs, %fc, %fcap = moe.fused_gate %l correction %bias <scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4, group_score = top2_sum, normalize = selected, norm_epsilon = 1.0e-20, routed_scaling_factor = 2.5> : tensor<4x256xf32>, tensor<256xf32>
  return %w : tensor<4x8xf32>
}

// CHECK-LABEL: func.func @deepseek_v2_gate
func.func @deepseek_v2_gate(%l: tensor<?x160xf32>) -> tensor<?x6xi32> {
  // CHECK: moe.gate %{{.*}} <scoring = softmax, top_k = 6, n_group = 8, topk_group = 3, routed_scaling_factor = 16.0> : tensor<?x160xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 6, n_group = 8, topk_group = 3, group_score = max, routed_scaling_factor = 16.0> : tensor<?x160xf32>
  return %ids : tensor<?x6xi32>
}

// CHECK-LABEL: func.func @capacity_gates
func.func @capacity_gates(%l: tensor<?x32xf32>) -> (index, index, index) {
  // CHECK: moe.gate %{{.*}} <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4> : tensor<?x32xf32>
  %i0, %w0, %s0, %c0, %cap0 = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4, drop_order = choice_major> : tensor<?x32xf32>
  // CHECK: moe.gate %{{.*}} <scoring = softmax, top_k = 2, normalize = kept, capacity_factor = 1.25, drop_order = token_major> : tensor<?x32xf32>
  %i1, %w1, %s1, %c1, %cap1 = moe.gate %l <scoring = softmax, top_k = 2, normalize = kept, capacity_factor = 1.25, drop_order = token_major> : tensor<?x32xf32>
  // CHECK: moe.gate %{{.*}} <scoring = softmax, top_k = 2, normalize = kept, capacity_factor = 2.0, min_capacity = 1, drop_order = probs> : tensor<?x32xf32>
  %i2, %w2, %s2, %c2, %cap2 = moe.gate %l <scoring = softmax, top_k = 2, normalize = kept, capacity_factor = 2.0, min_capacity = 1, drop_order = probs> : tensor<?x32xf32>
  return %cap0, %cap1, %cap2 : index, index, index
}

// CHECK-LABEL: func.func @router_with_bias
func.func @router_with_bias(%x: tensor<?x64xf32>, %w: tensor<16x64xf32>, %b: tensor<16xf32>) -> tensor<?x16xf32> {
  // CHECK: moe.router %{{.*}}, %{{.*}} bias %{{.*}} : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32>
  %l = moe.router %x, %w bias %b : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32>
  return %l : tensor<?x16xf32>
}

// PR-MoE: plain GeLU experts with biases beside a dense residual MLP, mixed by
// a learned coefficient; then the constant-coefficient form.
// CHECK-LABEL: func.func @residual_moe
func.func @residual_moe(%h: tensor<?x64xf32>, %buf: tensor<4x?x64xf32>,
    %w1: tensor<4x256x64xf32>, %b1: tensor<4x256xf32>, %w2: tensor<4x64x256xf32>, %b2: tensor<4x64xf32>,
    %d1: tensor<256x64xf32>, %db1: tensor<256xf32>, %d2: tensor<64x256xf32>, %db2: tensor<64xf32>,
    %wc: tensor<2x64xf32>, %bc: tensor<2xf32>, %moe_out: tensor<?x64xf32>) -> (tensor<4x?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  // CHECK: moe.experts gelu %{{.*}} up %{{.*}} bias %{{.*}} down %{{.*}} bias %{{.*}} : (tensor<4x?x64xf32>, tensor<4x256x64xf32>, tensor<4x256xf32>, tensor<4x64x256xf32>, tensor<4x64xf32>) -> tensor<4x?x64xf32>
  %e = moe.experts gelu %buf up %w1 bias %b1 down %w2 bias %b2 : (tensor<4x?x64xf32>, tensor<4x256x64xf32>, tensor<4x256xf32>, tensor<4x64x256xf32>, tensor<4x64xf32>) -> tensor<4x?x64xf32>
  // CHECK: %[[MLP:.*]] = moe.dense_ffn relu %{{.*}} up %{{.*}} bias %{{.*}} down %{{.*}} bias %{{.*}} : (tensor<?x64xf32>, tensor<256x64xf32>, tensor<256xf32>, tensor<64x256xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  %mlp = moe.dense_ffn relu %h up %d1 bias %db1 down %d2 bias %db2 : (tensor<?x64xf32>, tensor<256x64xf32>, tensor<256xf32>, tensor<64x256xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  // CHECK: moe.residual_mix %{{.*}}, %[[MLP]] coefficient(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<2x64xf32>, tensor<2xf32>) : tensor<?x64xf32>
  %mix = moe.residual_mix %moe_out, %mlp coefficient(%h, %wc, %bc : tensor<?x64xf32>, tensor<2x64xf32>, tensor<2xf32>) : tensor<?x64xf32>
  // CHECK: moe.residual_mix %{{.*}}, %[[MLP]] constant [2.500000e-01, 7.500000e-01] : tensor<?x64xf32>
  %fixed = moe.residual_mix %moe_out, %mlp constant [0.25, 0.75] : tensor<?x64xf32>
  return %e, %mix, %fixed : tensor<4x?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func.func @shared_experts
func.func @shared_experts(%h: tensor<?x64xbf16>, %routed: tensor<?x64xbf16>,
    %g: tensor<96x64xbf16>, %u: tensor<96x64xbf16>, %d: tensor<64x96xbf16>, %wsg: tensor<1x64xbf16>,
    %rows: tensor<8x?x64xbf16>, %ids: tensor<?x2xi32>, %slots: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> (tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<?x64xbf16>) {
  // CHECK: %[[SH:.*]] = moe.dense_ffn gelu_tanh %{{.*}} gate %{{.*}} up %{{.*}} down %{{.*}}
  %shared = moe.dense_ffn gelu_tanh %h gate %g up %u down %d : (tensor<?x64xbf16>, tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>) -> tensor<?x64xbf16>
  // CHECK: moe.shared_add %{{.*}}, %[[SH]] : tensor<?x64xbf16>
  %plain = moe.shared_add %routed, %shared : tensor<?x64xbf16>
  // CHECK: moe.shared_add %{{.*}}, %[[SH]] gated(%{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<1x64xbf16>) : tensor<?x64xbf16>
  %gated = moe.shared_add %routed, %shared gated(%h, %wsg : tensor<?x64xbf16>, tensor<1x64xbf16>) : tensor<?x64xbf16>
  // CHECK: moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} shared(%[[SH]] : tensor<?x64xbf16>) shared_gate(%{{.*}} : tensor<1x64xbf16>) x(%{{.*}} : tensor<?x64xbf16>) : tensor<8x?x64xbf16>, tensor<?x2xi32> -> tensor<?x64xbf16>
  %fused = moe.fused_combine %rows, %ids, %slots, %w shared(%shared : tensor<?x64xbf16>) shared_gate(%wsg : tensor<1x64xbf16>) x(%h : tensor<?x64xbf16>) : tensor<8x?x64xbf16>, tensor<?x2xi32> -> tensor<?x64xbf16>
  return %plain, %gated, %fused : tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<?x64xbf16>
}

// CHECK-LABEL: func.func @all_to_all
func.func @all_to_all(%buf: tensor<8x?x64xbf16>) -> tensor<8x?x64xbf16> {
  // CHECK: %[[R:.*]] = moe.all_to_all to_experts flat %{{.*}} groups {{\[}}[0, 1, 2, 3], [4, 5, 6, 7]] : tensor<8x?x64xbf16> -> tensor<2x?x64xbf16>
  %r = moe.all_to_all to_experts flat %buf groups [[0, 1, 2, 3], [4, 5, 6, 7]] : tensor<8x?x64xbf16> -> tensor<2x?x64xbf16>
  // CHECK: moe.all_to_all from_experts hierarchical %[[R]] groups {{\[}}[0, 1, 2, 3], [4, 5, 6, 7]] ranks_per_node 2 : tensor<2x?x64xbf16> -> tensor<8x?x64xbf16>
  %b = moe.all_to_all from_experts hierarchical %r groups [[0, 1, 2, 3], [4, 5, 6, 7]] ranks_per_node 2 : tensor<2x?x64xbf16> -> tensor<8x?x64xbf16>
  return %b : tensor<8x?x64xbf16>
}

// A pyramid: each layer has its own expert count.
// CHECK-LABEL: func.func @pyramid
func.func @pyramid(%x: tensor<16x64xf32>, %r0: tensor<4x64xf32>, %r1: tensor<8x64xf32>) -> tensor<16x64xf32> {
  // CHECK: moe.layer 0
  // CHECK: moe.gate %{{.*}} : tensor<16x4xf32>
  // CHECK: moe.layer 1
  // CHECK: moe.gate %{{.*}} : tensor<16x8xf32>
  %a = moe.layer 0 (%h = %x) : tensor<16x64xf32> {
    %l = moe.router %h, %r0 : tensor<16x64xf32>, tensor<4x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0> : tensor<16x4xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<16x64xf32>, tensor<16x1xi32> -> tensor<4x?x64xf32>
    %o = moe.combine %b, %ids, %s, %w : tensor<4x?x64xf32>, tensor<16x1xi32>
    moe.yield %o : tensor<16x64xf32>
  }
  %b = moe.layer 1 (%h = %a) : tensor<16x64xf32> {
    %l = moe.router %h, %r1 : tensor<16x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0> : tensor<16x8xf32>
    %bb = moe.dispatch %h, %ids, %s, %cap : tensor<16x64xf32>, tensor<16x1xi32> -> tensor<8x?x64xf32>
    %o = moe.combine %bb, %ids, %s, %w : tensor<8x?x64xf32>, tensor<16x1xi32>
    moe.yield %o : tensor<16x64xf32>
  }
  return %b : tensor<16x64xf32>
}

// Parallel plans: the mesh, a layer's plan, weight shards, capacity sync and
// a sliced exchange.
// CHECK-LABEL: module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8, memory_bytes = 42949672960, inter_node_gbps = 25.0>}
module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8, memory_bytes = 42949672960, inter_node_gbps = 25.0>} {
  // CHECK: func.func @planned(%{{.*}}: tensor<?x64xf32>, %{{.*}}: tensor<1x64x64xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "w.{e}.up"})
  func.func @planned(%x: tensor<?x64xf32>, %w: tensor<1x64x64xf32> {moe.weight = "w.{e}.up", moe.shard = #moe.shard<[ep, tp, none]>}) -> tensor<?x64xf32> {
    // CHECK: moe.layer 0 (%{{.*}} = %{{.*}}) : tensor<?x64xf32> {
    // CHECK: } {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 2, all_to_all = hierarchical>}
    %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
      moe.yield %h : tensor<?x64xf32>
    } {moe.plan = #moe.plan<dp = 1, ep = 8, tp = 2, all_to_all = hierarchical>}
    return %y : tensor<?x64xf32>
  }

  // CHECK-LABEL: func.func @sliced_exchange
  func.func @sliced_exchange(%buf: tensor<8x?x64xf32>, %cap: index) -> (tensor<8x?x64xf32>, index) {
    // CHECK: moe.sync_capacity %{{.*}} groups {{\[}}[0, 1, 2, 3]]
    %c = moe.sync_capacity %cap groups [[0, 1, 2, 3]]
    // CHECK: moe.all_to_all to_experts flat %{{.*}} groups {{\[}}[0, 1, 2, 3]] {slices = 2 : i64} : tensor<8x?x64xf32> -> tensor<4x?x64xf32>
    %r = moe.all_to_all to_experts flat %buf groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<8x?x64xf32> -> tensor<4x?x64xf32>
    %b = moe.all_to_all from_experts flat %r groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<4x?x64xf32> -> tensor<8x?x64xf32>
    return %b, %c : tensor<8x?x64xf32>, index
  }
  // CHECK-LABEL: func.func @fused_experts
  func.func @fused_experts(%buf: tensor<8x?x64xbf16>, %x: tensor<?x64xbf16>, %gu: tensor<8x256x64xbf16>, %wd: tensor<8x64x128xbf16>, %sgu: tensor<64x64xbf16>, %sd: tensor<64x32xbf16>) -> (tensor<8x?x64xbf16>, tensor<8x?x64xbf16>, tensor<?x64xbf16>) {
    // CHECK: moe.fused_experts silu %{{.*}} gate_up %{{.*}} down %{{.*}} : (tensor<8x?x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
    %a = moe.fused_experts silu %buf gate_up %gu down %wd : (tensor<8x?x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
    // CHECK: moe.fused_experts silu %{{.*}} gate_up %{{.*}} down %{{.*}} shared(%{{.*}} gate_up %{{.*}} down %{{.*}}) : (tensor<8x?x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>, tensor<?x64xbf16>, tensor<64x64xbf16>, tensor<64x32xbf16>) -> (tensor<8x?x64xbf16>, tensor<?x64xbf16>)
    %b, %sh = moe.fused_experts silu %buf gate_up %gu down %wd shared(%x gate_up %sgu down %sd) : (tensor<8x?x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>, tensor<?x64xbf16>, tensor<64x64xbf16>, tensor<64x32xbf16>) -> (tensor<8x?x64xbf16>, tensor<?x64xbf16>)
    return %a, %b, %sh : tensor<8x?x64xbf16>, tensor<8x?x64xbf16>, tensor<?x64xbf16>
  }
}

// Expert weights that are strided views of fused tensors (Granite's
// input_linear [E, 2F, H] holds gate and up; output_linear [E, H, F]):
// the keys have no `{e}`.
// CHECK-LABEL: func.func @granite_fused_experts
// CHECK-SAME: {moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 0, expert_stride = 1536, strides = [32, 1]>, moe.weight = "model.layers.0.block_sparse_moe.input_linear.weight"}
// CHECK-SAME: {moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 768, expert_stride = 1536, strides = [32, 1]>, moe.weight = "model.layers.0.block_sparse_moe.input_linear.weight"}
// CHECK-SAME: {moe.fused_view = #moe.fused_view<shape = [48, 32], offset = 768, expert_stride = 0, strides = [32, 1]>, moe.weight = "model.layers.0.shared_mlp.input_linear.weight"}
func.func @granite_fused_experts(%b: tensor<4x?x32xf32>,
    %g: tensor<4x24x32xf32> {moe.weight = "model.layers.0.block_sparse_moe.input_linear.weight",
      moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 0, expert_stride = 1536, strides = [32, 1]>},
    %u: tensor<4x24x32xf32> {moe.weight = "model.layers.0.block_sparse_moe.input_linear.weight",
      moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 768, expert_stride = 1536, strides = [32, 1]>},
    %d: tensor<4x32x24xf32> {moe.weight = "model.layers.0.block_sparse_moe.output_linear.weight",
      moe.fused_view = #moe.fused_view<shape = [4, 32, 24], offset = 0, expert_stride = 768, strides = [24, 1]>},
    %su: tensor<24x32xf32> {moe.weight = "model.layers.0.shared_mlp.input_linear.weight",
      moe.fused_view = #moe.fused_view<shape = [48, 32], offset = 768, expert_stride = 0, strides = [32, 1]>})
    -> tensor<4x?x32xf32> {
  // CHECK: moe.experts silu
  %e = moe.experts silu %b gate %g up %u down %d : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return %e : tensor<4x?x32xf32>
}

// gpt-oss's experts: a gate bias, up and down biases and the clamped SwiGLU
// with its parameters.
// CHECK-LABEL: func.func @gpt_oss_experts
func.func @gpt_oss_experts(%buf: tensor<4x?x32xf32>, %g: tensor<4x24x32xf32>,
    %gb: tensor<4x24xf32>, %u: tensor<4x24x32xf32>, %ub: tensor<4x24xf32>,
    %d: tensor<4x32x24xf32>, %db: tensor<4x32xf32>) -> tensor<4x?x32xf32> {
  // CHECK: moe.experts swiglu_clamped %{{.*}} gate %{{.*}} gate_bias %{{.*}} up %{{.*}} bias %{{.*}} down %{{.*}} bias %{{.*}} {swiglu_alpha = 1.702000e+00 : f64, swiglu_limit = 7.000000e+00 : f64} : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x24xf32>, tensor<4x24x32xf32>, tensor<4x24xf32>, tensor<4x32x24xf32>, tensor<4x32xf32>) -> tensor<4x?x32xf32>
  %e = moe.experts swiglu_clamped %buf gate %g gate_bias %gb up %u bias %ub down %d bias %db {swiglu_alpha = 1.702 : f64, swiglu_limit = 7.0 : f64} : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x24xf32>, tensor<4x24x32xf32>, tensor<4x24xf32>, tensor<4x32x24xf32>, tensor<4x32xf32>) -> tensor<4x?x32xf32>
  return %e : tensor<4x?x32xf32>
}
