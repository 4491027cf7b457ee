//===- PlanReport.cpp - the plan as a table, JSON or a picture ------------===//

#include "passes/Parallelism/PlanReport.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <algorithm>
#include <cstdio>
#include <map>

using namespace mlir::moe;

std::string mlir::moe::humanBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return llvm::formatv("{0:F1} {1}", bytes, units[unit]);
}

/// The capacity a row shows: none when every choice is kept.
static bool hasCapacity(const PlanRow &row) {
  return row.experts > 0 && !row.dropless;
}

/// 3350, 0.5: no trailing zeros.
static std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

/// What the estimates assume, said where the times are printed.
static std::string modelledDevice(const PlanSummary &plan) {
  return llvm::formatv(
      "modelled on {0} GPU(s) of {1}, {2} GB/s, {3} TFLOP/s; {4} GB/s "
      "within a node, {5} GB/s across nodes (per GPU)",
      plan.nodes * plan.gpusPerNode, humanBytes(plan.deviceMemoryBytes),
      number(plan.memoryGbps), number(plan.peakTflops),
      number(plan.intraNodeGbps), number(plan.interNodeGbps));
}

std::string mlir::moe::formatPlanTable(const PlanSummary &plan) {
  bool capacity = llvm::any_of(plan.rows, hasCapacity);
  std::string table;
  llvm::raw_string_ostream os(table);
  os << llvm::formatv("moe plan: mesh {0}x{1}, {2} policy, {3} tokens per "
                      "rank per step\n",
                      plan.nodes, plan.gpusPerNode, plan.policy, plan.tokens);
  os << llvm::formatv("{0,5} {1,-8} {2,7} {3,5} {4,4} {5,4} {6,4} {7,-12} ",
                      "layer", "kind", "experts", "/rank", "ep", "tp", "dp",
                      "all_to_all");
  if (capacity)
    os << llvm::formatv("{0,8} ", "capacity");
  os << llvm::formatv("{0,12} {1,12} {2,10}\n", "a2a/rank", "weights/rank",
                      "est. us");
  double total = 0;
  for (const PlanRow &row : plan.rows) {
    const cost::Estimate &e = row.estimate;
    total += e.seconds;
    os << llvm::formatv("{0,5} {1,-8} {2,7} {3,5} {4,4} {5,4} {6,4} {7,-12} ",
                        row.layer, row.kind, row.experts, row.experts / row.ep,
                        row.ep, row.tp, row.dp, row.allToAll);
    if (capacity)
      os << llvm::formatv("{0,8} ", hasCapacity(row)
                                        ? std::to_string(e.capacity)
                                        : std::string("-"));
    os << llvm::formatv("{0,12} {1,12} {2,10:F1}\n",
                        humanBytes(e.allToAllBytes), humanBytes(e.weightBytes),
                        e.seconds * 1e6);
  }
  os << llvm::formatv("total: {0:F1} us per step, {1} per rank of {2}\n",
                      total * 1e6, humanBytes(plan.memoryBytes),
                      humanBytes(plan.deviceMemoryBytes));
  std::vector<int64_t> shared;
  int64_t sent = 0, unshared = 0, share = 1;
  for (const PlanRow &row : plan.rows)
    if (row.tokenShare > 1) {
      shared.push_back(row.layer);
      sent += row.estimate.allToAllBytes;
      unshared += row.unsharedAllToAllBytes;
      share = row.tokenShare;
    }
  if (!shared.empty())
    os << llvm::formatv(
        "duplicate tokens dropped (DeepSpeed-TED): MoE layers {0} run on 1/{1} "
        "of their attention tp group's tokens; a2a/rank {2} instead of {3}\n",
        llvm::join(llvm::map_range(shared,
                                   [](int64_t l) { return std::to_string(l); }),
                   ","),
        share, humanBytes(sent), humanBytes(unshared));
  os << "est. us: " << modelledDevice(plan) << "\n";
  return table;
}

