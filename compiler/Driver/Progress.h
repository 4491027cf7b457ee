//===- Progress.h - a line on stderr while moe-run waits --------*- C++ -*-===//

#ifndef MOE_COMPILER_DRIVER_PROGRESS_H
#define MOE_COMPILER_DRIVER_PROGRESS_H

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace mlir::moe::driver {

/// While alive and `shown`, a line on stderr that says what moe-run waits
/// for and how long it has: "building the model: 12 s". It appears after a
/// second (MOERT_PROGRESS_AFTER_MS, as the runner's load progress), so quick
/// steps stay silent; `detail` adds to it.
class Progress {
public:
  Progress(std::string what, bool shown,
           std::function<std::string()> detail = {});
  ~Progress();

  /// Whether a progress line suits stderr (a terminal).
  static bool suitsStderr();

private:
  void loop();
  std::string what;
  std::function<std::string()> detail;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  std::thread thread;
};

} // namespace mlir::moe::driver

#endif // MOE_COMPILER_DRIVER_PROGRESS_H
