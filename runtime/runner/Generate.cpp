//===- runtime/runner/Generate.cpp - Greedy generation --------------------===//
//
// Attention is data parallel (the plan's only attention plan): each rank
// holds its own sequences in its own KV caches. The batch is split over the
// ranks when they divide it; otherwise (and on CUDA, where each process
// writes only its own results) every rank runs every sequence, and rank 0's
// results are written. Either way the expert layers exchange tokens over
// the whole expert-parallel group every step.
//
//===----------------------------------------------------------------------===//

#include "runtime/runner/Generate.h"

#include "runtime/common/Error.h"
#include "runtime/runner/Npy.h"
#include "runtime/runner/RunSupport.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>

namespace moert::runner {

bool parsePromptIds(const std::string &text, std::vector<int32_t> &ids) {
  ids.clear();
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || text[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9')
      ++end;
    if (end == i || end - i > 9)
      return false;
    ids.push_back(int32_t(std::stol(text.substr(i, end - i))));
    i = end;
  }
  return !ids.empty();
}

BatchPlan planBatch(moert_backend_t backend, int32_t worldSize,
                    int32_t attentionTp,
                    const std::vector<std::vector<int32_t>> &prompts,
                    int64_t newTokens) {
  BatchPlan plan;
  int64_t batch = int64_t(prompts.size());
  int32_t groups = attentionTp > 0 ? worldSize / attentionTp : 0;
  plan.split =
      backend == MOERT_BACKEND_CPU && groups > 0 && batch % groups == 0;
  plan.perRank = plan.split ? batch / groups : batch;
  for (int64_t r = 0; r < (plan.split ? groups : 1); ++r) {
    int64_t tokens = 0;
    for (int64_t b = 0; b < plan.perRank; ++b) {
      int64_t length = int64_t(prompts[size_t(r * plan.perRank + b)].size());
      tokens += length;
      plan.maxSeq = std::max(plan.maxSeq, length + newTokens - 1);
    }
    plan.tokens = std::max(plan.tokens, tokens);
  }
  return plan;
}

bool readPromptFile(const std::string &path,
                    std::vector<std::vector<int32_t>> &prompts,
                    std::string &error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read the prompts file " + path;
    return false;
  }
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    std::vector<int32_t> ids;
    if (!parsePromptIds(line, ids)) {
      error = path + ":" + std::to_string(number) +
              ": expected token ids separated by spaces or commas, got '" +
              line + "'";
      return false;
    }
    prompts.push_back(std::move(ids));
  }
  return true;
}

