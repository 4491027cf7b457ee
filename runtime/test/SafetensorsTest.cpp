//===- runtime/test/SafetensorsTest.cpp - Weight files and their errors ---===//

#include "TestUtil.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/weights/Json.h"
#include "runtime/weights/Safetensors.h"

#include <fstream>

using namespace moert;
using namespace moert::test;
using weights::SafetensorsWriter;

namespace {

using Floats = std::vector<float>;

Floats iota(size_t count, float start = 0.0f, float step = 1.0f) {
  Floats out(count);
  for (size_t i = 0; i < count; ++i)
    out[i] = start + step * i;
  return out;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), bytes.size());
}

std::string withHeader(const std::string &json, const std::string &data) {
  std::string out(8, '\0');
  uint64_t length = json.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out + json + data;
}

// Loads `req` from `path` into an fp32 (or `dtype`) buffer on one rank.
moert_status_t tryLoad(const std::string &path,
                       const moert_weight_request_t &req, int64_t count,
                       std::vector<float> *out = nullptr,
                       moert_dtype_t dtype = MOERT_F32) {
  moert_weights_t file = nullptr;
  moert_status_t status = moert_weights_open(path.c_str(), &file);
  if (status != MOERT_OK)
    return status;
  onOneRank([&](moert_context_t ctx) {
    Buffer dst(ctx, count * moert_dtype_size(dtype));
    status = moert_weights_load(ctx, file, &req, dst.view(dtype));
    if (status == MOERT_OK && out) {
      std::vector<char> bytes = dst.download<char>(dtype, count);
      out->resize(count);
      convertToFloat(bytes.data(), dtype, out->data(), count);
    }
  });
  moert_weights_close(file);
  return status;
}

moert_weight_request_t request(const char *key, std::vector<int64_t> shape) {
  moert_weight_request_t req;
  moert_weight_request_init(&req, key, static_cast<int32_t>(shape.size()),
                            shape.data());
  return req;
}

TEST(Safetensors, RoundTripsEveryDtype) {
  std::string path = tempPath("roundtrip.safetensors");
  SafetensorsWriter writer;
  Floats values = {1.0f, -2.5f, 0.1f, 65504.0f, 1e-3f, 3.0f};
  writer.add("f32", MOERT_F32, {2, 3}, values.data());
  writer.add("f16", MOERT_F16, {2, 3}, values.data());
  writer.add("bf16", MOERT_BF16, {6}, values.data());
  writer.setMetadata("format", "pt");
  writer.write(path);

  weights::SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.keys(), (std::vector<std::string>{"bf16", "f16", "f32"}));
  EXPECT_EQ(file.get("f16").shape, (std::vector<int64_t>{2, 3}));

  Floats got;
  ASSERT_EQ(tryLoad(path, request("f32", {2, 3}), 6, &got), MOERT_OK)
      << moert_last_error();
  EXPECT_EQ(got, values);
  ASSERT_EQ(tryLoad(path, request("f16", {2, 3}), 6, &got), MOERT_OK);
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(got[i], f16ToFloat(floatToF16(values[i])));
  // bf16 in the file, loaded as bf16 storage: bits preserved.
  ASSERT_EQ(tryLoad(path, request("bf16", {6}), 6, &got, MOERT_BF16), MOERT_OK);
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(got[i], bf16ToFloat(floatToBf16(values[i])));
}

