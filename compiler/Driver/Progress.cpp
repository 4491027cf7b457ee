//===- Progress.cpp - a line on stderr while moe-run waits ----------------===//

#include "compiler/Driver/Progress.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdlib>

using namespace mlir::moe::driver;

Progress::Progress(std::string what, bool shown,
                   std::function<std::string()> detail)
    : what(std::move(what)), detail(std::move(detail)) {
  if (shown)
    thread = std::thread([this] { loop(); });
}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stop = true;
  }
  wake.notify_all();
  if (thread.joinable())
    thread.join();
}

bool Progress::suitsStderr() {
  return llvm::sys::Process::StandardErrIsDisplayed();
}

void Progress::loop() {
  const char *env = std::getenv("MOERT_PROGRESS_AFTER_MS");
  long afterMs = env && *env ? std::atol(env) : 1000;
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex);
  // Done before the first line was due: nothing (0 ms: always a line).
  if (wake.wait_until(lock, start + std::chrono::milliseconds(afterMs),
                      [&] { return stop; }) &&
      afterMs > 0)
    return;
  for (;;) {
    double seconds = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - start)
                         .count();
    llvm::errs() << "\r" << what << ": " << llvm::format("%.0f s", seconds);
    if (detail)
      llvm::errs() << " (" << detail() << ")";
    llvm::errs() << " ";
    llvm::errs().flush();
    if (stop ||
        wake.wait_for(lock, std::chrono::seconds(1), [&] { return stop; })) {
      llvm::errs() << "\n";
      return;
    }
  }
}
