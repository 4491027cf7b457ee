//===- CostModel.cpp - the parallel plan cost model -----------------------===//

#include "passes/Parallelism/CostModel.h"

#include "passes/Support/SaturatingSizes.h"
#include "runtime/common/Capacity.h"

#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

using namespace mlir::moe;
using namespace mlir::moe::cost;

static constexpr double kGiga = 1e9;
static constexpr double kTera = 1e12;

int64_t mlir::moe::cost::expectedCapacity(const LayerShape &layer,
                                          int64_t tokens) {
  if (layer.experts == 0)
    return 0;
  // Dropless: the mean count per expert (the real C is the largest count).
  if (layer.capacityFactor == 0)
    return moert::capacityFor(layer.topK, tokens, layer.experts, 1.0, 0);
  return moert::capacityFor(layer.topK, tokens, layer.experts,
                            layer.capacityFactor, layer.minCapacity);
}

/// Seconds of one exchange in which every rank sends `perPeer` bytes to each
/// of the other `group - 1` members, `local` of the group sharing its node.
static double exchangeSeconds(const Mesh &mesh, AllToAll variant, int64_t group,
                              double perPeer) {
  if (group <= 1)
    return 0;
  int64_t local = std::min(group, mesh.gpusPerNode);
  double intraBw = mesh.intraNodeGBps * kGiga;
  double interBw = mesh.interNodeGBps * kGiga;
  if (variant == AllToAll::flat || group == local) {
    // NVLink and the NIC run side by side.
    double intra = (local - 1) * perPeer / intraBw;
    double inter = (group - local) * perPeer / interBw;
    return (local - 1) * kIntraNodeLatencySeconds +
           (group - local) * kInterNodeLatencySeconds + std::max(intra, inter);
  }
  // Hierarchical (Tutel 2D): an intra-node exchange of whole node columns,
  // a local layout transform, then one message per other node.
  int64_t nodes = group / local;
  double stage1 = (local - 1) * kIntraNodeLatencySeconds +
                  (local - 1) * nodes * perPeer / intraBw;
  double transform = 2.0 * group * perPeer / (mesh.memoryGBps * kGiga);
  double stage2 = (nodes - 1) * kInterNodeLatencySeconds +
                  (nodes - 1) * local * perPeer / interBw;
  return stage1 + transform + stage2;
}

/// The product of sizes, saturating (mulSizes).
static int64_t mulAll(std::initializer_list<int64_t> factors) {
  int64_t result = 1;
  for (int64_t f : factors)
    result = mulSizes(result, f);
  return result;
}

/// Bytes of one [rows, cols] projection as the checkpoint stores it.
static int64_t matrixBytes(const LayerShape &layer, int64_t rows,
                           int64_t cols) {
  if (layer.quantBlockRows <= 0)
    return mulAll({rows, cols, layer.bytesPerElement});
  // One byte per element plus an f32 scale per block; mxfp4: two
  // elements a byte plus an e8m0 byte per block.
  int64_t blocks = mulSizes(llvm::divideCeil(rows, layer.quantBlockRows),
                            llvm::divideCeil(cols, layer.quantBlockCols));
  if (layer.quantMxfp4)
    return addSizes(llvm::divideCeil(mulAll({rows, cols}), 2), blocks);
  return addSizes(mulAll({rows, cols}), mulAll({blocks, 4}));
}