TEST(Safetensors, LoadsAnExpertRangeAndAnFSlice) {
  // Four experts' down_proj [H=3, F=4]; a rank loads experts [1,3) and the
  // F columns [2,4) (expert slicing).
  std::string path = tempPath("experts.safetensors");
  SafetensorsWriter writer;
  for (int e = 0; e < 4; ++e) {
    Floats w = iota(12, 100.0f * e);
    writer.add("layers.0.experts." + std::to_string(e) + ".down.weight",
               MOERT_BF16, {3, 4}, w.data());
  }
  writer.write(path);
  moert_weight_request_t req =
      request("layers.0.experts.{e}.down.weight", {3, 4});
  req.expert_begin = 1;
  req.expert_end = 3;
  req.begin[1] = 2;
  req.end[1] = 4;
  Floats got;
  ASSERT_EQ(tryLoad(path, req, 2 * 3 * 2, &got), MOERT_OK)
      << moert_last_error();
  Floats want;
  for (int e = 1; e < 3; ++e)
    for (int row = 0; row < 3; ++row)
      for (int col = 2; col < 4; ++col)
        want.push_back(bf16ToFloat(floatToBf16(100.0f * e + row * 4 + col)));
  EXPECT_EQ(got, want);
  // Row slice of one expert (gate_proj F-slice is a row range).
  req.expert_begin = 3;
  req.expert_end = 4;
  req.begin[0] = 1;
  req.end[0] = 2;
  req.begin[1] = 0;
  req.end[1] = 0;
  ASSERT_EQ(tryLoad(path, req, 4, &got), MOERT_OK);
  // bf16 spacing at 256..512 is 2: 305 and 307 round to even neighbours.
  EXPECT_EQ(got, (Floats{304, 304, 306, 308}));
}

TEST(Safetensors, ExpertStridePacksGateAndUpIntoOneBuffer) {
  // Three experts' gate and up [F=2, H=3]; experts [1,3) load interleaved
  // into packed [2, 2F, H] (up at offset F*H, stride 2F*H), as
  // moert_fused_experts reads them.
  const int64_t F = 2, H = 3, box = F * H;
  std::string path = tempPath("packed.safetensors");
  SafetensorsWriter writer;
  for (int e = 0; e < 3; ++e) {
    Floats gate = iota(box, 100.0f * e), up = iota(box, 100.0f * e + 50.0f);
    writer.add("experts." + std::to_string(e) + ".gate", MOERT_F32, {F, H},
               gate.data());
    writer.add("experts." + std::to_string(e) + ".up", MOERT_F32, {F, H},
               up.data());
  }
  writer.write(path);
  moert_weights_t file = nullptr;
  ASSERT_EQ(moert_weights_open(path.c_str(), &file), MOERT_OK);
  onOneRank([&](moert_context_t ctx) {
    const int64_t packed = 2 * 2 * box;
    Buffer dst(ctx, packed * 4);
    check(moert_buffer_fill(ctx, dst.view(MOERT_F32), packed, NAN));
    moert_weight_request_t gate = request("experts.{e}.gate", {F, H});
    gate.expert_begin = 1;
    gate.expert_end = 3;
    gate.dst_expert_stride = 2 * box;
    moert_weight_request_t up = gate;
    up.key = "experts.{e}.up";
    check(moert_weights_load(ctx, file, &gate, dst.view(MOERT_F32)));
    check(moert_weights_load(ctx, file, &up, dst.view(MOERT_F32, box)));
    Floats want;
    for (int e = 1; e < 3; ++e) {
      Floats g = iota(box, 100.0f * e), u = iota(box, 100.0f * e + 50.0f);
      want.insert(want.end(), g.begin(), g.end());
      want.insert(want.end(), u.begin(), u.end());
    }
    EXPECT_EQ(dst.download<float>(MOERT_F32, packed), want);
    // The last expert's up rows would end one element past the buffer.
    EXPECT_MOERT_ERROR(
        moert_weights_load(ctx, file, &up, dst.view(MOERT_F32, box + 1)),
        MOERT_INVALID_ARGUMENT, "runs past its buffer");
    moert_weight_request_t overlapping = gate;
    overlapping.dst_expert_stride = box - 1;
    EXPECT_MOERT_ERROR(
        moert_weights_load(ctx, file, &overlapping, dst.view(MOERT_F32)),
        MOERT_INVALID_ARGUMENT, "is smaller than one expert's");
  });
  moert_weights_close(file);
}

