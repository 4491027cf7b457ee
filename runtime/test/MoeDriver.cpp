//===- runtime/test/MoeDriver.cpp - Run one MoE layer from files ----------===//
//
// moert-moe-driver DIR: reads DIR/config.txt (key=value), DIR/x.npy and
// DIR/weights.safetensors, runs one MoE layer with the runtime's kernels on a
// CPU world of nodes x gpus_per_node ranks (expert parallel over all ranks,
// tokens split evenly), and writes the gate outputs and the layer output as
// .npy files into DIR. Used by numeric_test.py against the NumPy reference.
//
//===----------------------------------------------------------------------===//

#include "Npy.h"
#include "runtime/moert.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

using namespace moert;

namespace {

class Config {
public:
  explicit Config(const std::string &path) {
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("cannot open " + path);
    std::string line;
    while (std::getline(in, line)) {
      size_t eq = line.find('=');
      if (eq != std::string::npos)
        values_[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  std::string str(const std::string &key, const std::string &fallback) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }
  int64_t integer(const std::string &key, int64_t fallback) const {
    return std::stoll(str(key, std::to_string(fallback)));
  }
  float real(const std::string &key, float fallback) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : std::stof(it->second);
  }

private:
  std::map<std::string, std::string> values_;
};

template <typename Enum>
Enum pick(const std::string &name, const std::map<std::string, Enum> &names) {
  auto it = names.find(name);
  if (it == names.end())
    throw std::runtime_error("unknown value '" + name + "'");
  return it->second;
}

moert_activation_t activationOf(const std::string &name) {
  return pick<moert_activation_t>(name, {{"silu", MOERT_ACT_SILU},
                                         {"gelu", MOERT_ACT_GELU},
                                         {"gelu_tanh", MOERT_ACT_GELU_TANH},
                                         {"relu", MOERT_ACT_RELU}});
}

// One loaded FFN (stacked over `copies` experts, or a single dense one).
struct LoadedFfn {
  std::vector<Buffer> buffers;
  moert_ffn_desc_t desc{};
};

LoadedFfn loadFfn(moert_context_t ctx, moert_weights_t file,
                  const std::string &prefix, bool gated,
                  moert_activation_t activation, bool biases, int64_t hidden,
                  int64_t ffn, int64_t expertBegin, int64_t expertEnd,
                  moert_dtype_t dtype) {
  LoadedFfn loaded;
  bool stacked = expertEnd > expertBegin;
  int64_t copies = stacked ? expertEnd - expertBegin : 1;
  auto load = [&](const std::string &name, std::vector<int64_t> shape) {
    moert_weight_request_t req;
    std::string key = prefix + name;
    moert_weight_request_init(&req, key.c_str(),
                              static_cast<int32_t>(shape.size()), shape.data());
    if (stacked) {
      req.expert_begin = expertBegin;
      req.expert_end = expertEnd;
    }
    int64_t count = copies;
    for (int64_t d : shape)
      count *= d;
    loaded.buffers.emplace_back(ctx, count * moert_dtype_size(dtype));
    check(
        moert_weights_load(ctx, file, &req, loaded.buffers.back().view(dtype)));
    return loaded.buffers.back().view(dtype);
  };
  loaded.buffers.reserve(5);
  moert_ffn_desc_t &d = loaded.desc;
  d.kind = gated ? MOERT_FFN_GATED : MOERT_FFN_PLAIN;
  d.activation = activation;
  d.hidden = hidden;
  d.ffn = ffn;
  d.w_gate = load("w1.weight", {ffn, hidden});
  d.w_up = gated ? load("w_up.weight", {ffn, hidden}) : moert_absent_view();
  d.w_down = load("w2.weight", {hidden, ffn});
  d.b1 = biases ? load("b1", {ffn}) : moert_absent_view();
  d.b2 = biases ? load("b2", {hidden}) : moert_absent_view();
  return loaded;
}

int run(const std::string &dir) {
  Config cfg(dir + "/config.txt");
  npy::Array x = npy::load(dir + "/x.npy");
  if (x.descr != "<f4" || x.shape.size() != 2)
    throw std::runtime_error("x.npy must be float32 [S, H]");
  const int64_t S = x.shape[0], H = x.shape[1];
  const int64_t E = cfg.integer("experts", 0), k = cfg.integer("top_k", 0);
  const int64_t F = cfg.integer("ffn", 0);
  const moert_dtype_t dtype = pick<moert_dtype_t>(
      cfg.str("dtype", "f32"),
      {{"f32", MOERT_F32}, {"bf16", MOERT_BF16}, {"f16", MOERT_F16}});
  const size_t esize = moert_dtype_size(dtype);

  moert_gate_config_t gate;
  moert_gate_config_init(&gate, static_cast<int32_t>(E),
                         static_cast<int32_t>(k));
  gate.score_func =
      pick<moert_score_func_t>(cfg.str("score_func", "softmax"),
                               {{"softmax", MOERT_SCORE_SOFTMAX},
                                {"sigmoid", MOERT_SCORE_SIGMOID},
                                {"sparsemixer", MOERT_SCORE_SPARSEMIXER}});
  gate.n_group = static_cast<int32_t>(cfg.integer("n_group", 1));
  gate.topk_group = static_cast<int32_t>(cfg.integer("topk_group", 1));
  gate.group_score =
      pick<moert_group_score_t>(cfg.str("group_score", "max"),
                                {{"max", MOERT_GROUP_SCORE_MAX},
                                 {"top2_sum", MOERT_GROUP_SCORE_TOP2_SUM}});
  gate.norm = pick<moert_gate_norm_t>(
      cfg.str("norm", "none"),
      {{"none", MOERT_NORM_NONE},
       {"selected", MOERT_NORM_SELECTED},
       {"kept", MOERT_NORM_KEPT},
       {"selected_clamped", MOERT_NORM_SELECTED_CLAMPED},
       {"pnorm", MOERT_NORM_PNORM}});
  gate.norm_p = cfg.real("norm_p", 1.0f);
  gate.jitter_eps = cfg.real("jitter_eps", 0.0f);
  gate.norm_epsilon = cfg.real("norm_epsilon", 0.0f);
  gate.routed_scaling_factor = cfg.real("routed_scaling_factor", 1.0f);
  gate.capacity_factor = cfg.real("capacity_factor", 0.0f);
  gate.min_capacity = cfg.integer("min_capacity", 0);
  gate.drop_order =
      pick<moert_drop_order_t>(cfg.str("drop_order", "token_major"),
                               {{"choice_major", MOERT_DROP_CHOICE_MAJOR},
                                {"token_major", MOERT_DROP_TOKEN_MAJOR},
                                {"probs", MOERT_DROP_PROBS}});
  const bool gated = cfg.str("ffn_kind", "gated") == "gated";
  const moert_activation_t activation =
      activationOf(cfg.str("activation", "silu"));
  const bool expertBiases = cfg.integer("expert_biases", 0) != 0;
  const bool routerBias = cfg.integer("router_bias", 0) != 0;
  const bool correctionBias = cfg.integer("correction_bias", 0) != 0;
  const std::string shared = cfg.str("shared", "none"); // none|plain|gated
  const int64_t sharedF = cfg.integer("shared_ffn", 0);
  const bool residualMlp = cfg.integer("residual_mlp", 0) != 0;
  const int64_t mlpF = cfg.integer("mlp_ffn", 0);
  const bool residual = cfg.integer("residual", 0) != 0;
  const moert_a2a_algorithm_t algorithm =
      cfg.str("a2a", "flat") == "hierarchical" ? MOERT_A2A_HIERARCHICAL
                                               : MOERT_A2A_FLAT;

  World world(static_cast<int32_t>(cfg.integer("nodes", 1)),
              static_cast<int32_t>(cfg.integer("gpus_per_node", 1)), 120000);
  const int64_t G = world.size();
  if (S % G != 0 || E % G != 0)
    throw std::runtime_error("tokens and experts must divide by the ranks");
  const int64_t localS = S / G, localE = E / G;

  std::vector<float> logitsOut(S * E), weightsOut(S * k), out(S * H);
  std::vector<int32_t> idsOut(S * k), slotsOut(S * k), countsOut(G * E);
  std::vector<int64_t> capacityOut(G);
  const std::string weightsPath = dir + "/weights.safetensors";

  world.run([&](moert_context_t ctx) {
    const int32_t rank = moert_context_rank(ctx);
    std::vector<int32_t> all(G);
    for (int32_t r = 0; r < G; ++r)
      all[r] = r;
    Group ep(ctx, all);
    Weights file(weightsPath); // every rank maps the file, loads its shard
    auto loadPlain = [&](const char *key, std::vector<int64_t> shape,
                         moert_dtype_t as) {
      moert_weight_request_t req;
      moert_weight_request_init(&req, key, static_cast<int32_t>(shape.size()),
                                shape.data());
      int64_t count = 1;
      for (int64_t d : shape)
        count *= d;
      Buffer buffer(ctx, count * moert_dtype_size(as));
      check(moert_weights_load(ctx, file.get(), &req, buffer.view(as)));
      return buffer;
    };

    // Tokens of this rank, rounded to the storage dtype on the way in.
    const int64_t firstToken = rank * localS;
    Buffer xStaging(ctx, localS * H * 4), xb(ctx, localS * H * esize);
    check(moert_buffer_upload(ctx, xStaging.view(MOERT_F32),
                              x.as<float>() + firstToken * H, localS * H));
    check(moert_buffer_copy(ctx, xStaging.view(MOERT_F32), xb.view(dtype),
                            localS * H));

    Buffer wg = loadPlain("gate.weight", {E, H}, dtype);
    Buffer rb =
        routerBias ? loadPlain("gate.bias", {E}, dtype) : Buffer(ctx, 4);
    Buffer cb = correctionBias
                    ? loadPlain("gate.correction_bias", {E}, MOERT_F32)
                    : Buffer(ctx, 4);
    LoadedFfn expertFfn =
        loadFfn(ctx, file.get(), "experts.{e}.", gated, activation,
                expertBiases, H, F, rank * localE, (rank + 1) * localE, dtype);

    // Gate. Outputs are poisoned first so unwritten elements show up.
    Buffer logits(ctx, localS * E * 4), ids(ctx, localS * k * 4),
        weights(ctx, localS * k * 4), slots(ctx, localS * k * 4),
        counts(ctx, E * 4);
    check(moert_buffer_fill(ctx, logits.view(MOERT_F32), localS * E, NAN));
    check(moert_buffer_fill(ctx, weights.view(MOERT_F32), localS * k, NAN));
    check(moert_buffer_fill(ctx, ids.view(MOERT_I32), localS * k, -99));
    check(moert_buffer_fill(ctx, slots.view(MOERT_I32), localS * k, -99));
    check(moert_router(ctx, xb.view(dtype), wg.view(dtype),
                       routerBias ? rb.view(dtype) : moert_absent_view(),
                       logits.view(MOERT_F32), localS, H, E));
    int64_t localCapacity = -1;
    check(moert_gate(ctx, &gate, logits.view(MOERT_F32),
                     correctionBias ? cb.view(MOERT_F32) : moert_absent_view(),
                     localS, ids.view(MOERT_I32), weights.view(MOERT_F32),
                     slots.view(MOERT_I32), counts.view(MOERT_I32),
                     &localCapacity));
    int64_t capacity = localCapacity;
    check(moert_all_reduce_i64(ctx, ep.get(), MOERT_REDUCE_MAX, &capacity));

    // Dispatch -> all_to_all -> experts -> all_to_all -> combine.
    const int64_t rowsPerExpert = capacity * G;
    Buffer dispatched(ctx, E * capacity * H * esize);
    check(moert_dispatch(ctx, xb.view(dtype), ids.view(MOERT_I32),
                         slots.view(MOERT_I32), moert_absent_view(),
                         dispatched.view(dtype), localS, H, k, E, capacity));
    Buffer expertIn(ctx, E * capacity * H * esize),
        expertOut(ctx, E * capacity * H * esize),
        combinedIn(ctx, E * capacity * H * esize), rows(ctx, E * 4);
    check(moert_buffer_fill(ctx, expertOut.view(dtype), E * capacity * H, NAN));
    check(moert_all_to_all(ctx, ep.get(), MOERT_A2A_TO_EXPERTS, algorithm,
                           dispatched.view(dtype), expertIn.view(dtype), localE,
                           capacity, H));
    check(moert_all_to_all(ctx, ep.get(), MOERT_A2A_TO_EXPERTS, algorithm,
                           counts.view(MOERT_I32), rows.view(MOERT_I32), localE,
                           1, 1));
    check(moert_experts(ctx, &expertFfn.desc, expertIn.view(dtype),
                        expertOut.view(dtype), rows.view(MOERT_I32), localE,
                        rowsPerExpert, G));
    check(moert_all_to_all(ctx, ep.get(), MOERT_A2A_FROM_EXPERTS, algorithm,
                           expertOut.view(dtype), combinedIn.view(dtype),
                           localE, capacity, H));
    Buffer moeOut(ctx, localS * H * esize);
    check(moert_combine(ctx, combinedIn.view(dtype), ids.view(MOERT_I32),
                        slots.view(MOERT_I32), weights.view(MOERT_F32),
                        moert_absent_view(), moeOut.view(dtype), localS, H, k,
                        E, capacity));

    if (shared != "none") {
      LoadedFfn sharedFfn =
          loadFfn(ctx, file.get(), "shared.", gated, activation, expertBiases,
                  H, sharedF, 0, 0, dtype);
      Buffer sharedOut(ctx, localS * H * esize);
      check(moert_dense_ffn(ctx, &sharedFfn.desc, xb.view(dtype),
                            sharedOut.view(dtype), localS));
      Buffer wsg = shared == "gated"
                       ? loadPlain("shared_gate.weight", {1, H}, dtype)
                       : Buffer(ctx, 4);
      check(moert_shared_add(
          ctx, moeOut.view(dtype), sharedOut.view(dtype), xb.view(dtype),
          shared == "gated" ? wsg.view(dtype) : moert_absent_view(),
          moeOut.view(dtype), localS, H));
    }
    if (residualMlp) {
      LoadedFfn mlpFfn = loadFfn(ctx, file.get(), "mlp.", gated, activation,
                                 expertBiases, H, mlpF, 0, 0, dtype);
      Buffer mlpOut(ctx, localS * H * esize), mixed(ctx, localS * H * esize);
      check(moert_dense_ffn(ctx, &mlpFfn.desc, xb.view(dtype),
                            mlpOut.view(dtype), localS));
      Buffer wc = loadPlain("coefficient.weight", {2, H}, dtype);
      Buffer bc = loadPlain("coefficient.bias", {2}, dtype);
      check(moert_residual_mix(ctx, xb.view(dtype), wc.view(dtype),
                               bc.view(dtype), moeOut.view(dtype),
                               mlpOut.view(dtype), mixed.view(dtype), localS,
                               H));
      check(moert_buffer_copy(ctx, mixed.view(dtype), moeOut.view(dtype),
                              localS * H));
    }
    Buffer layerOut(ctx, localS * H * esize), outF32(ctx, localS * H * 4);
    if (residual)
      check(moert_add(ctx, xb.view(dtype), moeOut.view(dtype),
                      layerOut.view(dtype), localS * H));
    else
      check(moert_buffer_copy(ctx, moeOut.view(dtype), layerOut.view(dtype),
                              localS * H));
    check(moert_buffer_copy(ctx, layerOut.view(dtype), outF32.view(MOERT_F32),
                            localS * H));

    // Each rank writes its own token range of the global outputs.
    check(moert_buffer_download(ctx, &out[firstToken * H],
                                outF32.view(MOERT_F32), localS * H));
    check(moert_buffer_download(ctx, &logitsOut[firstToken * E],
                                logits.view(MOERT_F32), localS * E));
    check(moert_buffer_download(ctx, &idsOut[firstToken * k],
                                ids.view(MOERT_I32), localS * k));
    check(moert_buffer_download(ctx, &weightsOut[firstToken * k],
                                weights.view(MOERT_F32), localS * k));
    check(moert_buffer_download(ctx, &slotsOut[firstToken * k],
                                slots.view(MOERT_I32), localS * k));
    check(moert_buffer_download(ctx, &countsOut[rank * E],
                                counts.view(MOERT_I32), E));
    capacityOut[rank] = localCapacity;
  });

  npy::save(dir + "/out.npy", "<f4", {S, H}, out.data(), out.size() * 4);
  npy::save(dir + "/logits.npy", "<f4", {S, E}, logitsOut.data(),
            logitsOut.size() * 4);
  npy::save(dir + "/ids.npy", "<i4", {S, k}, idsOut.data(), idsOut.size() * 4);
  npy::save(dir + "/weights.npy", "<f4", {S, k}, weightsOut.data(),
            weightsOut.size() * 4);
  npy::save(dir + "/slots.npy", "<i4", {S, k}, slotsOut.data(),
            slotsOut.size() * 4);
  npy::save(dir + "/counts.npy", "<i4", {G, E}, countsOut.data(),
            countsOut.size() * 4);
  npy::save(dir + "/capacity.npy", "<i8", {G}, capacityOut.data(),
            capacityOut.size() * 8);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: moert-moe-driver CASE_DIR\n");
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "moert-moe-driver: %s\n", e.what());
    return 1;
  }
}
