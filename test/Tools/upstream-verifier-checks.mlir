// RUN: moe-opt %s -split-input-file -verify-diagnostics
// RUN: not moe-run %s 2>&1 | FileCheck %s --check-prefix=DRIVER

// The shard collectives' upstream verifiers index the operand's shape with
// the op's tensor axis and divide by the grid's group size before checking
// either; the tools check both first (a crash or a read out of bounds
// otherwise).

// DRIVER: error: 'shard.reduce_scatter' op scatter_axis = 100000000 is not a dimension of the rank-2 operand 'tensor<?x64xf32>'
shard.grid @grid(shape = 1x1x2)
func.func @scatter_axis_dynamic(%d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @below {{'shard.reduce_scatter' op scatter_axis = 100000000 is not a dimension of the rank-2 operand 'tensor<?x64xf32>'}}
  %s = shard.reduce_scatter %d on @grid grid_axes = [2] scatter_axis = 100000000 : tensor<?x64xf32> -> tensor<?x64xf32>
  return %s : tensor<?x64xf32>
}

// -----

shard.grid @grid(shape = 1x1x2)
func.func @scatter_axis_rank(%d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @below {{'shard.reduce_scatter' op scatter_axis = 2 is not a dimension of the rank-2 operand 'tensor<?x64xf32>'}}
  %s = shard.reduce_scatter %d on @grid grid_axes = [2] scatter_axis = 2 : tensor<?x64xf32> -> tensor<?x64xf32>
  return %s : tensor<?x64xf32>
}

// -----

shard.grid @grid(shape = 1x1x2)
func.func @scatter_axis_negative(%d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @below {{'shard.reduce_scatter' op scatter_axis = -1 is not a dimension of the rank-2 operand 'tensor<?x64xf32>'}}
  %s = shard.reduce_scatter %d on @grid grid_axes = [2] scatter_axis = -1 : tensor<?x64xf32> -> tensor<?x64xf32>
  return %s : tensor<?x64xf32>
}

// -----

shard.grid @grid(shape = 1x2)
func.func @scatter(%d: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @below {{'shard.scatter' op scatter_axis = 100000000 is not a dimension of the rank-2 operand 'tensor<8x64xf32>'}}
  %s = shard.scatter %d on @grid grid_axes = [1] scatter_axis = 100000000 root = [0] : (tensor<8x64xf32>) -> tensor<8x64xf32>
  return %s : tensor<8x64xf32>
}

// -----

shard.grid @grid(shape = 1x2)
func.func @all_slice(%d: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @below {{'shard.all_slice' op slice_axis = 100000000 is not a dimension of the rank-2 operand 'tensor<8x64xf32>'}}
  %s = shard.all_slice %d on @grid grid_axes = [1] slice_axis = 100000000 : tensor<8x64xf32> -> tensor<8x64xf32>
  return %s : tensor<8x64xf32>
}

// -----

shard.grid @grid(shape = 1x2)
func.func @all_to_all(%d: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @below {{'shard.all_to_all' op concat_axis = 100000000 is not a dimension of the rank-2 operand 'tensor<8x64xf32>'}}
  %s = shard.all_to_all %d on @grid grid_axes = [1] split_axis = 0 concat_axis = 100000000 : tensor<8x64xf32> -> tensor<8x64xf32>
  return %s : tensor<8x64xf32>
}

// -----

// A zero-sized group divides by zero.
// expected-error @below {{'shard.grid' op dimension 0 of the grid is 0: a grid has at least one device per dimension}}
shard.grid @grid(shape = 0x2)
func.func @empty_grid(%d: tensor<8x64xf32>) -> tensor<8x64xf32> {
  %s = shard.reduce_scatter %d on @grid grid_axes = [0] scatter_axis = 0 : tensor<8x64xf32> -> tensor<8x64xf32>
  return %s : tensor<8x64xf32>
}
