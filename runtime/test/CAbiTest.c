/*===- runtime/test/CAbiTest.c - The contract compiles and runs as C ----===*/

#include "runtime/moert.h"

#include <stdio.h>
#include <string.h>

/* A struct-configured decoder call and the greedy argmax, from C: rope at
   position 0 leaves a head unchanged; argmax of {1, 3, 3} is 1. */
static moert_status_t decoderCalls(moert_context_t ctx) {
  float x[4] = {1, 2, 3, 4}, logits[3] = {1, 3, 3};
  int32_t zero = 0, id = -1;
  moert_buffer_t buffer;
  moert_status_t status = moert_buffer_alloc(ctx, 64, &buffer);
  if (status != MOERT_OK)
    return status;
  moert_view_t xs = moert_make_view(buffer, 0, MOERT_F32),
               pos = moert_make_view(buffer, 4, MOERT_I32),
               scores = moert_make_view(buffer, 5, MOERT_F32),
               ids = moert_make_view(buffer, 8, MOERT_I32);
  moert_rope_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.type = MOERT_ROPE_DEFAULT;
  cfg.theta = 10000.0;
  cfg.factor = 1.0;
  cfg.attention_factor = 1.0;
  if ((status = moert_buffer_upload(ctx, xs, x, 4)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, pos, &zero, 1)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, scores, logits, 3)) == MOERT_OK &&
      (status = moert_rope(ctx, &cfg, xs, pos, 1, 1, 4)) == MOERT_OK &&
      (status = moert_argmax(ctx, scores, ids, 1, 3)) == MOERT_OK &&
      (status = moert_buffer_download(ctx, x, xs, 4)) == MOERT_OK &&
      (status = moert_buffer_download(ctx, &id, ids, 1)) == MOERT_OK &&
      (x[0] != 1 || x[3] != 4 || id != 1))
    status = MOERT_INTERNAL;
  moert_buffer_free(ctx, buffer);
  return status;
}

/* The PR-MoE GPT's norm calls from C: LayerNorm of {1, 2, 3, 4} (weight 1,
   no bias) is symmetric around 0; adding the bias {0, 0, 0, 10} moves the
   last element past 10. */
static moert_status_t gptCalls(moert_context_t ctx) {
  float x[4] = {1, 2, 3, 4}, ones[4] = {1, 1, 1, 1}, bias[4] = {0, 0, 0, 10};
  moert_buffer_t buffer;
  moert_status_t status = moert_buffer_alloc(ctx, 64, &buffer);
  if (status != MOERT_OK)
    return status;
  moert_view_t xs = moert_make_view(buffer, 0, MOERT_F32),
               w = moert_make_view(buffer, 4, MOERT_F32),
               b = moert_make_view(buffer, 8, MOERT_F32);
  if ((status = moert_buffer_upload(ctx, xs, x, 4)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, w, ones, 4)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, b, bias, 4)) == MOERT_OK &&
      (status = moert_layer_norm(ctx, xs, w, moert_absent_view(), xs, 1, 4,
                                 0.0f)) == MOERT_OK &&
      (status = moert_bias_add(ctx, xs, b, xs, 1, 4)) == MOERT_OK &&
      (status = moert_buffer_download(ctx, x, xs, 4)) == MOERT_OK &&
      (x[0] > -1.3f || x[0] < -1.4f || x[1] + x[2] > 1e-5f ||
       x[1] + x[2] < -1e-5f || x[3] < 11.3f || x[3] > 11.4f))
    status = MOERT_INTERNAL;
  moert_buffer_free(ctx, buffer);
  return status;
}

/* DeepSeek MLA's two calls from C: one token at position 0 attends to
   itself alone, so its output is W_UV . c with c the RMS-normalised latent:
   kv = {3, 4 | 5, 6} gives c = {3, 4} / sqrt(12.5); W_UV = {0, 1}. */
static moert_status_t latentCalls(moert_context_t ctx) {
  float kv[4] = {3, 4, 5, 6}, norm[2] = {1, 1}, q[3] = {1, 1, 0},
        kvB[4] = {1, 0, 0, 1}, out = 0;
  int32_t zero = 0;
  moert_buffer_t buffer;
  moert_status_t status = moert_buffer_alloc(ctx, 128, &buffer);
  if (status != MOERT_OK)
    return status;
  moert_view_t kvs = moert_make_view(buffer, 0, MOERT_F32),
               norms = moert_make_view(buffer, 4, MOERT_F32),
               qs = moert_make_view(buffer, 6, MOERT_F32),
               kvBs = moert_make_view(buffer, 9, MOERT_F32),
               cache = moert_make_view(buffer, 13, MOERT_F32),
               outs = moert_make_view(buffer, 17, MOERT_F32),
               zeros = moert_make_view(buffer, 18, MOERT_I32);
  moert_rope_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.type = MOERT_ROPE_DEFAULT;
  cfg.theta = 10000.0;
  cfg.factor = 1.0;
  cfg.attention_factor = 1.0;
  if ((status = moert_buffer_upload(ctx, kvs, kv, 4)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, norms, norm, 2)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, qs, q, 3)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, kvBs, kvB, 4)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, zeros, &zero, 1)) == MOERT_OK &&
      (status = moert_latent_append(ctx, &cfg, kvs, norms, cache, zeros, zeros,
                                    1, 2, 2, 1, 1, 0.0f)) == MOERT_OK &&
      (status = moert_latent_attention(ctx, &cfg, qs, kvBs, cache, zeros, zeros,
                                       outs, 1, 1, 1, 2, 1, 2, 1, 1, 0.5f)) ==
          MOERT_OK &&
      (status = moert_buffer_download(ctx, &out, outs, 1)) == MOERT_OK &&
      (out < 1.13136f || out > 1.13138f))
    status = MOERT_INTERNAL;
  moert_buffer_free(ctx, buffer);
  return status;
}

