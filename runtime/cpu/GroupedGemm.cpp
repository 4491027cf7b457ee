//===- runtime/cpu/GroupedGemm.cpp - GEMMs over many experts' rows --------===//

#include "runtime/cpu/GroupedGemm.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/Activation.h"
#include "runtime/cpu/gemm/Kernels.h"
#include "runtime/cpu/gemm/StoreFloats.h"

#include <algorithm>

using namespace moert;
using namespace moert::cpu;

int64_t ProblemRows::count() const {
  int64_t total = 0;
  for (const RowRun &run : runs)
    total += run.count;
  return total;
}

namespace {

// Largest output block a kernel delivers: 16 rows of a 32-column panel.
constexpr int64_t maxBlockRows = 16, maxBlockColumns = 32;
// Rows packed per parallel task: whole 16-row AMX tiles and 12-row FMA
// groups, so that no two tasks write one.
constexpr int64_t packRows = 48;

size_t aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }

// The kernel set of each problem.
using KernelSets = std::vector<const gemm::KernelSet *>;

// Each problem's packed operand of m rows x k columns, in its kernel set's
// layout, in one workspace.
class PackedOperands {
public:
  PackedOperands(gemm::Workspace &workspace, const KernelSets &kernels,
                 const std::vector<int64_t> &rows,
                 const std::vector<int64_t> &columns,
                 const std::vector<bool> &split) {
    std::vector<size_t> offsets;
    size_t total = 0;
    for (size_t p = 0; p < rows.size(); ++p) {
      offsets.push_back(total);
      total += aligned(kernels[p]->packedBytes(rows[p], columns[p], split[p]));
    }
    auto *base = static_cast<char *>(workspace.get(total));
    for (size_t p = 0; p < rows.size(); ++p) {
      rows_.push_back({base + offsets[p], rows[p], columns[p], split[p]});
      kernels[p]->clearPadding(rows_.back());
    }
  }
  const gemm::PackedRows &operator[](size_t problem) const {
    return rows_[problem];
  }

private:
  std::vector<gemm::PackedRows> rows_;
};

// A bf16 X is exact in one bf16 term; any other needs the second.
std::vector<bool> splitInputs(const std::vector<const ProblemRows *> &rows) {
  std::vector<bool> split;
  for (const ProblemRows *problem : rows)
    split.push_back(problem->inType != MOERT_BF16);
  return split;
}

// Packs every problem's input rows (K columns) into `packed`, a few rows per
// task.
void packInputs(ThreadPool &pool, const std::vector<const ProblemRows *> &rows,
                const KernelSets &kernels, const PackedOperands &packed) {
  struct Task {
    size_t problem;
    int64_t packedRow, sourceRow, count;
  };
  std::vector<Task> tasks;
  for (size_t p = 0; p < rows.size(); ++p) {
    int64_t packedRow = 0;
    for (const RowRun &run : rows[p]->runs)
      for (int64_t r = 0; r < run.count; r += packRows) {
        int64_t count = std::min(packRows, run.count - r);
        tasks.push_back({p, packedRow, run.first + r, count});
        packedRow += count;
      }
  }
  pool.parallelFor(static_cast<int64_t>(tasks.size()), [&](int64_t i, int) {
    const Task &task = tasks[i];
    const ProblemRows &problem = *rows[task.problem];
    const gemm::PackedRows &x = packed[task.problem];
    kernels[task.problem]->pack(
        problem.in + task.sourceRow * x.k * dtypeSize(problem.inType),
        problem.inType, x.k, task.packedRow, task.count, 0, x.k, x);
  });
}

// The out row of each packed row.
std::vector<int64_t> outRows(const ProblemRows &rows) {
  std::vector<int64_t> out;
  for (const RowRun &run : rows.runs)
    for (int64_t r = 0; r < run.count; ++r)
      out.push_back(run.first + r);
  return out;
}

// Output blocks (+ bias) rounded into the problem's out rows of n columns.
class OutputSink final : public gemm::Sink {
public:
  OutputSink(const ProblemRows &rows, int64_t n, const float *bias)
      : rows_(outRows(rows)), out_(rows.out), outType_(rows.outType), n_(n),
        bias_(bias) {}
  void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
             const float *first, const float *, int64_t ld) override {
    float row[maxBlockColumns];
    for (int64_t r = 0; r < rows; ++r) {
      const float *values = first + r * ld;
      if (bias_) {
        for (int64_t c = 0; c < cols; ++c)
          row[c] = values[c] + bias_[n0 + c];
        values = row;
      }
      gemm::storeFloats(values,
                        out_ + (rows_[m0 + r] * n_ + n0) * dtypeSize(outType_),
                        outType_, cols);
    }
  }

