// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the moe dialect. Generic syntax is used where
// the custom syntax cannot even express the broken op.

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{top_k must be at least 1, got 0}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{n_group must be at least 1, got 0}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, n_group = 0, topk_group = 0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{topk_group must be in [1, n_group = 2], got 3}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, n_group = 2, topk_group = 3> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{group_score = top2_sum needs group-limited routing (n_group > 1)}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 1, group_score = top2_sum> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{norm_epsilon must be finite and >= 0, got -1}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected, norm_epsilon = -1.0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{norm_epsilon applies only to normalize = selected or selected_clamped}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, norm_epsilon = 1.0e-20> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{normalize = selected_clamped needs norm_epsilon > 0 (the floor of the sum); use normalize = selected}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected_clamped> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{norm_p applies only to normalize = pnorm}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected, norm_p = 2.0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{normalize = pnorm with norm_p = 1 is the sum of the weights; use normalize = selected}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = pnorm> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{norm_p must be finite and > 0, got -2}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = pnorm, norm_p = -2.0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{jitter_eps applies only to scoring = sparsemixer}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, jitter_eps = 0.01> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{jitter_eps must be finite and >= 0, got -1.000000e-02}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sparsemixer, top_k = 2, jitter_eps = -0.01> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{scoring = sparsemixer picks exactly 2 experts, got top_k = 3}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sparsemixer, top_k = 3, jitter_eps = 0.01> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{scoring = sparsemixer does not take group-limited routing (n_group = 2)}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sparsemixer, top_k = 2, n_group = 2, topk_group = 1, jitter_eps = 0.01> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{scoring = sparsemixer computes final weights; normalize must be none, got selected}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sparsemixer, top_k = 2, normalize = selected, jitter_eps = 0.01> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>, %b: tensor<8xf32>) {
  // expected-error @below {{scoring = sparsemixer takes no correction bias}}
  %i, %w, %s, %c, %cap = moe.gate %l correction %b <scoring = sparsemixer, top_k = 2, jitter_eps = 0.01> : tensor<?x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{routed_scaling_factor must be finite and > 0, got 0}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, routed_scaling_factor = 0.0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{capacity_factor must be finite and >= 0 (0 is dropless), got -1}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, capacity_factor = -1.0> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{min_capacity must be >= 0, got -4}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, capacity_factor = 1.0, min_capacity = -4> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{min_capacity needs a capacity (capacity_factor > 0)}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, min_capacity = 4> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{drop_order needs a capacity (capacity_factor > 0)}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, drop_order = probs> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{normalize = kept needs a capacity (capacity_factor > 0); use normalize = selected when dropless}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = kept> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<8xf32>) {
  // expected-error @below {{'moe.gate' op logits must be a rank-2 tensor, got 'tensor<8xf32>'}}
  %i, %w, %s, %c, %cap = "moe.gate"(%l) <{routing = #moe.routing<scoring = softmax, top_k = 1>, operandSegmentSizes = array<i32: 1, 0>}> : (tensor<8xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>, tensor<8x1xi32>, tensor<8xi32>, index)
  return
}

// -----

func.func @f(%l: tensor<4x?xf32>) {
  // expected-error @below {{the expert count (logits dimension 1) must be static}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1> : tensor<4x?xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{top_k = 9 exceeds the 8 experts}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 9> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{8 experts do not split into n_group = 3 equal groups}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, n_group = 3, topk_group = 1> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{topk_group = 2 groups of 2 experts hold fewer than top_k = 6 experts}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 6, n_group = 4, topk_group = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{group_score = top2_sum needs at least 2 experts per group, got 1}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 2, n_group = 8, topk_group = 4, group_score = top2_sum> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>, %b: tensor<4xf32>) {
  // expected-error @below {{correction bias must have shape [8], got [4]}}
  %i, %w, %s, %c, %cap = moe.gate %l correction %b <scoring = sigmoid, top_k = 2> : tensor<?x8xf32>, tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<?x?x64xf32>, %w: tensor<8x64xf32>) {
  // expected-error @below {{'moe.router' op input must be a rank-2 tensor}}
  %l = "moe.router"(%x, %w) : (tensor<?x?x64xf32>, tensor<8x64xf32>) -> tensor<?x8xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<8x32xf32>) {
  // expected-error @below {{weight must have shape [8, 64], got [8, 32]}}
  %l = moe.router %x, %w : tensor<?x64xf32>, tensor<8x32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<8x64xf32>, %b: tensor<7xf32>) {
  // expected-error @below {{bias must have shape [8], got [7]}}
  %l = moe.router %x, %w bias %b : tensor<?x64xf32>, tensor<8x64xf32>, tensor<7xf32>
  return
}

// -----

func.func @f(%x: tensor<4x64xf32>, %i: tensor<5x2xi32>, %cap: index) {
  // expected-error @below {{expert_ids has 5 rows but there are 4 tokens}}
  %b = moe.dispatch %x, %i, %i, %cap : tensor<4x64xf32>, tensor<5x2xi32> -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>, %cap: index) {
  // expected-error @below {{expert buffer hidden size 32 differs from the token hidden size 64}}
  %b = moe.dispatch %x, %i, %i, %cap : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>, %cap: index) {
  // expected-error @below {{expert buffer element type 'bf16' differs from the token element type 'f32'}}
  %b = moe.dispatch %x, %i, %i, %cap : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x?x64xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x64xf32>, %i: tensor<4x2xi32>) {
  %cap = arith.constant 3 : index
  // expected-error @below {{result has 2 rows per expert but the capacity is 3}}
  %b = moe.dispatch %x, %i, %i, %cap : tensor<4x64xf32>, tensor<4x2xi32> -> tensor<8x2x64xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x64xf32>, %i: tensor<4x2xi32>, %cap: index) {
  // expected-error @below {{'moe.dispatch' op token tensor must be a rank-2 tensor}}
  %b = moe.dispatch %x, %i, %i, %cap : tensor<4x?x64xf32>, tensor<4x2xi32> -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%e: tensor<8x?x64xf32>, %i: tensor<4x2xi32>, %s: tensor<4x1xi32>, %w: tensor<4x2xf32>) {
  // expected-error @below {{'moe.combine' op failed to verify that all of {expert_ids, slots} have same type}}
  %o = "moe.combine"(%e, %i, %s, %w) : (tensor<8x?x64xf32>, tensor<4x2xi32>, tensor<4x1xi32>, tensor<4x2xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @f(%e: tensor<8x?x64xf32>, %i: tensor<4x2xi32>, %w: tensor<4x1xf32>) {
  // expected-error @below {{'moe.combine' op failed to verify that weights are the fp32 counterpart of expert_ids}}
  %o = "moe.combine"(%e, %i, %i, %w) : (tensor<8x?x64xf32>, tensor<4x2xi32>, tensor<4x2xi32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{groups must be a non-empty 2-D list of ranks (one row per group)}}
  %r = moe.all_to_all to_experts flat %b groups [] : tensor<8x?x64xf32> -> tensor<4x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{rank -1 in groups is negative}}
  %r = moe.all_to_all to_experts flat %b groups [[0, -1]] : tensor<8x?x64xf32> -> tensor<4x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{rank 1 appears in more than one place in groups}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1], [1, 2]] : tensor<8x?x64xf32> -> tensor<4x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{hierarchical all_to_all needs ranks_per_node}}
  %r = moe.all_to_all to_experts hierarchical %b groups [[0, 1, 2, 3]] : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{hierarchical all_to_all needs 1 < ranks_per_node < group size with ranks_per_node dividing it; got ranks_per_node = 3 for groups of 4}}
  %r = moe.all_to_all to_experts hierarchical %b groups [[0, 1, 2, 3]] ranks_per_node 3 : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{ranks_per_node applies only to the hierarchical variant}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1, 2, 3]] ranks_per_node 2 : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{result must have element type 'f32', got 'bf16'}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1]] : tensor<8x?x64xf32> -> tensor<4x?x64xbf16>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{result must be a rank-3 tensor}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1]] : tensor<8x?x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @f(%b: tensor<?x?x64xf32>) {
  // expected-error @below {{the expert count must be static}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1]] : tensor<?x?x64xf32> -> tensor<4x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{8 experts do not split over 3 expert-parallel ranks}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1, 2]] : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x5x64xf32>) {
  // expected-error @below {{result must have shape [4, 10, 64], got [4, 5, 64]}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1]] : tensor<8x5x64xf32> -> tensor<4x5x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{input must have shape [4, ?, 64], got [8, ?, 64]}}
  %r = moe.all_to_all from_experts flat %b groups [[0, 1]] : tensor<8x?x64xf32> -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<8x4x64xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @below {{'moe.dense_ffn' op input must be a rank-2 tensor}}
  %y = moe.dense_ffn relu %x up %u down %d : (tensor<8x4x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<8x4x64xf32>
  return
}

// -----

func.func @f(%x: tensor<8x?x64xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @below {{up weight must be a stacked [E, F, H] tensor with a static expert count, got 'tensor<128x64xf32>'}}
  %y = moe.experts relu %x up %u down %d : (tensor<8x?x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x64xf32>, %u: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error @below {{input must have shape [8, ?, ?], got [4, ?, 64]}}
  %y = moe.experts relu %x up %u down %d : (tensor<4x?x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<4x?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %g: tensor<96x64xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @below {{gate weight must have shape [128, 64], got [96, 64]}}
  %y = moe.dense_ffn silu %x gate %g up %u down %d : (tensor<?x64xf32>, tensor<96x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<8x?x64xf32>, %u: tensor<8x128x64xf32>, %ub: tensor<8x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error @below {{up bias must have shape [8, 128], got [8, 64]}}
  %y = moe.experts gelu %x up %u bias %ub down %d : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %u: tensor<128x64xf32>, %d: tensor<128x64xf32>) {
  // expected-error @below {{down weight must have shape [64, 128], got [128, 64]}}
  %y = moe.dense_ffn gelu %x up %u down %d : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>, %db: tensor<128xf32>) {
  // expected-error @below {{down bias must have shape [64], got [128]}}
  %y = moe.dense_ffn gelu %x up %u down %d bias %db : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<128xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xbf16>, %u: tensor<128x64xf32>, %d: tensor<64x128xbf16>) {
  // expected-error @below {{up weight must have element type 'bf16', got 'f32'}}
  %y = moe.dense_ffn gelu %x up %u down %d : (tensor<?x64xbf16>, tensor<128x64xf32>, tensor<64x128xbf16>) -> tensor<?x64xbf16>
  return
}

// -----

func.func @f(%x: tensor<8x?x64xf32>,
    %u: tensor<8x128x64xf32> {moe.weight = "model.layers.0.mlp.experts.up_proj.weight"},
    %d: tensor<8x64x128xf32> {moe.weight = "model.layers.0.mlp.experts.{e}.down_proj.weight"}) {
  // expected-error @below {{stacked expert weight 'model.layers.0.mlp.experts.up_proj.weight' must name the expert with '{e}'}}
  %y = moe.experts relu %x up %u down %d : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<4x8x64xf32>) {
  // expected-error @below {{'moe.residual_mix' op moe output must be a rank-2 tensor}}
  %r = moe.residual_mix %m, %m constant [0.5, 0.5] : tensor<4x8x64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>, %wc: tensor<2x64xf32>) {
  // expected-error @below {{a learned coefficient needs the input, the weight and the bias}}
  %r = "moe.residual_mix"(%m, %m, %m, %wc) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>}> : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<2x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>) {
  // expected-error @below {{needs exactly one of a learned coefficient or a constant one}}
  %r = moe.residual_mix %m, %m : tensor<?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>) {
  // expected-error @below {{constant coefficient must have 2 entries, got 3}}
  %r = moe.residual_mix %m, %m constant [0.5, 0.25, 0.25] : tensor<?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>, %wc: tensor<64x2xf32>, %bc: tensor<2xf32>) {
  // expected-error @below {{coefficient weight must have shape [2, 64], got [64, 2]}}
  %r = moe.residual_mix %m, %m coefficient(%m, %wc, %bc : tensor<?x64xf32>, tensor<64x2xf32>, tensor<2xf32>) : tensor<?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>, %wc: tensor<2x64xf32>, %bc: tensor<1xf32>) {
  // expected-error @below {{coefficient bias must have shape [2], got [1]}}
  %r = moe.residual_mix %m, %m coefficient(%m, %wc, %bc : tensor<?x64xf32>, tensor<2x64xf32>, tensor<1xf32>) : tensor<?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<4x64xf32>, %x: tensor<5x64xf32>, %wc: tensor<2x64xf32>, %bc: tensor<2xf32>) {
  // expected-error @below {{input must have shape [4, 64], got [5, 64]}}
  %r = moe.residual_mix %m, %m coefficient(%x, %wc, %bc : tensor<5x64xf32>, tensor<2x64xf32>, tensor<2xf32>) : tensor<4x64xf32>
  return
}

// -----

func.func @f(%m: tensor<64xf32>) {
  // expected-error @below {{'moe.shared_add' op routed output must be a rank-2 tensor}}
  %r = moe.shared_add %m, %m : tensor<64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>) {
  // expected-error @below {{a gated shared expert needs both the input and the gate weight}}
  %r = "moe.shared_add"(%m, %m, %m) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%m: tensor<?x64xf32>, %g: tensor<64x1xf32>) {
  // expected-error @below {{shared gate weight must have shape [1, 64], got [64, 1]}}
  %r = moe.shared_add %m, %m gated(%m, %g : tensor<?x64xf32>, tensor<64x1xf32>) : tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>) {
  // expected-error @below {{'moe.layer' op body must take one argument of the input type 'tensor<?x64xf32>'}}
  %y = "moe.layer"(%x) <{index = 0 : i64}> ({
  ^bb0(%h: tensor<?x32xf32>):
    "moe.yield"(%x) : (tensor<?x64xf32>) -> ()
  }) : (tensor<?x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %z: tensor<?x64xbf16>) {
  // expected-error @below {{yields 'tensor<?x64xbf16>' but the residual connection needs 'tensor<?x64xf32>'}}
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    moe.yield %z : tensor<?x64xbf16>
  }
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>) {
  // expected-error @below {{layer index must be >= 0, got -1}}
  %y = moe.layer -1 (%h = %x) : tensor<?x64xf32> {
    moe.yield %h : tensor<?x64xf32>
  }
  return
}

// -----

// expected-error @below {{unknown argument attribute 'moe.weights'}}
func.func @f(%w: tensor<8xf32> {moe.weights = "k"}) {
  return
}

// -----

// expected-error @below {{'moe.weight' of argument #0 must be a non-empty string}}
func.func @f(%w: tensor<8xf32> {moe.weight = 3 : i64}) {
  return
}

// -----

// expected-error @below {{weight key 'a.{e}.b.{e}' of argument #0 has more than one '{e}' placeholder}}
func.func @f(%w: tensor<8xf32> {moe.weight = "a.{e}.b.{e}"}) {
  return
}

// -----

// expected-error @below {{'moe.model_type' must be a string attribute on a builtin.module}}
module attributes {moe.model_type = 1 : i64} {
}

// -----

// MXFP4 blocks are 1 x 32 (one e8m0 exponent per 32 values of a row).
// expected-error @below {{'moe.weight_quantization' must be {format = "fp8_e4m3", block = array<i64: R, C>} with R, C > 0, or {format = "mxfp4", block = array<i64: 1, 32>}, on a builtin.module}}
module attributes {moe.weight_quantization = {format = "mxfp4", block = array<i64: 1, 16>}} {
}

// -----

// expected-error @below {{'moe.weight_quantization' must be}}
module attributes {moe.weight_quantization = {format = "int4", block = array<i64: 128, 128>}} {
}

// -----

// expected-error @below {{unknown moe dialect attribute 'moe.plans'}}
module attributes {moe.plans = "x"} {
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{slices = 3 must be positive and divide the group size 4}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1, 2, 3]] {slices = 3 : i64} : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
  return
}

// -----

func.func @f(%b: tensor<8x?x64xf32>) {
  // expected-error @below {{result must have shape [4, ?, 64], got [2, ?, 64]}}
  %r = moe.all_to_all to_experts flat %b groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
  return
}

// -----

func.func @f(%c: index) {
  // expected-error @below {{rank groups must all have the same size}}
  %r = moe.sync_capacity %c groups [[0, 1], [2]]
  return
}

// -----

func.func @f(%c: index) {
  // expected-error @below {{rank 2 appears in more than one place in groups}}
  %r = moe.sync_capacity %c groups [[0, 2], [2, 3]]
  return
}

// -----

// expected-error @below {{mesh must have at least one node and one GPU per node, got 0x8}}
module attributes {moe.mesh = #moe.mesh<nodes = 0, gpus_per_node = 8>} {
}

// -----

// expected-error @below {{memory_bytes must be positive, got 0}}
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 8, memory_bytes = 0>} {
}

