// PolicyFileState::edited_since_loaded(): the files are hashed as they are read, a chunk at
// a time, and must match the hash of the texts they were loaded from, whatever their size.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "policy_file_state.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

struct Files {
  Files() : dir(fs::temp_directory_path() / ("portier-file-state-" + std::to_string(::getpid()))) {
    fs::create_directories(dir);
  }
  ~Files() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  }
  fs::path dir;
};

// A text of `size` bytes that differs all along (so that a chunk's place counts).
std::string text_of(std::size_t size) {
  std::string text;
  for (std::size_t i = 0; text.size() < size; ++i) text += "line " + std::to_string(i) + "\n";
  text.resize(size);
  return text;
}

}  // namespace

TEST_CASE("a loaded file is unedited until its text changes, at any size") {
  Files files;
  for (std::size_t size : {std::size_t{0}, std::size_t{100}, std::size_t{64 * 1024},
                           std::size_t{64 * 1024 + 1}, std::size_t{200 * 1024 + 7}}) {
    CAPTURE(size);
    const std::string text = text_of(size);
    const std::string path = files.write("policy.toml", text);
    const std::string drop_in = files.write("extra.toml", "[[rule]]\n");
    PolicyFileState state(path, nullptr);
    state.loaded({{path, text}, {drop_in, "[[rule]]\n"}});
    CHECK_FALSE(state.edited_since_loaded().has_value());

    if (size > 0) {
      std::string edited = text;
      edited[size - 1] = edited[size - 1] == 'x' ? 'y' : 'x';  // the last chunk's last byte
      files.write("policy.toml", edited);
      CHECK(state.edited_since_loaded() == path);
    }
    files.write("policy.toml", text + "\n");  // one byte longer
    CHECK(state.edited_since_loaded() == path);
    files.write("policy.toml", text);
    CHECK_FALSE(state.edited_since_loaded().has_value());
    fs::remove(files.dir / "extra.toml");
    CHECK(state.edited_since_loaded() == drop_in);
  }
}
