// Runs a command on a new pseudo-terminal (its controlling terminal), copies everything it
// prints to stdout (a transcript), and types an answer line each time a prompt shows up.
//
//   pty_answer [--prompt TEXT --answer TEXT] [--max-answers N] [--answer-delay-ms MS]
//              [--wait-echo-off] -- CMD ARGS...
//
// A prompt counts once it appears in the output printed since the last answer. The answer is
// written --answer-delay-ms after the prompt (default 0), at most --max-answers times
// (default: no limit). With --wait-echo-off the answer also waits (up to 5 s) until the
// terminal's echo is off, as it is while a password is read: a program that prints its
// prompt first and then turns echo off with TCSAFLUSH (pkttyagent does) would otherwise throw
// away an answer typed in between. Without --prompt the command just runs on the terminal.
//
// Exits with the command's exit status, or 128+N if signal N ended it, once the command has
// exited and what it printed is copied (processes it left behind on the terminal are not
// waited for). Messages of its own go to stderr, prefixed "pty_answer:".
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pty_answer: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(125);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "pty_answer: %s\n"
               "usage: pty_answer [--prompt TEXT --answer TEXT] [--max-answers N]\n"
               "                  [--answer-delay-ms MS] [--wait-echo-off] -- CMD ARGS...\n",
               why);
  std::exit(125);
}

struct Options {
  std::string prompt;
  std::string answer;
  long max_answers = -1;  // no limit
  long delay_ms = 0;
  bool wait_echo_off = false;
  std::vector<char*> command;  // null-terminated for execvp
};

long number(const char* text, const char* option) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0) {
    std::fprintf(stderr, "pty_answer: %s wants a non-negative number, not '%s'\n", option, text);
    std::exit(125);
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  bool have_answer = false;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "--wait-echo-off") {
      o.wait_echo_off = true;
      continue;
    }
    if (i + 1 >= argc) usage("an option without its value");
    const char* value = argv[++i];
    if (arg == "--prompt") {
      o.prompt = value;
    } else if (arg == "--answer") {
      o.answer = value;
      have_answer = true;
    } else if (arg == "--max-answers") {
      o.max_answers = number(value, "--max-answers");
    } else if (arg == "--answer-delay-ms") {
      o.delay_ms = number(value, "--answer-delay-ms");
    } else {
      usage(("unknown option " + std::string(arg)).c_str());
    }
  }
  if (i >= argc) usage("no command after --");
  if (o.prompt.empty() != !have_answer) usage("--prompt and --answer go together");
  for (; i < argc; ++i) o.command.push_back(argv[i]);
  o.command.push_back(nullptr);
  return o;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

bool echo_is_off(int master) {
  termios t{};
  return ::tcgetattr(master, &t) == 0 && (t.c_lflag & ECHO) == 0;
}

// In the child: a new session with the terminal as its controlling terminal, then the command.
[[noreturn]] void run_child(const std::string& slave_path, const Options& o) {
  if (::setsid() < 0) die("setsid");
  const int slave = ::open(slave_path.c_str(), O_RDWR);  // the session's first terminal
  if (slave < 0) die("open " + slave_path);
  if (::ioctl(slave, TIOCSCTTY, 0) < 0) die("TIOCSCTTY");
  for (int fd = 0; fd <= 2; ++fd)
    if (::dup2(slave, fd) < 0) die("dup2");
  if (slave > 2) ::close(slave);
  ::execvp(o.command[0], o.command.data());
  std::fprintf(stderr, "pty_answer: cannot run %s: %s\n", o.command[0], std::strerror(errno));
  ::_exit(127);
}

class Answerer {
 public:
  Answerer(const Options& o, int master) : o_(o), master_(master) {}

  // Takes what the command printed.
  void saw(std::string_view text) {
    if (o_.prompt.empty() || exhausted()) return;
    since_answer_.append(text);
    if (!due_ && since_answer_.find(o_.prompt) != std::string::npos) {
      due_ = Clock::now() + milliseconds(o_.delay_ms);
      echo_deadline_ = Clock::now() + milliseconds(5000);
    }
    // Keep only what could still be the start of a prompt.
    if (!due_ && since_answer_.size() > o_.prompt.size())
      since_answer_.erase(0, since_answer_.size() - o_.prompt.size());
  }

  // Answers if it is time; returns how long poll may sleep (-1: until output comes).
  int tick() {
    if (!due_) return -1;
    const auto now = Clock::now();
    if (now < *due_) return ms_until(*due_);
    if (o_.wait_echo_off && !echo_is_off(master_) && now < echo_deadline_) return 10;
    write_all(master_, o_.answer + "\n");
    ++answers_;
    due_.reset();
    since_answer_.clear();
    return -1;
  }

 private:
  bool exhausted() const { return o_.max_answers >= 0 && answers_ >= o_.max_answers; }
  static int ms_until(Clock::time_point t) {
    const auto ms = std::chrono::ceil<milliseconds>(t - Clock::now()).count();
    return ms < 1 ? 1 : static_cast<int>(ms);
  }

  const Options& o_;
  int master_;
  std::string since_answer_;
  std::optional<Clock::time_point> due_;
  Clock::time_point echo_deadline_;
  long answers_ = 0;
};

// Copies what is waiting on the master to stdout; false once the terminal is closed.
bool copy_output(int master, Answerer& answerer) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(master, buffer, sizeof buffer);
    if (n > 0) {
      const std::string_view text(buffer, static_cast<size_t>(n));
      write_all(STDOUT_FILENO, text);
      answerer.saw(text);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;  // EIO: no process has the terminal open any more
  }
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);

  Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) die("posix_openpt");
  if (::grantpt(master.get()) < 0 || ::unlockpt(master.get()) < 0) die("grantpt/unlockpt");
  char name[128];
  if (::ptsname_r(master.get(), name, sizeof name) != 0) die("ptsname_r");
  const std::string slave_path = name;
  // Our own handle on the terminal keeps the master readable (no hangup) until the command
  // has opened it, and until we have read all it printed before it exited.
  Fd slave(::open(slave_path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) die("open " + slave_path);

  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) die("fork");
  if (child == 0) run_child(slave_path, o);

  Fd child_fd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
  if (!child_fd) die("pidfd_open");
  if (::fcntl(master.get(), F_SETFL, O_NONBLOCK) < 0) die("fcntl");

  Answerer answerer(o, master.get());
  int status = 0;
  for (bool running = true; running;) {
    pollfd fds[2] = {{master.get(), POLLIN, 0}, {child_fd.get(), POLLIN, 0}};
    if (::poll(fds, 2, answerer.tick()) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[0].revents != 0 && !copy_output(master.get(), answerer)) break;
    if (fds[1].revents != 0) running = false;
  }
  if (::waitpid(child, &status, 0) < 0) die("waitpid");

  // The command is gone. Copy what it printed last: the terminal's buffer may still be
  // filling, so read until it is closed by everyone (EIO) or quiet for 200 ms.
  slave.reset();
  for (;;) {
    pollfd fd{master.get(), POLLIN, 0};
    const int n = ::poll(&fd, 1, 200);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !copy_output(master.get(), answerer)) break;
  }
  return exit_code(status);
}
