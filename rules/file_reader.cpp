#include "file_reader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace portier {
namespace {

class DiskFiles final : public FileReader {
 public:
  std::optional<std::string> read(const std::string& path, std::string& error) const override {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      error = std::strerror(errno);
      return std::nullopt;
    }
    std::stringstream contents;
    contents << file.rdbuf();
    return contents.str();
  }

  std::vector<std::string> list(const std::string& dir) const override {
    std::vector<std::string> entries;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      entries.push_back(entry.path().string());
    return entries;
  }
};

}  // namespace

const FileReader& disk_files() {
  static const DiskFiles files;
  return files;
}

}  // namespace portier
