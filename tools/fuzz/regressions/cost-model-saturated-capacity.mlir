

// A capacity past any buffer (min_capacity = 2^62): the sizes saturate
// instead of wrapping to a small arena.
// expected-error @below {{convert-moe-to-moert: the state of this function (weights 2176 bytes, activations at 8 tokens) passes 281474976710656 bytes per rank}}
func.func @huge_capacity(%x: tensor<?x8xf32>, %wg: tensor<4x8xf32> {moe.weight = "g"},
    %w1: tensor<4x8x8xf32> {moe.weight = "e.{e}.w1"}, %w2: tensor<4x8x8xf32> {moe.weight = "e.{e}.w2"}) -> tensor<?x8xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x8xf32> {
    %l = moe.router %h, %wg : tensor<?x8xf32>, tensor<4x8xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4611686018427387904> : tensor<?x4xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x8xf32>, tensor<?x1xi32> -> tensor<4x?x8xf32>
    %e = moe.experts gelu %b up %w1 down %w2 : (tensor<4x?x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<4x?x8xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<4x?x8xf32>, tensor<?x1xi32>
    moe.yield %o : tensor<?x8xf32>
  }
  return %y : tensor<?x8xf32>
}