/* The quantized FFN descriptor from C: one expert, H = F = 1, fp8 weights
   1.0 (0x38) with scales 2, 3 and 0.5: out = 0.5 * silu(2x) * 3x at x = 1;
   then moert_quantized_experts_linear on the up weight alone. */
static moert_status_t quantizedCall(moert_context_t ctx) {
  uint8_t ones[3] = {0x38, 0x38, 0x38};
  float scales[3] = {2.0f, 3.0f, 0.5f}, x = 1.0f, y = 0.0f;
  moert_buffer_t buffer;
  moert_status_t status = moert_buffer_alloc(ctx, 64, &buffer);
  if (status != MOERT_OK)
    return status;
  moert_view_t data = moert_make_view(buffer, 0, MOERT_F8_E4M3),
               scale = moert_make_view(buffer, 1, MOERT_F32),
               in = moert_make_view(buffer, 4, MOERT_F32),
               out = moert_make_view(buffer, 5, MOERT_F32);
  moert_quantized_ffn_desc_t desc;
  memset(&desc, 0, sizeof desc);
  desc.format = MOERT_WEIGHTS_FP8_E4M3_BLOCK;
  desc.block_rows = 128;
  desc.block_cols = 128;
  desc.activation = MOERT_ACT_SILU;
  desc.hidden = 1;
  desc.ffn = 1;
  desc.gate.data = moert_make_view(buffer, 0, MOERT_F8_E4M3);
  desc.gate.scales = scale;
  desc.up.data = moert_make_view(buffer, 1, MOERT_F8_E4M3);
  desc.up.scales = moert_make_view(buffer, 2, MOERT_F32);
  desc.down.data = moert_make_view(buffer, 2, MOERT_F8_E4M3);
  desc.down.scales = moert_make_view(buffer, 3, MOERT_F32);
  /* data occupies bytes 0-2, the scales elements 1-3 (bytes 4-15). */
  float expected = 0.5f * (2.0f / (1.0f + 0.13533528f)) * 3.0f;
  if ((status = moert_buffer_upload(ctx, data, ones, 3)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, scale, scales, 3)) == MOERT_OK &&
      (status = moert_buffer_upload(ctx, in, &x, 1)) == MOERT_OK &&
      (status = moert_quantized_experts(
           ctx, &desc, in, out, moert_absent_view(), 1, 1, 1)) == MOERT_OK &&
      (status = moert_buffer_download(ctx, &y, out, 1)) == MOERT_OK &&
      (y < expected - 1e-5f || y > expected + 1e-5f))
    status = MOERT_INTERNAL;
  /* One quantized GEMM stage: y = x * 1.0 * 3 (the up weight). */
  if (status == MOERT_OK &&
      (status = moert_quantized_experts_linear(
           ctx, MOERT_WEIGHTS_FP8_E4M3_BLOCK, 128, 128, desc.up.data,
           desc.up.scales, in, out, moert_absent_view(), 1, 1, 1, 1, 1)) ==
          MOERT_OK &&
      (status = moert_buffer_download(ctx, &y, out, 1)) == MOERT_OK &&
      y != 3.0f)
    status = MOERT_INTERNAL;
  moert_buffer_free(ctx, buffer);
  return status;
}

static moert_status_t rankBody(moert_context_t ctx, void *user) {
  int32_t ranks[2] = {0, 1};
  moert_group_t group;
  moert_status_t status = moert_group_create(ctx, ranks, 2, &group);
  if (status != MOERT_OK)
    return status;
  int64_t value = moert_context_rank(ctx) + 1;
  status = moert_all_reduce_i64(ctx, group, MOERT_REDUCE_SUM, &value);
  moert_group_destroy(group);
  if (status == MOERT_OK && value != 3)
    status = MOERT_INTERNAL;
  if (status == MOERT_OK)
    status = decoderCalls(ctx);
  if (status == MOERT_OK)
    status = gptCalls(ctx);
  if (status == MOERT_OK)
    status = latentCalls(ctx);
  if (status == MOERT_OK)
    status = quantizedCall(ctx);
  (void)user;
  return status;
}

int main(void) {
  moert_world_desc_t desc = {MOERT_BACKEND_CPU, 1, 2, 10000};
  moert_world_t world;
  if (moert_world_create(&desc, &world) != MOERT_OK) {
    fprintf(stderr, "create: %s\n", moert_last_error());
    return 1;
  }
  if (moert_world_run(world, rankBody, NULL) != MOERT_OK) {
    fprintf(stderr, "run: %s\n", moert_last_error());
    return 1;
  }
  /* Errors come back as a status plus a message, never as an exception. */
  desc.nodes = 0;
  moert_world_t bad;
  if (moert_world_create(&desc, &bad) != MOERT_INVALID_ARGUMENT ||
      strstr(moert_last_error(), "mesh") == NULL) {
    fprintf(stderr, "expected a mesh error, got: %s\n", moert_last_error());
    return 1;
  }
  moert_world_destroy(world);
  printf("C ABI ok\n");
  return 0;
}