// -----

// expected-error @below {{inter_node_gbps must be finite and positive, got -1}}
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 8, inter_node_gbps = -1.0>} {
}

// -----

// expected-error @below {{'moe.mesh' must be a #moe.mesh attribute on a builtin.module}}
module attributes {moe.mesh = "2x8"} {
}

// -----

func.func @f(%x: tensor<?x64xf32>) {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    moe.yield %h : tensor<?x64xf32>
  // expected-error @below {{plan degrees must be at least 1, got dp = 1, ep = 0, tp = 1}}
  } {moe.plan = #moe.plan<dp = 1, ep = 0, tp = 1>}
  return
}

// -----

// expected-error @below {{'moe.plan' must be a #moe.plan attribute on a moe.layer}}
func.func @f() attributes {moe.plan = #moe.plan<dp = 1, ep = 1, tp = 1>} {
  return
}

// -----

// expected-error @below {{'moe.shard' of argument #0 names 2 dimensions but the argument has type 'tensor<8x4x2xf32>'}}
func.func @f(%w: tensor<8x4x2xf32> {moe.shard = #moe.shard<[ep, tp]>}) {
  return
}

// -----

// expected-error @below {{'moe.shard' of argument #0 must be a #moe.shard attribute}}
func.func @f(%w: tensor<8xf32> {moe.shard = [1, 2]}) {
  return
}

// -----

func.func @f(%e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %sh: tensor<?x64xf32>, %wsg: tensor<1x64xf32>) {
  // expected-error @below {{mix and shared_gate read x; it is missing}}
  %o = moe.fused_combine %e, %ids, %s, %w shared(%sh : tensor<?x64xf32>) shared_gate(%wsg : tensor<1x64xf32>) : tensor<8x?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %sh: tensor<?x32xf32>) {
  // expected-error @below {{shared output must have shape [?, 64], got [?, 32]}}
  %o = moe.fused_combine %e, %ids, %s, %w shared(%sh : tensor<?x32xf32>) : tensor<8x?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{top_k = 9 exceeds the 8 experts}}
  %i, %w, %s, %c, %cap = moe.fused_gate %l <scoring = softmax, top_k = 9> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%buf: tensor<8x?x64xf32>, %gu: tensor<8x128x64xf32>, %wd: tensor<8x64x128xf32>) {
  // expected-error @below {{gate_up weight must have shape [8, 256, 64], got [8, 128, 64]}}
  %y = moe.fused_experts silu %buf gate_up %gu down %wd : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
  return
}

