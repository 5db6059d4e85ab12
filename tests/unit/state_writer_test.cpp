#include "state_writer.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace portier;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("portier-writer-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

}  // namespace

TEST_CASE("the state writer puts the newest text on disk, and finishes it before it goes") {
  TempDir dir;
  const fs::path file = dir.path / "runtime.toml";
  {
    StateWriter writer(file.string());
    for (int i = 0; i < 50; ++i) writer.post("generation = " + std::to_string(i) + "\n");
    writer.wait_until_written();
    CHECK(read(file) == "generation = 49\n");  // whatever was skipped, the last one is there
    writer.post("generation = 50\n");
  }  // destroyed at once: the pending text is still written
  CHECK(read(file) == "generation = 50\n");
  // Atomic writes leave no temporary file behind.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);
}

TEST_CASE("a state file that cannot be written is a warning, not a crash or a hang") {
  TempDir dir;
  StateWriter writer((dir.path / "missing" / "runtime.toml").string());
  writer.post("x = 1\n");
  writer.wait_until_written();
  CHECK_FALSE(fs::exists(dir.path / "missing" / "runtime.toml"));
}