Estimate mlir::moe::cost::estimate(const LayerShape &layer, const Mesh &mesh,
                                   const Plan &plan, int64_t tokens) {
  Estimate e;
  const int64_t b = layer.bytesPerElement, h = layer.hidden;
  const int64_t group = plan.exchangeGroupSize();
  double bytesRead = 0;
  // Token share: the layer runs on this rank's share of the tokens.
  tokens = llvm::divideCeil(tokens, plan.tokenShare);

  if (layer.experts > 0) {
    e.capacity = expectedCapacity(layer, tokens);
    int64_t localExperts = layer.experts / plan.ep;
    int64_t sliceFfn = layer.expertFfn / plan.tp;
    int64_t projections = layer.expertGated ? 3 : 2;
    // gate/up [F, H], down [H, F].
    e.expertWeightBytes = mulAll(
        {localExperts,
         addSizes(mulAll({projections - 1, matrixBytes(layer, sliceFfn, h)}),
                  matrixBytes(layer, h, sliceFfn))});
    if (layer.expertBias)
      e.expertWeightBytes = addSizes(
          e.expertWeightBytes,
          mulAll({localExperts,
                  addSizes(mulAll({layer.expertGateBias ? 2 : 1, sliceFfn}), h),
                  b}));
    // Every member receives each expert shard's rows from every member.
    int64_t perPeer = mulAll({localExperts, e.capacity, h, b});
    e.allToAllBytes = group > 1 ? mulAll({group - 1, perPeer}) : 0;
    e.allToAllSeconds =
        2 * exchangeSeconds(mesh, plan.allToAll, group, perPeer);
    // Rows this rank's experts really compute: the group's choices for its
    // experts, at most the capacity from each member.
    double routed = static_cast<double>(group) * tokens * layer.topK / plan.ep;
    double padded = static_cast<double>(localExperts) * group * e.capacity;
    double rows = std::min(routed, padded);
    e.flops += 2.0 * projections * h * sliceFfn * rows;
    e.flops += 2.0 * tokens * layer.experts * h; // router
    // Dispatch buffer, received rows (in and out), combine output.
    e.activationBytes =
        mulAll({addSizes(mulAll({layer.experts, e.capacity, 2}),
                         mulAll({localExperts, group, e.capacity, 2})),
                h, b});
    bytesRead += e.expertWeightBytes + 2.0 * rows * h * b;
  }

  if (layer.denseFfn > 0) {
    int64_t projections = layer.denseGated ? 3 : 2;
    int64_t slice = layer.denseFfn / plan.tp;
    int64_t denseBytes =
        addSizes(mulAll({projections - 1, matrixBytes(layer, slice, h)}),
                 matrixBytes(layer, h, slice));
    if (layer.denseBias)
      denseBytes = addSizes(denseBytes, mulAll({addSizes(slice, h), b}));
    e.weightBytes = addSizes(e.weightBytes, denseBytes);
    // Tensor parallel: tokens are all-gathered, the sliced FFN sees tp * S
    // rows, the partial outputs are reduce-scattered.
    e.flops += 2.0 * projections * h * slice * plan.tp * tokens;
    bytesRead += denseBytes + 2.0 * plan.tp * tokens * h * b;
    if (plan.tp > 1) {
      double perPeer = static_cast<double>(tokens) * h * b;
      e.denseCommSeconds =
          2 * exchangeSeconds(mesh, AllToAll::flat, plan.tp, perPeer);
    }
    e.activationBytes = std::max(
        e.activationBytes, mulAll({2, plan.tp, tokens, std::max(slice, h), b}));
  }

  if (layer.attentionHeads > 0 && layer.latentRank > 0) {
    // Multi-head latent attention, absorbed for prefill and decode alike
    // (the lowering's form): per token the q and kv_a projections, q_nope
    // through W_UK, scores and the weighted sum over a context of `tokens`
    // latent rows (rank + rope wide), W_UV on the latent output, then o.
    // Heads split over tp; q_a and kv_a are whole on every rank.
    int64_t heads = layer.attentionHeads / plan.tp;
    int64_t nope = layer.headDim - layer.ropeDim, rank = layer.latentRank;
    int64_t qWidth = heads * layer.headDim;
    int64_t qElements =
        layer.qLoraRank > 0
            ? addSizes(mulAll({layer.qLoraRank, addSizes(h, 1)}),
                       mulAll({qWidth, layer.qLoraRank}))
            : mulAll({qWidth, h});
    int64_t kvAElements =
        addSizes(mulAll({addSizes(rank, layer.ropeDim), h}), rank);
    int64_t kvBElements = mulAll({heads, addSizes(nope, layer.vHeadDim), rank});
    int64_t oElements = mulAll({h, heads, layer.vHeadDim});
    int64_t attentionBytes = mulAll({addSizes(addSizes(qElements, kvAElements),
                                              addSizes(kvBElements, oElements)),
                                     b});
    e.weightBytes = addSizes(e.weightBytes, attentionBytes);
    double t = static_cast<double>(tokens);
    e.flops += 2.0 * t * (qElements + kvAElements + oElements) +
               2.0 * t * heads * (nope + layer.vHeadDim) * rank +
               2.0 * t * t * heads * (2 * rank + layer.ropeDim);
    e.kvCacheBytesPerToken = mulAll({addSizes(rank, layer.ropeDim), b});
    bytesRead += attentionBytes + 2.0 * tokens * h * b;
    if (plan.tp > 1) // reduce-scatter + all-gather
      e.denseCommSeconds += 2 * exchangeSeconds(mesh, AllToAll::flat, plan.tp,
                                                double(tokens) * h * b);
    e.activationBytes =
        std::max(e.activationBytes,
                 mulAll({tokens,
                         addSizes(addSizes(layer.qLoraRank, qWidth),
                                  addSizes(addSizes(rank, layer.ropeDim),
                                           heads * layer.vHeadDim)),
                         b}));
  } else if (layer.attentionHeads > 0) {
    // Heads split over tp, the group holding the same tokens: q/k/v rows and
    // o columns by heads, the partial outputs all-reduced. Scores and values
    // over a context of `tokens` (a prefill chunk).
    int64_t q = layer.attentionHeads * layer.headDim / plan.tp;
    int64_t kv = layer.attentionKvHeads * layer.headDim / plan.tp;
    int64_t attentionBytes = mulAll({2, addSizes(q, kv), h, b});
    e.weightBytes = addSizes(e.weightBytes, attentionBytes);
    e.flops += 4.0 * tokens * h * (q + kv) + 4.0 * tokens * tokens * q;
    e.kvCacheBytesPerToken = mulAll({2, kv, b});
    bytesRead += attentionBytes + 2.0 * tokens * h * b;
    if (plan.tp > 1) // reduce-scatter + all-gather
      e.denseCommSeconds += 2 * exchangeSeconds(mesh, AllToAll::flat, plan.tp,
                                                double(tokens) * h * b);
    e.activationBytes = std::max(
        e.activationBytes,
        mulAll({tokens, addSizes(mulAll({2, q}), mulAll({2, kv})), b}));
  }

  if (plan.tokenShare > 1) // the all-gather that restores the shares
    e.denseCommSeconds += exchangeSeconds(mesh, AllToAll::flat,
                                          plan.tokenShare,
                                          double(tokens) * h * b);
  e.weightBytes = addSizes(
      e.weightBytes, addSizes(e.expertWeightBytes, layer.replicatedBytes));
  bytesRead += layer.replicatedBytes;
  e.computeSeconds = std::max(e.flops / (mesh.peakTflops * kTera),
                              bytesRead / (mesh.memoryGBps * kGiga));
  e.seconds = e.allToAllSeconds + e.denseCommSeconds + e.computeSeconds;
  return e;
}

