// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-assign-parallelism="ep=4"

// A forced expert-parallel degree must divide the mesh and the experts.

module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 6>} {
  func.func @ep_vs_ranks(%x: tensor<?x64xbf16>,
      %wg: tensor<8x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<8x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<8x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    // expected-error @below {{'moe.layer' op has no parallel plan on the 1x6 mesh: ep 4 must divide both the 8 experts and the 6 ranks of the 1x6 mesh}}
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

module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 8>} {
  func.func @ep_vs_experts(%x: tensor<?x64xbf16>,
      %wg: tensor<6x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
      %w1: tensor<6x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
      %w3: tensor<6x128x64xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
      %w2: tensor<6x64x128xbf16> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
    // expected-error @below {{'moe.layer' op has no parallel plan on the 1x8 mesh: ep 4 must divide both the 6 experts and the 8 ranks of the 1x8 mesh}}
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<6x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x6xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<6x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<6x?x64xbf16>, tensor<6x128x64xbf16>, tensor<6x128x64xbf16>, tensor<6x64x128xbf16>) -> tensor<6x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<6x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}
