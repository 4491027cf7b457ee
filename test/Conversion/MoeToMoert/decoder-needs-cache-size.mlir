// RUN: moe-opt %s --convert-moe-to-moert="tokens=8" -verify-diagnostics

// The KV caches are sized per rank by the lowering: it needs both bounds.
// expected-error @below {{convert-moe-to-moert plans the KV caches per rank from max-batch and max-seq; pass both (got 0 and 0)}}
func.func @decoder(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<4, 16, f32>, %w: tensor<64x64xf32> {moe.weight = "w"})
    -> (tensor<?x64xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %w : tensor<?xi32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %l = moe.lm_head %x, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %i = moe.argmax %l : tensor<?x64xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x64xf32>, tensor<?xi32>
}