/// Everything of a row but its layer index.
static llvm::json::Object planJson(const PlanRow &row) {
  const cost::Estimate &e = row.estimate;
  llvm::json::Array groups;
  for (const std::vector<int64_t> &group : row.exchangeGroups)
    groups.push_back(llvm::json::Array(group));
  llvm::json::Object object{{"kind", row.kind},
                            {"experts", row.experts},
                            {"experts_per_rank", row.experts / row.ep},
                            {"ep", row.ep},
                            {"tp", row.tp},
                            {"dp", row.dp},
                            {"all_to_all", row.allToAll},
                            {"exchange_groups", std::move(groups)},
                            {"all_to_all_bytes", e.allToAllBytes},
                            {"weight_bytes", e.weightBytes},
                            {"activation_bytes", e.activationBytes},
                            {"flops", e.flops},
                            {"seconds", e.seconds}};
  if (hasCapacity(row))
    object["capacity"] = e.capacity;
  if (row.tokenShare > 1) {
    object["token_share"] = row.tokenShare;
    object["unshared_all_to_all_bytes"] = row.unsharedAllToAllBytes;
  }
  return object;
}

void mlir::moe::printPlanJson(const PlanSummary &plan, llvm::raw_ostream &os) {
  // Distinct plans in order of first use; the key is the object's text.
  std::vector<std::pair<std::string, std::vector<int64_t>>> plans;
  std::map<std::string, size_t> index;
  for (const PlanRow &row : plan.rows) {
    std::string text =
        llvm::formatv("{0}", llvm::json::Value(planJson(row))).str();
    auto [it, inserted] = index.try_emplace(text, plans.size());
    if (inserted)
      plans.emplace_back(text, std::vector<int64_t>{});
    plans[it->second].second.push_back(row.layer);
  }
  llvm::json::Object device{{"memory_bytes", plan.deviceMemoryBytes},
                            {"memory_gbps", plan.memoryGbps},
                            {"peak_tflops", plan.peakTflops},
                            {"intra_node_gbps", plan.intraNodeGbps},
                            {"inter_node_gbps", plan.interNodeGbps}};
  // One line per plan: a 61-layer model reads at a glance.
  os << "{\n"
     << llvm::formatv("  \"mesh\": \"{0}x{1}\",\n", plan.nodes,
                      plan.gpusPerNode)
     << llvm::formatv("  \"policy\": \"{0}\",\n", plan.policy)
     << llvm::formatv("  \"tokens_per_rank\": {0},\n", plan.tokens)
     << llvm::formatv("  \"memory_bytes\": {0},\n", plan.memoryBytes)
     << llvm::formatv("  \"device\": {0},\n", llvm::json::Value(std::move(device)))
     << "  \"plans\": [\n";
  for (auto [i, entry] : llvm::enumerate(plans)) {
    llvm::json::Value layers(llvm::json::Array(entry.second));
    // {"layers": [...], <the plan's keys>}
    os << llvm::formatv("    {{\"layers\": {0}, {1}{2}\n", layers,
                        llvm::StringRef(entry.first).drop_front(),
                        i + 1 < plans.size() ? "," : "");
  }
  os << "  ]\n}\n";
}

//===----------------------------------------------------------------------===//
// SVG
//===----------------------------------------------------------------------===//

static std::string escapeXml(llvm::StringRef text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

namespace {
/// Writes SVG elements; coordinates in pixels.
struct Svg {
  llvm::raw_ostream &os;
  void rect(double x, double y, double w, double h, llvm::StringRef fill,
            llvm::StringRef stroke = "none", double radius = 0) {
    os << llvm::formatv("<rect x=\"{0:F1}\" y=\"{1:F1}\" width=\"{2:F1}\" "
                        "height=\"{3:F1}\" rx=\"{4}\" fill=\"{5}\" "
                        "stroke=\"{6}\"/>\n",
                        x, y, w, h, radius, fill, stroke);
  }
  /// `s`: anything raw_ostream prints (a string, a formatv object).
  template <typename S>
  void text(double x, double y, const S &s, int size = 13,
            llvm::StringRef anchor = "start", llvm::StringRef weight = "normal",
            llvm::StringRef fill = "#222") {
    std::string plain;
    llvm::raw_string_ostream(plain) << s;
    os << llvm::formatv("<text x=\"{0:F1}\" y=\"{1:F1}\" font-size=\"{2}\" "
                        "text-anchor=\"{3}\" font-weight=\"{4}\" "
                        "fill=\"{5}\">{6}</text>\n",
                        x, y, size, anchor, weight, fill, escapeXml(plain));
  }
};

/// Exchange group colours (a group's ranks share one).
const char *const kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
                                "#9c755f", "#bab0ac"};

bool samePlan(const PlanRow &a, const PlanRow &b) {
  return a.kind == b.kind && a.experts == b.experts && a.dropless == b.dropless &&
         a.ep == b.ep && a.tp == b.tp && a.dp == b.dp &&
         a.allToAll == b.allToAll && a.exchangeGroups == b.exchangeGroups &&
         a.estimate.capacity == b.estimate.capacity &&
         a.estimate.allToAllBytes == b.estimate.allToAllBytes &&
         a.estimate.weightBytes == b.estimate.weightBytes &&
         a.estimate.seconds == b.estimate.seconds;
}
} // namespace

