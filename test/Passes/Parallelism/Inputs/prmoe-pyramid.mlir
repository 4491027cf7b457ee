module attributes {moe.model_type = "prmoe"} {
  func.func @forward(%y0: tensor<?x1024xf16>,
      %wg1: tensor<32x1024xf16> {moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.gate.wg.weight"},
      %w1_1: tensor<32x4096x1024xf16> {moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.weight"},
      %b1_1: tensor<32x4096xf16> {moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.bias"},
      %w2_1: tensor<32x1024x4096xf16> {moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_4h_to_h.weight"},
      %b2_1: tensor<32x1024xf16> {moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_4h_to_h.bias"},
      %d1_1: tensor<4096x1024xf16> {moe.weight = "language_model.encoder.layers.1.mlp.mlp.dense_h_to_4h.weight"},
      %db1_1: tensor<4096xf16> {moe.weight = "language_model.encoder.layers.1.mlp.mlp.dense_h_to_4h.bias"},
      %d2_1: tensor<1024x4096xf16> {moe.weight = "language_model.encoder.layers.1.mlp.mlp.dense_4h_to_h.weight"},
      %db2_1: tensor<1024xf16> {moe.weight = "language_model.encoder.layers.1.mlp.mlp.dense_4h_to_h.bias"},
      %wc1: tensor<2x1024xf16> {moe.weight = "language_model.encoder.layers.1.mlp.coefficient.weight"},
      %bc1: tensor<2xf16> {moe.weight = "language_model.encoder.layers.1.mlp.coefficient.bias"},
      %wg2: tensor<64x1024xf16> {moe.weight = "language_model.encoder.layers.2.mlp.deepspeed_moe.gate.wg.weight"},
      %w1_2: tensor<64x4096x1024xf16> {moe.weight = "language_model.encoder.layers.2.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.weight"},
      %b1_2: tensor<64x4096xf16> {moe.weight = "language_model.encoder.layers.2.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.bias"},
      %w2_2: tensor<64x1024x4096xf16> {moe.weight = "language_model.encoder.layers.2.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_4h_to_h.weight"},
      %b2_2: tensor<64x1024xf16> {moe.weight = "language_model.encoder.layers.2.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_4h_to_h.bias"},
      %d1_2: tensor<4096x1024xf16> {moe.weight = "language_model.encoder.layers.2.mlp.mlp.dense_h_to_4h.weight"},
      %db1_2: tensor<4096xf16> {moe.weight = "language_model.encoder.layers.2.mlp.mlp.dense_h_to_4h.bias"},
      %d2_2: tensor<1024x4096xf16> {moe.weight = "language_model.encoder.layers.2.mlp.mlp.dense_4h_to_h.weight"},
      %db2_2: tensor<1024xf16> {moe.weight = "language_model.encoder.layers.2.mlp.mlp.dense_4h_to_h.bias"},
      %wc2: tensor<2x1024xf16> {moe.weight = "language_model.encoder.layers.2.mlp.coefficient.weight"},
      %bc2: tensor<2xf16> {moe.weight = "language_model.encoder.layers.2.mlp.coefficient.bias"},
      %wg3: tensor<128x1024xf16> {moe.weight = "language_model.encoder.layers.3.mlp.deepspeed_moe.gate.wg.weight"},
      %w1_3: tensor<128x4096x1024xf16> {moe.weight = "language_model.encoder.layers.3.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.weight"},
      %b1_3: tensor<128x4096xf16> {moe.weight = "language_model.encoder.layers.3.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.bias"},
      %w2_3: tensor<128x1024x4096xf16> {moe.weight = "language_model.encoder.layers.3.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_4h_to_h.weight"},
      %b2_3: tensor<128x1024xf16> {moe.weight = "language_model.encoder.layers.3.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_4h_to_h.bias"},
      %d1_3: tensor<4096x1024xf16> {moe.weight = "language_model.encoder.layers.3.mlp.mlp.dense_h_to_4h.weight"},
      %db1_3: tensor<4096xf16> {moe.weight = "language_model.encoder.layers.3.mlp.mlp.dense_h_to_4h.bias"},
      %d2_3: tensor<1024x4096xf16> {moe.weight = "language_model.encoder.layers.3.mlp.mlp.dense_4h_to_h.weight"},
      %db2_3: tensor<1024xf16> {moe.weight = "language_model.encoder.layers.3.mlp.mlp.dense_4h_to_h.bias"},
      %wc3: tensor<2x1024xf16> {moe.weight = "language_model.encoder.layers.3.mlp.coefficient.weight"},
      %bc3: tensor<2xf16> {moe.weight = "language_model.encoder.layers.3.mlp.coefficient.bias"}) -> tensor<?x1024xf16> {
    %y1 = moe.layer 1 (%h = %y0) : tensor<?x1024xf16> {
      %l = moe.router %h, %wg1 : tensor<?x1024xf16>, tensor<32x1024xf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4> : tensor<?x32xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x1024xf16>, tensor<?x1xi32> -> tensor<32x?x1024xf16>
      %e = moe.experts gelu %b up %w1_1 bias %b1_1 down %w2_1 bias %b2_1 : (tensor<32x?x1024xf16>, tensor<32x4096x1024xf16>, tensor<32x4096xf16>, tensor<32x1024x4096xf16>, tensor<32x1024xf16>) -> tensor<32x?x1024xf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<32x?x1024xf16>, tensor<?x1xi32>
      %m = moe.dense_ffn gelu %h up %d1_1 bias %db1_1 down %d2_1 bias %db2_1 : (tensor<?x1024xf16>, tensor<4096x1024xf16>, tensor<4096xf16>, tensor<1024x4096xf16>, tensor<1024xf16>) -> tensor<?x1024xf16>
      %r = moe.residual_mix %o, %m coefficient(%h, %wc1, %bc1 : tensor<?x1024xf16>, tensor<2x1024xf16>, tensor<2xf16>) : tensor<?x1024xf16>
      moe.yield %r : tensor<?x1024xf16>
    }
    %y2 = moe.layer 2 (%h = %y1) : tensor<?x1024xf16> {
      %l = moe.router %h, %wg2 : tensor<?x1024xf16>, tensor<64x1024xf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4> : tensor<?x64xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x1024xf16>, tensor<?x1xi32> -> tensor<64x?x1024xf16>
      %e = moe.experts gelu %b up %w1_2 bias %b1_2 down %w2_2 bias %b2_2 : (tensor<64x?x1024xf16>, tensor<64x4096x1024xf16>, tensor<64x4096xf16>, tensor<64x1024x4096xf16>, tensor<64x1024xf16>) -> tensor<64x?x1024xf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<64x?x1024xf16>, tensor<?x1xi32>
      %m = moe.dense_ffn gelu %h up %d1_2 bias %db1_2 down %d2_2 bias %db2_2 : (tensor<?x1024xf16>, tensor<4096x1024xf16>, tensor<4096xf16>, tensor<1024x4096xf16>, tensor<1024xf16>) -> tensor<?x1024xf16>
      %r = moe.residual_mix %o, %m coefficient(%h, %wc2, %bc2 : tensor<?x1024xf16>, tensor<2x1024xf16>, tensor<2xf16>) : tensor<?x1024xf16>
      moe.yield %r : tensor<?x1024xf16>
    }
    %y3 = moe.layer 3 (%h = %y2) : tensor<?x1024xf16> {
      %l = moe.router %h, %wg3 : tensor<?x1024xf16>, tensor<128x1024xf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 4> : tensor<?x128xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x1024xf16>, tensor<?x1xi32> -> tensor<128x?x1024xf16>
      %e = moe.experts gelu %b up %w1_3 bias %b1_3 down %w2_3 bias %b2_3 : (tensor<128x?x1024xf16>, tensor<128x4096x1024xf16>, tensor<128x4096xf16>, tensor<128x1024x4096xf16>, tensor<128x1024xf16>) -> tensor<128x?x1024xf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<128x?x1024xf16>, tensor<?x1xi32>
      %m = moe.dense_ffn gelu %h up %d1_3 bias %db1_3 down %d2_3 bias %db2_3 : (tensor<?x1024xf16>, tensor<4096x1024xf16>, tensor<4096xf16>, tensor<1024x4096xf16>, tensor<1024xf16>) -> tensor<?x1024xf16>
      %r = moe.residual_mix %o, %m coefficient(%h, %wc3, %bc3 : tensor<?x1024xf16>, tensor<2x1024xf16>, tensor<2xf16>) : tensor<?x1024xf16>
      moe.yield %r : tensor<?x1024xf16>
    }
    return %y3 : tensor<?x1024xf16>
  }
}
