#include "polkit_agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace portier::cli {
namespace {

constexpr const char* kAgentPath = "/usr/bin/pkttyagent";
// pkttyagent registers in milliseconds; a stuck polkitd must not stall portierctl for long.
constexpr int kRegistrationWaitMs = 5000;

bool ask_password = true;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// In a logind session a desktop agent may serve it, and --fallback lets that one win. Outside
// one (ssh without pam_systemd, containers) polkit 122 ignores fallback agents altogether, so
// pkttyagent must register as the agent of this process.
bool in_login_session() {
  char* session = nullptr;
  if (sd_pid_get_session(0, &session) < 0) return false;
  std::free(session);
  return true;
}

pid_t wait_for(pid_t pid, int options) {
  pid_t result;
  do result = ::waitpid(pid, nullptr, options);
  while (result < 0 && errno == EINTR);
  return result;
}

}  // namespace

void set_ask_password(bool ask) { ask_password = ask; }

// Only the terminal's foreground process group may read it: in the background (a job, or
// under timeout(1)) the agent would be stopped at its prompt while the typed password is
// echoed to the screen.
bool may_ask_password() {
  return ask_password && ::geteuid() != 0 && ::isatty(STDIN_FILENO) == 1 &&
         ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
}

std::unique_ptr<PolkitAgent> PolkitAgent::start() {
  if (::access(kAgentPath, X_OK) != 0) return nullptr;
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return nullptr;
  Fd ready(ends[0]);
  Fd notify(ends[1]);
  // Everything the child needs is ready before fork(): it only calls async-signal-safe
  // functions before exec.
  std::string notify_fd = std::to_string(notify.get());
  std::vector<char*> argv{const_cast<char*>("pkttyagent"), const_cast<char*>("--notify-fd"),
                          notify_fd.data()};
  if (in_login_session()) argv.push_back(const_cast<char*>("--fallback"));
  argv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return nullptr;
  if (pid == 0) {
    // The agent goes when portierctl does, however portierctl ends (a signal included), so
    // it never stays registered for a caller that is gone.
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) ::_exit(127);
    // It closes this end once polkit has registered it, so it has to inherit it; only here.
    if (::fcntl(notify.get(), F_SETFD, 0) != 0) ::_exit(127);
    ::execv(kAgentPath, argv.data());
    ::_exit(127);
  }
  auto agent = std::make_unique<PolkitAgent>(pid);
  notify.reset();

  pollfd wait{ready.get(), POLLIN, 0};
  int polled;
  do polled = ::poll(&wait, 1, kRegistrationWaitMs);
  while (polled < 0 && errno == EINTR);
  // An agent that exited (no terminal, polkitd absent) closed the pipe as well.
  if (wait_for(pid, WNOHANG) == pid) {
    agent->pid_ = -1;
    return nullptr;
  }
  return agent;
}

PolkitAgent::~PolkitAgent() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  wait_for(pid_, 0);
}

}  // namespace portier::cli
