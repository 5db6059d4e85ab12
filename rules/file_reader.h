// The files the policy parser reads (the policy, its drop-in folder, set files), behind a
// port as ninja's DiskInterface: the parser asks it, disk_files() is the real file system,
// and tests give a fake that holds the files in memory.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace portier {

class FileReader {
 public:
  virtual ~FileReader() = default;
  /// The whole of file `path`; none if it cannot be read, and then `error` says why
  /// (strerror's text). Called from more than one thread at once.
  virtual std::optional<std::string> read(const std::string& path, std::string& error) const = 0;
  /// The entries of folder `dir`, each as `dir/name`, in no particular order; none if it
  /// cannot be listed (missing is the usual case: a policy without drop-ins).
  virtual std::vector<std::string> list(const std::string& dir) const = 0;
};

/// The real file system.
const FileReader& disk_files();

}  // namespace portier