TEST(Safetensors, MissingKeyNamesFileAndKey) {
  std::string path = tempPath("missing.safetensors");
  SafetensorsWriter writer;
  Floats w = iota(4);
  writer.add("present", MOERT_F32, {4}, w.data());
  writer.write(path);
  EXPECT_MOERT_ERROR(tryLoad(path, request("absent.weight", {4}), 4),
                     MOERT_NOT_FOUND,
                     "missing.safetensors: no tensor "
                     "'absent.weight'");
  moert_weight_request_t req = request("experts.{e}.w", {4});
  req.expert_begin = 0;
  req.expert_end = 2;
  EXPECT_MOERT_ERROR(tryLoad(path, req, 8), MOERT_NOT_FOUND, "experts.0.w");
}

TEST(Safetensors, UnitExtentsDoNotChangeTheLayout) {
  std::string path = tempPath("unit-extents.safetensors");
  SafetensorsWriter writer;
  Floats w = iota(4);
  writer.add("bias", MOERT_F32, {1, 4}, w.data());
  writer.write(path);
  Floats got;
  ASSERT_EQ(tryLoad(path, request("bias", {4}), 4, &got), MOERT_OK)
      << moert_last_error();
  EXPECT_EQ(got, w);
  // Same element count, other extents: still an error.
  EXPECT_MOERT_ERROR(tryLoad(path, request("bias", {2, 2}), 4),
                     MOERT_FORMAT_ERROR, "has shape [1,4], expected [2,2]");
}

TEST(Safetensors, ShapeMismatchIsAnError) {
  std::string path = tempPath("shape.safetensors");
  SafetensorsWriter writer;
  Floats w = iota(8);
  writer.add("w", MOERT_F32, {2, 4}, w.data());
  writer.write(path);
  EXPECT_MOERT_ERROR(tryLoad(path, request("w", {4, 2}), 8), MOERT_FORMAT_ERROR,
                     "has shape [2,4], expected [4,2]");
  moert_weight_request_t req = request("w", {2, 4});
  req.begin[1] = 3;
  req.end[1] = 5;
  EXPECT_MOERT_ERROR(tryLoad(path, req, 4), MOERT_INVALID_ARGUMENT,
                     "outside the extent 4");
  req = request("w", {2, 4});
  req.expert_end = 2;
  EXPECT_MOERT_ERROR(tryLoad(path, req, 16), MOERT_INVALID_ARGUMENT, "no {e}");
}

TEST(Safetensors, TruncatedFilesAreErrors) {
  std::string path = tempPath("whole.safetensors");
  SafetensorsWriter writer;
  Floats w = iota(16);
  writer.add("w", MOERT_F32, {16}, w.data());
  writer.write(path);
  std::string bytes = readFile(path);
  std::string cut = tempPath("cut.safetensors");

  writeFile(cut, bytes.substr(0, bytes.size() - 1)); // data cut short
  EXPECT_MOERT_ERROR(tryLoad(cut, request("w", {16}), 16), MOERT_IO_ERROR,
                     "truncated: tensor 'w'");
  writeFile(cut, bytes.substr(0, 20)); // inside the header
  EXPECT_MOERT_ERROR(tryLoad(cut, request("w", {16}), 16), MOERT_IO_ERROR,
                     "truncated: header length");
  writeFile(cut, bytes.substr(0, 5)); // not even the length
  EXPECT_MOERT_ERROR(tryLoad(cut, request("w", {16}), 16), MOERT_IO_ERROR,
                     "shorter than the 8-byte header length");
  EXPECT_MOERT_ERROR(
      tryLoad(tempPath("nope.safetensors"), request("w", {1}), 1),
      MOERT_IO_ERROR, "cannot open");
}

TEST(Safetensors, MalformedHeadersAreErrors) {
  std::string path = tempPath("bad.safetensors");
  auto expectFormatError = [&](const std::string &json, const std::string &data,
                               const char *fragment) {
    writeFile(path, withHeader(json, data));
    EXPECT_MOERT_ERROR(tryLoad(path, request("w", {1}), 1), MOERT_FORMAT_ERROR,
                       fragment);
  };
  expectFormatError("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]", "xxxx",
                    "malformed JSON");
  expectFormatError("[1, 2]", "", "not a JSON object");
  expectFormatError("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}",
                    "xxxx", "missing string 'dtype'");
  expectFormatError(
      "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}",
      "xxxx", "needs 8");
  expectFormatError(
      "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0,4]}}",
      "xxxx", "negative extent");
  expectFormatError(
      "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}",
      "xxxx", "begin after they end");
}

