//===- runtime/common/Error.h - Errors behind the C ABI ---------*- C++ -*-===//
//
// Inside the runtime errors are exceptions carrying a moert_status_t; the
// API layer's guard() (runtime/api/Error.h) turns them into a status plus the
// last-error message at every C entry point, so nothing escapes the C ABI.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_ERROR_H
#define MOERT_COMMON_ERROR_H

#include "runtime/moert.h"

#include <sstream>
#include <stdexcept>
#include <string>

namespace moert {

class Error : public std::runtime_error {
public:
  Error(moert_status_t status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  moert_status_t status() const { return status_; }

private:
  moert_status_t status_;
};

// Builds a message from streamable parts: fail(MOERT_NOT_FOUND, "key ", k).
template <typename... Parts>
[[noreturn]] void fail(moert_status_t status, const Parts &...parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(status, os.str());
}

template <typename... Parts>
void require(bool condition, const Parts &...parts) {
  if (!condition)
    fail(MOERT_INVALID_ARGUMENT, parts...);
}

} // namespace moert

#endif // MOERT_COMMON_ERROR_H