private:
  std::vector<int64_t> rows_;
  char *out_;
  moert_dtype_t outType_;
  int64_t n_;
  const float *bias_;
};

// act(first) * second, or act(first + b1), packed as the second GEMM's
// operand (m rows x ffn columns). Before bf16 down weights it is rounded to
// bf16, as transformers and the CUDA backend store it: the down GEMM then
// multiplies it in one bf16 term (AMX packing reads bf16 denormals as 0).
class HiddenSink final : public gemm::Sink {
public:
  HiddenSink(const gemm::KernelSet &kernels, const gemm::PackedRows &packed,
             moert_activation_t activation, const float *b1, bool bf16)
      : kernels_(kernels), packed_(packed), activation_(activation), b1_(b1),
        bf16_(bf16) {}
  void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
             const float *first, const float *second, int64_t ld) override {
    float block[maxBlockRows * maxBlockColumns];
    form(block, rows, cols, ld, false, n0, first, second);
    kernels_.pack(block, MOERT_F32, cols, m0, rows, n0, cols, packed_);
  }
  // Column-major blocks skip two transposes when the second GEMM's kernel
  // packs columns (all 16 rows are formed; the kernel drops the extra).
  bool storeColumns(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
                    const float *first, const float *second,
                    int64_t ld) override {
    if (!kernels_.packColumns)
      return false;
    float block[maxBlockRows * maxBlockColumns];
    form(block, cols, maxBlockRows, ld, true, n0, first, second);
    kernels_.packColumns(block, m0, rows, n0, cols, packed_);
    return true;
  }

private:
  // The hidden values of a block of outer x inner (rows x columns, or
  // columns x rows when byColumn), the inputs' element (o, i) at o * ld + i.
  void form(float *block, int64_t outer, int64_t inner, int64_t ld,
            bool byColumn, int64_t n0, const float *first,
            const float *second) const {
    if (second)
      return gatedHidden(activation_, first, second, ld, outer, inner, bf16_,
                         block);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i)
        block[o * inner + i] =
            first[o * ld + i] + (b1_ ? b1_[n0 + (byColumn ? o : i)] : 0.0f);
    // The whole block in one call: independent vectors in flight, where a
    // row of 16 alone waits out the activation's latency.
    activateInPlace(activation_, block, outer * inner);
    if (bf16_)
      gemm::roundToBf16InPlace(block, outer * inner);
  }

  const gemm::KernelSet &kernels_;
  gemm::PackedRows packed_;
  moert_activation_t activation_;
  const float *b1_;
  bool bf16_;
};

struct Job {
  gemm::Weights weights;
  const gemm::PackedRows &packed;
  gemm::Sink *sink;
  const gemm::KernelSet &kernels;
};

void runItem(const Job &job, int64_t item, gemm::Workspace &workspace) {
  if (job.weights.quantized() && !job.kernels.readsQuantized)
    gemm::runQuantized(job.kernels, job.weights, item, job.packed, workspace,
                       *job.sink);
  else
    job.kernels.run(job.weights, item, job.packed, workspace, *job.sink);
}

// Runs every item of every problem's GEMM on the pool: problem p's weights
// and sink come from `at(p)`. Items go out in runs of neighbours, about
// runsPerThread per thread: two threads that stream neighbouring items of
// one large weight read it from DRAM far slower than two that each stream
// a region of their own (a bare AMX loop over Mixtral's 1-token items on
// 2 cores: 32 ms alternating items, 23 ms in halves).
template <typename At> void runItems(ThreadPool &pool, size_t problems, At at) {
  constexpr int64_t runsPerThread = 4;
  std::vector<int64_t> firstItem(problems + 1, 0);
  for (size_t p = 0; p < problems; ++p)
    firstItem[p + 1] = firstItem[p] + at(p).weights.items();
  int64_t items = firstItem.back();
  int64_t run = std::max<int64_t>(1, items / (pool.size() * runsPerThread));
  pool.parallelFor((items + run - 1) / run, [&](int64_t r, int thread) {
    for (int64_t i = r * run; i < std::min(items, (r + 1) * run); ++i) {
      size_t p = std::upper_bound(firstItem.begin(), firstItem.end(), i) -
                 firstItem.begin() - 1;
      runItem(at(p), i - firstItem[p], pool.workspace(thread));
    }
  });
}

} // namespace