// The format is exact: a file that passes these checks reads every tensor
// from its own bytes, so a wrong offset or header length cannot be loaded as
// shifted data.
TEST(Safetensors, TensorsMustTileTheDataRegion) {
  std::string path = tempPath("layout.safetensors");
  auto expectRejected = [&](const std::string &json, const std::string &data,
                            moert_status_t status, const char *fragment) {
    writeFile(path, withHeader(json, data));
    EXPECT_MOERT_ERROR(tryLoad(path, request("a", {1}), 1), status, fragment);
  };
  auto tensor = [](const char *name, int begin, int end) {
    return std::string("\"") + name +
           "\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [" +
           std::to_string(begin) + ", " + std::to_string(end) + "]}";
  };
  // data_offsets shifted by one byte: a one-byte gap before 'a'.
  expectRejected("{" + tensor("a", 1, 5) + "}", "xxxxx", MOERT_FORMAT_ERROR,
                 "tensor 'a' starts at byte 1 of the data, expected 0");
  // Two tensors sharing one byte range.
  expectRejected("{" + tensor("a", 0, 4) + ", " + tensor("b", 0, 4) + "}",
                 "xxxx", MOERT_FORMAT_ERROR,
                 "tensor 'b' starts at byte 0 of the data, expected 4");
  // Overlapping by part of a tensor, and a gap between two tensors.
  expectRejected("{" + tensor("a", 0, 4) + ", " + tensor("b", 2, 6) + "}",
                 "xxxxxx", MOERT_FORMAT_ERROR,
                 "expected 4, where tensor 'a' ends");
  expectRejected("{" + tensor("a", 0, 4) + ", " + tensor("b", 6, 10) + "}",
                 "xxxxxxxxxx", MOERT_FORMAT_ERROR,
                 "tensor 'b' starts at byte 6 of the data, expected 4");
  // Slack after the last tensor.
  expectRejected("{" + tensor("a", 0, 4) + "}", "xxxxx", MOERT_FORMAT_ERROR,
                 "1 byte(s) after the last tensor");
  // A duplicate key: which one would be read?
  expectRejected("{" + tensor("a", 0, 4) + ", " + tensor("a", 4, 8) + "}",
                 "xxxxxxxx", MOERT_FORMAT_ERROR, "duplicate key 'a'");

  // A header length one less than the real (space-padded) header moves the
  // data region one byte early.
  SafetensorsWriter writer;
  Floats w = iota(4);
  writer.add("a", MOERT_F32, {4}, w.data());
  writer.write(path);
  std::string bytes = readFile(path);
  ASSERT_EQ(bytes[8 + bytes[0] - 1], ' ');
  bytes[0] = static_cast<char>(bytes[0] - 1);
  writeFile(path, bytes);
  EXPECT_MOERT_ERROR(tryLoad(path, request("a", {4}), 4), MOERT_FORMAT_ERROR,
                     "1 byte(s) after the last tensor");
}

TEST(Safetensors, HeaderIsExactlyOneObjectPaddedWithSpaces) {
  std::string path = tempPath("padding.safetensors");
  const std::string entry =
      "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
  writeFile(path, withHeader(entry + "    ", "xxxx"));
  EXPECT_EQ(tryLoad(path, request("a", {1}), 1), MOERT_OK)
      << moert_last_error();
  for (const std::string &json : {entry + "\n", " " + entry, entry + "\t "}) {
    writeFile(path, withHeader(json, "xxxx"));
    EXPECT_MOERT_ERROR(tryLoad(path, request("a", {1}), 1), MOERT_FORMAT_ERROR,
                       "padded with trailing spaces only");
  }
}

