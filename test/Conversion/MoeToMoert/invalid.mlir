// RUN: moe-opt %s -split-input-file --convert-moe-to-moert="tokens=8" -verify-diagnostics
// RUN: not moe-opt %s -split-input-file --convert-moe-to-moert 2>&1 | FileCheck %s --check-prefix=NOTOKENS

// NOTOKENS: error: convert-moe-to-moert needs the most tokens per rank per step: pass tokens=N or set 'moert.max_tokens' on the module

// Tensor-parallel MLPs gather tokens (axis 0) over the tp grid axis only.
shard.grid @grid(shape = 1x1x2)
func.func @tp_axis(%x: tensor<?x64xf32>, %w1: tensor<64x128xf32> {moe.weight = "w1"}, %w2: tensor<128x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{convert-moe-to-moert lowers 'shard.all_gather' only over the tokens (axis 0) and grid axis 2 (tp) of its layer's {dp, ep, tp} grid, summing}}
    %g = shard.all_gather %h on @grid grid_axes = [2] gather_axis = 1 : tensor<?x64xf32> -> tensor<?x128xf32>
    %d = moe.dense_ffn relu %g up %w1 down %w2 : (tensor<?x128xf32>, tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<?x128xf32>
    %s = shard.reduce_scatter %d on @grid grid_axes = [2] scatter_axis = 1 : tensor<?x128xf32> -> tensor<?x64xf32>
    moe.yield %s : tensor<?x64xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 1, tp = 2>}
  return %y : tensor<?x64xf32>
}

// -----

func.func @constant_mix(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32> {moe.weight = "w1"}, %w2: tensor<64x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    // expected-error @below {{convert-moe-to-moert needs the coefficient form of moe.residual_mix}}
    %r = moe.residual_mix %d, %d constant [0.25, 0.75] : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// expected-error @below {{argument #1 has no 'moe.weight' key to load it from}}
func.func @unnamed(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32>, %w2: tensor<64x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    moe.yield %d : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Summing tp partial outputs needs F-sliced down weights.
func.func @unsliced(%x: tensor<?x8xf32>, %wg: tensor<4x8xf32> {moe.weight = "g"},
    %w1: tensor<2x8x8xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "e.{e}.w1"},
    %w2: tensor<2x8x8xf32> {moe.shard = #moe.shard<[ep, none, none]>, moe.weight = "e.{e}.w2"}) -> tensor<?x8xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x8xf32> {
    %l = moe.router %h, %wg : tensor<?x8xf32>, tensor<4x8xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1> : tensor<?x4xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x8xf32>, tensor<?x1xi32> -> tensor<4x?x8xf32>
    %t = moe.all_to_all to_experts flat %b groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<4x?x8xf32> -> tensor<2x?x8xf32>
    // expected-error @below {{convert-moe-to-moert sums this FFN's partial outputs over 2 tp slices: its down weight must be a function argument split over tp by moe.shard}}
    %e = moe.experts gelu %t up %w1 down %w2 : (tensor<2x?x8xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>) -> tensor<2x?x8xf32>
    %f = moe.all_to_all from_experts flat %e groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<2x?x8xf32> -> tensor<4x?x8xf32>
    %o = moe.combine %f, %ids, %s, %w : tensor<4x?x8xf32>, tensor<?x1xi32>
    moe.yield %o : tensor<?x8xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 2, tp = 2>}
  return %y : tensor<?x8xf32>
}

// -----

// An op no lowering rule handles.
func.func @unknown_op(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{convert-moe-to-moert cannot lower 'arith.addf'}}
    %a = arith.addf %h, %h : tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// A concatenation is lowered only as a packed weight.
func.func @unpacked_concat(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32> {moe.weight = "w1"}, %w2: tensor<64x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{convert-moe-to-moert lowers 'tensor.concat' only as a packed weight: weight arguments that nothing else reads}}
    %c = tensor.concat dim(0) %w1, %w2 : (tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<128x64xf32>
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    moe.yield %d : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// A tensor-parallel collective needs its layer's plan.
shard.grid @grid(shape = 1x1x2)
func.func @unplanned_gather(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{'shard.all_gather' outside a layer with a moe.plan}}
    %g = shard.all_gather %h on @grid grid_axes = [2] gather_axis = 0 : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %g : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Ops other than the layer frame live in a layer (their results get arena
// bytes only there).
shard.grid @grid(shape = 1x1x2)
func.func @gather_outside_layers(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @below {{convert-moe-to-moert lowers 'shard.all_gather' only inside a moe.layer}}
  %g = shard.all_gather %x on @grid grid_axes = [2] gather_axis = 0 : tensor<?x64xf32> -> tensor<?x64xf32>
  return %g : tensor<?x64xf32>
}

// -----

// A function returning the gate's capacity (an index) at dynamic tokens
// with a capacity factor: the gate stands outside any layer.
func.func @returns_capacity(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32> {moe.weight = "g"}) -> index {
  // expected-error @below {{convert-moe-to-moert lowers 'moe.router' only inside a moe.layer}}
  %l = moe.router %x, %wg : tensor<?x64xf32>, tensor<8x64xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1> : tensor<?x8xf32>
  return %cap : index
}

// -----

// Arguments: the tokens x hidden input, then weights of static shape that
// become views.
// expected-error @below {{model function argument #1 must be a weight tensor of static shape, got 'index'}}
func.func @index_argument(%x: tensor<?x64xf32>, %n: index {moe.weight = "n"}) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}

// -----

// expected-error @below {{a model function takes the tokens x hidden input as tensor<?xHxT> (T a float type), got 'index'}}
func.func @index_input(%n: index) -> index {
  return %n : index
}

// -----

// expected-error @below {{model function argument #1 must be a weight tensor of static shape, got 'tensor<?x64xf32>'}}
func.func @dynamic_weight(%x: tensor<?x64xf32>, %w: tensor<?x64xf32> {moe.weight = "w"}) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}

// -----

// expected-error @below {{model function argument #1: view element type must be f32, f16, bf16, i32, i64, f8E4M3FN or ui8, got 'f64'}}
func.func @f64_weight(%x: tensor<?x64xf32>, %w: tensor<8x64xf64> {moe.weight = "w"}) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}

// -----

// expected-error @below {{model function argument #1: view element count must be positive, got 0}}
func.func @empty_weight(%x: tensor<?x64xf32>, %w: tensor<0x64xf32> {moe.weight = "w"}) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}

