//===- runtime/api/Error.h - Statuses and the last error --------*- C++ -*-===//
//
// Every C entry point wraps its body in guard(): a moert::Error (or any
// other exception) becomes a status plus the thread-local last-error
// message, so nothing escapes the C ABI.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_API_ERROR_H
#define MOERT_API_ERROR_H

#include "runtime/common/Error.h"
#include "runtime/moert.h"

#include <string>
#include <utility>

namespace moert {

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

// Runs the caller's rank function on ctx: its status, and in `message` the
// error of a failing one (a non-OK return or any exception, which never
// escapes).
moert_status_t runRankFunction(moert_context_t ctx, moert_rank_fn_t fn,
                               void *user, std::string &message);

} // namespace moert

#endif // MOERT_API_ERROR_H
