//===- runtime/runner/ExpertStats.cpp - Routing statistics ----------------===//

#include "runtime/runner/ExpertStats.h"

#include "runtime/common/Error.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

namespace moert::runner {

double LayerRouting::imbalance() const {
  int64_t sum = std::accumulate(tokens.begin(), tokens.end(), int64_t(0));
  if (sum == 0 || tokens.empty())
    return 0.0;
  int64_t most = *std::max_element(tokens.begin(), tokens.end());
  return double(most) * double(tokens.size()) / double(sum);
}

std::string heatMapPath(const std::string &jsonPath) {
  size_t slash = jsonPath.find_last_of('/');
  size_t dot = jsonPath.find_last_of('.');
  bool hasExtension = dot != std::string::npos &&
                      (slash == std::string::npos || dot > slash + 1);
  return (hasExtension ? jsonPath.substr(0, dot) : jsonPath) + ".svg";
}

namespace {

std::string jsonString(const std::string &text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", value);
  return text;
}

std::string fixed2(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value);
  return text;
}

void writeFile(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out)
    fail(MOERT_IO_ERROR, "cannot write ", path);
}

std::string toJson(const ExpertStats &s) {
  std::ostringstream os;
  os << "{\n  \"format\": \"moe-mlir expert-stats\",\n  \"version\": 1,\n"
     << "  \"model\": " << jsonString(s.model) << ",\n"
     << "  \"mesh\": \"" << s.nodes << "x" << s.gpusPerNode << "\",\n"
     << "  \"ranks\": " << s.nodes * s.gpusPerNode << ",\n"
     << "  \"tokens_per_rank\": " << s.tokensPerRank << ",\n"
     << "  \"steps\": " << s.steps << ",\n  \"layers\": [";
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerRouting &l = s.layers[i];
    int64_t kept = std::accumulate(l.tokens.begin(), l.tokens.end(), int64_t(0));
    os << (i ? "," : "") << "\n    {\"layer\": " << l.layer
       << ", \"experts\": " << l.tokens.size() << ", \"routed\": " << kept
       << ", \"dropped\": " << l.dropped
       << ", \"imbalance\": " << number(l.imbalance()) << ",\n     \"tokens\": [";
    for (size_t e = 0; e < l.tokens.size(); ++e)
      os << (e ? ", " : "") << l.tokens[e];
    os << "]}";
  }
  os << "\n  ]\n}\n";
  return os.str();
}

// White (idle) -> blue (the layer's mean) -> red (twice the mean or more).
std::string loadColour(double relative) {
  auto mix = [](double a, double b, double t) { return int(a + (b - a) * t); };
  double t = std::clamp(relative, 0.0, 2.0);
  int r, g, b;
  if (t <= 1) {
    r = mix(255, 66, t), g = mix(255, 133, t), b = mix(255, 244, t);
  } else {
    r = mix(66, 219, t - 1), g = mix(133, 50, t - 1), b = mix(244, 54, t - 1);
  }
  char text[8];
  std::snprintf(text, sizeof(text), "#%02x%02x%02x", r, g, b);
  return text;
}

std::string toSvg(const ExpertStats &s) {
  size_t experts = 0;
  for (const LayerRouting &l : s.layers)
    experts = std::max(experts, l.tokens.size());
  const double left = 90, top = 70, right = 110;
  double cellW = std::max(2.0, std::min(24.0, 900.0 / std::max<size_t>(experts, 1)));
  double cellH = std::max(6.0, std::min(22.0, 600.0 / std::max<size_t>(s.layers.size(), 1)));
  double width = left + cellW * experts + right;
  double height = top + cellH * s.layers.size() + 70;
  width = std::max(width, 620.0);
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width
     << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " "
     << height << "\" font-family=\"DejaVu Sans, Helvetica, Arial, "
                   "sans-serif\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  auto text = [&](double x, double y, const std::string &t, int size,
                  const char *anchor = "start") {
    std::string escaped;
    for (char c : t)
      escaped += c == '<' ? std::string("&lt;")
                 : c == '&' ? std::string("&amp;")
                            : std::string(1, c);
    os << "<text x=\"" << x << "\" y=\"" << y << "\" font-size=\"" << size
       << "\" text-anchor=\"" << anchor << "\">" << escaped << "</text>\n";
  };
  text(20, 26,
       "routed tokens per expert: " + s.model + ", mesh " +
           std::to_string(s.nodes) + "x" + std::to_string(s.gpusPerNode) +
           ", " + std::to_string(s.tokensPerRank) + " tokens per rank x " +
           std::to_string(s.steps) + " step(s)",
       15);
  text(20, 46, "colour: an expert's tokens relative to its layer's mean "
               "(white 0, blue 1x, red 2x or more)",
       11);
  text(left - 8, top - 6, "layer", 11, "end");
  size_t labelEvery = std::max<size_t>(1, size_t(40 / cellW));
  for (size_t e = 0; e < experts; e += labelEvery)
    text(left + (e + 0.5) * cellW, top - 6, std::to_string(e), 9, "middle");
  text(left + cellW * experts + 8, top - 6, "max/mean", 11);
  size_t rowLabelEvery = std::max<size_t>(1, size_t(10 / cellH));
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerRouting &l = s.layers[i];
    double y = top + i * cellH;
    int64_t sum = std::accumulate(l.tokens.begin(), l.tokens.end(), int64_t(0));
    double mean = l.tokens.empty() ? 0 : double(sum) / l.tokens.size();
    // Grey: experts this layer does not have (another has more).
    for (size_t e = 0; e < experts; ++e)
      os << "<rect x=\"" << left + e * cellW << "\" y=\"" << y
         << "\" width=\"" << cellW << "\" height=\"" << cellH << "\" fill=\""
         << (e < l.tokens.size()
                 ? loadColour(mean > 0 ? l.tokens[e] / mean : 0)
                 : std::string("#d0d0d0"))
         << "\"/>\n";
    if (i % rowLabelEvery == 0) {
      text(left - 8, y + cellH * 0.75, std::to_string(l.layer),
           int(std::min(11.0, cellH)), "end");
      text(left + cellW * experts + 8, y + cellH * 0.75,
           fixed2(l.imbalance()) +
               (l.dropped ? ", " + std::to_string(l.dropped) + " dropped" : ""),
           int(std::min(11.0, cellH)));
    }
  }
  os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\""
     << cellW * experts << "\" height=\"" << cellH * s.layers.size()
     << "\" fill=\"none\" stroke=\"#555\"/>\n";
  text(left + cellW * experts / 2, top + cellH * s.layers.size() + 24,
       "expert", 11, "middle");
  os << "</svg>\n";
  return os.str();
}

} // namespace

void writeExpertStats(const std::string &path, const ExpertStats &stats) {
  writeFile(path, toJson(stats));
  writeFile(heatMapPath(path), toSvg(stats));
}

} // namespace moert::runner