// -----

func.func @f(%buf: tensor<8x?x64xf32>, %x: tensor<?x64xf32>, %gu: tensor<8x256x64xf32>, %wd: tensor<8x64x128xf32>, %sgu: tensor<64x64xf32>, %sd: tensor<64x48xf32>) {
  // expected-error @below {{shared gate_up weight must have shape [96, 64], got [64, 64]}}
  %y, %s = moe.fused_experts silu %buf gate_up %gu down %wd shared(%x gate_up %sgu down %sd) : (tensor<8x?x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>, tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x48xf32>) -> (tensor<8x?x64xf32>, tensor<?x64xf32>)
  return
}

// -----

func.func @f(%buf: tensor<8x?x64xf32>, %x: tensor<?x64xf32>, %gu: tensor<8x256x64xf32>, %wd: tensor<8x64x128xf32>, %sgu: tensor<64x64xf32>, %sd: tensor<64x32xf32>) {
  // expected-error @below {{a shared expert needs all its operands and its result}}
  %y = moe.fused_experts silu %buf gate_up %gu down %wd shared(%x gate_up %sgu down %sd) : (tensor<8x?x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>, tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x32xf32>) -> tensor<8x?x64xf32>
  return
}

// -----

// expected-error @below {{'moe.fused_view' of argument #0 needs a 'moe.weight' key naming one tensor (no '{e}')}}
func.func @f(%g: tensor<4x24x32xf32> {moe.weight = "l0.experts.{e}.w1",
    moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 0, expert_stride = 1536, strides = [32, 1]>}) {
  return
}