void mlir::moe::printPlanSvg(const PlanSummary &plan, llvm::raw_ostream &os) {
  // Groups of identical consecutive layers: [first, last] row indices.
  std::vector<std::pair<size_t, size_t>> groups;
  for (size_t i = 0; i < plan.rows.size(); ++i) {
    if (!groups.empty() &&
        samePlan(plan.rows[groups.back().second], plan.rows[i]))
      groups.back().second = i;
    else
      groups.emplace_back(i, i);
  }
  int64_t ranks = plan.nodes * plan.gpusPerNode;
  const double width = 1200, margin = 20;
  // The mesh: up to 8 nodes a line, a node a box of its GPUs.
  int64_t nodesPerLine = std::min<int64_t>(plan.nodes, 8);
  int64_t nodeLines = (plan.nodes + nodesPerLine - 1) / nodesPerLine;
  double nodeW = (width - 2 * margin - (nodesPerLine - 1) * 10) / nodesPerLine;
  double gpuW = std::min(40.0, (nodeW - 10) / plan.gpusPerNode);
  double nodeH = gpuW + 30;
  double meshTop = 70, meshH = nodeLines * (nodeH + 10);
  double tableTop = meshTop + meshH + 40, rowH = 40;
  double height = tableTop + 30 + groups.size() * rowH + 60;

  Svg svg{os};
  os << llvm::formatv("<svg xmlns=\"http://www.w3.org/2000/svg\" "
                      "width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                      "font-family=\"DejaVu Sans, Helvetica, Arial, "
                      "sans-serif\">\n",
                      width, height);
  svg.rect(0, 0, width, height, "white");
  double total = 0;
  for (const PlanRow &row : plan.rows)
    total += row.estimate.seconds;
  svg.text(margin, 28,
           llvm::formatv("moe plan: {0} layers on a {1}x{2} mesh ({3} ranks), "
                         "{4} policy, {5} tokens per rank per step",
                         plan.rows.size(), plan.nodes, plan.gpusPerNode, ranks,
                         plan.policy, plan.tokens),
           16, "start", "bold");
  svg.text(margin, 50,
           llvm::formatv("{0} per rank of {1}; est. {2:F1} us per step, {3}",
                         humanBytes(plan.memoryBytes),
                         humanBytes(plan.deviceMemoryBytes), total * 1e6,
                         modelledDevice(plan)),
           12, "start", "normal", "#555");

  for (int64_t n = 0; n < plan.nodes; ++n) {
    double x = margin + (n % nodesPerLine) * (nodeW + 10);
    double y = meshTop + (n / nodesPerLine) * (nodeH + 10);
    svg.rect(x, y, nodeW, nodeH, "#f4f4f4", "#999", 6);
    svg.text(x + 6, y + 14, llvm::formatv("node {0}", n), 11);
    for (int64_t g = 0; g < plan.gpusPerNode; ++g) {
      double gx = x + 5 + g * gpuW;
      svg.rect(gx + 1, y + 20, gpuW - 2, gpuW - 4, "#dfe6ee", "#6b7b8c", 3);
      svg.text(gx + gpuW / 2, y + 20 + gpuW / 2 + 2,
               std::to_string(n * plan.gpusPerNode + g), gpuW >= 24 ? 11 : 8,
               "middle");
    }
  }

  // Columns of the layer table.
  const double cLayers = margin, cSplit = 190, cRanks = 400, cA2a = 720,
               cWeights = 840, cExchange = 970, cTime = width - margin;
  double ranksW = cA2a - cRanks - 20;
  double y = tableTop;
  svg.text(cLayers, y, "layers", 12, "start", "bold");
  svg.text(cSplit, y, "split (experts/rank)", 12, "start", "bold");
  svg.text(cRanks, y, "exchange groups on the ranks", 12, "start", "bold");
  svg.text(cA2a, y, "all-to-all", 12, "start", "bold");
  svg.text(cWeights, y, "weights/rank", 12, "start", "bold");
  svg.text(cExchange, y, "a2a/rank", 12, "start", "bold");
  svg.text(cTime, y, "est. us", 12, "end", "bold");
  y += 12;
  for (auto [gi, group] : llvm::enumerate(groups)) {
    const PlanRow &row = plan.rows[group.first];
    const PlanRow &last = plan.rows[group.second];
    size_t count = group.second - group.first + 1;
    if (gi % 2 == 0)
      svg.rect(margin - 6, y, width - 2 * margin + 12, rowH, "#f7f7fb");
    double base = y + 25;
    std::string layers =
        count == 1 ? llvm::formatv("layer {0}", row.layer).str()
                   : llvm::formatv("layers {0}-{1} ({2}x)", row.layer,
                                   last.layer, count)
                         .str();
    svg.text(cLayers, base - 7, layers, 13, "start", "bold");
    svg.text(cLayers, base + 8,
             row.experts ? llvm::formatv("{0}, {1} experts{2}", row.kind,
                                         row.experts,
                                         row.dropless ? ", dropless" : "")
                               .str()
                         : row.kind,
             11, "start", "normal", "#555");
    svg.text(cSplit, base - 7,
             llvm::formatv("EP {0} x TP {1} x DP {2}", row.ep, row.tp, row.dp),
             13);
    svg.text(cSplit, base + 8,
             row.experts
                 ? llvm::formatv("{0} experts/rank{1}", row.experts / row.ep,
                                 hasCapacity(row)
                                     ? llvm::formatv(", capacity {0}",
                                                     row.estimate.capacity)
                                           .str()
                                     : std::string())
                       .str()
                 : std::string("no experts"),
             11, "start", "normal", "#555");
    // Each rank coloured by its exchange group; TP slices share a group.
    std::vector<int64_t> groupOf(size_t(ranks), -1);
    for (auto [g, members] : llvm::enumerate(row.exchangeGroups))
      for (int64_t r : members)
        if (r >= 0 && r < ranks)
          groupOf[size_t(r)] = int64_t(g);
    double cell = ranksW / ranks;
    for (int64_t r = 0; r < ranks; ++r) {
      int64_t g = groupOf[size_t(r)];
      svg.rect(cRanks + r * cell, y + 8, std::max(cell - 1, 0.5), rowH - 16,
               g < 0 ? "#cccccc" : kPalette[g % std::size(kPalette)]);
    }
    // Node boundaries.
    for (int64_t n = 1; n < plan.nodes; ++n)
      svg.rect(cRanks + n * plan.gpusPerNode * cell - 1, y + 4, 1.5, rowH - 8,
               "#333");
    svg.text(cA2a, base, row.allToAll, 13);
    svg.text(cWeights, base, humanBytes(row.estimate.weightBytes), 13);
    svg.text(cExchange, base, humanBytes(row.estimate.allToAllBytes), 13);
    svg.text(cTime, base - 7,
             llvm::formatv("{0:F1}", row.estimate.seconds * 1e6), 13, "end");
    if (count > 1)
      svg.text(cTime, base + 8,
               llvm::formatv("x{0} = {1:F1}", count,
                             row.estimate.seconds * 1e6 * count),
               11, "end", "normal", "#555");
    y += rowH;
  }
  svg.text(margin, y + 24,
           "Ranks of one colour exchange tokens (one all-to-all group); "
           "black bars are node boundaries. Bytes and times are per rank.",
           11, "start", "normal", "#555");
  os << "</svg>\n";
}
