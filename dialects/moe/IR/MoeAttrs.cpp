//===- MoeAttrs.cpp - moe attribute verification --------------------------===//

#include "dialects/moe/IR/MoeDialect.h"

#include "runtime/common/Capacity.h"
#include "runtime/moert.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::printShortestDouble(AsmPrinter &printer, const APFloat &value) {
  double v = value.convertToDouble();
  char text[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, v);
    if (std::strtod(text, nullptr) == v)
      break;
  }
  std::string literal(text);
  // The MLIR lexer reads `1e-20` as an integer and an identifier.
  if (literal.find_first_of(".ein") == std::string::npos)
    literal += ".0";
  else if (literal.find('.') == std::string::npos &&
           literal.find('e') != std::string::npos)
    literal.insert(literal.find('e'), ".0");
  printer << literal;
}

// Rules that need only the policy. The expert-count rules live in GateOp.
LogicalResult RoutingAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, ScoringFunc scoring,
    int64_t topK, int64_t nGroup, int64_t topkGroup, GroupScore groupScore,
    Normalization normalize, APFloat normEpsilonValue,
    APFloat routedScalingFactorValue, APFloat capacityFactorValue,
    int64_t minCapacity, DropOrder dropOrder, APFloat normPValue,
    APFloat jitterEpsValue, WeightSite weights) {
  double normP = normPValue.convertToDouble();
  double jitterEps = jitterEpsValue.convertToDouble();
  double normEpsilon = normEpsilonValue.convertToDouble();
  double routedScalingFactor = routedScalingFactorValue.convertToDouble();
  double capacityFactor = capacityFactorValue.convertToDouble();
  if (topK < 1)
    return emitError() << "top_k must be at least 1, got " << topK;
  if (nGroup < 1)
    return emitError() << "n_group must be at least 1, got " << nGroup;
  if (topkGroup < 1 || topkGroup > nGroup)
    return emitError() << "topk_group must be in [1, n_group = " << nGroup
                       << "], got " << topkGroup;
  if (groupScore != GroupScore::max && nGroup == 1)
    return emitError() << "group_score = " << stringifyGroupScore(groupScore)
                       << " needs group-limited routing (n_group > 1)";
  if (!std::isfinite(normEpsilon) || normEpsilon < 0.0)
    return emitError() << "norm_epsilon must be finite and >= 0, got "
                       << normEpsilon;
  if (normEpsilon != 0.0 && normalize != Normalization::selected &&
      normalize != Normalization::selected_clamped)
    return emitError() << "norm_epsilon applies only to normalize = selected "
                          "or selected_clamped";
  // The floor of the divisor: 0 would make it plain `selected`.
  if (normalize == Normalization::selected_clamped && normEpsilon == 0.0)
    return emitError() << "normalize = selected_clamped needs norm_epsilon > 0 "
                          "(the floor of the sum); use normalize = selected";
  if (!std::isfinite(normP) || normP <= 0.0)
    return emitError() << "norm_p must be finite and > 0, got " << normP;
  if (normP != 1.0 && normalize != Normalization::pnorm)
    return emitError() << "norm_p applies only to normalize = pnorm";
  // The 1-norm of positive weights is their sum: one spelling for it.
  if (normalize == Normalization::pnorm && normP == 1.0)
    return emitError() << "normalize = pnorm with norm_p = 1 is the sum of "
                          "the weights; use normalize = selected";
  if (!std::isfinite(jitterEps) || jitterEps < 0.0)
    return emitError() << "jitter_eps must be finite and >= 0, got "
                       << jitterEps;
  if (jitterEps != 0.0 && scoring != ScoringFunc::sparsemixer)
    return emitError() << "jitter_eps applies only to scoring = sparsemixer";
  // sparsemixer is defined for two choices, ungrouped, and its weights are
  // final (each its own softmax): nothing divides them again.
  if (scoring == ScoringFunc::sparsemixer && topK != 2)
    return emitError() << "scoring = sparsemixer picks exactly 2 experts, "
                          "got top_k = "
                       << topK;
  if (scoring == ScoringFunc::sparsemixer && nGroup != 1)
    return emitError() << "scoring = sparsemixer does not take group-limited "
                          "routing (n_group = "
                       << nGroup << ")";
  if (scoring == ScoringFunc::sparsemixer && normalize != Normalization::none)
    return emitError() << "scoring = sparsemixer computes final weights; "
                          "normalize must be none, got "
                       << stringifyNormalization(normalize);
  // Scaling an expert's input is not scaling its output (the expert is
  // nonlinear), so every policy has to match a model trained that way: the
  // one reference is Llama 4's router (sigmoid of each selected logit, no
  // normalisation). Other combinations would have nothing to match.
  if (weights == WeightSite::input && scoring != ScoringFunc::sigmoid)
    return emitError() << "weights = input needs scoring = sigmoid (Llama 4's "
                          "router), got scoring = "
                       << stringifyScoringFunc(scoring);
  if (weights == WeightSite::input && normalize != Normalization::none)
    return emitError() << "weights = input takes each choice's own score; "
                          "normalize must be none, got "
                       << stringifyNormalization(normalize);
  if (!std::isfinite(routedScalingFactor) || routedScalingFactor <= 0.0)
    return emitError() << "routed_scaling_factor must be finite and > 0, got "
                       << routedScalingFactor;
  if (!std::isfinite(capacityFactor) || capacityFactor < 0.0)
    return emitError() << "capacity_factor must be finite and >= 0 (0 is "
                          "dropless), got "
                       << capacityFactor;
  if (minCapacity < 0)
    return emitError() << "min_capacity must be >= 0, got " << minCapacity;
  bool dropless = capacityFactor == 0.0;
  if (dropless && minCapacity != 0)
    return emitError() << "min_capacity needs a capacity (capacity_factor > 0)";
  if (dropless && dropOrder != DropOrder::choice_major)
    return emitError() << "drop_order needs a capacity (capacity_factor > 0)";
  if (dropless && normalize == Normalization::kept)
    return emitError() << "normalize = kept needs a capacity (capacity_factor "
                          "> 0); use normalize = selected when dropless";
  return success();
}