// -----

// expected-error @below {{model function argument #1: 'tensor<4611686018427387904x4xf32>' takes more than 281474976710656 bytes}}
func.func @huge_weight(%x: tensor<?x64xf32>, %w: tensor<4611686018427387904x4xf32> {moe.weight = "w"}) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}

// -----

// An empty dimension the verifiers allow (a dispatch's expert count).
func.func @empty_dispatch(%x: tensor<?x8xf32>, %wg: tensor<4x8xf32> {moe.weight = "g"}) -> tensor<?x8xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x8xf32> {
    %l = moe.router %h, %wg : tensor<?x8xf32>, tensor<4x8xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1> : tensor<?x4xf32>
    // expected-error @below {{convert-moe-to-moert cannot lower an empty tensor 'tensor<0x?x8xf32>'}}
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x8xf32>, tensor<?x1xi32> -> tensor<0x?x8xf32>
    moe.yield %h : tensor<?x8xf32>
  }
  return %y : tensor<?x8xf32>
}

// -----

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

// -----

// Only the exchange to the experts carries their row counts.
func.func @from_experts_input(%x: tensor<?x8xf32>, %wg: tensor<4x8xf32> {moe.weight = "g"},
    %w1: tensor<4x8x8xf32> {moe.weight = "e.{e}.w1"}, %w2: tensor<4x8x8xf32> {moe.weight = "e.{e}.w2"}) -> tensor<?x8xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x8xf32> {
    %l = moe.router %h, %wg : tensor<?x8xf32>, tensor<4x8xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1> : tensor<?x4xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x8xf32>, tensor<?x1xi32> -> tensor<4x?x8xf32>
    %t = moe.all_to_all from_experts flat %b groups [[0]] : tensor<4x?x8xf32> -> tensor<4x?x8xf32>
    // expected-error @below {{convert-moe-to-moert needs the experts' input to come from a to_experts moe.all_to_all, not from_experts}}
    %e = moe.experts gelu %t up %w1 down %w2 : (tensor<4x?x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<4x?x8xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<4x?x8xf32>, tensor<?x1xi32>
    moe.yield %o : tensor<?x8xf32>
  }
  return %y : tensor<?x8xf32>
}

// -----

// The experts' row counts come from the gate behind their dispatch.
func.func @undispatched(%x: tensor<?x8xf32>, %b: tensor<4x2x8xf32> {moe.weight = "b"},
    %w1: tensor<4x8x8xf32> {moe.weight = "e.{e}.w1"}, %w2: tensor<4x8x8xf32> {moe.weight = "e.{e}.w2"}) -> tensor<?x8xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x8xf32> {
    // expected-error @below {{convert-moe-to-moert needs the experts' input to come from a moe.dispatch of a moe.gate (for the per-expert row counts)}}
    %e = moe.experts gelu %b up %w1 down %w2 : (tensor<4x2x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<4x2x8xf32>
    moe.yield %h : tensor<?x8xf32>
  }
  return %y : tensor<?x8xf32>
}

// -----

// A layer updates its input in place: nothing else may read it.
func.func @shared_input(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32> {moe.weight = "w1"}, %w2: tensor<64x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  // expected-error @below {{convert-moe-to-moert updates a layer's input in place; it must have one use}}
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    moe.yield %d : tensor<?x64xf32>
  }
  %z = moe.layer 1 (%h = %x) : tensor<?x64xf32> {
    moe.yield %h : tensor<?x64xf32>
  }
  return %z : tensor<?x64xf32>
}

// -----

func.func @returns_weight(%x: tensor<?x64xf32>, %w: tensor<8x64xf32> {moe.weight = "w"}) -> tensor<8x64xf32> {
  // expected-error @below {{convert-moe-to-moert expects the model to return its updated input}}
  return %w : tensor<8x64xf32>
}

// -----

// A block-quantized dense FFN with biases: moert_quantized_experts has none.
module attributes {moe.weight_quantization = {block = array<i64: 1, 32>, format = "mxfp4"}} {
  func.func @quantized_biased_dense(%x: tensor<?x64xf32>, %g: tensor<32x64xf32> {moe.weight = "g"}, %u: tensor<32x64xf32> {moe.weight = "u"}, %b: tensor<32xf32> {moe.weight = "b"}, %d: tensor<64x32xf32> {moe.weight = "d"}) -> tensor<?x64xf32> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
      // expected-error @below {{convert-moe-to-moert runs block-quantized dense FFNs without biases (moert_quantized_experts has none)}}
      %o = moe.dense_ffn silu %h gate %g up %u bias %b down %d : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<32xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
      moe.yield %o : tensor<?x64xf32>
    }
    return %y : tensor<?x64xf32>
  }
}
