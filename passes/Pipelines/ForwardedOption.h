//===- ForwardedOption.h - offer a declared option again --------*- C++ -*-===//
//
// A pipeline or tool that offers a pass's option declares it again from the
// pass's own declaration, so that its name, description, default and
// accepted values have one home (the pass's Passes.td).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_PIPELINES_FORWARDEDOPTION_H
#define MOE_PASSES_PIPELINES_FORWARDEDOPTION_H

#include "mlir/Pass/PassOptions.h"
#include "llvm/Support/CommandLine.h"

#include <type_traits>

namespace mlir::moe {

/// A cl modifier that makes an option `source` again: its name, description,
/// value name, default and, for an enum, its values.
template <typename DataType, typename Parser> struct SameAs {
  llvm::cl::opt<DataType, /*ExternalStorage=*/false, Parser> &source;

  template <typename Opt> void apply(Opt &option) const {
    option.setArgStr(source.ArgStr);
    option.setDescription(source.HelpStr);
    option.setValueStr(source.ValueStr);
    if (source.getDefault().hasValue())
      option.setInitialValue(source.getDefault().getValue());
    if constexpr (std::is_base_of_v<llvm::cl::generic_parser_base, Parser>) {
      Parser &values = source.getParser();
      for (unsigned i = 0, e = values.getNumOptions(); i != e; ++i)
        option.getParser().addLiteralOption(
            values.getOption(i),
            static_cast<const llvm::cl::OptionValue<DataType> &>(
                values.getOptionValue(i))
                .getValue(),
            values.getDescription(i));
    }
  }
};

template <typename DataType, typename Parser>
SameAs<DataType, Parser>
sameAs(llvm::cl::opt<DataType, /*ExternalStorage=*/false, Parser> &source) {
  return {source};
}

/// A pipeline option that is `source` again.
template <typename DataType,
          typename Parser = ::mlir::detail::PassOptions::OptionParser<DataType>>
struct ForwardedOption : ::mlir::detail::PassOptions::Option<DataType, Parser> {
  ForwardedOption(
      ::mlir::detail::PassOptions &parent,
      llvm::cl::opt<DataType, /*ExternalStorage=*/false, Parser> &source)
      : ::mlir::detail::PassOptions::Option<DataType, Parser>(
            parent, source.ArgStr, sameAs(source)) {}
  using ::mlir::detail::PassOptions::Option<DataType, Parser>::operator=;
};

} // namespace mlir::moe

#endif // MOE_PASSES_PIPELINES_FORWARDEDOPTION_H
