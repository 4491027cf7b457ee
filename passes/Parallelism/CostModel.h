//===- CostModel.h - the parallel plan cost model ---------------*- C++ -*-===//
//
// The one place that prices a layer's parallel plan: bytes each all-to-all
// moves per rank, expert and dense weight bytes per rank, GEMM flops per rank,
// and the time these take on the mesh. Plain C++ (no MLIR) so that it can be
// unit-tested against hand-computed numbers and reused by the runtime tools.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_PARALLELISM_COSTMODEL_H
#define MOE_PASSES_PARALLELISM_COSTMODEL_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moe::cost {

/// Per-message start-up cost of a collective step, inside a node (NVLink)
/// and across nodes (NIC): what makes many small messages expensive and the
/// hierarchical all-to-all worth its extra intra-node pass.
inline constexpr double kIntraNodeLatencySeconds = 3e-6;
inline constexpr double kInterNodeLatencySeconds = 10e-6;

struct Mesh {
  int64_t nodes = 1;
  int64_t gpusPerNode = 1;
  int64_t memoryBytes = 0;
  double memoryGBps = 0;    // device memory bandwidth
  double peakTflops = 0;    // dense GEMM peak
  double intraNodeGBps = 0; // per GPU, per direction
  double interNodeGBps = 0; // per GPU, per direction
  int64_t ranks() const { return nodes * gpusPerNode; }
};

enum class AllToAll { flat, hierarchical };

/// What the cost model needs to know about one layer.
struct LayerShape {
  int64_t hidden = 0;
  int64_t bytesPerElement = 2;
  // Routed experts; experts == 0 for a dense layer.
  int64_t experts = 0;
  int64_t topK = 0;
  double capacityFactor = 0; // 0: dropless, priced as balanced routing
  int64_t minCapacity = 0;
  int64_t expertFfn = 0;
  bool expertGated = true;
  bool expertBias = false;
  // A gate bias [F] besides the up bias (gpt-oss's gated experts).
  bool expertGateBias = false;
  // Dense MLPs of the layer (dense layer, PR-MoE residual MLP, shared
  // experts), summed: their widths add up and they see every token.
  int64_t denseFfn = 0;
  bool denseGated = true;
  bool denseBias = false;
  // Attention (a decoder layer's attention block): heads, kv heads, head
  // dim; 0 heads for none. Its q/k/v/o projections are split by heads over
  // tp; its norms and the LM head are not priced.
  int64_t attentionHeads = 0, attentionKvHeads = 0, headDim = 0;
  // Multi-head latent attention (DeepSeek) when latentRank > 0: headDim is
  // the query/key width (nope + rope), q low rank when qLoraRank > 0, kv_a
  // [latentRank + ropeDim, H], kv_b [heads * (nope + vHeadDim), latentRank],
  // o [H, heads * vHeadDim]; the cache holds latentRank + ropeDim values per
  // position whatever the heads.
  int64_t qLoraRank = 0, latentRank = 0, ropeDim = 0, vHeadDim = 0;
  // Router weights and the residual coefficient, replicated on every rank.
  int64_t replicatedBytes = 0;
  // > 0: the expert and dense projections are fp8 (1 byte) with one f32
  // scale per quantBlockRows x quantBlockCols block (moe.weight_quantization),
  // or with quantMxfp4 half a byte with one byte per 1 x 32 block.
  int64_t quantBlockRows = 0, quantBlockCols = 0;
  bool quantMxfp4 = false;
};

struct Plan {
  int64_t dp = 1, ep = 1, tp = 1;
  AllToAll allToAll = AllToAll::flat;
  // Duplicate-token dropping (DeepSpeed-TED): groups of this many ranks hold
  // the same tokens (tensor-parallel attention before the layer); each runs
  // the layer on its 1/tokenShare of them and an all-gather restores them.
  int64_t tokenShare = 1;
  int64_t exchangeGroupSize() const { return ep * tp; }
};

struct Estimate {
  int64_t capacity = 0;          // rows per expert buffer on each rank
  int64_t allToAllBytes = 0;     // bytes one rank sends in one exchange
  int64_t expertWeightBytes = 0; // per rank
  int64_t weightBytes = 0;       // all weights of the layer, per rank
  int64_t activationBytes = 0;   // the layer's largest live buffers, per rank
  double flops = 0;              // per rank
  double allToAllSeconds = 0;    // both exchanges
  double denseCommSeconds = 0;   // dense TP's all-gather + reduce-scatter,
                                 // tensor-parallel attention's all-reduce,
                                 // the token-share all-gather
  int64_t kvCacheBytesPerToken = 0; // per rank, keys and values of a position
                                    // (MLA: its latent and k_pe)
  double computeSeconds = 0;     // roofline of GEMM flops vs bytes read
  double seconds = 0;
};

/// rows per expert buffer for `tokens` local tokens: max(min_capacity,
/// ceil(k * S / E * cf)); dropless routing is priced as perfectly balanced.
int64_t expectedCapacity(const LayerShape &layer, int64_t tokens);

/// Prices `plan` for `layer` with `tokens` tokens per rank per step.
Estimate estimate(const LayerShape &layer, const Mesh &mesh, const Plan &plan,
                  int64_t tokens);

/// Why a plan is not valid for a layer on a mesh, or nothing if it is.
std::optional<std::string> checkPlan(const LayerShape &layer, const Mesh &mesh,
                                     const Plan &plan);

/// The candidate plans: ep = `ep` (DeepSpeed-MoE: min(experts, ranks), or
/// gcd(experts, ranks) when that does not divide both, unless forced), every tp
/// dividing the remaining ranks and the FFN widths whose exchange groups align
/// with nodes (or only `tp` when forced), dp for the rest, and the hierarchical
/// all-to-all when a group spans nodes.
std::vector<Plan> candidatePlans(const LayerShape &layer, const Mesh &mesh,
                                 int64_t ep, std::optional<int64_t> tp);

enum class Policy { latency, throughput };

/// Tokens per rank per step a policy prices when the user names none: a
/// decode step for latency, a prefill chunk for throughput.
int64_t defaultTokens(Policy policy);

/// User constraints on the plans; unset fields are the cost model's choice.
struct PlanConstraints {
  std::optional<int64_t> ep, tp;
  std::optional<AllToAll> allToAll;
};

/// The chosen plans of a model, one per layer, or why there is none.
struct PlanChoice {
  std::vector<Plan> plans;
  std::vector<Estimate> estimates;
  // Set when no plan fits: the layer at fault (index into the layers) and a
  // message with the numbers.
  std::optional<size_t> failedLayer;
  std::string error;
  int64_t memoryBytes = 0; // weights of all layers + the largest activations
};

/// Picks each layer's plan: among its candidates the fastest for `policy`
/// (ties: latency prefers slicing, throughput replication), then, while the
/// model does not fit in device memory, trades time for memory on the layer
/// where that costs the least time per byte saved.
PlanChoice choosePlans(const std::vector<LayerShape> &layers, const Mesh &mesh,
                       Policy policy, int64_t tokens,
                       const PlanConstraints &constraints);

/// Bytes per rank of a set of plans: all weights plus the largest layer's
/// activations.
int64_t memoryBytes(const std::vector<Estimate> &estimates);

} // namespace mlir::moe::cost

#endif // MOE_PASSES_PARALLELISM_COSTMODEL_H
