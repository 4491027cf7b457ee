// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-assign-parallelism

// Plans the pass must reject, each with the layer and the numbers.

// A DeepSeek-V3-sized layer (256 experts of 3 x 7168 x 2048 bf16) on one
// node of 8 with 2 GiB per device: 32 experts per rank need 2.63 GiB (plus
// 1.75 GiB of buffers at 4096 tokens per rank), and ep cannot grow past the
// 8 ranks.
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 8, memory_bytes = 2147483648>} {
  func.func @too_big(%x: tensor<?x7168xbf16>, %wg: tensor<256x7168xbf16>,
      %w1: tensor<256x2048x7168xbf16>, %w3: tensor<256x2048x7168xbf16>, %w2: tensor<256x7168x2048xbf16>) -> tensor<?x7168xbf16> {
    // expected-error @below {{'moe.layer' op has no parallel plan on the 1x8 mesh: the model needs 4.38 GiB per rank at its most memory-saving plans but a device has 2.00 GiB; this layer alone holds 2.63 GiB of weights per rank (ep 8, tp 1)}}
    %y = moe.layer 3 (%h = %x) : tensor<?x7168xbf16> {
      %l = moe.router %h, %wg : tensor<?x7168xbf16>, tensor<256x7168xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = sigmoid, top_k = 8, normalize = selected> : tensor<?x256xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x7168xbf16>, tensor<?x8xi32> -> tensor<256x?x7168xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<256x?x7168xbf16>, tensor<256x2048x7168xbf16>, tensor<256x2048x7168xbf16>, tensor<256x7168x2048xbf16>) -> tensor<256x?x7168xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<256x?x7168xbf16>, tensor<?x8xi32>
      moe.yield %o : tensor<?x7168xbf16>
    }
    return %y : tensor<?x7168xbf16>
  }
}

// -----

// A dense layer too wide for the device even when sliced 8 ways.
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 8, memory_bytes = 1073741824>} {
  func.func @dense_too_big(%x: tensor<?x8192xbf16>, %g: tensor<65536x8192xbf16>, %u: tensor<65536x8192xbf16>, %d: tensor<8192x65536xbf16>) -> tensor<?x8192xbf16> {
    // expected-error @below {{'moe.layer' op has no parallel plan on the 1x8 mesh: the model needs 1.38 GiB per rank at its most memory-saving plans but a device has 1.00 GiB; this layer alone holds 0.38 GiB of weights per rank (ep 1, tp 8)}}
    %y = moe.layer 0 (%h = %x) : tensor<?x8192xbf16> {
      %f = moe.dense_ffn silu %h gate %g up %u down %d : (tensor<?x8192xbf16>, tensor<65536x8192xbf16>, tensor<65536x8192xbf16>, tensor<8192x65536xbf16>) -> tensor<?x8192xbf16>
      moe.yield %f : tensor<?x8192xbf16>
    }
    return %y : tensor<?x8192xbf16>
  }
}

// -----

// A layer that already has a plan.
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 2>} {
  func.func @planned(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
    // expected-error @below {{'moe.layer' op already has a parallel plan}}
    %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
      moe.yield %h : tensor<?x64xf32>
    } {moe.plan = #moe.plan<dp = 2, ep = 1, tp = 1>}
    return %y : tensor<?x64xf32>
  }
}

// -----

// No mesh at all.
// expected-error @below {{no mesh: pass mesh=NODESxGPUS or set a moe.mesh attribute}}
module {
}

// -----

// A weight shared by two layers cannot follow both plans.
module attributes {moe.mesh = #moe.mesh<nodes = 1, gpus_per_node = 2>} {
  func.func @shared_weight(%x: tensor<?x64xf32>, %u: tensor<128x64xf32> {moe.weight = "u"}, %d: tensor<64x128xf32> {moe.weight = "d"}) -> tensor<?x64xf32> {
    %a = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
      %f = moe.dense_ffn relu %h up %u down %d : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
      moe.yield %f : tensor<?x64xf32>
    }
    %b = moe.layer 1 (%h = %a) : tensor<?x64xf32> {
      // expected-error @below {{'moe.dense_ffn' op shares weight argument #1 with another op; each weight must belong to one layer}}
      %f = moe.dense_ffn relu %h up %u down %d : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
      moe.yield %f : tensor<?x64xf32>
    }
    return %b : tensor<?x64xf32>
  }
}
