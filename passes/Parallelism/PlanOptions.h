//===- PlanOptions.h - value types of the plan options ----------*- C++ -*-===//
//
// The enums that moe-assign-parallelism's options take (Passes.td spells
// their values), and their command-line parser.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_PARALLELISM_PLANOPTIONS_H
#define MOE_PASSES_PARALLELISM_PLANOPTIONS_H

#include "passes/Parallelism/CostModel.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"

namespace mlir::moe {

/// `all-to-all=`: the cost model's choice, or the variant every exchange uses.
enum class AllToAllChoice { automatic, flat, hierarchical };

/// `duplicate-tokens=`: whether MoE layers after tensor-parallel attention
/// run on a share of the tp group's identical tokens (DeepSpeed-TED): where
/// the cost model says it is faster, always, or never.
enum class DuplicateTokens { automatic, drop, keep };

/// `report=`: whether and how the pass prints the plans.
enum class PlanReport { none, table, json, svg };

/// llvm::cl::parser's mapping from the cl::values of an enum option, with an
/// error that lists the accepted values (llvm::cl::parser names only the
/// wrong one).
template <typename DataType>
class EnumOptionParser : public llvm::cl::generic_parser_base {
protected:
  struct OptionInfo : GenericOptionInfo {
    OptionInfo(llvm::StringRef name, DataType value, llvm::StringRef help)
        : GenericOptionInfo(name, help), V(value) {}
    llvm::cl::OptionValue<DataType> V;
  };
  // `Values` as in llvm::cl::parser: mlir's pass options read it to print
  // an option's value.
  llvm::SmallVector<OptionInfo, 4> Values;

public:
  using parser_data_type = DataType;

  EnumOptionParser(llvm::cl::Option &option) : generic_parser_base(option) {}

  unsigned getNumOptions() const override { return Values.size(); }
  llvm::StringRef getOption(unsigned n) const override {
    return Values[n].Name;
  }
  llvm::StringRef getDescription(unsigned n) const override {
    return Values[n].HelpStr;
  }
  const llvm::cl::GenericOptionValue &
  getOptionValue(unsigned n) const override {
    return Values[n].V;
  }

  bool parse(llvm::cl::Option &option, llvm::StringRef, llvm::StringRef arg,
             DataType &value) {
    for (const OptionInfo &info : Values) {
      if (info.Name == arg) {
        value = info.V.getValue();
        return false;
      }
    }
    std::string names = llvm::join(
        llvm::map_range(Values,
                        [](const OptionInfo &info) { return info.Name; }),
        ", ");
    return option.error("'" + arg + "' is not one of " + names);
  }

  template <typename DT>
  void addLiteralOption(llvm::StringRef name, const DT &value,
                        llvm::StringRef help) {
    Values.emplace_back(name, static_cast<DataType>(value), help);
    llvm::cl::AddLiteralOption(Owner, name);
  }
};

} // namespace mlir::moe

template <>
class llvm::cl::parser<mlir::moe::cost::Policy>
    : public mlir::moe::EnumOptionParser<mlir::moe::cost::Policy> {
public:
  parser(Option &option) : EnumOptionParser(option) {}
};
template <>
class llvm::cl::parser<mlir::moe::AllToAllChoice>
    : public mlir::moe::EnumOptionParser<mlir::moe::AllToAllChoice> {
public:
  parser(Option &option) : EnumOptionParser(option) {}
};

template <>
class llvm::cl::parser<mlir::moe::DuplicateTokens>
    : public mlir::moe::EnumOptionParser<mlir::moe::DuplicateTokens> {
public:
  parser(Option &option) : EnumOptionParser(option) {}
};
template <>
class llvm::cl::parser<mlir::moe::PlanReport>
    : public mlir::moe::EnumOptionParser<mlir::moe::PlanReport> {
public:
  parser(Option &option) : EnumOptionParser(option) {}
};

#endif // MOE_PASSES_PARALLELISM_PLANOPTIONS_H