int64_t RoutingAttr::getCapacity(int64_t tokens, int64_t experts) const {
  assert(!isDropless() && "dropless routing has a data-dependent capacity");
  double factor = getCapacityFactor().convertToDouble();
  // capacityFor's conversion to int64 is undefined past 2^63: saturate
  // (far beyond any buffer the lowering accepts).
  constexpr int64_t kSaturated = int64_t(1) << 62;
  if (static_cast<double>(getTopK()) * static_cast<double>(tokens) /
          static_cast<double>(experts) * factor >=
      static_cast<double>(kSaturated))
    return kSaturated;
  return moert::capacityFor(getTopK(), tokens, experts, factor,
                            getMinCapacity());
}

llvm::Expected<MeshShape> MeshShape::parse(StringRef text) {
  MeshShape shape;
  auto [nodes, gpus] = text.split('x');
  if (nodes.getAsInteger(10, shape.nodes) ||
      gpus.getAsInteger(10, shape.gpusPerNode) || shape.nodes < 1 ||
      shape.gpusPerNode < 1)
    return llvm::createStringError("mesh option '" + text +
                                   "' is not NODESxGPUS, e.g. 2x8");
  return shape;
}

std::string MeshShape::str() const {
  return std::to_string(nodes) + "x" + std::to_string(gpusPerNode);
}

LogicalResult MeshAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t nodes, int64_t gpusPerNode,
                               int64_t memoryBytes, APFloat memoryGbps,
                               APFloat peakTflops, APFloat intraNodeGbps,
                               APFloat interNodeGbps) {
  if (nodes < 1 || gpusPerNode < 1)
    return emitError() << "mesh must have at least one node and one GPU per "
                          "node, got "
                       << MeshShape{nodes, gpusPerNode}.str();
  if (memoryBytes < 1)
    return emitError() << "memory_bytes must be positive, got " << memoryBytes;
  for (auto [name, value] :
       {std::pair<StringRef, APFloat>{"memory_gbps", memoryGbps},
        {"peak_tflops", peakTflops},
        {"intra_node_gbps", intraNodeGbps},
        {"inter_node_gbps", interNodeGbps}}) {
    double v = value.convertToDouble();
    if (!std::isfinite(v) || v <= 0.0)
      return emitError() << name << " must be finite and positive, got " << v;
  }
  return success();
}

LogicalResult
FusedViewAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      ArrayRef<int64_t> shape, int64_t offset,
                      int64_t expertStride, ArrayRef<int64_t> strides) {
  if (shape.empty() || shape.size() > 4)
    return emitError() << "fused tensor has 1 to 4 dimensions, got "
                       << shape.size();
  if (strides.empty() || strides.size() > 4)
    return emitError() << "a fused view has 1 to 4 strides, got "
                       << strides.size();
  if (llvm::any_of(shape, [](int64_t d) { return d <= 0; }))
    return emitError() << "fused tensor extents must be positive";
  if (offset < 0 || expertStride < 0 ||
      llvm::any_of(strides, [](int64_t s) { return s < 0; }))
    return emitError() << "fused view offset and strides must be non-negative";
  return success();
}

