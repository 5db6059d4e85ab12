// StateDirectory: the state files portierd keeps, under the names the state directory
// has always had (docs and administrators look for them there).
#include "state_store.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace portier;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("portier-store-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string read(const std::string& name) const {
    std::ifstream file(path / name);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  fs::path path;
};

}  // namespace

TEST_CASE("the state directory keeps each state file under its own name") {
  TempDir dir;
  StateDirectory store(dir.path.string());
  CHECK(store.name(StateFile::last_good) == (dir.path / "last-good.toml").string());
  CHECK_FALSE(store.read(StateFile::last_good));
  store.write(StateFile::last_good, "last = 1\n");
  store.write(StateFile::previous_good, "previous = 1\n");
  store.write(StateFile::before_apply, "before = 1\n");
  store.write(StateFile::applied, "applied = 1\n");
  CHECK(dir.read("last-good.toml") == "last = 1\n");
  CHECK(dir.read("previous-good.toml") == "previous = 1\n");
  CHECK(dir.read("policy-before-apply.toml") == "before = 1\n");
  CHECK(dir.read("policy-applied.toml") == "applied = 1\n");
  CHECK(store.read(StateFile::last_good) == "last = 1\n");
  store.remove(StateFile::applied);
  store.remove(StateFile::applied);  // gone already: nothing to do
  CHECK_FALSE(fs::exists(dir.path / "policy-applied.toml"));

  // runtime.toml through the writer thread: an fd only once something was posted.
  CHECK(store.runtime_fd() == -1);
  CHECK(store.take_runtime_outcomes().empty());
  store.post_runtime("panic = true\n", 7);
  CHECK(store.runtime_fd() >= 0);
  store.wait_for_runtime();
  CHECK(dir.read("runtime.toml") == "panic = true\n");
  auto outcomes = store.take_runtime_outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].generation == 7);
  CHECK(outcomes[0].error.empty());
}

TEST_CASE("a write to a state directory that is gone throws, and a runtime write reports it") {
  TempDir dir;
  StateDirectory store((dir.path / "missing").string());
  CHECK_THROWS(store.write(StateFile::last_good, "x = 1\n"));
  store.post_runtime("x = 1\n", 3);
  store.wait_for_runtime();
  auto outcomes = store.take_runtime_outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].generation == 3);
  CHECK_FALSE(outcomes[0].error.empty());
}

TEST_CASE("a replacement keeps the old file under a second name without copying it") {
  TempDir dir;
  StateDirectory store(dir.path.string());
  // Nothing to keep yet: the second name stays as it was.
  store.write(StateFile::previous_good, "older = 1\n");
  store.replace_keeping(StateFile::last_good, StateFile::previous_good, "first = 1\n");
  CHECK(dir.read("last-good.toml") == "first = 1\n");
  CHECK(dir.read("previous-good.toml") == "older = 1\n");

  struct ::stat before {};
  REQUIRE(::stat((dir.path / "last-good.toml").c_str(), &before) == 0);
  store.replace_keeping(StateFile::last_good, StateFile::previous_good, "second = 1\n");
  CHECK(dir.read("last-good.toml") == "second = 1\n");
  CHECK(dir.read("previous-good.toml") == "first = 1\n");
  // The same file, now under its second name: a hard link, not a copy written again.
  struct ::stat kept {};
  REQUIRE(::stat((dir.path / "previous-good.toml").c_str(), &kept) == 0);
  CHECK(kept.st_ino == before.st_ino);
  CHECK(kept.st_nlink == 1);
  // No temporary is left beside them.
  for (const auto& entry : fs::directory_iterator(dir.path))
    CHECK(entry.path().extension() != ".tmp");
}

TEST_CASE("a replacement that cannot be written changes neither file") {
  TempDir dir;
  StateDirectory store(dir.path.string());
  store.write(StateFile::last_good, "last = 1\n");
  store.write(StateFile::previous_good, "previous = 1\n");
  // A folder where the temporary would go: its open fails, as a full disk's write would.
  fs::create_directories(dir.path / "last-good.toml.tmp");
  CHECK_THROWS(store.replace_keeping(StateFile::last_good, StateFile::previous_good, "new = 1\n"));
  CHECK(dir.read("last-good.toml") == "last = 1\n");
  CHECK(dir.read("previous-good.toml") == "previous = 1\n");
}

TEST_CASE("last good policies posted in a row are written in order, each keeping the one before") {
  TempDir dir;
  StateDirectory store(dir.path.string());
  store.write(StateFile::last_good, "a\n");
  // Posted faster than they can be written: none may replace another that waits, or the
  // previous good policy would skip one.
  store.post_last_good("b\n");
  store.post_last_good("c\n");
  store.post_last_good("d\n");
  store.wait_for_last_good();
  CHECK(dir.read("last-good.toml") == "d\n");
  CHECK(dir.read("previous-good.toml") == "c\n");
  // The same text again (a reload of an unchanged policy) leaves both files alone.
  store.post_last_good("d\n");
  store.wait_for_last_good();
  CHECK(dir.read("last-good.toml") == "d\n");
  CHECK(dir.read("previous-good.toml") == "c\n");
  // A failed write (the folder gone) is logged and leaves no thread waiting.
  fs::remove_all(dir.path);
  store.post_last_good("e\n");
  store.wait_for_last_good();
  CHECK_FALSE(store.read(StateFile::last_good));
  fs::create_directories(dir.path);
}

TEST_CASE("a state directory writes the last good policies still waiting before it goes") {
  TempDir dir;
  {
    StateDirectory store(dir.path.string());
    store.post_last_good("a\n");
    store.post_last_good("b\n");
  }
  CHECK(dir.read("last-good.toml") == "b\n");
  CHECK(dir.read("previous-good.toml") == "a\n");
}
