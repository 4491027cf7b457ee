//===- runtime/test/CheckpointTest.cpp - Sharded checkpoints --------------===//
//
// Checkpoints as Hugging Face publishes them: a directory, an index naming
// shards, a single file; and the errors of each broken form, which must name
// the shard and the tensor.

#include "TestUtil.h"

#include "runtime/common/Convert.h"
#include "runtime/weights/Checkpoint.h"
#include "runtime/weights/Safetensors.h"

#include <filesystem>
#include <functional>
#include <fstream>

using namespace moert;
using namespace moert::test;
using weights::SafetensorsWriter;

namespace {

namespace fs = std::filesystem;
using Floats = std::vector<float>;

Floats ramp(size_t count, float start) {
  Floats out(count);
  for (size_t i = 0; i < count; ++i)
    out[i] = start + float(i);
  return out;
}

// A fresh directory named after the test.
std::string freshDir(const std::string &name) {
  std::string dir = tempPath("ckpt-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Two shards as save_pretrained writes them: experts 0-1 and the router in
// the first, experts 2-3 in the second, and the index.
std::string writeSharded(const std::string &name) {
  std::string dir = freshDir(name);
  SafetensorsWriter first, second;
  for (int e = 0; e < 4; ++e) {
    Floats w = ramp(6, 100.0f * e);
    (e < 2 ? first : second)
        .add("mlp.experts." + std::to_string(e) + ".w", MOERT_BF16, {2, 3},
             w.data());
  }
  Floats router = ramp(12, -6.0f);
  first.add("mlp.gate.weight", MOERT_F32, {4, 3}, router.data());
  first.write(dir + "/model-00001-of-00002.safetensors");
  second.write(dir + "/model-00002-of-00002.safetensors");
  writeText(dir + "/model.safetensors.index.json", R"({
  "metadata": {"total_size": 144},
  "weight_map": {
    "mlp.experts.0.w": "model-00001-of-00002.safetensors",
    "mlp.experts.1.w": "model-00001-of-00002.safetensors",
    "mlp.experts.2.w": "model-00002-of-00002.safetensors",
    "mlp.experts.3.w": "model-00002-of-00002.safetensors",
    "mlp.gate.weight": "model-00001-of-00002.safetensors"
  }
})");
  return dir;
}

// All four experts stacked through `path`, as one rank loads them.
moert_status_t loadExperts(const std::string &path, Floats &out) {
  moert_weights_t weights = nullptr;
  moert_status_t status = moert_weights_open(path.c_str(), &weights);
  if (status != MOERT_OK)
    return status;
  onOneRank([&](moert_context_t ctx) {
    int64_t shape[2] = {2, 3};
    moert_weight_request_t req;
    moert_weight_request_init(&req, "mlp.experts.{e}.w", 2, shape);
    req.expert_begin = 0;
    req.expert_end = 4;
    Buffer dst(ctx, 24 * 4);
    status = moert_weights_load(ctx, weights, &req, dst.view(MOERT_F32));
    if (status == MOERT_OK)
      out = dst.download<float>(MOERT_F32, 24);
  });
  moert_weights_close(weights);
  return status;
}

Floats expectedExperts() {
  Floats want;
  for (int e = 0; e < 4; ++e)
    for (float v : ramp(6, 100.0f * e))
      want.push_back(bf16ToFloat(floatToBf16(v)));
  return want;
}

TEST(Checkpoint, ShardedLoadsThroughTheDirectoryAndTheIndex) {
  std::string dir = writeSharded("sharded");
  for (const std::string &path :
       {dir, dir + "/", dir + "/model.safetensors.index.json"}) {
    Floats got;
    ASSERT_EQ(loadExperts(path, got), MOERT_OK) << moert_last_error();
    EXPECT_EQ(got, expectedExperts()) << path;
  }
  weights::Checkpoint checkpoint(dir);
  EXPECT_EQ(checkpoint.path(), dir + "/model.safetensors.index.json");
  EXPECT_EQ(checkpoint.fileOf("mlp.experts.3.w").path(),
            dir + "/model-00002-of-00002.safetensors");
  weights::Checkpoint::Stats before = checkpoint.stats();
  EXPECT_EQ(before.files, 2);
  EXPECT_EQ(before.filesRead, 0);
  EXPECT_EQ(before.bytes, 4 * 6 * 2 + 12 * 4);
  Floats one(6);
  checkpoint.readBox("mlp.experts.2.w", {2, 3}, {0, 0}, {2, 3}, one.data(),
                     MOERT_F32);
  weights::Checkpoint::Stats after = checkpoint.stats();
  EXPECT_EQ(after.filesRead, 1);
  EXPECT_EQ(after.bytesRead, 6 * 2); // bf16 in the file
}

TEST(Checkpoint, SingleFileDirectoryAndStats) {
  std::string dir = freshDir("single");
  SafetensorsWriter writer;
  for (int e = 0; e < 4; ++e) {
    Floats w = ramp(6, 100.0f * e);
    writer.add("mlp.experts." + std::to_string(e) + ".w", MOERT_BF16, {2, 3},
               w.data());
  }
  writer.write(dir + "/model.safetensors");
  Floats got;
  ASSERT_EQ(loadExperts(dir, got), MOERT_OK) << moert_last_error();
  EXPECT_EQ(got, expectedExperts());
  moert_weights_t weights = nullptr;
  ASSERT_EQ(moert_weights_open(dir.c_str(), &weights), MOERT_OK);
  moert_weights_stats_t stats{};
  ASSERT_EQ(moert_weights_stats(weights, &stats), MOERT_OK);
  EXPECT_EQ(stats.files, 1);
  EXPECT_EQ(stats.bytes, 48);
  EXPECT_EQ(stats.bytes_read, 0);
  moert_weights_close(weights);
}

TEST(Checkpoint, DirectoryWithoutWeights) {
  std::string dir = freshDir("config-only");
  writeText(dir + "/config.json", "{}");
  Floats got;
  EXPECT_MOERT_ERROR(loadExperts(dir, got), MOERT_IO_ERROR,
                     "a directory without model.safetensors.index.json or "
                     "model.safetensors");
}

TEST(Checkpoint, MissingShardIsNamed) {
  std::string dir = writeSharded("missing-shard");
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  Floats got;
  EXPECT_MOERT_ERROR(loadExperts(dir, got), MOERT_IO_ERROR,
                     "shard 'model-00002-of-00002.safetensors' (holding "
                     "'mlp.experts.2.w' and 1 more)");
  EXPECT_NE(std::string(moert_last_error()).find("No such file"),
            std::string::npos)
      << moert_last_error();
}

TEST(Checkpoint, TruncatedShardIsNamed) {
  std::string dir = writeSharded("truncated-shard");
  std::string shard = dir + "/model-00001-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 5);
  Floats got;
  EXPECT_MOERT_ERROR(loadExperts(dir, got), MOERT_IO_ERROR,
                     "shard 'model-00001-of-00002.safetensors'");
  std::string message = moert_last_error();
  EXPECT_NE(message.find("truncated: tensor 'mlp.gate.weight'"),
            std::string::npos)
      << message;
}

TEST(Checkpoint, TensorListedButAbsentFromItsShard) {
  std::string dir = writeSharded("absent");
  std::string index = dir + "/model.safetensors.index.json";
  writeText(index, R"({"weight_map": {
    "mlp.experts.0.w": "model-00001-of-00002.safetensors",
    "mlp.experts.2.w": "model-00001-of-00002.safetensors"}})");
  Floats got;
  EXPECT_MOERT_ERROR(loadExperts(dir, got), MOERT_FORMAT_ERROR,
                     "tensor 'mlp.experts.2.w' is listed in shard "
                     "'model-00001-of-00002.safetensors', which has no such "
                     "tensor");
}