bool FusedViewAttr::fits(int64_t experts, ArrayRef<int64_t> extents) const {
  if (experts < 1 || extents.size() != getStrides().size())
    return false;
  int64_t elements = 1, last = getOffset(), term = 0;
  for (int64_t d : getShape())
    if (__builtin_mul_overflow(elements, d, &elements))
      return false;
  if (__builtin_mul_overflow(experts - 1, getExpertStride(), &term) ||
      __builtin_add_overflow(last, term, &last))
    return false;
  for (auto [extent, stride] : llvm::zip(extents, getStrides()))
    if (extent < 1 || __builtin_mul_overflow(extent - 1, stride, &term) ||
        __builtin_add_overflow(last, term, &last))
      return false;
  return last < elements;
}

LogicalResult PlanAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t dp, int64_t ep, int64_t tp,
                               AllToAllVariant) {
  if (dp < 1 || ep < 1 || tp < 1)
    return emitError() << "plan degrees must be at least 1, got dp = " << dp
                       << ", ep = " << ep << ", tp = " << tp;
  return success();
}

int64_t PlanAttr::getDegree(ShardAxis axis) const {
  return axis == ShardAxis::ep ? getEp() : axis == ShardAxis::tp ? getTp() : 1;
}

// rank = (d * ep + e) * tp + t.
int64_t PlanAttr::getRankStride(ShardAxis axis) const {
  return axis == ShardAxis::ep ? getTp() : 1;
}

SmallVector<SmallVector<int64_t>> PlanAttr::getExchangeGroups() const {
  SmallVector<SmallVector<int64_t>> groups;
  int64_t size = getEp() * getTp();
  for (int64_t d = 0; d < getDp(); ++d) {
    SmallVector<int64_t> &group = groups.emplace_back();
    for (int64_t r = 0; r < size; ++r)
      group.push_back(d * size + r);
  }
  return groups;
}

LogicalResult RopeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               RopeType type, APFloat theta, APFloat factor,
                               APFloat lowFreqFactor, APFloat highFreqFactor,
                               int64_t originalMaxPosition, APFloat betaFast,
                               APFloat betaSlow, APFloat attentionFactor,
                               bool truncate, DenseF64ArrayAttr shortFactors,
                               DenseF64ArrayAttr longFactors,
                               APFloat shortMscale, APFloat longMscale,
                               int64_t rotaryDim, bool interleaved) {
  auto positive = [](const APFloat &v) {
    double d = v.convertToDouble();
    return std::isfinite(d) && d > 0.0;
  };
  if (!positive(theta))
    return emitError() << "rope theta must be finite and > 0";
  if (rotaryDim < 0 || rotaryDim % 2 != 0)
    return emitError() << "rope rotary_dim must be even and >= 0 (0: the "
                          "whole head), got "
                       << rotaryDim;
  if (!positive(factor) || !positive(attentionFactor))
    return emitError() << "rope factor and attention_factor must be finite "
                          "and > 0";
  if (type == RopeType::llama3 &&
      (originalMaxPosition < 1 || !positive(lowFreqFactor) ||
       !(highFreqFactor.convertToDouble() > lowFreqFactor.convertToDouble())))
    return emitError() << "llama3 rope needs original_max_position >= 1 and "
                          "high_freq_factor > low_freq_factor > 0";
  if (type == RopeType::yarn &&
      (originalMaxPosition < 1 || !positive(betaFast) || !positive(betaSlow)))
    return emitError() << "yarn rope needs original_max_position >= 1 and "
                          "beta_fast, beta_slow > 0";
  ArrayRef<double> shortFactor =
      shortFactors ? shortFactors.asArrayRef() : ArrayRef<double>();
  ArrayRef<double> longFactor =
      longFactors ? longFactors.asArrayRef() : ArrayRef<double>();
  if (type != RopeType::longrope) {
    if (!shortFactor.empty() || !longFactor.empty())
      return emitError() << "short_factor and long_factor belong to "
                            "longrope only";
    return success();
  }
  if (originalMaxPosition < 1 || shortFactor.empty() ||
      shortFactor.size() != longFactor.size() ||
      shortFactor.size() > MOERT_ROPE_MAX_FACTORS)
    return emitError() << "longrope needs original_max_position >= 1 and "
                          "short_factor, long_factor of one length in [1, "
                       << MOERT_ROPE_MAX_FACTORS << "]";
  auto positiveValue = [](double d) { return std::isfinite(d) && d > 0.0; };
  if (!llvm::all_of(shortFactor, positiveValue) ||
      !llvm::all_of(longFactor, positiveValue) || !positive(shortMscale) ||
      !positive(longMscale))
    return emitError() << "longrope factors and mscales must be finite "
                          "and > 0";
  return success();
}
