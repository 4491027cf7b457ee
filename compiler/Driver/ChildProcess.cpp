//===- ChildProcess.cpp - programs moe-run starts -------------------------===//

#include "compiler/Driver/ChildProcess.h"

#include "llvm/Support/Signals.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

using namespace mlir::moe;

/// The process group of the program running now (0: none).
static std::atomic<pid_t> runningGroup{0};

/// moe-run's interrupt handler (LLVM's, after it removed the temporary
/// files): the running program's group goes too, then moe-run.
static void killRunningGroupAndExit() {
  if (pid_t group = runningGroup.load())
    kill(-group, SIGKILL);
  raise(SIGTERM);
}

static void killOwnGroup(int) { kill(0, SIGKILL); }

static int exitCodeOf(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

/// The guardian: leads a new process group, runs the program in it and
/// passes its exit status on. It dies with moe-run (parent-death signal)
/// and then, as on any termination request, kills the whole group.
/// Only async-signal-safe calls: moe-run has threads.
[[noreturn]] static void guard(pid_t parent, char *const *argv) {
  setpgid(0, 0);
  struct sigaction kill = {};
  kill.sa_handler = killOwnGroup;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT})
    sigaction(sig, &kill, nullptr);
#if defined(__linux__)
  prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
  if (getppid() != parent) // moe-run died before the signal was set
    killOwnGroup(0);
  pid_t program = fork();
  if (program == 0) {
    struct sigaction byDefault = {};
    byDefault.sa_handler = SIG_DFL;
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT})
      sigaction(sig, &byDefault, nullptr);
    execv(argv[0], argv);
    _exit(127);
  }
  if (program < 0)
    _exit(126);
  int status = 0;
  while (waitpid(program, &status, 0) < 0)
    if (errno != EINTR)
      _exit(126);
  _exit(exitCodeOf(status));
}

int driver::runGuarded(llvm::ArrayRef<llvm::StringRef> argv,
                       std::string &error) {
  static bool installed =
      (llvm::sys::SetInterruptFunction(killRunningGroupAndExit), true);
  (void)installed;
  // Everything the children need, made before fork.
  std::vector<std::string> strings(argv.begin(), argv.end());
  std::vector<char *> pointers;
  for (std::string &s : strings)
    pointers.push_back(s.data());
  pointers.push_back(nullptr);

  pid_t parent = getpid();
  pid_t guardian = fork();
  if (guardian < 0) {
    error =
        std::string("cannot start ") + strings[0] + ": " + std::strerror(errno);
    return -1;
  }
  if (guardian == 0)
    guard(parent, pointers.data());
  setpgid(guardian, guardian); // as the guardian does: no race either way
  runningGroup.store(guardian);
  int status = 0;
  pid_t waited;
  while ((waited = waitpid(guardian, &status, 0)) < 0 && errno == EINTR)
    ;
  runningGroup.store(0);
  if (waited < 0) {
    error = strings[0] + ": " + std::strerror(errno);
    return -1;
  }
  int code = exitCodeOf(status);
  if (code == 127 || code == 126) {
    error = "cannot run " + strings[0];
    return -1;
  }
  if (code > 128) {
    error = strings[0] + " died of signal " + std::to_string(code - 128);
    return -1;
  }
  return code;
}