TEST(Safetensors, TensorEntriesAreChecked) {
  std::string path = tempPath("entries.safetensors");
  auto expectRejected = [&](const std::string &json, const std::string &data,
                            const char *fragment) {
    writeFile(path, withHeader(json, data));
    EXPECT_MOERT_ERROR(tryLoad(path, request("a", {1}), 1), MOERT_FORMAT_ERROR,
                       fragment);
  };
  // 2^32 x 2^32 F32 elements wrap to 0 bytes in 64 bits.
  expectRejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, "
                 "4294967296], \"data_offsets\": [0, 0]}}",
                 "",
                 "tensor 'a': shape [4294967296,4294967296] of F32 "
                 "overflows 64-bit byte sizes");
  expectRejected(
      "{\"a\": {\"dtype\": \"Q3\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
      "xxxx", "tensor 'a': unknown dtype 'Q3'");
  expectRejected("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], "
                 "\"data_offsets\": [0, 4], \"extra\": 1}}",
                 "xxxx", "tensor 'a': unknown field 'extra'");
  // The byte size of an unsupported dtype is checked too.
  expectRejected(
      "{\"a\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
      "xxxx", "tensor 'a' has 4 data bytes, its shape [1] of I64 needs 8");
}

TEST(Safetensors, UnsupportedDtypeIsAnError) {
  std::string path = tempPath("int8.safetensors");
  SafetensorsWriter writer;
  writer.addRaw("w", "I8", {4}, std::vector<char>(4, 1));
  writer.write(path);
  EXPECT_MOERT_ERROR(tryLoad(path, request("w", {4}), 4), MOERT_UNSUPPORTED,
                     "dtype I8");
}

// Quantized weights and their u8 scales load byte for byte into a view of
// their own dtype, and into no other (their values need their scales).
TEST(Safetensors, QuantizedTensorsLoadAsStored) {
  std::string path = tempPath("fp8.safetensors");
  SafetensorsWriter writer;
  std::vector<char> fp8 = {0x38, char(0xc4), 0x01, 0x7e, 0x00, char(0x80)};
  writer.addRaw("w", "F8_E4M3", {2, 3}, fp8);
  writer.addRaw("s", "U8", {2, 1}, {char(127), char(130)});
  writer.write(path);
  std::vector<float> got;
  ASSERT_EQ(tryLoad(path, request("w", {2, 3}), 6, &got, MOERT_F8_E4M3),
            MOERT_OK);
  EXPECT_EQ(got, (Floats{1.0f, -3.0f, 0x1p-9f, 448.0f, 0.0f, -0.0f}));
  ASSERT_EQ(tryLoad(path, request("s", {2, 1}), 2, &got, MOERT_U8), MOERT_OK);
  EXPECT_EQ(got, (Floats{127.0f, 130.0f}));
  // A row of the fp8 tensor (a box) as well.
  moert_weight_request_t row = request("w", {2, 3});
  row.begin[0] = 1;
  ASSERT_EQ(tryLoad(path, row, 3, &got, MOERT_F8_E4M3), MOERT_OK);
  EXPECT_EQ(got, (Floats{448.0f, 0.0f, -0.0f}));
  EXPECT_MOERT_ERROR(
      tryLoad(path, request("w", {2, 3}), 6, nullptr, MOERT_BF16),
      MOERT_INVALID_ARGUMENT,
      "tensor 'w' of dtype F8_E4M3 cannot load into a bf16");
  EXPECT_MOERT_ERROR(tryLoad(path, request("s", {2, 1}), 2, nullptr, MOERT_F32),
                     MOERT_INVALID_ARGUMENT, "of dtype U8 cannot load");
  std::string plain = tempPath("f32-for-fp8.safetensors");
  SafetensorsWriter f32;
  Floats values = {1.0f, 2.0f};
  f32.add("w", MOERT_F32, {2}, values.data());
  f32.write(plain);
  EXPECT_MOERT_ERROR(
      tryLoad(plain, request("w", {2}), 2, nullptr, MOERT_F8_E4M3),
      MOERT_INVALID_ARGUMENT,
      "tensor 'w' of dtype F32 cannot load into a f8_e4m3 view");
  EXPECT_MOERT_ERROR(
      tryLoad(path, request("w", {3, 2}), 6, nullptr, MOERT_F8_E4M3),
      MOERT_FORMAT_ERROR, "has shape [2,3], expected [3,2]");
}

