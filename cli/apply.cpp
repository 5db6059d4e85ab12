// apply, confirm, rollback: changing the whole policy safely.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"

namespace portier::cli {

int apply(Args args) {
  std::string file;
  std::optional<unsigned long> confirm;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--confirm") {
      if (i + 1 >= args.size()) return usage_error("apply", "--confirm needs SECONDS");
      char* end = nullptr;
      confirm = std::strtoul(args[++i], &end, 10);
      if (*end != '\0' || *confirm < 1 || *confirm > 3600)
        return usage_error("apply", "--confirm takes 1 to 3600 seconds");
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("apply", "unknown option '" + std::string(arg) + "'");
    } else if (file.empty()) {
      file = arg;
    } else {
      return usage_error("apply", "needs exactly one policy FILE");
    }
  }
  if (file.empty()) return usage_error("apply", "needs a policy FILE");
  // The daemon reads the file itself, so it needs the whole path.
  char absolute[PATH_MAX];
  if (!realpath(file.c_str(), absolute)) {
    std::fprintf(stderr, "portierctl apply: cannot find %s\n", file.c_str());
    return kFailure;
  }
  return with_daemon([&](DaemonClient& daemon) {
    Options options;
    if (confirm)
      options.emplace(bus_key::apply::kConfirmSeconds,
                      sdbus::Variant(static_cast<uint32_t>(*confirm)));
    auto generation = daemon.Apply(absolute, options);
    if (confirm)
      std::printf("%s applied (generation %llu). Run `portierctl confirm` within %lu s to keep it;\n"
                  "otherwise portierd goes back to the previous policy by itself.\n",
                  absolute, static_cast<unsigned long long>(generation), *confirm);
    else
      std::printf("%s applied (generation %llu) and installed as the policy\n", absolute,
                  static_cast<unsigned long long>(generation));
    return kOk;
  });
}

int confirm(Args args) {
  if (!args.empty()) return usage_error("confirm", "takes no arguments");
  return with_daemon([](DaemonClient& daemon) {
    daemon.Confirm();
    std::printf("confirmed: the applied policy stays and is installed as the policy\n");
    return kOk;
  });
}

int rollback(Args args) {
  if (!args.empty()) return usage_error("rollback", "takes no arguments");
  return with_daemon([](DaemonClient& daemon) {
    daemon.Rollback();
    std::printf("rolled back (generation %llu)\n", static_cast<unsigned long long>(daemon.Generation()));
    return kOk;
  });
}

}  // namespace portier::cli
