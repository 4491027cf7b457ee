// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the moert dialect.

// expected-error @below {{buffer size must be positive, got 0}}
func.func @f(%b: !moert.buffer<0>)

// -----

// expected-error @below {{view element type must be f32, f16, bf16, i32, i64, f8E4M3FN or ui8, got 'i8'}}
func.func @f(%v: !moert.view<i8, 4>)

// -----

// expected-error @below {{view element count must be positive, got 0}}
func.func @f(%v: !moert.view<f32, 0>)

// -----

func.func @f(%b: !moert.buffer<64>) {
  // expected-error @below {{view ends at byte 68, past the end of the 64-byte buffer}}
  %v = moert.view %b[1] : !moert.buffer<64> -> !moert.view<f32, 16>
  return
}

// -----

func.func @f(%b: !moert.buffer<64>) {
  // expected-error @below {{offset must be non-negative, got -1}}
  %v = moert.view %b[-1] : !moert.buffer<64> -> !moert.view<f32, 4>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %wg: !moert.view<f32, 256>, %l: !moert.view<f32, 128>) {
  // expected-error @below {{weight must hold at least 512 elements, got 256}}
  moert.router %ctx, %x, %wg -> %l tokens %s hidden 64 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 256> -> !moert.view<f32, 128>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %wg: !moert.view<f32, 512>, %l: !moert.view<bf16, 128>) {
  // expected-error @below {{logits must be a view of 'f32', got '!moert.view<bf16, 128>'}}
  moert.router %ctx, %x, %wg -> %l tokens %s hidden 64 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 512> -> !moert.view<bf16, 128>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %wg: !moert.view<f32, 512>, %l: !moert.view<f32, 64>) {
  // expected-error @below {{logits must hold at least 128 elements, got 64}}
  moert.router %ctx, %x, %wg -> %l tokens %s hidden 64 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 512> -> !moert.view<f32, 64>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1000>, %wg: !moert.view<f32, 512>, %l: !moert.view<f32, 128>) {
  // expected-error @below {{x holds 1000 elements, not a multiple of its row width 64}}
  moert.router %ctx, %x, %wg -> %l tokens %s hidden 64 experts 8 : !moert.view<f32, 1000>, !moert.view<f32, 512> -> !moert.view<f32, 128>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<i32, 1024>, %wg: !moert.view<f32, 512>, %l: !moert.view<f32, 128>) {
  // expected-error @below {{x must be a f32, f16 or bf16 view, got '!moert.view<i32, 1024>'}}
  moert.router %ctx, %x, %wg -> %l tokens %s hidden 64 experts 8 : !moert.view<i32, 1024>, !moert.view<f32, 512> -> !moert.view<f32, 128>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %wg: !moert.view<f32, 512>, %l: !moert.view<f32, 128>) {
  // expected-error @below {{experts must be positive, got 0}}
  moert.router %ctx, %x, %wg -> %l tokens %s hidden 64 experts 0 : !moert.view<f32, 1024>, !moert.view<f32, 512> -> !moert.view<f32, 128>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 128>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 32>, %c: !moert.view<i32, 8>) {
  // expected-error @below {{top_k = 9 exceeds the 8 experts}}
  %cap = moert.gate %ctx, %l -> %i, %w, %i, %c tokens %s experts 8 <scoring = softmax, top_k = 9> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 128>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 32>, %c: !moert.view<i32, 8>) {
  // expected-error @below {{8 experts do not split into 3 groups}}
  %cap = moert.gate %ctx, %l -> %i, %w, %i, %c tokens %s experts 8 <scoring = softmax, top_k = 2, n_group = 3, topk_group = 1> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 128>, %i: !moert.view<i32, 16>, %w: !moert.view<f32, 32>, %c: !moert.view<i32, 8>) {
  // expected-error @below {{ids must hold at least 32 elements, got 16}}
  %cap = moert.gate %ctx, %l -> %i, %w, %i, %c tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<i32, 16>, !moert.view<f32, 32>, !moert.view<i32, 16>, !moert.view<i32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 128>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 32>, %c: !moert.view<i32, 4>) {
  // expected-error @below {{counts must hold at least 8 elements, got 4}}
  %cap = moert.gate %ctx, %l -> %i, %w, %i, %c tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 4>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 128>, %i: !moert.view<i32, 32>, %w: !moert.view<bf16, 32>, %c: !moert.view<i32, 8>) {
  // expected-error @below {{weights must be a view of 'f32', got '!moert.view<bf16, 32>'}}
  %cap = moert.gate %ctx, %l -> %i, %w, %i, %c tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<bf16, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 128>, %b: !moert.view<f32, 4>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 32>, %c: !moert.view<i32, 8>) {
  // expected-error @below {{correction bias must hold at least 8 elements, got 4}}
  %cap = moert.gate %ctx, %l correction %b -> %i, %w, %i, %c tokens %s experts 8 <scoring = sigmoid, top_k = 2> : !moert.view<f32, 128>, !moert.view<f32, 4> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %x: !moert.view<f32, 1024>, %i: !moert.view<i32, 32>, %f: !moert.view<f32, 32>, %b: !moert.view<f32, 8192>) {
  // expected-error @below {{ids must be a view of 'i32', got '!moert.view<f32, 32>'}}
  moert.dispatch %ctx, %x, %f, %i -> %b tokens %s capacity %c hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %x: !moert.view<f32, 1024>, %i: !moert.view<i32, 32>, %b: !moert.view<f32, 8000>) {
  // expected-error @below {{expert buffer holds 8000 elements, not a multiple of its row width 512}}
  moert.dispatch %ctx, %x, %i, %i -> %b tokens %s capacity %c hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8000>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %x: !moert.view<f32, 1024>, %i: !moert.view<i32, 32>, %b: !moert.view<f32, 8192>) {
  // expected-error @below {{top_k = 9 exceeds the 8 experts}}
  moert.dispatch %ctx, %x, %i, %i -> %b tokens %s capacity %c hidden 64 top_k 9 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %y: !moert.view<f32, 8192>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 16>, %o: !moert.view<f32, 1024>) {
  // expected-error @below {{weights must hold at least 32 elements, got 16}}
  moert.combine %ctx, %y, %i, %i, %w -> %o tokens %s capacity %c hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 16> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %x: !moert.view<f32, 1024>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 16>, %b: !moert.view<f32, 8192>) {
  // expected-error @below {{weights must hold at least 32 elements, got 16}}
  moert.dispatch %ctx, %x, %i, %i weights %w : !moert.view<f32, 16> -> %b tokens %s capacity %c hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %x: !moert.view<f32, 1024>, %i: !moert.view<i32, 32>, %w: !moert.view<bf16, 32>, %b: !moert.view<f32, 8192>) {
  // expected-error @below {{weights must be a view of 'f32', got '!moert.view<bf16, 32>'}}
  moert.dispatch %ctx, %x, %i, %i weights %w : !moert.view<bf16, 32> -> %b tokens %s capacity %c hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %c: i64, %y: !moert.view<f32, 8192>, %i: !moert.view<i32, 32>, %w: !moert.view<f32, 32>, %a: !moert.view<f32, 512>, %o: !moert.view<f32, 1024>) {
  // expected-error @below {{addend must hold at least 1024 elements, got 512}}
  moert.combine %ctx, %y, %i, %i, %w addend %a -> %o tokens %s capacity %c hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<f32, 512> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>, %w2: !moert.view<f32, 32768>) {
  // expected-error @below {{down weight must hold at least 65536 elements, got 32768}}
  moert.experts %ctx, silu %b : !moert.view<f32, 8192> gate %w : !moert.view<f32, 65536> up %w : !moert.view<f32, 65536> down %w2 : !moert.view<f32, 32768> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>, %b1: !moert.view<f32, 1024>) {
  // expected-error @below {{a gated FFN takes no biases (only the plain fc1/fc2 form)}}
  moert.experts %ctx, silu %b : !moert.view<f32, 8192> gate %w : !moert.view<f32, 65536> up %w : !moert.view<f32, 65536> bias %b1 : !moert.view<f32, 1024> down %w : !moert.view<f32, 65536> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>, %r: !moert.view<i32, 8>) {
  // expected-error @below {{rows must hold at least 16 elements, got 8}}
  moert.experts %ctx, silu %b : !moert.view<f32, 8192> gate %w : !moert.view<f32, 65536> up %w : !moert.view<f32, 65536> down %w : !moert.view<f32, 65536> -> %b : !moert.view<f32, 8192> rows %r : !moert.view<i32, 8> capacity %c experts 8 blocks 2 hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %o: !moert.view<f32, 4096>, %w: !moert.view<f32, 65536>) {
  // expected-error @below {{output holds 8 rows per expert, fewer than the input's 16}}
  moert.experts %ctx, silu %b : !moert.view<f32, 8192> gate %w : !moert.view<f32, 65536> up %w : !moert.view<f32, 65536> down %w : !moert.view<f32, 65536> -> %o : !moert.view<f32, 4096> capacity %c experts 8 blocks 1 hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>) {
  // expected-error @below {{blocks must be positive, got 0}}
  moert.experts %ctx, silu %b : !moert.view<f32, 8192> gate %w : !moert.view<f32, 65536> up %w : !moert.view<f32, 65536> down %w : !moert.view<f32, 65536> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 0 hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 8192>, %b1: !moert.view<f32, 64>, %y: !moert.view<f32, 1024>) {
  // expected-error @below {{up bias must hold at least 128 elements, got 64}}
  moert.dense_ffn %ctx, gelu %x : !moert.view<f32, 1024> up %w : !moert.view<f32, 8192> bias %b1 : !moert.view<f32, 64> down %w : !moert.view<f32, 8192> -> %y : !moert.view<f32, 1024> tokens %s hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 8192>, %y: !moert.view<f32, 512>) {
  // expected-error @below {{output must hold at least 1024 elements, got 512}}
  moert.dense_ffn %ctx, gelu %x : !moert.view<f32, 1024> up %w : !moert.view<f32, 8192> down %w : !moert.view<f32, 8192> -> %y : !moert.view<f32, 512> tokens %s hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %wc: !moert.view<f32, 64>) {
  // expected-error @below {{coefficient weight must hold at least 128 elements, got 64}}
  moert.residual_mix %ctx, %x, %x coefficient(%x, %wc) -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %wc: !moert.view<f32, 128>, %bc: !moert.view<f32, 1>) {
  // expected-error @below {{coefficient bias must hold at least 2 elements, got 1}}
  moert.residual_mix %ctx, %x, %x coefficient(%x, %wc bias %bc) -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 128>, !moert.view<f32, 1> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %y: !moert.view<f32, 512>) {
  // expected-error @below {{shared must hold at least 1024 elements, got 512}}
  moert.shared_add %ctx, %x, %y -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 512> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 32>) {
  // expected-error @below {{gate weight must hold at least 64 elements, got 32}}
  moert.shared_add %ctx, %x, %x gated(%x, %w) -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 64>) {
  // expected-error @below {{the shared-expert gate needs both x and its weight}}
  "moert.shared_add"(%ctx, %x, %x, %w, %x, %s) <{hidden = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 1, 1, 1>}> : (!moert.context, !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 64>, !moert.view<f32, 1024>, i64) -> ()
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %y: !moert.view<i32, 1024>) {
  // expected-error @below {{input must be a f32, f16 or bf16 view, got '!moert.view<i32, 1024>'}}
  moert.add %ctx, %x, %y -> %x count %s : !moert.view<f32, 1024>, !moert.view<i32, 1024> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context) {
  // expected-error @below {{rank 1 appears in more than one place in groups}}
  moert.keep_group %ctx [[0, 1], [1, 2]] slot 0
  return
}

