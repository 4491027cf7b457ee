// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 1024>, %y: !moert.view<f32, 1024>) {
  // expected-error @below {{weight must hold at least 4096 elements, got 1024}}
  moert.linear %ctx, %x, %w -> %y tokens %s n 64 k 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %ids: !moert.view<f32, 16>, %t: !moert.view<f32, 6144>, %x: !moert.view<f32, 1024>) {
  // expected-error @below {{ids must be a view of 'i32', got '!moert.view<f32, 16>'}}
  moert.embedding %ctx, %ids, %t -> %x tokens %s vocab %s hidden 64 : !moert.view<f32, 16>, !moert.view<f32, 6144> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %q: !moert.view<f32, 960>, %p: !moert.view<i32, 16>) {
  // expected-error @below {{head_dim must be even, got 15}}
  moert.rope %ctx, %q positions %p tokens %s heads 4 head_dim 15 <> : !moert.view<f32, 960>, !moert.view<i32, 16>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %k: !moert.view<f32, 512>, %c: !moert.view<f32, 4096>, %p: !moert.view<i32, 16>) {
  // expected-error @below {{cache must hold at least 8192 elements, got 4096}}
  moert.kv_append %ctx, %k, %k -> %c at %p, %p tokens %s kv_heads 2 head_dim 16 max_batch 4 max_seq 32 : !moert.view<f32, 512>, !moert.view<f32, 512>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 4096>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %q: !moert.view<f32, 1024>, %c: !moert.view<f32, 8192>, %p: !moert.view<i32, 16>) {
  // expected-error @below {{heads (4) must be a multiple of kv_heads (3)}}
  moert.attention %ctx, %q, %c at %p, %p -> %q tokens %s heads 4 kv_heads 3 head_dim 16 max_batch 4 max_seq 32 scale 0.25 : !moert.view<f32, 1024>, !moert.view<f32, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %q: !moert.view<f32, 1024>, %c: !moert.view<f32, 8192>, %p: !moert.view<i32, 16>) {
  // expected-error @below {{scale must be finite and > 0, got 0}}
  moert.attention %ctx, %q, %c at %p, %p -> %q tokens %s heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 0.0 : !moert.view<f32, 1024>, !moert.view<f32, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %l: !moert.view<f32, 1536>, %ids: !moert.view<i32, 8>) {
  // expected-error @below {{ids must hold at least 16 elements, got 8}}
  moert.argmax %ctx, %l -> %ids tokens %s vocab 96 : !moert.view<f32, 1536> -> !moert.view<i32, 8>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %q: !moert.view<f32, 1024>, %c: !moert.view<f32, 8192>, %p: !moert.view<i32, 16>, %sk: !moert.view<f32, 2>) {
  // expected-error @below {{sinks must hold one logit per head (4), got 2}}
  moert.attention %ctx, %q, %c at %p, %p sinks %sk -> %q tokens %s heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 0.25 : !moert.view<f32, 1024>, !moert.view<f32, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16>, !moert.view<f32, 2> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %q: !moert.view<f32, 1024>, %c: !moert.view<f32, 8192>, %p: !moert.view<i32, 16>) {
  // expected-error @below {{window must be >= 0 (0: none), got -2}}
  moert.attention %ctx, %q, %c at %p, %p -> %q tokens %s heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 0.25 window -2 : !moert.view<f32, 1024>, !moert.view<f32, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 1024>
  return
}
