// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the PR-MoE GPT's ops and weight parts.

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32xf32>) {
  // expected-error @below {{weight must have shape [64], got [32]}}
  %n = moe.layer_norm %x, %w epsilon 1.0e-5 : tensor<?x64xf32>, tensor<32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<64xf32>, %b: tensor<16xf32>) {
  // expected-error @below {{bias must have shape [64], got [16]}}
  %n = moe.layer_norm %x, %w bias %b epsilon 1.0e-5 : tensor<?x64xf32>, tensor<64xf32>, tensor<16xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<64xf32>) {
  // expected-error @below {{epsilon must be finite and >= 0, got -1}}
  %n = moe.layer_norm %x, %w epsilon -1.0 : tensor<?x64xf32>, tensor<64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %b: tensor<65xf32>) {
  // expected-error @below {{bias must have shape [64], got [65]}}
  %y = moe.bias_add %x, %b : tensor<?x64xf32>, tensor<65xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %t: tensor<32x48xf32>) {
  // expected-error @below {{table rows have 48 elements but the hidden size is 64}}
  %y = moe.position_embedding %x positions %p table %t : tensor<?x64xf32>, tensor<?xi32>, tensor<32x48xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %t: tensor<32x64xbf16>) {
  // expected-error @below {{table must have element type 'f32', got 'bf16'}}
  %y = moe.position_embedding %x positions %p table %t : tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xbf16>
  return
}

// -----

func.func @f(%x: tensor<5x64xf32>, %p: tensor<4xi32>, %t: tensor<32x64xf32>) {
  // expected-error @below {{has 4 positions for 5 tokens}}
  %y = moe.position_embedding %x positions %p table %t : tensor<5x64xf32>, tensor<4xi32>, tensor<32x64xf32>
  return
}

// -----

// expected-error @below {{'moe.weight_rows' of argument #0: part 3 of 3 in 4 groups is not a part}}
func.func @f(%w: tensor<64x64xf32> {moe.weight = "qkv", moe.weight_rows = array<i64: 4, 3, 3>}) {
  return
}

// -----

// expected-error @below {{'moe.weight_rows' of argument #0 must be array<i64: groups, parts, part>}}
func.func @f(%w: tensor<64x64xf32> {moe.weight = "qkv", moe.weight_rows = array<i64: 4, 3>}) {
  return
}