// -----

// expected-error @below {{'moe.fused_view' of argument #0 needs a 'moe.weight' key naming one tensor (no '{e}')}}
func.func @f(%g: tensor<4x24x32xf32> {moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 0, expert_stride = 1536, strides = [32, 1]>}) {
  return
}

// -----

// The up half of expert 3 ends at 768 + 3 * 1536 + 23 * 32 + 31 = 6143 of
// 6144; one more expert would not fit.
// expected-error @below {{'moe.fused_view' of argument #0 reaches past the end of its fused tensor}}
func.func @f(%u: tensor<5x24x32xf32> {moe.weight = "l0.input_linear",
    moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 768, expert_stride = 1536, strides = [32, 1]>}) {
  return
}

// -----

// expected-error @below {{'moe.fused_view' of argument #0 has 2 strides: the argument must be a static tensor of that rank, or one more (the experts), got 'tensor<4x4x24x32xf32>'}}
func.func @f(%u: tensor<4x4x24x32xf32> {moe.weight = "l0.input_linear",
    moe.fused_view = #moe.fused_view<shape = [4, 48, 32], offset = 0, expert_stride = 1536, strides = [32, 1]>}) {
  return
}

// -----

// expected-error @below {{'moe.fused_view' of argument #0 has an expert stride but the argument has no expert dimension}}
func.func @f(%u: tensor<24x32xf32> {moe.weight = "l0.input_linear",
    moe.fused_view = #moe.fused_view<shape = [48, 32], offset = 0, expert_stride = 8, strides = [32, 1]>}) {
  return
}

// -----

// expected-error @+2 {{fused view offset and strides must be non-negative}}
func.func @f(%u: tensor<24x32xf32> {moe.weight = "l0.input_linear",
    moe.fused_view = #moe.fused_view<shape = [48, 32], offset = -1, expert_stride = 0, strides = [32, 1]>}) {
  return
}

// -----

func.func @f(%x: tensor<4x?x32xf32>, %g: tensor<4x24x32xf32>, %gb: tensor<4x32xf32>, %u: tensor<4x24x32xf32>, %d: tensor<4x32x24xf32>) {
  // expected-error @below {{gate bias must have shape [4, 24], got [4, 32]}}
  %y = moe.experts silu %x gate %g gate_bias %gb up %u down %d : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x32xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x32xf32>, %gb: tensor<4x24xf32>, %u: tensor<4x24x32xf32>, %d: tensor<4x32x24xf32>) {
  // expected-error @below {{gate bias needs a gate weight}}
  %y = moe.experts gelu %x gate_bias %gb up %u down %d : (tensor<4x?x32xf32>, tensor<4x24xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x32xf32>, %g: tensor<4x24x32xf32>, %u: tensor<4x24x32xf32>, %d: tensor<4x32x24xf32>) {
  // expected-error @below {{swiglu_clamped needs swiglu_limit}}
  %y = moe.experts swiglu_clamped %x gate %g up %u down %d {swiglu_alpha = 1.702 : f64} : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x32xf32>, %g: tensor<4x24x32xf32>, %u: tensor<4x24x32xf32>, %d: tensor<4x32x24xf32>) {
  // expected-error @below {{swiglu_alpha must be finite and > 0, got -1}}
  %y = moe.experts swiglu_clamped %x gate %g up %u down %d {swiglu_alpha = -1.0 : f64, swiglu_limit = 7.0 : f64} : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x32xf32>, %u: tensor<4x24x32xf32>, %d: tensor<4x32x24xf32>) {
  // expected-error @below {{swiglu_clamped needs a gate weight}}
  %y = moe.experts swiglu_clamped %x up %u down %d {swiglu_alpha = 1.702 : f64, swiglu_limit = 7.0 : f64} : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<4x?x32xf32>, %g: tensor<4x24x32xf32>, %u: tensor<4x24x32xf32>, %d: tensor<4x32x24xf32>) {
  // expected-error @below {{swiglu_alpha and swiglu_limit belong to swiglu_clamped, not silu}}
  %y = moe.experts silu %x gate %g up %u down %d {swiglu_limit = 7.0 : f64} : (tensor<4x?x32xf32>, tensor<4x24x32xf32>, tensor<4x24x32xf32>, tensor<4x32x24xf32>) -> tensor<4x?x32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x32xf32>, %g: tensor<24x32xf32>, %u: tensor<24x32xf32>, %d: tensor<32x24xf32>) {
  // expected-error @below {{swiglu_clamped is supported on moe.experts only}}
  %y = moe.dense_ffn swiglu_clamped %x gate %g up %u down %d {swiglu_alpha = 1.702 : f64, swiglu_limit = 7.0 : f64} : (tensor<?x32xf32>, tensor<24x32xf32>, tensor<24x32xf32>, tensor<32x24xf32>) -> tensor<?x32xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{weights = input needs scoring = sigmoid (Llama 4's router), got scoring = softmax}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, weights = input> : tensor<?x8xf32>
  return
}

// -----

func.func @f(%l: tensor<?x8xf32>) {
  // expected-error @below {{weights = input takes each choice's own score; normalize must be none, got selected}}
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 2, normalize = selected, weights = input> : tensor<?x8xf32>
  return
}

// -----

// The weights apply once: a weights = input gate's dispatch scales the rows.
func.func @f(%x: tensor<4x8xf32>, %l: tensor<4x16xf32>) -> tensor<16x?x8xf32> {
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 1, weights = input> : tensor<4x16xf32>
  // expected-error @below {{'moe.dispatch' op takes no weights but its gate's routing has weights = input}}
  %buf = moe.dispatch %x, %ids, %s, %cap : tensor<4x8xf32>, tensor<4x1xi32> -> tensor<16x?x8xf32>
  return %buf : tensor<16x?x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>, %l: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 1, weights = input> : tensor<4x16xf32>
  %buf = moe.dispatch %x, %ids, %s, %cap weights %w : tensor<4x8xf32>, tensor<4x1xi32> -> tensor<16x?x8xf32>
  // expected-error @below {{'moe.combine' op takes weights but its gate's routing has weights = input}}
  %y = moe.combine %buf, %ids, %s, %w : tensor<16x?x8xf32>, tensor<4x1xi32>
  return %y : tensor<4x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>, %l: tensor<4x16xf32>) -> tensor<16x?x8xf32> {
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2> : tensor<4x16xf32>
  // expected-error @below {{'moe.dispatch' op takes weights but its gate's routing has weights = output}}
  %buf = moe.dispatch %x, %ids, %s, %cap weights %w : tensor<4x8xf32>, tensor<4x2xi32> -> tensor<16x?x8xf32>
  return %buf : tensor<16x?x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>, %l: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %ids, %w, %s, %c, %cap = moe.fused_gate %l <scoring = softmax, top_k = 2> : tensor<4x16xf32>
  %buf = moe.dispatch %x, %ids, %s, %cap : tensor<4x8xf32>, tensor<4x2xi32> -> tensor<16x?x8xf32>
  // expected-error @below {{'moe.fused_combine' op takes no weights but its gate's routing has weights = output}}
  %y = moe.fused_combine %buf, %ids, %s : tensor<16x?x8xf32>, tensor<4x2xi32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