TEST(Json, ParsesEscapesAndNumbers) {
  json::Value v = json::parse(
      R"({"a": [1, -2, 3.5e2, true, null], "b\n\u00e9\ud83d\ude00": "x\"y"})");
  ASSERT_EQ(v.kind, json::Value::Kind::Object);
  const json::Value *a = v.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->array[1].integer, -2);
  EXPECT_EQ(a->array[2].number, 350.0);
  EXPECT_EQ(a->array[2].kind, json::Value::Kind::Number);
  EXPECT_EQ(a->array[3].boolean, true);
  EXPECT_EQ(v.object[1].first, "b\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.object[1].second.string, "x\"y");
  EXPECT_THROW(json::parse("{\"a\": 1,}"), moert::Error);
  EXPECT_THROW(json::parse("{\"a\": 01x}"), moert::Error);
  EXPECT_THROW(json::parse("\"unterminated"), moert::Error);
}

// Expects json::parse to throw a moert::Error containing `fragment`.
void expectJsonError(const std::string &text, const char *fragment) {
  try {
    json::parse(text);
    ADD_FAILURE() << "accepted; expected " << fragment;
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << e.what();
  }
}

TEST(Json, RejectsWhatCouldCrashOrMislead) {
  // Deep nesting would overflow the stack of a recursive parser.
  expectJsonError(std::string(100000, '['), "nesting deeper than");
  std::string objects;
  for (int i = 0; i < 100000; ++i)
    objects += "{\"a\": ";
  expectJsonError(objects, "nesting deeper than");
  expectJsonError(R"({"a": 1, "b": 2, "a": 3})", "duplicate key 'a'");
  expectJsonError(R"({"x": {"a": 1, "a": 1}})", "duplicate key 'a'");
  expectJsonError("99999999999999999999", "integer out of range");
  expectJsonError("1" + std::string(400, '0') + ".5", "number longer than");
  expectJsonError("[01]", "leading zero");
  expectJsonError("[-]", "expected digits");
  expectJsonError(R"("\udc00")", "unpaired low surrogate");
}

} // namespace

namespace {

// Boxes of a [3, 4, 5] tensor read in runs: whole trailing dimensions merge
// into one read, partial ones split it; same dtype (straight into dst) and
// another (through the staging buffer) give the naive box.
TEST(Safetensors, BoxesOfARank3TensorMatchTheNaiveBox) {
  std::string path = tempPath("rank3.safetensors");
  const std::vector<int64_t> shape = {3, 4, 5};
  Floats values = iota(60, -30.0f);
  SafetensorsWriter writer;
  writer.add("t", MOERT_F32, shape, values.data());
  writer.add("b", MOERT_BF16, shape, values.data());
  writer.write(path);
  weights::SafetensorsFile file(path);
  struct Box {
    std::vector<int64_t> begin, end;
  } boxes[] = {{{0, 0, 0}, {3, 4, 5}}, {{1, 0, 0}, {3, 4, 5}},
               {{0, 1, 0}, {3, 3, 5}}, {{1, 1, 2}, {2, 4, 4}},
               {{2, 3, 4}, {3, 4, 5}}};
  for (const Box &box : boxes) {
    Floats want;
    for (int64_t i = box.begin[0]; i < box.end[0]; ++i)
      for (int64_t j = box.begin[1]; j < box.end[1]; ++j)
        for (int64_t k = box.begin[2]; k < box.end[2]; ++k)
          want.push_back(values[size_t((i * 4 + j) * 5 + k)]);
    for (const char *key : {"t", "b"}) {
      Floats got(want.size(), NAN);
      EXPECT_EQ(file.readBox(key, shape, box.begin, box.end, got.data(),
                             MOERT_F32),
                int64_t(want.size()));
      EXPECT_EQ(got, want) << key; // small integers: exact in bf16
    }
    std::vector<uint16_t> raw(want.size());
    file.readBox("b", shape, box.begin, box.end, raw.data(), MOERT_BF16);
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(bf16ToFloat(raw[i]), want[i]);
  }
}

} // namespace
