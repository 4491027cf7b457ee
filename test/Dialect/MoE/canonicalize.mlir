// RUN: moe-opt %s -split-input-file -canonicalize | FileCheck %s

// Keeping every group masks nothing: the gate becomes ungrouped.
// CHECK-LABEL: func.func @every_group_kept
// CHECK: moe.gate %{{.*}} correction %{{.*}} <scoring = sigmoid, top_k = 8, normalize = selected> : tensor<?x64xf32>, tensor<64xf32>
func.func @every_group_kept(%l: tensor<?x64xf32>, %b: tensor<64xf32>) -> tensor<?x8xi32> {
  %i, %w, %s, %c, %cap = moe.gate %l correction %b <scoring = sigmoid, top_k = 8, n_group = 4, topk_group = 4, group_score = top2_sum, normalize = selected> : tensor<?x64xf32>, tensor<64xf32>
  return %i : tensor<?x8xi32>
}

// -----

// Dropping groups stays grouped.
// CHECK-LABEL: func.func @some_groups_dropped
// CHECK: moe.gate %{{.*}} <scoring = softmax, top_k = 6, n_group = 8, topk_group = 3>
func.func @some_groups_dropped(%l: tensor<?x64xf32>) -> tensor<?x6xi32> {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 6, n_group = 8, topk_group = 3> : tensor<?x64xf32>
  return %i : tensor<?x6xi32>
}

// -----

// A static token count makes the capacity a constant:
// max(4, ceil(2 * 30 / 8 * 1.25)) = max(4, ceil(9.375)) = 10.
// CHECK-LABEL: func.func @static_capacity
// CHECK: %[[C10:.*]] = arith.constant 10 : index
// CHECK: moe.dispatch %{{.*}}, %{{.*}}, %{{.*}}, %[[C10]]
// CHECK: return %{{.*}}, %[[C10]]
func.func @static_capacity(%x: tensor<30x16xf32>, %l: tensor<30x8xf32>) -> (tensor<8x?x16xf32>, index) {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = kept, capacity_factor = 1.25, min_capacity = 4> : tensor<30x8xf32>
  %b = moe.dispatch %x, %i, %s, %cap : tensor<30x16xf32>, tensor<30x2xi32> -> tensor<8x?x16xf32>
  return %b, %cap : tensor<8x?x16xf32>, index
}

// -----

// min_capacity wins for few tokens: max(4, ceil(1 * 3 / 8 * 1.0)) = 4.
// CHECK-LABEL: func.func @min_capacity_wins
// CHECK: %[[C4:.*]] = arith.constant 4 : index
// CHECK: return %[[C4]]
func.func @min_capacity_wins(%l: tensor<3x8xf32>) -> index {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4> : tensor<3x8xf32>
  return %cap : index
}

// -----

// Dynamic token count: the capacity stays data dependent.
// CHECK-LABEL: func.func @dynamic_capacity
// CHECK: %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[CAP:.*]] = moe.gate
// CHECK: return %[[CAP]]
func.func @dynamic_capacity(%l: tensor<?x8xf32>) -> index {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4> : tensor<?x8xf32>
  return %cap : index
}

// -----

// Dropless with k = E: every token picks every expert once, so the capacity is
// the token count and every count equals it.
// CHECK-LABEL: func.func @dropless_full_top_k_static
// CHECK-DAG: %[[CAP:.*]] = arith.constant 6 : index
// CHECK-DAG: %[[COUNTS:.*]] = arith.constant dense<6> : tensor<4xi32>
// CHECK: return %[[COUNTS]], %[[CAP]]
func.func @dropless_full_top_k_static(%l: tensor<6x4xf32>) -> (tensor<4xi32>, index) {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 4, normalize = selected> : tensor<6x4xf32>
  return %c, %cap : tensor<4xi32>, index
}

// -----

// CHECK-LABEL: func.func @dropless_full_top_k_dynamic
// CHECK-SAME: (%[[L:.*]]: tensor<?x4xf32>)
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[S:.*]] = tensor.dim %[[L]], %[[C0]]
// CHECK: return %[[S]]
func.func @dropless_full_top_k_dynamic(%l: tensor<?x4xf32>) -> index {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 4> : tensor<?x4xf32>
  return %cap : index
}

// -----

// k < E dropless: nothing to fold.
// CHECK-LABEL: func.func @dropless_partial_top_k
// CHECK: %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[CAP:.*]] = moe.gate
// CHECK: return %[[CAP]]
func.func @dropless_partial_top_k(%l: tensor<6x4xf32>) -> index {
  %i, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 3> : tensor<6x4xf32>
  return %cap : index
}

// -----

// A zero coefficient weight makes softmax(x * 0 + b) = softmax([0, ln 3]) =
// [0.25, 0.75] for every token.
// CHECK-LABEL: func.func @constant_coefficient
// CHECK: moe.residual_mix %{{.*}}, %{{.*}} constant [2.500000e-01, 7.500000e-01] : tensor<?x16xf32>
func.func @constant_coefficient(%m: tensor<?x16xf32>, %d: tensor<?x16xf32>, %x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %wc = arith.constant dense<0.0> : tensor<2x16xf32>
  %bc = arith.constant dense<[0.0, 1.0986122886681098]> : tensor<2xf32>
  %r = moe.residual_mix %m, %d coefficient(%x, %wc, %bc : tensor<?x16xf32>, tensor<2x16xf32>, tensor<2xf32>) : tensor<?x16xf32>
  return %r : tensor<?x16xf32>
}

// -----

// A learned (non-zero) coefficient weight stays learned.
// CHECK-LABEL: func.func @learned_coefficient
// CHECK: moe.residual_mix %{{.*}}, %{{.*}} coefficient(
func.func @learned_coefficient(%m: tensor<?x16xf32>, %d: tensor<?x16xf32>, %x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %wc = arith.constant dense<0.5> : tensor<2x16xf32>
  %bc = arith.constant dense<[0.0, 1.0]> : tensor<2xf32>
  %r = moe.residual_mix %m, %d coefficient(%x, %wc, %bc : tensor<?x16xf32>, tensor<2x16xf32>, tensor<2xf32>) : tensor<?x16xf32>
  return %r : tensor<?x16xf32>
}

// -----

// A (1, 0) or (0, 1) constant mix selects one branch.
// CHECK-LABEL: func.func @select_branch
// CHECK-SAME: (%[[M:.*]]: tensor<?x16xf32>, %[[D:.*]]: tensor<?x16xf32>)
// CHECK-NOT: moe.residual_mix
// CHECK: return %[[M]], %[[D]]
func.func @select_branch(%m: tensor<?x16xf32>, %d: tensor<?x16xf32>) -> (tensor<?x16xf32>, tensor<?x16xf32>) {
  %a = moe.residual_mix %m, %d constant [1.0, 0.0] : tensor<?x16xf32>
  %b = moe.residual_mix %m, %d constant [0.0, 1.0] : tensor<?x16xf32>
  return %a, %b : tensor<?x16xf32>, tensor<?x16xf32>
}