TEST(Checkpoint, TensorNotInTheIndex) {
  std::string dir = writeSharded("unlisted");
  // The second shard holds experts 2 and 3, but only the index counts.
  writeText(dir + "/model.safetensors.index.json", R"({"weight_map": {
    "mlp.experts.0.w": "model-00001-of-00002.safetensors",
    "mlp.experts.1.w": "model-00001-of-00002.safetensors",
    "mlp.experts.2.w": "model-00002-of-00002.safetensors"}})");
  Floats got;
  EXPECT_MOERT_ERROR(loadExperts(dir, got), MOERT_NOT_FOUND,
                     "model.safetensors.index.json: no tensor "
                     "'mlp.experts.3.w'");
}

TEST(Checkpoint, IndexMayNotPointOutsideItsDirectory) {
  std::string dir = writeSharded("outside");
  for (const char *shard :
       {"../model-00001-of-00002.safetensors", "/etc/passwd",
        "sub/../../x.safetensors", ""}) {
    writeText(dir + "/model.safetensors.index.json",
              std::string(R"({"weight_map": {"mlp.experts.0.w": ")") + shard +
                  "\"}}");
    Floats got;
    EXPECT_MOERT_ERROR(loadExperts(dir, got), MOERT_FORMAT_ERROR,
                       "tensor 'mlp.experts.0.w': shard '" +
                           std::string(shard) +
                           "' is outside the index's directory");
  }
}

