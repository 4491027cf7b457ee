//===- Cache.cpp - moe-run's cache of built models and weights ------------===//

#include "compiler/Driver/Cache.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <cerrno>
#include <csignal>

#include <unistd.h>

using namespace llvm;
using namespace mlir::moe;

static std::string sealPath(StringRef path) { return (path + ".seal").str(); }

/// "size N xxh3 H": what a seal holds.
static Expected<std::string> sealOf(StringRef path) {
  // Hashing reads the whole file; mapped, so weights of many GiB cost no
  // memory beyond the page cache.
  ErrorOr<std::unique_ptr<MemoryBuffer>> file = MemoryBuffer::getFile(
      path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!file)
    return createStringError(file.getError(), "cannot read %s: %s",
                             path.str().c_str(),
                             file.getError().message().c_str());
  StringRef bytes = (*file)->getBuffer();
  return formatv("size {0} xxh3 {1}\n", bytes.size(),
                 utohexstr(xxh3_64bits(bytes)))
      .str();
}

driver::CacheState driver::checkSeal(StringRef path, std::string &why) {
  if (!sys::fs::exists(path))
    return CacheState::Missing;
  ErrorOr<std::unique_ptr<MemoryBuffer>> seal =
      MemoryBuffer::getFile(sealPath(path));
  if (!seal) {
    why = "its seal " + sealPath(path) + " is missing";
    return CacheState::Broken;
  }
  Expected<std::string> actual = sealOf(path);
  if (!actual) {
    why = toString(actual.takeError());
    return CacheState::Broken;
  }
  if ((*seal)->getBuffer() != *actual) {
    why = "it does not match its seal (sealed " +
          (*seal)->getBuffer().rtrim().str() + ", found " +
          StringRef(*actual).rtrim().str() + ")";
    return CacheState::Broken;
  }
  return CacheState::Sealed;
}

bool driver::writeTextFile(StringRef path, StringRef text, std::string &error) {
  std::error_code ec;
  raw_fd_ostream out(path, ec);
  if (!ec) {
    out << text;
    out.close();
    ec = out.error();
    out.clear_error(); // reported here, not by the stream's destructor
  }
  if (ec)
    error = "cannot write " + path.str() + ": " + ec.message();
  return !ec;
}

/// `<path>.<host>.<pid>.<random>.tmp`: whose it is, for removeOrphans.
static std::string temporaryModel(StringRef path) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return formatv("{0}.{1}.{2}.%%%%%%%%.tmp", path, host,
                 sys::Process::getProcessId())
      .str();
}

/// Creates a temporary file beside `path` that goes when moe-run is
/// interrupted.
static bool createTemporary(StringRef path, SmallVectorImpl<char> &tmp,
                            std::string &error) {
  int fd = -1;
  if (std::error_code ec =
          sys::fs::createUniqueFile(temporaryModel(path), fd, tmp)) {
    error = "cannot create a file beside " + path.str() + ": " + ec.message();
    return false;
  }
  sys::Process::SafelyCloseFileDescriptor(fd);
  sys::RemoveFileOnSignal(StringRef(tmp.data(), tmp.size()));
  return true;
}

static void removeTemporary(StringRef tmp) {
  sys::fs::remove(tmp);
  sys::DontRemoveFileOnSignal(tmp);
}

/// Moves `tmp` to `path`; `tmp` is gone either way.
static bool moveIntoPlace(StringRef tmp, StringRef path, std::string &error) {
  if (std::error_code ec = sys::fs::rename(tmp, path)) {
    error =
        "cannot move " + tmp.str() + " to " + path.str() + ": " + ec.message();
    removeTemporary(tmp);
    return false;
  }
  sys::DontRemoveFileOnSignal(tmp);
  return true;
}

bool driver::publish(StringRef path, function_ref<bool(StringRef tmp)> write,
                     std::string &error) {
  SmallString<256> tmp, sealTmp;
  if (!createTemporary(path, tmp, error))
    return false;
  if (!write(tmp)) {
    removeTemporary(tmp);
    return false;
  }
  Expected<std::string> seal = sealOf(tmp);
  if (!seal) {
    error = toString(seal.takeError());
    removeTemporary(tmp);
    return false;
  }
  // The seal goes in first: a reader that sees the file sees its seal (a
  // concurrent publisher writes the same bytes).
  std::string sealFile = sealPath(path);
  if (!createTemporary(sealFile, sealTmp, error)) {
    removeTemporary(tmp);
    return false;
  }
  if (!writeTextFile(sealTmp, *seal, error) ||
      !moveIntoPlace(sealTmp, sealFile, error)) {
    removeTemporary(sealTmp);
    removeTemporary(tmp);
    return false;
  }
  return moveIntoPlace(tmp, path, error);
}

void driver::removeOrphanTemporaries(StringRef dir) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::error_code ec;
  for (sys::fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    // <file>.<host>.<pid>.<random>.tmp; host names may hold dots.
    StringRef name = sys::path::filename(it->path());
    if (!name.consume_back(".tmp"))
      continue;
    auto [rest, pidText] = name.rsplit('.').first.rsplit('.');
    int pid = 0;
    if (!rest.ends_with(("." + StringRef(host)).str()) ||
        pidText.getAsInteger(10, pid) || pid <= 0)
      continue;
    if (kill(pid, 0) != 0 && errno == ESRCH)
      sys::fs::remove(it->path());
  }
}
