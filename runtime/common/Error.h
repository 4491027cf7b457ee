//===- runtime/common/Error.h - Errors behind the C ABI ---------*- C++ -*-===//
//
// Inside the runtime errors are exceptions carrying a moert_status_t; every C
// entry point wraps its body in guard(), which turns them into a status plus
// the thread-local last-error message, so nothing escapes the C ABI.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMMON_ERROR_H
#define MOERT_COMMON_ERROR_H

#include "runtime/moert.h"

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

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

void setLastError(const std::string &message);

// Runs body, mapping exceptions to a status; `where` prefixes the message.
template <typename Body>
moert_status_t guard(const char *where, Body &&body) noexcept {
  try {
    std::forward<Body>(body)();
    return MOERT_OK;
  } catch (const Error &e) {
    setLastError(std::string(where) + ": " + e.what());
    return e.status();
  } catch (const std::bad_alloc &) {
    setLastError(std::string(where) + ": out of memory");
    return MOERT_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    setLastError(std::string(where) + ": internal error: " + e.what());
    return MOERT_INTERNAL;
  } catch (...) {
    setLastError(std::string(where) + ": unknown exception");
    return MOERT_INTERNAL;
  }
}

} // namespace moert

#endif // MOERT_COMMON_ERROR_H
