// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-assign-parallelism="tp=3"

// A forced expert-slicing degree must divide the ranks left after ep and the
// FFN widths.

module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 16>} {
  func.func @tp_vs_ranks(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    // expected-error @below {{'moe.layer' op has no parallel plan on the 1x16 mesh: ep 8 x tp 3 does not divide the 16 ranks of the 1x16 mesh}}
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

module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 24>} {
  func.func @tp_vs_ffn(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    // expected-error @below {{'moe.layer' op has no parallel plan on the 1x24 mesh: tp 3 does not divide the expert FFN width 128}}
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
