//===- runtime/api/Weights.cpp - Weight files -----------------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"
#include "runtime/common/Convert.h"
#include "runtime/weights/Checkpoint.h"

#include <cstring>
#include <vector>

using namespace moert;
using namespace moert::api;
using namespace moert::weights;

struct moert_weights_s {
  std::unique_ptr<Checkpoint> checkpoint;
};

namespace {

const char *const expertPlaceholder = "{e}";

// Whether every element of the fused view (experts [first, last), the full
// `shape`) lies inside a tensor of fusedShape; false also on overflow.
bool viewFits(const moert_weight_request_t &req,
              const moert_fused_view_t &fused,
              const std::vector<int64_t> &shape,
              const std::vector<int64_t> &fusedShape) {
  int64_t elements = 1, lastIndex = fused.offset, term = 0;
  for (int64_t extent : fusedShape)
    if (__builtin_mul_overflow(elements, extent, &elements))
      return false;
  if (__builtin_mul_overflow(req.expert_end - 1, fused.expert_stride,
                             &term) ||
      __builtin_add_overflow(lastIndex, term, &lastIndex))
    return false;
  for (size_t d = 0; d < shape.size(); ++d)
    if (__builtin_mul_overflow(shape[d] - 1, fused.strides[d], &term) ||
        __builtin_add_overflow(lastIndex, term, &lastIndex))
      return false;
  return lastIndex < elements;
}

std::string expertKey(const std::string &pattern, int64_t expert) {
  std::string key = pattern;
  size_t at = key.find(expertPlaceholder);
  key.replace(at, std::strlen(expertPlaceholder), std::to_string(expert));
  return key;
}

} // namespace

namespace {

// Both loads: `fused` null for a plain request.
void load(moert_context_t ctx, moert_weights_t weights,
        const moert_weight_request_t *req, const moert_fused_view_t *fused,
        moert_view_t dst) {
  checkContext(ctx);
  require(weights != nullptr && req != nullptr && req->key != nullptr,
          "null argument");
  const Checkpoint &file = *weights->checkpoint;
  std::string key = req->key;
  require(req->rank >= 1 && req->rank <= 4, "request for '", key,
          "' has rank ", req->rank, ", expected 1..4");
  bool stacked = key.find(expertPlaceholder) != std::string::npos;
  require(!(fused && stacked), "fused request for '", key,
          "' must name one tensor, not a {e} pattern");
  int64_t firstExpert = stacked || fused ? req->expert_begin : 0;
  int64_t lastExpert = stacked || fused ? req->expert_end : 1;
  if (stacked || fused)
    require(0 <= firstExpert && firstExpert < lastExpert, "request for '",
            key, "' has empty expert range [", firstExpert, ", ", lastExpert,
            ")");
  else
    require(req->expert_begin == 0 && req->expert_end == 0, "request for '",
            key, "' names an expert range but has no {e} in its key");
  std::vector<int64_t> shape(req->shape, req->shape + req->rank);
  std::vector<int64_t> begin(req->rank), end(req->rank);
  int64_t perExpert = 1;
  for (int32_t d = 0; d < req->rank; ++d) {
    begin[d] = req->begin[d];
    end[d] = req->end[d] == 0 ? shape[d] : req->end[d];
    require(shape[d] >= 0 && 0 <= begin[d] && begin[d] < end[d] &&
                end[d] <= shape[d],
            "request for '", key, "': dimension ", d, " range [", begin[d],
            ", ", end[d], ") is outside the extent ", shape[d]);
    perExpert *= end[d] - begin[d];
  }
  std::vector<int64_t> fusedShape, fusedStrides;
  if (fused) {
    require(fused->rank >= 1 && fused->rank <= 4, "request for '", key,
            "': the fused tensor's rank is ", fused->rank,
            ", expected 1..4");
    fusedShape.assign(fused->shape, fused->shape + fused->rank);
    fusedStrides.assign(fused->strides, fused->strides + req->rank);
    bool nonNegative = fused->offset >= 0 && fused->expert_stride >= 0;
    for (int64_t v : fusedShape)
      nonNegative &= v >= 0;
    for (int64_t v : fusedStrides)
      nonNegative &= v >= 0;
    require(nonNegative, "request for '", key,
            "': fused shape, offset and strides must be non-negative");
    require(viewFits(*req, *fused, shape, fusedShape), "request for '", key,
            "': the fused view of experts [", firstExpert, ", ", lastExpert,
            ") reaches past the end of the fused tensor");
  }
  int64_t stride =
      req->dst_expert_stride == 0 ? perExpert : req->dst_expert_stride;
  require(stride >= perExpert, "request for '", key, "': dst_expert_stride ",
          req->dst_expert_stride, " is smaller than one expert's ", perExpert,
          " elements");
  int64_t experts = lastExpert - firstExpert;
  require(isFloatType(dst.dtype) || dst.dtype == MOERT_F8_E4M3 ||
              dst.dtype == MOERT_U8,
          "operand 'dst' has dtype ", dtypeName(dst.dtype),
          ", expected f32, f16, bf16, f8_e4m3 or u8");
  Operand out = operand(dst, (experts - 1) * stride + perExpert, "dst");
  // One expert's box at a time: a backend whose memory is not the host's
  // stages only that much.
  for (int64_t e = 0; e < experts; ++e) {
    std::string name = stacked ? expertKey(key, firstExpert + e) : key;
    ctx->backend().writeFromHost(
        ctx->rank, out.at(e * stride), perExpert, [&](void *host) {
          if (fused)
            file.readView(key, fusedShape,
                          fused->offset +
                              (firstExpert + e) * fused->expert_stride,
                          fusedStrides, begin, end, host, dst.dtype);
          else
            file.readBox(name, shape, begin, end, host, dst.dtype);
        });
  }
}

} // namespace

extern "C" {

moert_status_t moert_weights_open(const char *path, moert_weights_t *out) {
  return guard("moert_weights_open", [&] {
    require(path != nullptr && out != nullptr, "null argument");
    *out = nullptr;
    auto weights = std::make_unique<moert_weights_s>();
    weights->checkpoint = std::make_unique<Checkpoint>(path);
    *out = weights.release();
  });
}

moert_status_t moert_weights_stats(moert_weights_t weights,
                                   moert_weights_stats_t *out) {
  return guard("moert_weights_stats", [&] {
    require(weights != nullptr && out != nullptr, "null argument");
    Checkpoint::Stats s = weights->checkpoint->stats();
    *out = moert_weights_stats_t{s.files, s.filesRead, s.bytes, s.bytesRead};
  });
}

void moert_weights_close(moert_weights_t weights) { delete weights; }

void moert_weight_request_init(moert_weight_request_t *req, const char *key,
                               int32_t rank, const int64_t *shape) {
  if (!req)
    return;
  *req = moert_weight_request_t{};
  req->key = key;
  req->rank = rank;
  for (int32_t d = 0; d < rank && d < 4 && shape; ++d)
    req->shape[d] = shape[d];
}

moert_status_t moert_weights_load(moert_context_t ctx, moert_weights_t weights,
                                  const moert_weight_request_t *req,
                                  moert_view_t dst) {
  return guard("moert_weights_load",
               [&] { load(ctx, weights, req, nullptr, dst); });
}

moert_status_t moert_weights_load_fused(moert_context_t ctx,
                                        moert_weights_t weights,
                                        const moert_weight_request_t *req,
                                        const moert_fused_view_t *fused,
                                        moert_view_t dst) {
  return guard("moert_weights_load_fused", [&] {
    require(fused != nullptr, "null argument");
    load(ctx, weights, req, fused, dst);
  });
}

} // extern "C"