// -----

func.func @f(%ctx: !moert.context) {
  // expected-error @below {{slot must be >= 0, got -1}}
  %g = moert.group %ctx slot -1
  return
}

// -----

func.func @f(%ctx: !moert.context, %g: !moert.group, %c: i64, %a: !moert.view<f32, 8192>, %b: !moert.view<bf16, 8192>) {
  // expected-error @below {{send and receive views must have the same element type, got '!moert.view<f32, 8192>' and '!moert.view<bf16, 8192>'}}
  moert.all_to_all %ctx, %g to_experts flat %a -> %b experts_local 2 capacity %c hidden 64 : !moert.view<f32, 8192> -> !moert.view<bf16, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %g: !moert.group, %c: i64, %a: !moert.view<f32, 8192>) {
  // expected-error @below {{send and receive must not overlap}}
  moert.all_to_all %ctx, %g to_experts flat %a -> %a experts_local 2 capacity %c hidden 64 : !moert.view<f32, 8192> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %g: !moert.group, %c: i64, %a: !moert.view<f32, 8000>, %b: !moert.view<f32, 8192>) {
  // expected-error @below {{send holds 8000 elements, not a multiple of its row width 128}}
  moert.all_to_all %ctx, %g to_experts flat %a -> %b experts_local 2 capacity %c hidden 64 : !moert.view<f32, 8000> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %g: !moert.group, %n: i64, %a: !moert.view<f32, 1024>, %b: !moert.view<f32, 512>) {
  // expected-error @below {{send and receive views must have the same type, got '!moert.view<f32, 1024>' and '!moert.view<f32, 512>'}}
  moert.all_reduce %ctx, %g sum %a -> %b count %n : !moert.view<f32, 1024> -> !moert.view<f32, 512>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{key 'layers.0.experts.{e}.w1' is a per-expert pattern and needs an expert range}}
  moert.load_weight %ctx, %w "layers.0.experts.{e}.w1" shape [128, 64] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{key 'layers.0.gate' has no '{e}' placeholder and takes no expert range}}
  moert.load_weight %ctx, %w "layers.0.gate" experts [0, 1) shape [128, 64] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{expert range [4, 4) is empty or negative}}
  moert.load_weight %ctx, %w "layers.0.experts.{e}.w1" experts [4, 4) shape [128, 64] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{dimension 0: slice [64, 160) is not a non-empty part of [0, 128)}}
  moert.load_weight %ctx, %w "layers.0.gate" shape [128, 64] begin [64, 0] end [160, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{begin and end must have 2 entries like shape, got 1 and 2}}
  moert.load_weight %ctx, %w "layers.0.gate" shape [128, 64] begin [0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{a weight has 1 to 4 dimensions, got 5}}
  moert.load_weight %ctx, %w "layers.0.gate" shape [1, 1, 1, 1, 1] begin [0, 0, 0, 0, 0] end [0, 0, 0, 0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{destination must hold at least 16384 elements, got 8192}}
  moert.load_weight %ctx, %w "layers.0.experts.{e}.w1" experts [0, 2) shape [128, 64] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<i32, 8192>) {
  // expected-error @below {{destination must be a f32, f16 or bf16 view, got '!moert.view<i32, 8192>'}}
  moert.load_weight %ctx, %w "layers.0.gate" shape [128, 64] begin [0, 0] end [0, 0] -> %d : !moert.view<i32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %g: !moert.group, %n: i64, %a: !moert.view<f32, 1024>, %b: !moert.view<bf16, 2048>) {
  // expected-error @below {{send and receive views must have the same element type, got '!moert.view<f32, 1024>' and '!moert.view<bf16, 2048>'}}
  moert.all_gather %ctx, %g %a -> %b count %n : !moert.view<f32, 1024> -> !moert.view<bf16, 2048>
  return
}