std::optional<std::string> mlir::moe::cost::checkPlan(const LayerShape &layer,
                                                      const Mesh &mesh,
                                                      const Plan &plan) {
  auto str = [](int64_t v) { return std::to_string(v); };
  if (mesh.ranks() % (plan.ep * plan.tp) != 0 ||
      plan.dp * plan.ep * plan.tp != mesh.ranks())
    return "ep " + str(plan.ep) + " x tp " + str(plan.tp) +
           " does not divide the " + str(mesh.ranks()) + " ranks of the " +
           str(mesh.nodes) + "x" + str(mesh.gpusPerNode) + " mesh";
  if (layer.experts > 0 && layer.experts % plan.ep != 0)
    return "ep " + str(plan.ep) + " does not divide the " + str(layer.experts) +
           " experts";
  if (layer.experts == 0 && plan.ep != 1)
    return "a dense layer has no experts to spread (ep " + str(plan.ep) + ")";
  if (layer.experts > 0 && layer.expertFfn % plan.tp != 0)
    return "tp " + str(plan.tp) + " does not divide the expert FFN width " +
           str(layer.expertFfn);
  if (layer.denseFfn > 0 && layer.denseFfn % plan.tp != 0)
    return "tp " + str(plan.tp) + " does not divide the dense FFN width " +
           str(layer.denseFfn);
  int64_t group = plan.exchangeGroupSize();
  if (group % mesh.gpusPerNode != 0 && mesh.gpusPerNode % group != 0)
    return "exchange groups of ep x tp = " + str(group) +
           " ranks do not align with nodes of " + str(mesh.gpusPerNode) +
           " GPUs";
  if (plan.allToAll == AllToAll::hierarchical && group <= mesh.gpusPerNode)
    return "a hierarchical all-to-all needs a group spanning nodes (group " +
           str(group) + ", " + str(mesh.gpusPerNode) + " GPUs per node)";
  return std::nullopt;
}

std::vector<Plan> mlir::moe::cost::candidatePlans(const LayerShape &layer,
                                                  const Mesh &mesh, int64_t ep,
                                                  std::optional<int64_t> tp) {
  std::vector<Plan> plans;
  int64_t ranks = mesh.ranks();
  if (ep < 1 || ranks % ep != 0)
    return plans;
  for (int64_t t = 1; t <= ranks / ep; ++t) {
    if ((ranks / ep) % t != 0 || (tp && *tp != t))
      continue;
    for (AllToAll variant : {AllToAll::flat, AllToAll::hierarchical}) {
      Plan plan{ranks / (ep * t), ep, t, variant};
      if (!checkPlan(layer, mesh, plan))
        plans.push_back(plan);
    }
  }
  return plans;
}

int64_t mlir::moe::cost::defaultTokens(Policy policy) {
  return policy == Policy::latency ? 8 : 4096;
}

int64_t mlir::moe::cost::memoryBytes(const std::vector<Estimate> &estimates) {
  int64_t weights = 0, activations = 0;
  for (const Estimate &e : estimates) {
    weights = addSizes(weights, e.weightBytes);
    activations = std::max(activations, e.activationBytes);
  }
  return addSizes(weights, activations);
}

