#include "state_writer.h"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime_state.h"
#include "saved_replies.h"

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

namespace {

// A disk whose first write waits until the test lets it go, so that posts arrive during it.
struct SlowDisk {
  std::mutex mutex;
  std::condition_variable changed;
  bool first_started = false;
  bool release = false;
  std::vector<std::string> written;  // every text written, in order

  StateWriter::WriteFile writer() {
    return [this](const std::string&, const std::string& text) {
      std::unique_lock lock(mutex);
      if (!first_started) {
        first_started = true;
        changed.notify_all();
        changed.wait(lock, [this] { return release; });
      }
      written.push_back(text);
    };
  }
  void wait_for_first_write() {
    std::unique_lock lock(mutex);
    changed.wait(lock, [this] { return first_started; });
  }
  void let_go() {
    std::lock_guard lock(mutex);
    release = true;
    changed.notify_all();
  }
};

bool readable(int fd, int timeout_ms) {
  pollfd entry{fd, POLLIN, 0};
  return ::poll(&entry, 1, timeout_ms) == 1 && (entry.revents & POLLIN);
}

}  // namespace

TEST_CASE(
    "group commit: posts made during one write share the next, and each write reports its "
    "generation") {
  SlowDisk disk;
  StateWriter writer("unused", disk.writer());
  writer.post("state 1\n", 1);
  disk.wait_for_first_write();  // generation 1 is being written (its fsync, say)
  CHECK_FALSE(readable(writer.fd(), 0));
  CHECK(writer.take_outcomes().empty());
  for (std::uint64_t generation = 2; generation <= 9; ++generation)
    writer.post("state " + std::to_string(generation) + "\n", generation);
  disk.let_go();
  writer.wait_until_written();
  REQUIRE(readable(writer.fd(), 1000));
  std::vector<StateWriter::Outcome> outcomes = writer.take_outcomes();
  // Two writes for nine changes: the first, then the newest of those that came during it.
  REQUIRE(outcomes.size() == 2);
  CHECK(outcomes[0].generation == 1);
  CHECK(outcomes[0].error.empty());
  CHECK(outcomes[1].generation == 9);
  CHECK(outcomes[1].error.empty());
  CHECK(disk.written == std::vector<std::string>{"state 1\n", "state 9\n"});
  CHECK_FALSE(readable(writer.fd(), 0));  // taken: the event loop does not wake again
}

TEST_CASE("a failed write is reported with its generation, and the next one may succeed") {
  bool full = true;
  std::mutex mutex;
  StateWriter writer("unused", [&](const std::string&, const std::string&) {
    std::lock_guard lock(mutex);
    if (full) throw std::runtime_error("cannot write runtime.toml.tmp: No space left on device");
  });
  writer.post("a\n", 1);
  writer.wait_until_written();
  REQUIRE(readable(writer.fd(), 1000));
  std::vector<StateWriter::Outcome> outcomes = writer.take_outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].generation == 1);
  CHECK(outcomes[0].error == "cannot write runtime.toml.tmp: No space left on device");
  {
    std::lock_guard lock(mutex);
    full = false;
  }
  writer.post("b\n", 2);
  writer.wait_until_written();
  outcomes = writer.take_outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].generation == 2);
  CHECK(outcomes[0].error.empty());
}

TEST_CASE("a file that cannot be written whole: the previous file stays, no temporary is left") {
  TempDir dir;
  const fs::path file = dir.path / "runtime.toml";
  write_file_atomically(file.string(), "old = 1\n");
  // A file size limit cuts the write short as a full disk does (EFBIG instead of ENOSPC;
  // the integration test test_runtime_durable.sh fills a real tmpfs).
  struct sigaction ignore {
  }, before{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGXFSZ, &ignore, &before);
  rlimit saved{};
  ::getrlimit(RLIMIT_FSIZE, &saved);
  rlimit small = saved;
  small.rlim_cur = 4;
  ::setrlimit(RLIMIT_FSIZE, &small);
  std::string error;
  try {
    write_file_atomically(file.string(), "new = 2, longer than four bytes\n");
  } catch (const std::exception& failure) {
    error = failure.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::sigaction(SIGXFSZ, &before, nullptr);
  CHECK(error.find("cannot write") != std::string::npos);
  CHECK(error.find("runtime.toml.tmp") != std::string::npos);
  CHECK(read(file) == "old = 1\n");
  CHECK_FALSE(fs::exists(dir.path / "runtime.toml.tmp"));
}

TEST_CASE("held replies go out once a write of their generation or a later one is done, in order") {
  SavedReplies replies;
  std::vector<std::string> answered;
  auto reply = [&](std::string name) {
    return [&answered, name](const std::string* error) {
      answered.push_back(name + (error ? ": " + *error : ""));
    };
  };
  replies.after(3, reply("a"));
  replies.after(4, reply("b"));
  replies.after(6, reply("c"));
  replies.settled(2, "");
  CHECK(answered.empty());
  replies.settled(4, "");
  CHECK(answered == std::vector<std::string>{"a", "b"});
  replies.settled(7, "disk full");
  CHECK(answered == std::vector<std::string>{"a", "b", "c: disk full"});
  CHECK(replies.waiting() == 0);
}
