//===- MoeTypes.td - moe dialect types ---------------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOETYPES_TD
#define MOE_DIALECT_MOE_IR_MOETYPES_TD

include "dialects/moe/IR/MoeBase.td"

def Moe_KvCacheType : TypeDef<Moe_Dialect, "KvCache"> {
  let mnemonic = "kv_cache";
  let summary = "one attention layer's key/value cache, as explicit state";
  let description = [{
    The keys and values an attention op appends to and reads back, for
    `kv_heads` heads of `head_dim` elements of `element_type`. It is a handle
    to state, not a tensor: the model function takes one per attention layer
    as an argument and `moe.attention` reads and writes it (declared memory
    effects, so nothing reorders or merges two steps' attention). How many
    sequences and positions it holds is a deployment choice, planned by the
    lowering per rank (`max-batch` x `max-seq`), not part of the model.

    ```mlir
    %cache: !moe.kv_cache<2, 16, f32>
    ```
  }];
  let parameters = (ins "int64_t":$kv_heads, "int64_t":$head_dim,
                        "::mlir::Type":$element_type);
  let assemblyFormat = "`<` $kv_heads `,` $head_dim `,` $element_type `>`";
  let genVerifyDecl = 1;
}

def Moe_LatentCacheType : TypeDef<Moe_Dialect, "LatentCache"> {
  let mnemonic = "latent_cache";
  let summary = "one latent attention layer's compressed KV cache, as "
                "explicit state";
  let description = [{
    What DeepSeek's multi-head latent attention keeps per position: the
    compressed KV `c` (`rank` = kv_lora_rank values, RMS-normalised) and the
    rotated key `k_pe` shared by every head (`rope_dim` values), not the
    per-head keys and values (docs/Dialects/MoeRationale.md, "Multi-head
    latent attention"). State like `!moe.kv_cache`: a model argument per
    layer that `moe.latent_attention` reads and writes, its sequences and
    positions planned by the lowering per rank.

    ```mlir
    %cache: !moe.latent_cache<16, 8, f32>
    ```
  }];
  let parameters = (ins "int64_t":$rank, "int64_t":$rope_dim,
                        "::mlir::Type":$element_type);
  let assemblyFormat = "`<` $rank `,` $rope_dim `,` $element_type `>`";
  let genVerifyDecl = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOETYPES_TD