// -----

func.func @f(%ctx: !moert.context, %g: !moert.group, %n: i64, %a: !moert.view<f32, 1024>) {
  // expected-error @below {{send and receive must not overlap}}
  moert.reduce_scatter %ctx, %g %a -> %a count %n : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @shift_without_end(%ctx: !moert.context, %w: !moert.weights, %o: i64, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{dimension 1: a shifted box needs an explicit end}}
  moert.load_weight %ctx, %w "layers.0.gate" shape [128, 64] begin [0, 0] end [64, 0] + (%o, %o) -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @offsets_per_dim(%ctx: !moert.context, %w: !moert.weights, %o: i64, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{offsets must be absent or one per dimension (2), got 1}}
  moert.load_weight %ctx, %w "layers.0.gate" shape [128, 64] begin [0, 0] end [64, 64] + (%o) -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @expert_offset_without_range(%ctx: !moert.context, %w: !moert.weights, %o: i64, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{an expert offset needs an expert range}}
  moert.load_weight %ctx, %w "layers.0.gate" + %o shape [128, 64] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @drops_counts(%ctx: !moert.context, %stats: !moert.stats, %s: i64, %c: !moert.view<f32, 8>) {
  // expected-error @below {{counts must be a view of 'i32'}}
  moert.record_drops %ctx, %stats layer 0 counts %c tokens %s top_k 2 experts 8 : !moert.view<f32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 8192>, %y: !moert.view<f32, 1024>, %first: i1) {
  // expected-error @below {{has a down bias predicate but no down bias}}
  moert.dense_ffn %ctx, gelu %x : !moert.view<f32, 1024> up %w : !moert.view<f32, 8192> down %w : !moert.view<f32, 8192> if %first -> %y : !moert.view<f32, 1024> tokens %s hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %cap: i64, %send: !moert.view<f32, 8192>, %recv: !moert.view<f32, 8192>) {
  %g = moert.group %ctx slot 0
  // expected-error @below {{slices must be positive, got 0}}
  moert.all_to_all_sliced %ctx, %g to_experts flat %send -> %recv experts_local 4 capacity %cap hidden 64 slices 0 : !moert.view<f32, 8192> -> !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 16383>) {
  // expected-error @below {{destination must hold at least 16384 elements, got 16383}}
  moert.load_weight %ctx, %w "l.experts.{e}.up" experts [0, 2) shape [64, 64] begin [0, 0] end [0, 0] -> %d stride 12288 : !moert.view<f32, 16383>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 16384>) {
  // expected-error @below {{stride 4000 is smaller than one expert's box of 4096 elements}}
  moert.load_weight %ctx, %w "l.experts.{e}.up" experts [0, 2) shape [64, 64] begin [0, 0] end [0, 0] -> %d stride 4000 : !moert.view<f32, 16384>
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>, %h: !moert.view<f32, 8192>) {
  // expected-error @below {{output holds 8 rows per expert, fewer than the input's 16}}
  moert.experts_linear %ctx, %w : !moert.view<f32, 65536> in %b : !moert.view<f32, 8192> -> %h : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 n 128 k 64
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %a: !moert.view<f32, 1024>, %b: !moert.view<f32, 512>) {
  // expected-error @below {{out must hold at least 1024 elements, got 512}}
  moert.multiply %ctx, %a, %a -> %b count %n : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 512>
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %a: !moert.view<i32, 1024>) {
  // expected-error @below {{out must be a f32, f16 or bf16 view}}
  moert.activation %ctx, silu %a -> %a count %n : !moert.view<i32, 1024> -> !moert.view<i32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>) {
  // expected-error @below {{gate_up weight must hold at least 131072 elements, got 65536}}
  moert.fused_experts %ctx, silu %b : !moert.view<f32, 8192> gate_up %w : !moert.view<f32, 65536> down %w : !moert.view<f32, 65536> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %s: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 131072>, %x: !moert.view<f32, 1024>) {
  // expected-error @below {{shared output must not alias the shared input}}
  moert.fused_experts %ctx, silu %b : !moert.view<f32, 8192> gate_up %w : !moert.view<f32, 131072> down %w : !moert.view<f32, 131072> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128 shared(%x : !moert.view<f32, 1024> gate_up %w : !moert.view<f32, 131072> down %w : !moert.view<f32, 131072> -> %x : !moert.view<f32, 1024> tokens %s ffn 64)
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 131072>, %x: !moert.view<f32, 1024>) {
  // expected-error @below {{a shared expert needs its input, gate_up, down, output and tokens}}
  "moert.fused_experts"(%ctx, %w, %w, %b, %b, %c, %x) <{activation = 0 : i32, blocks = 1 : i64, experts = 8 : i64, ffn = 128 : i64, hidden = 64 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0>}> : (!moert.context, !moert.view<f32, 131072>, !moert.view<f32, 131072>, !moert.view<f32, 8192>, !moert.view<f32, 8192>, i64, !moert.view<f32, 1024>) -> ()
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %q: !moert.view<f8E4M3FN, 65536>, %s: !moert.view<f32, 32>) {
  // Gate [128, 64] in 32 x 32 blocks: 8 experts x 4 x 2 scales.
  // expected-error @below {{gate scales must hold at least 64 elements, got 32}}
  moert.quantized_experts %ctx, silu %b : !moert.view<f32, 8192> gate %q : !moert.view<f8E4M3FN, 65536> scales %s : !moert.view<f32, 32> up %q : !moert.view<f8E4M3FN, 65536> scales %s : !moert.view<f32, 32> down %q : !moert.view<f8E4M3FN, 65536> scales %s : !moert.view<f32, 32> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128 fp8_e4m3_block block_rows 32 block_cols 32
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %w: !moert.view<f32, 65536>, %s: !moert.view<f32, 64>) {
  // expected-error @below {{gate must be a view of 'f8E4M3FN', got '!moert.view<f32, 65536>'}}
  moert.quantized_experts %ctx, silu %b : !moert.view<f32, 8192> gate %w : !moert.view<f32, 65536> scales %s : !moert.view<f32, 64> up %w : !moert.view<f32, 65536> scales %s : !moert.view<f32, 64> down %w : !moert.view<f32, 65536> scales %s : !moert.view<f32, 64> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128 fp8_e4m3_block block_rows 128 block_cols 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %q: !moert.view<f8E4M3FN, 65536>, %s: !moert.view<f32, 64>) {
  // expected-error @below {{block rows must be positive, got 0}}
  moert.quantized_experts %ctx, silu %b : !moert.view<f32, 8192> gate %q : !moert.view<f8E4M3FN, 65536> scales %s : !moert.view<f32, 64> up %q : !moert.view<f8E4M3FN, 65536> scales %s : !moert.view<f32, 64> down %q : !moert.view<f8E4M3FN, 65536> scales %s : !moert.view<f32, 64> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128 fp8_e4m3_block block_rows 0 block_cols 128
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %q: !moert.view<ui8, 32768>, %s: !moert.view<ui8, 2048>) {
  // expected-error @below {{mxfp4 needs 1 x 32 blocks and hidden and ffn multiples of 32, got blocks 1 x 16, hidden 64, ffn 128}}
  moert.quantized_experts %ctx, silu %b : !moert.view<f32, 8192> gate %q : !moert.view<ui8, 32768> scales %s : !moert.view<ui8, 2048> up %q : !moert.view<ui8, 32768> scales %s : !moert.view<ui8, 2048> down %q : !moert.view<ui8, 32768> scales %s : !moert.view<ui8, 2048> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128 mxfp4 block_rows 1 block_cols 16
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %b: !moert.view<f32, 8192>, %q: !moert.view<ui8, 16384>, %s: !moert.view<ui8, 2048>) {
  // Two e2m1 a byte: 8 x 128 x 64 / 2 bytes.
  // expected-error @below {{gate must hold at least 32768 elements, got 16384}}
  moert.quantized_experts %ctx, silu %b : !moert.view<f32, 8192> gate %q : !moert.view<ui8, 16384> scales %s : !moert.view<ui8, 2048> up %q : !moert.view<ui8, 16384> scales %s : !moert.view<ui8, 2048> down %q : !moert.view<ui8, 16384> scales %s : !moert.view<ui8, 2048> -> %b : !moert.view<f32, 8192> capacity %c experts 8 blocks 1 hidden 64 ffn 128 mxfp4 block_rows 1 block_cols 32
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %x: !moert.view<f32, 8192>, %h: !moert.view<f32, 16384>, %q: !moert.view<ui8, 32768>, %s: !moert.view<ui8, 2048>) {
  // expected-error @below {{mxfp4 needs 1 x 32 blocks and k a multiple of 32, got blocks 1 x 32, k 16}}
  moert.quantized_experts_linear %ctx, mxfp4 block_rows 1 block_cols 32 %q : !moert.view<ui8, 32768> scales %s : !moert.view<ui8, 2048> in %x : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> capacity %c experts 8 blocks 1 n 32 k 16
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %x: !moert.view<f32, 8192>, %h: !moert.view<f32, 16384>, %q: !moert.view<ui8, 32768>, %s: !moert.view<ui8, 1024>) {
  // One e8m0 scale per 32 of each of the 8 x 128 rows of 64.
  // expected-error @below {{weight scales must hold at least 2048 elements, got 1024}}
  moert.quantized_experts_linear %ctx, mxfp4 block_rows 1 block_cols 32 %q : !moert.view<ui8, 32768> scales %s : !moert.view<ui8, 1024> in %x : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> capacity %c experts 8 blocks 1 n 128 k 64
  return
}

// -----

func.func @f(%ctx: !moert.context, %c: i64, %x: !moert.view<f32, 8192>, %h: !moert.view<f32, 16384>, %q: !moert.view<f32, 65536>, %s: !moert.view<f32, 64>) {
  // expected-error @below {{weight must be a view of 'f8E4M3FN'}}
  moert.quantized_experts_linear %ctx, fp8_e4m3_block block_rows 128 block_cols 128 %q : !moert.view<f32, 65536> scales %s : !moert.view<f32, 64> in %x : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> capacity %c experts 8 blocks 1 n 128 k 64
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %b: !moert.view<f8E4M3FN, 64>) {
  // fp8 views are weight storage only.
  // expected-error @below {{must be a f32, f16 or bf16 view}}
  moert.add %ctx, %b, %b -> %b count %n : !moert.view<f8E4M3FN, 64>, !moert.view<f8E4M3FN, 64> -> !moert.view<f8E4M3FN, 64>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 32>) {
  // expected-error @below {{weight must hold at least 64 elements, got 32}}
  moert.rms_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon 1.0e-06 : !moert.view<f32, 1024>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 64>) {
  // expected-error @below {{epsilon must be finite and >= 0, got -1}}
  moert.rms_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon -1.0 : !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1000>, %w: !moert.view<f32, 64>) {
  // expected-error @below {{x holds 1000 elements, not a multiple of its row width 64}}
  moert.rms_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon 1.0e-06 : !moert.view<f32, 1000>, !moert.view<f32, 64> -> !moert.view<f32, 1000>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{key 'l0.experts.{e}.w1' must name the fused tensor, not a per-expert pattern}}
  moert.load_fused_weight %ctx, %w "l0.experts.{e}.w1" experts [0, 4) fused [4, 48, 32] offset 0 expert_stride 1536 strides [32, 1] shape [24, 32] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{fused strides must have one entry per dimension of shape (2), got 3}}
  moert.load_fused_weight %ctx, %w "l0.input_linear" experts [0, 4) fused [4, 48, 32] offset 0 expert_stride 1536 strides [32, 1, 1] shape [24, 32] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{fused extents must be positive, offset and strides non-negative}}
  moert.load_fused_weight %ctx, %w "l0.input_linear" experts [0, 4) fused [4, 48, 32] offset -1 expert_stride 1536 strides [32, 1] shape [24, 32] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 8192>) {
  // expected-error @below {{fused extents must be positive, offset and strides non-negative}}
  moert.load_fused_weight %ctx, %w "l0.input_linear" experts [0, 4) fused [4, 48, 32] offset 0 expert_stride -1536 strides [32, 1] shape [24, 32] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 8192>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 1024>) {
  // expected-error @below {{'moert.load_fused_weight' op destination must hold at least 3072 elements, got 1024}}
  moert.load_fused_weight %ctx, %w "l0.input_linear" experts [0, 4) fused [4, 48, 32] offset 0 expert_stride 1536 strides [32, 1] shape [24, 32] begin [0, 0] end [0, 0] -> %d : !moert.view<f32, 1024>
  return
}