static std::string gib(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB",
                static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

PlanChoice mlir::moe::cost::choosePlans(const std::vector<LayerShape> &layers,
                                        const Mesh &mesh, Policy policy,
                                        int64_t tokens,
                                        const PlanConstraints &constraints) {
  PlanChoice choice;
  std::vector<std::vector<Plan>> options(layers.size());
  std::vector<std::vector<Estimate>> optionCosts(layers.size());
  std::vector<size_t> picked(layers.size());

  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerShape &layer = layers[i];
    // DeepSpeed-MoE: as many expert-parallel ranks as experts, up to the
    // mesh (the largest such degree dividing both when min(E, N) does not);
    // a dense layer has no experts to spread.
    int64_t ep =
        layer.experts == 0
            ? 1
            : constraints.ep.value_or(std::gcd(layer.experts, mesh.ranks()));
    if (mesh.ranks() % ep != 0 ||
        (layer.experts > 0 && layer.experts % ep != 0)) {
      choice.failedLayer = i;
      choice.error = "ep " + std::to_string(ep) + " must divide both the " +
                     std::to_string(layer.experts) + " experts and the " +
                     std::to_string(mesh.ranks()) + " ranks of the " +
                     std::to_string(mesh.nodes) + "x" +
                     std::to_string(mesh.gpusPerNode) + " mesh";
      return choice;
    }
    for (const Plan &plan : candidatePlans(layer, mesh, ep, constraints.tp))
      if (!constraints.allToAll || plan.allToAll == *constraints.allToAll ||
          plan.exchangeGroupSize() <= mesh.gpusPerNode)
        options[i].push_back(plan);
    if (options[i].empty()) {
      // Explain with the plan the user asked for, or the plainest one.
      Plan wanted{std::max<int64_t>(
                      mesh.ranks() / (ep * constraints.tp.value_or(1)), 1),
                  ep, constraints.tp.value_or(1),
                  constraints.allToAll.value_or(AllToAll::flat)};
      choice.failedLayer = i;
      choice.error = checkPlan(layer, mesh, wanted)
                         .value_or("no plan with ep " + std::to_string(ep) +
                                   " fits this mesh");
      return choice;
    }
    for (const Plan &plan : options[i])
      optionCosts[i].push_back(estimate(layer, mesh, plan, tokens));

    // Fastest first; ties by the policy's preference.
    auto better = [&](size_t a, size_t b) {
      const Estimate &ea = optionCosts[i][a], &eb = optionCosts[i][b];
      if (ea.seconds != eb.seconds)
        return ea.seconds < eb.seconds;
      return policy == Policy::latency ? options[i][a].tp > options[i][b].tp
                                       : options[i][a].tp < options[i][b].tp;
    };
    size_t best = 0;
    for (size_t o = 1; o < options[i].size(); ++o)
      if (better(o, best))
        best = o;
    picked[i] = best;
  }

  auto current = [&] {
    std::vector<Estimate> estimates;
    for (size_t i = 0; i < layers.size(); ++i)
      estimates.push_back(optionCosts[i][picked[i]]);
    return estimates;
  };

  // Trade time for memory until the model fits.
  while (memoryBytes(current()) > mesh.memoryBytes) {
    double bestRatio = 0;
    std::optional<std::pair<size_t, size_t>> move;
    for (size_t i = 0; i < layers.size(); ++i) {
      const Estimate &now = optionCosts[i][picked[i]];
      for (size_t o = 0; o < options[i].size(); ++o) {
        const Estimate &alt = optionCosts[i][o];
        int64_t saved = now.weightBytes - alt.weightBytes;
        if (saved <= 0)
          continue;
        double ratio = saved / std::max(alt.seconds - now.seconds, 1e-12);
        if (!move || ratio > bestRatio) {
          bestRatio = ratio;
          move = {i, o};
        }
      }
    }
    if (!move)
      break;
    picked[move->first] = move->second;
  }

  choice.estimates = current();
  choice.memoryBytes = memoryBytes(choice.estimates);
  if (choice.memoryBytes > mesh.memoryBytes) {
    size_t largest = 0;
    for (size_t i = 1; i < layers.size(); ++i)
      if (choice.estimates[i].weightBytes >
          choice.estimates[largest].weightBytes)
        largest = i;
    const Plan &plan = options[largest][picked[largest]];
    choice.failedLayer = largest;
    choice.error =
        "the model needs " + gib(choice.memoryBytes) +
        " per rank at its most memory-saving plans but a device has " +
        gib(mesh.memoryBytes) + "; this layer alone holds " +
        gib(choice.estimates[largest].weightBytes) +
        " of weights per rank (ep " + std::to_string(plan.ep) + ", tp " +
        std::to_string(plan.tp) + ")";
    return choice;
  }
  for (size_t i = 0; i < layers.size(); ++i)
    choice.plans.push_back(options[i][picked[i]]);
  return choice;
}
