//===- runtime/weights/Checkpoint.cpp - checkpoints as published ----------===//

#include "runtime/weights/Checkpoint.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/weights/Json.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace moert;
using namespace moert::weights;

namespace {

bool isDirectory(const std::string &path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool exists(const std::string &path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

bool endsWith(const std::string &text, const std::string &suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash + 1);
}

std::string join(const std::string &dir, const std::string &name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Shards live next to the index. The check is on the name, not on where
// links lead: the Hugging Face cache links every shard to a blob outside.
bool staysInDirectory(const std::string &name) {
  if (name.empty() || name.front() == '/')
    return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos)
      slash = name.size();
    if (name.compare(start, slash - start, "..") == 0 && slash - start == 2)
      return false;
    start = slash + 1;
  }
  return true;
}

std::string readWholeFile(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(MOERT_IO_ERROR, path, ": cannot open: ", std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    fail(MOERT_IO_ERROR, path, ": not a regular file");
  }
  // An index of 100k tensors is a few MB; refuse what cannot be one.
  constexpr off_t maxIndexBytes = 256 << 20;
  if (info.st_size > maxIndexBytes) {
    ::close(fd);
    fail(MOERT_FORMAT_ERROR, path, ": ", info.st_size,
         " bytes is too large for an index (limit 256 MB)");
  }
  std::string text(size_t(info.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int error = n < 0 ? errno : EIO;
      ::close(fd);
      fail(MOERT_IO_ERROR, path, ": cannot read: ", std::strerror(error));
    }
    done += size_t(n);
  }
  ::close(fd);
  return text;
}

} // namespace

std::string moert::weights::findCheckpointWeights(const std::string &dir) {
  for (const char *name : {kIndexFileName, kSingleFileName}) {
    std::string path = join(dir, name);
    if (exists(path))
      return path;
  }
  return "";
}

Checkpoint::Checkpoint(const std::string &path) : path_(path) {
  if (isDirectory(path)) {
    path_ = findCheckpointWeights(path);
    if (path_.empty())
      fail(MOERT_IO_ERROR, path, ": a directory without ", kIndexFileName,
           " or ", kSingleFileName);
  }
  if (endsWith(path_, ".json"))
    openIndex(path_);
  else
    openSingle(path_);
  fileRead_ = std::make_unique<std::atomic<bool>[]>(files_.size());
  for (const auto &file : files_)
    bytes_ += int64_t(file->dataBytes());
}

void Checkpoint::openSingle(const std::string &file) {
  files_.push_back(std::make_unique<SafetensorsFile>(file));
  for (const std::string &key : files_.back()->keys())
    where_[key] = 0;
}

std::vector<std::pair<std::string, std::string>>
moert::weights::parseIndex(const std::string &path, std::string_view text) {
  json::Value root;
  try {
    root = json::parse(text);
  } catch (const Error &e) {
    fail(MOERT_FORMAT_ERROR, path, ": ", e.what());
  }
  const json::Value *map =
      root.kind == json::Value::Kind::Object ? root.find("weight_map") : nullptr;
  if (!map || map->kind != json::Value::Kind::Object)
    fail(MOERT_FORMAT_ERROR, path,
         ": an index must be a JSON object with a \"weight_map\" object");
  if (map->object.empty())
    fail(MOERT_FORMAT_ERROR, path, ": \"weight_map\" lists no tensors");
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto &[tensor, shard] : map->object) {
    if (shard.kind != json::Value::Kind::String)
      fail(MOERT_FORMAT_ERROR, path, ": tensor '", tensor,
           "': the shard must be a file name string");
    if (!staysInDirectory(shard.string))
      fail(MOERT_FORMAT_ERROR, path, ": tensor '", tensor, "': shard '",
           shard.string, "' is outside the index's directory");
    entries.emplace_back(tensor, shard.string);
  }
  return entries;
}

void Checkpoint::openIndex(const std::string &index) {
  // Shards in the order the index first names them; tensors by shard.
  std::map<std::string, size_t> shardOf;
  std::vector<std::string> shardNames;
  std::vector<std::vector<const std::string *>> listed;
  std::vector<std::pair<std::string, std::string>> entries =
      parseIndex(index, readWholeFile(index));
  for (const auto &[tensor, shard] : entries) {
    auto [it, added] = shardOf.emplace(shard, shardNames.size());
    if (added) {
      shardNames.push_back(shard);
      listed.emplace_back();
    }
    listed[it->second].push_back(&tensor);
    where_[tensor] = it->second;
  }
  std::string dir = directoryOf(index);
  for (size_t s = 0; s < shardNames.size(); ++s) {
    const std::string &first = *listed[s].front();
    std::string holds = "'" + first + "'";
    if (listed[s].size() > 1)
      holds += " and " + std::to_string(listed[s].size() - 1) + " more";
    try {
      files_.push_back(
          std::make_unique<SafetensorsFile>(join(dir, shardNames[s])));
    } catch (const Error &e) {
      fail(e.status(), index, ": shard '", shardNames[s], "' (holding ", holds,
           "): ", e.what());
    }
    for (const std::string *tensor : listed[s])
      if (!files_.back()->find(*tensor))
        fail(MOERT_FORMAT_ERROR, index, ": tensor '", *tensor,
             "' is listed in shard '", shardNames[s],
             "', which has no such tensor");
  }
}

size_t Checkpoint::shardOf(const std::string &key) const {
  auto it = where_.find(key);
  if (it == where_.end())
    fail(MOERT_NOT_FOUND, path_, ": no tensor '", key, "'");
  return it->second;
}

const SafetensorsFile &Checkpoint::fileOf(const std::string &key) const {
  return *files_[shardOf(key)];
}

void Checkpoint::countRead(size_t shard, const std::string &key,
                           int64_t elements) const {
  // The read succeeded, so the dtype is one of the loadable ones.
  moert_dtype_t srcType = MOERT_F32;
  dtypeFromName(files_[shard]->get(key).dtype, srcType);
  bytesRead_ += elements * int64_t(dtypeSize(srcType));
  fileRead_[shard].store(true, std::memory_order_relaxed);
}

int64_t Checkpoint::readBox(const std::string &key,
                            const std::vector<int64_t> &shape,
                            const std::vector<int64_t> &begin,
                            const std::vector<int64_t> &end, void *dst,
                            moert_dtype_t dstType) const {
  size_t shard = shardOf(key);
  int64_t elements =
      files_[shard]->readBox(key, shape, begin, end, dst, dstType);
  countRead(shard, key, elements);
  return elements;
}

int64_t Checkpoint::readView(const std::string &key,
                             const std::vector<int64_t> &shape, int64_t offset,
                             const std::vector<int64_t> &strides,
                             const std::vector<int64_t> &begin,
                             const std::vector<int64_t> &end, void *dst,
                             moert_dtype_t dstType) const {
  size_t shard = shardOf(key);
  int64_t elements = files_[shard]->readView(key, shape, offset, strides,
                                             begin, end, dst, dstType);
  countRead(shard, key, elements);
  return elements;
}

std::vector<std::string> Checkpoint::keys() const {
  std::vector<std::string> names;
  for (const auto &entry : where_)
    names.push_back(entry.first);
  return names;
}

Checkpoint::Stats Checkpoint::stats() const {
  Stats s;
  s.files = int64_t(files_.size());
  for (size_t f = 0; f < files_.size(); ++f)
    s.filesRead += fileRead_[f].load(std::memory_order_relaxed) ? 1 : 0;
  s.bytes = bytes_;
  s.bytesRead = bytesRead_.load(std::memory_order_relaxed);
  return s;
}