TEST(Checkpoint, MalformedIndex) {
  std::string dir = writeSharded("malformed");
  std::string index = dir + "/model.safetensors.index.json";
  struct Case {
    const char *text, *fragment;
  } cases[] = {
      {"{\"weight_map\": {", "model.safetensors.index.json: "},
      {"[]", "must be a JSON object with a \"weight_map\" object"},
      {"{\"metadata\": {}}", "with a \"weight_map\" object"},
      {"{\"weight_map\": {}}", "\"weight_map\" lists no tensors"},
      {"{\"weight_map\": {\"mlp.experts.0.w\": 3}}",
       "tensor 'mlp.experts.0.w': the shard must be a file name string"},
  };
  for (const Case &c : cases) {
    writeText(index, c.text);
    Floats got;
    EXPECT_MOERT_ERROR(loadExperts(index, got), MOERT_FORMAT_ERROR,
                       c.fragment);
  }
}

} // namespace

namespace {

// Fused expert tensors as checkpoints store them, loaded with strides into
// the packed gate|up buffer moert_fused_experts reads ([E_local, 2Fs, H], up
// at Fs*H) for experts [1, 3) and the tensor-parallel slice f in [1, 3); the
// result must equal loading the per-expert tensors.
constexpr int64_t kE = 4, kF = 4, kH = 3;

// Distinct integers below 256: exact in bf16, so the bf16 fused tensors
// compare exactly.
float part(int p, int64_t e, int64_t f, int64_t h) { // gate p=0, up p=1
  return 128.0f * p + 32.0f * e + 4.0f * f + h;
}
float down(int64_t e, int64_t h, int64_t f) {
  return -(128.0f + 32.0f * e + 4.0f * h + f);
}

struct FusedLayout {
  const char *name;
  const char *gateUp; // the fused gate/up tensor(s)
  const char *up;     // dbrx keeps up (v1) in its own tensor
  std::vector<int64_t> shape;
  // Element of part p, expert e, [f, h].
  std::function<int64_t(int, int64_t, int64_t, int64_t)> at;
  int64_t offset[2], expertStride;
  std::vector<int64_t> strides;
};

// A request for experts [1, 3) of `shape` and the fused view it reads.
struct FusedRequest {
  moert_weight_request_t req;
  moert_fused_view_t view{};
};

FusedRequest fusedRequest(const char *key,
                          const std::vector<int64_t> &fusedShape,
                          int64_t offset, int64_t expertStride,
                          std::vector<int64_t> shape,
                          std::vector<int64_t> strides) {
  FusedRequest r;
  moert_weight_request_init(&r.req, key, int32_t(shape.size()), shape.data());
  r.req.expert_begin = 1;
  r.req.expert_end = 3;
  r.view.rank = int32_t(fusedShape.size());
  for (size_t d = 0; d < fusedShape.size(); ++d)
    r.view.shape[d] = fusedShape[d];
  r.view.offset = offset;
  r.view.expert_stride = expertStride;
  for (size_t d = 0; d < strides.size(); ++d)
    r.view.strides[d] = strides[d];
  return r;
}

moert_status_t loadFused(moert_context_t ctx, moert_weights_t weights,
                         const FusedRequest &r, moert_view_t dst) {
  return moert_weights_load_fused(ctx, weights, &r.req, &r.view, dst);
}

TEST(Checkpoint, FusedExpertTensorsLoadWithStridesIntoThePackedBuffer) {
  const int64_t Fs = 2, packed = 2 * 2 * Fs * kH;
  std::vector<FusedLayout> layouts = {
      {"rows [E, 2F, H]", "rows.gate_up_proj", nullptr, {kE, 2 * kF, kH},
       [](int p, int64_t e, int64_t f, int64_t h) {
         return (e * 2 * kF + p * kF + f) * kH + h;
       },
       {0, kF * kH}, 2 * kF * kH, {kH, 1}},
      {"interleaved [E, H, 2F]", "inter.gate_up_proj", nullptr, {kE, kH, 2 * kF},
       [](int p, int64_t e, int64_t f, int64_t h) {
         return (e * kH + h) * 2 * kF + 2 * f + p;
       },
       {0, 1}, 2 * kF * kH, {2, 2 * kF}},
      {"concatenated [E, H, 2F]", "concat.gate_up_proj", nullptr,
       {kE, kH, 2 * kF},
       [](int p, int64_t e, int64_t f, int64_t h) {
         return (e * kH + h) * 2 * kF + p * kF + f;
       },
       {0, kF}, 2 * kF * kH, {1, 2 * kF}},
      {"dbrx [E*F, H]", "dbrx.w1", "dbrx.v1", {kE * kF, kH},
       [](int, int64_t e, int64_t f, int64_t h) { return (e * kF + f) * kH + h; },
       {0, 0}, kF * kH, {kH, 1}},
  };
  std::string dir = freshDir("fused");
  SafetensorsWriter writer;
  // The per-expert tensors, and down as [E, F, H] (gpt-oss, llama4) and as
  // dbrx's w2 [E*F, H]: both hold down[e][h][f] at e*F*H + f*H + h.
  for (int64_t e = 0; e < kE; ++e)
    for (int p = 0; p < 2; ++p) {
      Floats w;
      for (int64_t f = 0; f < kF; ++f)
        for (int64_t h = 0; h < kH; ++h)
          w.push_back(part(p, e, f, h));
      writer.add("experts." + std::to_string(e) + (p ? ".up" : ".gate"),
                 MOERT_F32, {kF, kH}, w.data());
    }
  Floats downFused(size_t(kE * kF * kH));
  for (int64_t e = 0; e < kE; ++e)
    for (int64_t f = 0; f < kF; ++f)
      for (int64_t h = 0; h < kH; ++h)
        downFused[size_t(e * kF * kH + f * kH + h)] = down(e, h, f);
  writer.add("experts.down_proj", MOERT_BF16, {kE, kF, kH}, downFused.data());
  writer.add("dbrx.w2", MOERT_F32, {kE * kF, kH}, downFused.data());
  for (const FusedLayout &l : layouts) {
    int64_t n = 1;
    for (int64_t d : l.shape)
      n *= d;
    Floats gateUp(size_t(n), NAN), up(size_t(n), NAN);
    for (int p = 0; p < 2; ++p)
      for (int64_t e = 0; e < kE; ++e)
        for (int64_t f = 0; f < kF; ++f)
          for (int64_t h = 0; h < kH; ++h)
            ((l.up && p) ? up : gateUp)[size_t(l.at(p, e, f, h))] =
                part(p, e, f, h);
    writer.add(l.gateUp, MOERT_BF16, l.shape, gateUp.data());
    if (l.up)
      writer.add(l.up, MOERT_BF16, l.shape, up.data());
  }
  writer.write(dir + "/model.safetensors");

  Floats want; // experts 1, 2: gate rows f = 1, 2, then up rows
  for (int64_t e = 1; e < 3; ++e)
    for (int p = 0; p < 2; ++p)
      for (int64_t f = 1; f < 3; ++f)
        for (int64_t h = 0; h < kH; ++h)
          want.push_back(part(p, e, f, h));
  Floats wantDown; // experts 1, 2: down [H, F] columns f = 1, 2
  for (int64_t e = 1; e < 3; ++e)
    for (int64_t h = 0; h < kH; ++h)
      for (int64_t f = 1; f < 3; ++f)
        wantDown.push_back(down(e, h, f));

  moert_weights_t weights = nullptr;
  ASSERT_EQ(moert_weights_open(dir.c_str(), &weights), MOERT_OK)
      << moert_last_error();
  onOneRank([&](moert_context_t ctx) {
    Buffer dst(ctx, packed * 4);
    // The reference: the per-expert tensors, as the compiler loads them.
    {
      moert_weight_request_t gate =
          fusedRequest("experts.{e}.gate", {}, 0, 0, {kF, kH}, {}).req;
      gate.begin[0] = 1;
      gate.end[0] = 3;
      gate.dst_expert_stride = 2 * Fs * kH;
      moert_weight_request_t upReq = gate;
      upReq.key = "experts.{e}.up";
      check(moert_weights_load(ctx, weights, &gate, dst.view(MOERT_F32)));
      check(moert_weights_load(ctx, weights, &upReq,
                               dst.view(MOERT_F32, Fs * kH)));
      ASSERT_EQ(dst.download<float>(MOERT_F32, packed), want);
    }
    for (const FusedLayout &l : layouts) {
      check(moert_buffer_fill(ctx, dst.view(MOERT_F32), packed, NAN));
      for (int p = 0; p < 2; ++p) {
        FusedRequest r = fusedRequest(l.up && p ? l.up : l.gateUp, l.shape,
                                      l.offset[p], l.expertStride, {kF, kH},
                                      l.strides);
        r.req.begin[0] = 1;
        r.req.end[0] = 3;
        r.req.dst_expert_stride = 2 * Fs * kH;
        EXPECT_EQ(loadFused(ctx, weights, r, dst.view(MOERT_F32, p * Fs * kH)),
                  MOERT_OK)
            << l.name << ": " << moert_last_error();
      }
      EXPECT_EQ(dst.download<float>(MOERT_F32, packed), want) << l.name;
    }
    // down [H, F] of experts 1, 2, F-slice [1, 3), from [E, F, H] and from
    // dbrx's w2 [E*F, H]: the transposed view.
    for (auto [key, shape] :
         {std::pair<const char *, std::vector<int64_t>>{"experts.down_proj",
                                                        {kE, kF, kH}},
          {"dbrx.w2", {kE * kF, kH}}}) {
      FusedRequest r = fusedRequest(key, shape, 0, kF * kH, {kH, kF}, {1, kH});
      r.req.begin[1] = 1;
      r.req.end[1] = 3;
      Buffer downDst(ctx, wantDown.size() * 4);
      EXPECT_EQ(loadFused(ctx, weights, r, downDst.view(MOERT_F32)),
                MOERT_OK)
          << key << ": " << moert_last_error();
      EXPECT_EQ(downDst.download<float>(MOERT_F32, int64_t(wantDown.size())),
                wantDown)
          << key;
    }

    // Errors: a view past the tensor, a {e} key, a negative stride, a fused
    // shape that is not the file's.
    FusedRequest past = fusedRequest("rows.gate_up_proj", {kE, 2 * kF, kH},
                                     kF * kH + 1, 2 * kF * kH, {kF, kH},
                                     {kH, 1});
    past.req.expert_end = kE;
    EXPECT_MOERT_ERROR(loadFused(ctx, weights, past, dst.view(MOERT_F32)),
                       MOERT_INVALID_ARGUMENT,
                       "the fused view of experts [1, 4) reaches past the end "
                       "of the fused tensor");
    FusedRequest pattern = fusedRequest("experts.{e}.gate", {kF, kH}, 0, 0,
                                        {kF, kH}, {kH, 1});
    EXPECT_MOERT_ERROR(loadFused(ctx, weights, pattern, dst.view(MOERT_F32)),
                       MOERT_INVALID_ARGUMENT, "must name one tensor");
    FusedRequest negative = fusedRequest("rows.gate_up_proj",
                                         {kE, 2 * kF, kH}, 0, 2 * kF * kH,
                                         {kF, kH}, {kH, -1});
    EXPECT_MOERT_ERROR(loadFused(ctx, weights, negative, dst.view(MOERT_F32)),
                       MOERT_INVALID_ARGUMENT, "must be non-negative");
    FusedRequest wrongShape = fusedRequest("rows.gate_up_proj",
                                           {kE, kF, 2 * kH}, 0, 2 * kF * kH,
                                           {kF, kH}, {kH, 1});
    EXPECT_MOERT_ERROR(loadFused(ctx, weights, wrongShape,
                                 dst.view(MOERT_F32)),
                       MOERT_FORMAT_ERROR,
                       "tensor 'rows.gate_up_proj' has shape [4,8,3], "
                       "expected [4,4,6]");
  });
  moert_weights_close(weights);
}

} // namespace
