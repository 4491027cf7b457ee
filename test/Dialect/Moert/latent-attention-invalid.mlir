// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the MLA runtime calls.

func.func @f(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>, %kv: !moert.view<f32, 384>, %norm: !moert.view<f32, 17>, %cache: !moert.view<f32, 3072>) {
  // expected-error @below {{rope_dim must be even, got 7}}
  moert.latent_append %ctx, %kv, %norm -> %cache at %pos, %pos tokens %s rank 17 rope_dim 7 max_batch 4 max_seq 32 epsilon 1.0e-6 <> : !moert.view<f32, 384>, !moert.view<f32, 17>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 3072>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>, %kv: !moert.view<f32, 384>, %norm: !moert.view<f32, 8>, %cache: !moert.view<f32, 3072>) {
  // expected-error @below {{norm must hold at least 16 elements, got 8}}
  moert.latent_append %ctx, %kv, %norm -> %cache at %pos, %pos tokens %s rank 16 rope_dim 8 max_batch 4 max_seq 32 epsilon 1.0e-6 <> : !moert.view<f32, 384>, !moert.view<f32, 8>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 3072>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>, %kv: !moert.view<f32, 384>, %norm: !moert.view<f32, 16>, %cache: !moert.view<f32, 1024>) {
  // expected-error @below {{cache must hold at least 3072 elements, got 1024}}
  moert.latent_append %ctx, %kv, %norm -> %cache at %pos, %pos tokens %s rank 16 rope_dim 8 max_batch 4 max_seq 32 epsilon 1.0e-6 <> : !moert.view<f32, 384>, !moert.view<f32, 16>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>, %q: !moert.view<f32, 1024>, %wkvb: !moert.view<f32, 1024>, %cache: !moert.view<f32, 3072>, %o: !moert.view<f32, 1024>) {
  // expected-error @below {{kv_b must hold at least 1536 elements, got 1024}}
  moert.latent_attention %ctx, %q, %wkvb, %cache at %pos, %pos -> %o tokens %s heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8 max_batch 4 max_seq 32 scale 0.25 <> : !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 3072>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>, %q: !moert.view<f32, 1024>, %wkvb: !moert.view<f32, 1536>, %cache: !moert.view<f32, 3072>, %o: !moert.view<f32, 512>) {
  // expected-error @below {{out must hold at least 1024 elements, got 512}}
  moert.latent_attention %ctx, %q, %wkvb, %cache at %pos, %pos -> %o tokens %s heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8 max_batch 4 max_seq 32 scale 0.25 <> : !moert.view<f32, 1024>, !moert.view<f32, 1536>, !moert.view<f32, 3072>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 512>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>, %q: !moert.view<f32, 1024>, %wkvb: !moert.view<f32, 1536>, %cache: !moert.view<f32, 3072>, %o: !moert.view<f32, 1024>) {
  // expected-error @below {{scale must be finite and > 0, got -1}}
  moert.latent_attention %ctx, %q, %wkvb, %cache at %pos, %pos -> %o tokens %s heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8 max_batch 4 max_seq 32 scale -1.0 <> : !moert.view<f32, 1024>, !moert.view<f32, 1536>, !moert.view<f32, 3072>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 1024>
  return
}
