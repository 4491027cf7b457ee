// RUN: moe-opt %s --moe-compile="mesh=1x1 tokens=8" | moe-translate --moe-to-cpp | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-moert="tokens=8" | not moe-translate --moe-to-cpp 2>&1 | FileCheck %s --check-prefix=NOTEMITC

// One readable C++ source: the model's C ABI, every call's status checked.
// CHECK: #include "runtime/moert_model.h"
// CHECK: extern "C" {
// CHECK: moert_status_t moe_model_init(moert_context_t [[CTX:v[0-9]+]], moert_weights_t [[W:v[0-9]+]], moert_buffer_t [[STATE:v[0-9]+]], const char** [[WHERE:v[0-9]+]]) {
// CHECK: int64_t [[SHAPE:v[0-9]+]][2] = {128, 32};
// CHECK: moert_weight_request_init({{v[0-9]+}}, "l0.mlp.fc1.weight", 2, [[SHAPE]]);
// CHECK: moert_status_t [[ST:v[0-9]+]] = moert_weights_load([[CTX]], [[W]], {{v[0-9]+}}, {{v[0-9]+}});
// CHECK-NEXT: if ([[ST]] != MOERT_OK) return moert_model_fail([[ST]], [[WHERE]], "init: moert_weights_load 'l0.mlp.fc1.weight'");
// CHECK: return MOERT_OK;
// CHECK: moert_status_t moe_model_step(moert_context_t [[CTX:v[0-9]+]], moert_buffer_t {{v[0-9]+}}, moert_model_layer_stats_t* [[STATS:v[0-9]+]], int64_t [[S:v[0-9]+]], moert_view_t [[X:v[0-9]+]], const char** [[WHERE:v[0-9]+]]) {
// CHECK: int64_t [[T0:v[0-9]+]] = moert_model_clock_ns();
// CHECK: moert_ffn_desc_t [[DESC:v[0-9]+]];
// CHECK: [[DESC]].kind = MOERT_FFN_PLAIN;
// CHECK: [[DESC]].activation = MOERT_ACT_RELU;
// CHECK: moert_status_t [[ST:v[0-9]+]] = moert_dense_ffn([[CTX]], {{v[0-9]+}}, [[X]], {{v[0-9]+}}, [[S]]);
// CHECK-NEXT: if ([[ST]] != MOERT_OK) return moert_model_fail([[ST]], [[WHERE]], "layer 0: moert_dense_ffn");
// CHECK: moert_add(
// CHECK: moert_model_record_time([[STATS]], 0, [[T0]]);
// CHECK: moert_model_info_t* moe_model_info() {
// CHECK-NEXT: moert_model_info_t* {{v[0-9]+}} = (moert_model_info_t*)(&moe_model_info_data);
// CHECK: } // extern "C"
// NOTEMITC: error: --moe-to-cpp needs the output of moe-opt --moe-compile
module {
func.func @dense(%x: tensor<?x32xf32>,
    %w1: tensor<128x32xf32> {moe.weight = "l0.mlp.fc1.weight"},
    %w2: tensor<32x128xf32> {moe.weight = "l0.mlp.fc2.weight"}) -> tensor<?x32xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x32xf32> {
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x32xf32>, tensor<128x32xf32>, tensor<32x128xf32>) -> tensor<?x32xf32>
    moe.yield %d : tensor<?x32xf32>
  }
  return %y : tensor<?x32xf32>
}
}
