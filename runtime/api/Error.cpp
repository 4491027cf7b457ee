//===- runtime/api/Error.cpp - Statuses and the last error ----------------===//

#include "runtime/api/Error.h"

namespace {
thread_local std::string lastError;
} // namespace

void moert::setLastError(const std::string &message) { lastError = message; }

moert_status_t moert::runRankFunction(moert_context_t ctx, moert_rank_fn_t fn,
                                      void *user, std::string &message) {
  try {
    moert_status_t status = fn(ctx, user);
    if (status != MOERT_OK)
      message = lastError;
    return status;
  } catch (const Error &e) {
    message = e.what();
    return e.status();
  } catch (const std::exception &e) {
    message = std::string("uncaught exception: ") + e.what();
  } catch (...) {
    message = "uncaught unknown exception";
  }
  return MOERT_INTERNAL;
}

extern "C" const char *moert_last_error(void) { return lastError.c_str(); }

extern "C" const char *moert_status_name(moert_status_t status) {
  switch (status) {
  case MOERT_OK:
    return "MOERT_OK";
  case MOERT_INVALID_ARGUMENT:
    return "MOERT_INVALID_ARGUMENT";
  case MOERT_OUT_OF_MEMORY:
    return "MOERT_OUT_OF_MEMORY";
  case MOERT_IO_ERROR:
    return "MOERT_IO_ERROR";
  case MOERT_FORMAT_ERROR:
    return "MOERT_FORMAT_ERROR";
  case MOERT_NOT_FOUND:
    return "MOERT_NOT_FOUND";
  case MOERT_UNSUPPORTED:
    return "MOERT_UNSUPPORTED";
  case MOERT_ABORTED:
    return "MOERT_ABORTED";
  case MOERT_TIMEOUT:
    return "MOERT_TIMEOUT";
  case MOERT_INTERNAL:
    return "MOERT_INTERNAL";
  }
  return "MOERT_UNKNOWN_STATUS";
}