void moert::cpu::groupedLinear(GemmContext &context,
                               const std::vector<LinearProblem> &problems,
                               moert_dtype_t weightType, int64_t n, int64_t k) {
  std::vector<const ProblemRows *> rows;
  std::vector<int64_t> counts, columns(problems.size(), k);
  std::vector<OutputSink> sinks;
  KernelSets kernels;
  for (const LinearProblem &problem : problems) {
    rows.push_back(&problem.rows);
    counts.push_back(problem.rows.count());
    sinks.emplace_back(problem.rows, n, problem.bias);
    kernels.push_back(
        problem.quant
            ? &gemm::kernelsForQuantized({problem.quant}, counts.back())
            : &gemm::kernelsFor(weightType, counts.back()));
  }
  PackedOperands packed(context.packedInput, kernels, counts, columns,
                        splitInputs(rows));
  packInputs(context.pool, rows, kernels, packed);
  runItems(context.pool, problems.size(), [&](size_t p) {
    return Job{{problems[p].w, nullptr, weightType, n, k, problems[p].quant},
               packed[p],
               &sinks[p],
               *kernels[p]};
  });
}

void moert::cpu::groupedFfn(GemmContext &context,
                            const std::vector<FfnProblem> &problems) {
  if (problems.empty())
    return;
  bool quantized = problems[0].firstQuant != nullptr;
  std::vector<const ProblemRows *> rows;
  std::vector<int64_t> counts, hidden, ffn;
  KernelSets first, down;
  for (const FfnProblem &problem : problems) {
    rows.push_back(&problem.rows);
    counts.push_back(problem.rows.count());
    hidden.push_back(problem.hidden);
    ffn.push_back(problem.ffn);
    std::vector<const gemm::Quantization *> firstQuants = {problem.firstQuant};
    if (problem.secondQuant)
      firstQuants.push_back(problem.secondQuant);
    first.push_back(quantized
                        ? &gemm::kernelsForQuantized(firstQuants, counts.back())
                        : &gemm::kernelsFor(problem.firstType, counts.back()));
    down.push_back(
        quantized
            ? &gemm::kernelsForQuantized({problem.downQuant}, counts.back())
            : &gemm::kernelsFor(problem.downType, counts.back()));
  }
  PackedOperands inputs(context.packedInput, first, counts, hidden,
                        splitInputs(rows));
  // The hidden activations are fp32, rounded to bf16 before bf16 weights.
  bool bf16Hidden = !quantized && problems[0].downType == MOERT_BF16;
  PackedOperands hiddens(context.packedHidden, down, counts, ffn,
                         std::vector<bool>(problems.size(), !bf16Hidden));
  packInputs(context.pool, rows, first, inputs);

  std::vector<HiddenSink> hiddenSinks;
  std::vector<OutputSink> outputSinks;
  for (size_t p = 0; p < problems.size(); ++p) {
    const FfnProblem &problem = problems[p];
    hiddenSinks.emplace_back(*down[p], hiddens[p], problem.activation,
                             problem.b1, bf16Hidden);
    outputSinks.emplace_back(problem.rows, problem.hidden, problem.b2);
  }
  auto firstJob = [&](size_t p) {
    const FfnProblem &problem = problems[p];
    return Job{{problem.first, problem.second, problem.firstType, problem.ffn,
                problem.hidden, problem.firstQuant, problem.secondQuant},
               inputs[p],
               &hiddenSinks[p],
               *first[p]};
  };
  auto downJob = [&](size_t p) {
    const FfnProblem &problem = problems[p];
    return Job{{problem.down, nullptr, problem.downType, problem.hidden,
                problem.ffn, problem.downQuant},
               hiddens[p],
               &outputSinks[p],
               *down[p]};
  };
  // Many problems past decode size, none much larger than the others: a
  // thread runs a whole problem, both GEMMs, so that its hidden rows never
  // leave the core that formed them. Otherwise every item of the first
  // GEMM, then of the down: at decode the hidden rows are a few KB, and
  // whole problems split unevenly (9 experts on 2 threads: 5 against 4).
  constexpr int64_t decodeRows = 16;
  int64_t threads = context.pool.size(), most = 0, total = 0;
  for (int64_t count : counts) {
    most = std::max(most, count);
    total += count;
  }
  if (most > decodeRows &&
      static_cast<int64_t>(problems.size()) >= 4 * threads &&
      2 * threads * most <= total) {
    context.pool.parallelFor(problems.size(), [&](int64_t p, int thread) {
      auto runAll = [&](const Job &job) {
        for (int64_t i = 0; i < job.weights.items(); ++i)
          runItem(job, i, context.pool.workspace(thread));
      };
      runAll(firstJob(p));
      runAll(downJob(p));
    });
    return;
  }
  runItems(context.pool, problems.size(), firstJob);
  runItems(context.pool, problems.size(), downJob);
}