namespace {

struct GenerateJob {
  const RunOptions *options;
  const moert_model_info_t *info;
  moert_model_init_fn init;
  moert_model_forward_fn forward;
  moert_weights_t weights = nullptr;
  ProcessRanks ranks;
  bool split = false;
  int64_t perRank = 0; // sequences per rank
  // By prompt: the new ids and the logits that chose them.
  std::vector<std::vector<int32_t>> newIds;
  std::vector<std::vector<float>> logits;
  std::vector<std::string> where;                  // per rank of this process
  int64_t initNs = 0, prefillNs = 0, decodeNs = 0; // max over ranks
};

moert_status_t generateRank(moert_context_t ctx, void *user) {
  GenerateJob &job = *static_cast<GenerateJob *>(user);
  const moert_model_info_t &info = *job.info;
  const auto &prompts = job.options->prompts;
  int32_t rank = moert_context_rank(ctx);
  RankCheck check(job.where[size_t(rank - job.ranks.first)]);
  const char **call = check.call();
  RankResources res{ctx};
  moert_status_t st;
  if ((st = check(moert_buffer_alloc(ctx, size_t(info.state_bytes), &res.state),
                  "allocating the model state")))
    return st;
  int64_t start = moert_model_clock_ns();
  if ((st = check(job.init(ctx, job.weights, res.state, call), "init")))
    return st;
  int64_t initNs = moert_model_clock_ns() - start;
  if ((st = check(createWorldGroup(ctx, job.ranks.worldSize, &res.world),
                  "creating the world group for the statistics")))
    return st;

  // ids, sequences, positions, sampled rows, next ids (i32), then logits
  // (f32, one row per sequence).
  int64_t maxT = info.max_tokens, vocab = info.vocab, maxB = info.max_batch;
  if ((st = check(moert_buffer_alloc(ctx, size_t(maxT * 20 + maxB * vocab * 4),
                                     &res.io),
                  "allocating the token buffers")))
    return st;
  moert_view_t ids = moert_make_view(res.io, 0, MOERT_I32),
               seqs = moert_make_view(res.io, maxT, MOERT_I32),
               pos = moert_make_view(res.io, 2 * maxT, MOERT_I32),
               sampled = moert_make_view(res.io, 3 * maxT, MOERT_I32),
               next = moert_make_view(res.io, 4 * maxT, MOERT_I32),
               logits = moert_make_view(res.io, 5 * maxT, MOERT_F32);
  // An attention group (tp consecutive ranks) shares its sequences; its
  // first rank writes them.
  int32_t tp = std::max<int32_t>(1, info.attention_tp);
  int64_t first = job.split ? (rank / tp) * job.perRank : 0;
  int64_t count = job.split ? job.perRank : int64_t(prompts.size());
  bool writes = rank % tp == 0 && (job.split || rank == 0);
  int64_t newTokens = job.options->maxNewTokens;

  // One forward over (id, sequence, position) triples, sampling token
  // rows[b] of each local sequence b: its chosen id and logits row b.
  std::vector<int32_t> hostIds, hostSeqs, hostPos;
  std::vector<int32_t> last(static_cast<size_t>(count));
  auto forward = [&](const std::vector<int32_t> &rows, int64_t step) {
    int64_t tokens = int64_t(hostIds.size());
    if ((st = check(moert_buffer_upload(ctx, ids, hostIds.data(), tokens),
                    "uploading the ids")) ||
        (st = check(moert_buffer_upload(ctx, seqs, hostSeqs.data(), tokens),
                    "uploading the sequences")) ||
        (st = check(moert_buffer_upload(ctx, pos, hostPos.data(), tokens),
                    "uploading the positions")) ||
        (st = check(moert_buffer_upload(ctx, sampled, rows.data(), count),
                    "uploading the sampled rows")) ||
        (st = check(job.forward(ctx, res.state, nullptr, tokens, count, ids,
                                seqs, pos, sampled, logits, next, call),
                    "forward")) ||
        (st = check(moert_buffer_download(ctx, last.data(), next, count),
                    "downloading the next ids")))
      return st;
    for (int64_t b = 0; b < count; ++b) {
      if (!writes)
        continue;
      size_t p = size_t(first + b);
      job.newIds[p][size_t(step)] = last[size_t(b)];
      moert_view_t row = logits;
      row.offset += b * vocab;
      if ((st = check(moert_buffer_download(
                          ctx, job.logits[p].data() + step * vocab, row, vocab),
                      "downloading the logits")))
        return st;
    }
    return MOERT_OK;
  };

  // Prefill: every local prompt in one forward, sequence b in slot b.
  std::vector<int32_t> rows;
  for (int64_t b = 0; b < count; ++b) {
    const std::vector<int32_t> &prompt = prompts[size_t(first + b)];
    for (size_t t = 0; t < prompt.size(); ++t) {
      hostIds.push_back(prompt[t]);
      hostSeqs.push_back(int32_t(b));
      hostPos.push_back(int32_t(t));
    }
    rows.push_back(int32_t(hostIds.size()) - 1);
  }
  start = moert_model_clock_ns();
  if ((st = forward(rows, 0)))
    return st;
  int64_t prefillNs = moert_model_clock_ns() - start;
  // Decode: one token per sequence per step.
  start = moert_model_clock_ns();
  for (int64_t step = 1; step < newTokens; ++step) {
    hostIds.assign(last.begin(), last.end());
    hostSeqs.resize(size_t(count));
    hostPos.resize(size_t(count));
    for (int64_t b = 0; b < count; ++b) {
      hostSeqs[size_t(b)] = int32_t(b);
      hostPos[size_t(b)] =
          int32_t(prompts[size_t(first + b)].size() + size_t(step) - 1);
      rows[size_t(b)] = int32_t(b);
    }
    if ((st = forward(rows, step)))
      return st;
  }
  int64_t decodeNs = moert_model_clock_ns() - start;
  for (int64_t *ns : {&initNs, &prefillNs, &decodeNs})
    if ((st = check(moert_all_reduce_i64(ctx, res.world, MOERT_REDUCE_MAX, ns),
                    "reducing the times")))
      return st;
  if (rank == 0) {
    job.initNs = initNs;
    job.prefillNs = prefillNs;
    job.decodeNs = decodeNs;
  }
  return MOERT_OK;
}

} // namespace

