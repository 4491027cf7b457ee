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