void generate(const RunOptions &options, const moert_model_info_t &info,
              moert_model_init_fn init, moert_model_forward_fn forward) {
  const auto &prompts = options.prompts;
  int64_t batch = int64_t(prompts.size()), newTokens = options.maxNewTokens;
  if (batch == 0)
    fail(MOERT_INVALID_ARGUMENT,
         "this model is a whole decoder: give --prompt-ids (and "
         "--max-new-tokens)");
  if (newTokens < 1)
    fail(MOERT_INVALID_ARGUMENT, "--max-new-tokens must be >= 1, got ",
         newTokens);
  if (!options.inputNpy.empty() || !options.outputNpy.empty())
    fail(MOERT_INVALID_ARGUMENT,
         "--input/--output are for FFN-stack models; this model is a whole "
         "decoder (--prompt-ids, --output-ids, --output-logits)");
  launch::RankInfo launched;
  if (options.backend == MOERT_BACKEND_CUDA)
    launched = launch::discoverRankFromProcessEnv();
  ProcessRanks ranks =
      processRanks(options.backend, info.nodes, info.gpus_per_node, launched);

  GenerateJob job;
  job.options = &options;
  job.info = &info;
  job.init = init;
  job.forward = forward;
  job.ranks = ranks;
  BatchPlan plan =
      planBatch(options.backend, ranks.worldSize,
                std::max<int32_t>(1, info.attention_tp), prompts, newTokens);
  job.split = plan.split;
  job.perRank = plan.perRank;
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int32_t id : prompts[p])
      if (id < 0 || id >= info.vocab)
        fail(MOERT_INVALID_ARGUMENT, "prompt ", p, " has token id ", id,
             " outside the vocabulary [0, ", info.vocab, ")");
  if (plan.maxSeq > info.max_seq)
    fail(MOERT_INVALID_ARGUMENT, "a sequence needs ", plan.maxSeq,
         " positions (prompt + new tokens - 1) but the model's KV caches hold ",
         info.max_seq, " (compile with a larger max-seq)");
  if (int64_t limit = info.rope_regime_switch) {
    size_t shortest = prompts.empty() ? 0 : prompts[0].size();
    for (const std::vector<int32_t> &prompt : prompts)
      shortest = std::min(shortest, prompt.size());
    if (plan.maxSeq > limit && int64_t(shortest) <= limit)
      fail(MOERT_INVALID_ARGUMENT, "longrope switches to its long regime past ",
           limit, " positions (original_max_position_embeddings), and a "
           "sequence here would cross it or share a batch with one past it: "
           "keep prompt + new tokens - 1 <= ", limit,
           " or every prompt longer than ", limit,
           " (transformers re-encodes a sequence at the switch; the runner "
           "does not)");
  }
  if (plan.tokens > info.max_tokens || plan.perRank > info.max_batch)
    fail(MOERT_INVALID_ARGUMENT, "a rank prefills ", plan.tokens, " tokens of ",
         plan.perRank, " sequence(s); the model holds ", info.max_tokens,
         " tokens and ", info.max_batch,
         " sequences per rank (compile with larger tokens / max-batch)");
  job.newIds.assign(size_t(batch), std::vector<int32_t>(size_t(newTokens)));
  job.logits.assign(size_t(batch),
                    std::vector<float>(size_t(newTokens * info.vocab)));
  job.where.assign(size_t(ranks.count), "");

  if (ranks.reports()) {
    std::printf("%s", info.plan_table);
    if (info.attention_tp > 1)
      std::printf("generate: %lld prompt(s), %lld new token(s); attention "
                  "tensor parallel over %d ranks, %s\n",
                  (long long)batch, (long long)newTokens, info.attention_tp,
                  job.split ? "the batch split over the rank groups"
                            : "every rank runs the whole batch");
    else
      std::printf("generate: %lld prompt(s), %lld new token(s); attention "
                  "data parallel, %s\n",
                  (long long)batch, (long long)newTokens,
                  job.split ? "the batch split over the ranks"
                            : "every rank runs the whole batch");
    std::fflush(stdout);
  }
  RunSession session(options, info);
  job.weights = session.weights();
  session.run(generateRank, &job, job.where, ranks.first);
  if (!ranks.reports())
    return;

  // Decode tokens/s: the batch's tokens per decode step (as the
  // transformers side of bench/generate counts them).
  double prefillMs = job.prefillNs / 1e6;
  double decodeMs = newTokens > 1 ? job.decodeNs / 1e6 / (newTokens - 1) : 0;
  std::printf("weights loaded in %.3f s; per rank: weights %lld bytes, KV "
              "caches %lld (%lld sequences x %lld positions), activations "
              "%lld\n",
              job.initNs / 1e9, (long long)info.weight_bytes,
              (long long)info.cache_bytes, (long long)info.max_batch,
              (long long)info.max_seq, (long long)info.peak_bytes);
  std::printf("%-22s %12s\n", "phase", "time");
  std::printf("%-22s %9.3f ms\n", "prefill", prefillMs);
  std::printf("%-22s %9.3f ms\n", "decode per token", decodeMs);
  std::printf("%-22s %12.1f\n", "tokens/s",
              decodeMs > 0 ? batch * 1e3 / decodeMs : 0.0);
  if (!options.outputIds.empty()) {
    std::ofstream out(options.outputIds);
    for (const std::vector<int32_t> &line : job.newIds) {
      for (size_t i = 0; i < line.size(); ++i)
        out << (i ? " " : "") << line[i];
      out << "\n";
    }
    out.close();
    if (!out)
      fail(MOERT_IO_ERROR, "cannot write ", options.outputIds);
    std::printf("ids: %s\n", options.outputIds.c_str());
  }
  if (!options.outputLogits.empty()) {
    std::vector<float> all;
    for (const std::vector<float> &rows : job.logits)
      all.insert(all.end(), rows.begin(), rows.end());
    std::vector<int64_t> shape = {newTokens, info.vocab};
    if (batch > 1)
      shape.insert(shape.begin(), batch);
    writeNpy(options.outputLogits, shape, all);
    std::printf("logits: %s\n", options.outputLogits.c_str());
  }
}

} // namespace moert::runner
