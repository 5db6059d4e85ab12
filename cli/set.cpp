// set add|del|list: elements of the policy's named sets at run time.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "commands.h"
#include "daemon_client.h"
#include "element_file.h"
#include "firewall1_api.h"
#include "output.h"
#include "progress.h"

namespace portier::cli {

namespace {

// Each call is one kernel transaction: a chunk goes in whole or not at all. 50,000 keeps
// a call well under a second and the message far below the bus's size limit, while a
// million elements still take only twenty calls.
constexpr std::size_t kElementsPerCall = 50'000;

struct Request {
  bool add = true;
  std::string set;
  std::optional<std::uint32_t> timeout;
  bool json = false;
};

// The element between the first pair of quotes of the daemon's refusal
// ("'x' is not an element of set 'y' (ipv4)"), to name its line.
std::string quoted_element(const std::string& message) {
  auto open = message.find('\'');
  auto close = open == std::string::npos ? open : message.find('\'', open + 1);
  return close == std::string::npos ? std::string() : message.substr(open + 1, close - open - 1);
}

void print_summary(const Request& request, std::size_t count, std::size_t calls) {
  if (request.json) {
    std::printf("%s\n", Json()
                            .begin_object()
                            .key("set")
                            .value(request.set)
                            .key("action")
                            .value(request.add ? "add" : "del")
                            .key("elements")
                            .value(std::uint64_t{count})
                            .key("calls")
                            .value(std::uint64_t{calls})
                            .end_object()
                            .str()
                            .c_str());
    return;
  }
  std::printf("%s %zu element%s %s set %s\n", request.add ? "added" : "removed", count,
              count == 1 ? "" : "s", request.add ? "to" : "from", request.set.c_str());
}

// Sends `elements` in calls of kElementsPerCall. With `file` (its name and the line of each
// element) a refused call is reported by its lines; on a terminal, stderr shows how far
// it got, one line rewritten after each call.
int send(DaemonClient& daemon, const Request& request, std::vector<std::string> elements,
         const std::string& file, const std::vector<std::uint32_t>& lines) {
  const std::size_t total = elements.size();
  const std::size_t calls = (total + kElementsPerCall - 1) / kElementsPerCall;
  const bool show_progress = !request.json && calls > 1 && ::isatty(STDERR_FILENO) == 1;
  const char* verb = request.add ? "added" : "removed";
  std::size_t width = 0;
  auto show = [&](std::size_t done) {
    std::string line = progress_line(request.set, done, total, verb);
    std::fputs(rewrite_line(width, line).c_str(), stderr);
    std::fflush(stderr);
    width = std::max(width, line.size());
  };
  if (show_progress) show(0);
  Options options;
  if (request.timeout)
    options.emplace(bus_key::set_elements::kTimeoutSeconds, sdbus::Variant(*request.timeout));
  for (std::size_t call = 0; call < calls; ++call) {
    const std::size_t first = call * kElementsPerCall,
                      last = std::min(total, first + kElementsPerCall);
    std::vector<std::string> chunk(
        std::make_move_iterator(elements.begin() + static_cast<std::ptrdiff_t>(first)),
        std::make_move_iterator(elements.begin() + static_cast<std::ptrdiff_t>(last)));
    try {
      if (request.add)
        daemon.AddSetElements(request.set, chunk, options);
      else
        daemon.RemoveSetElements(request.set, chunk);
    } catch (const sdbus::Error& error) {
      if (show_progress) std::fputs("\n", stderr);
      if (!file.empty()) {
        std::string where =
            file + ":" + std::to_string(lines[first]) + "-" + std::to_string(lines[last - 1]);
        if (std::string element = quoted_element(error.getMessage()); !element.empty())
          if (auto it = std::find(chunk.begin(), chunk.end(), element); it != chunk.end())
            where = file + ":" +
                    std::to_string(lines[first + static_cast<std::size_t>(it - chunk.begin())]);
        std::fprintf(stderr,
                     "portierctl set: call %zu of %zu (lines %u-%u of %s) failed at %s; %zu "
                     "element%s of the "
                     "calls before it %s %s, nothing after it was sent\n",
                     call + 1, calls, lines[first], lines[last - 1], file.c_str(), where.c_str(),
                     first, first == 1 ? "" : "s", first == 1 ? "stays" : "stay", verb);
      }
      return report_bus_error(error);
    }
    if (show_progress) show(last);
  }
  // The progress line goes; the summary below says it all.
  if (show_progress) std::fprintf(stderr, "\r%*s\r", static_cast<int>(width), "");
  print_summary(request, total, calls);
  return kOk;
}

int read_and_send(const Request& request, const std::string& path) {
  std::ifstream opened;
  std::istream* in = &std::cin;
  std::string name = path == "-" ? "stdin" : path;
  if (path != "-") {
    opened.open(path);
    if (!opened) {
      std::fprintf(stderr, "portierctl set: cannot read %s\n", path.c_str());
      return kFailure;
    }
    in = &opened;
  }
  ElementFile file = read_element_file(*in, name);
  if (!file.errors.empty()) {
    for (const std::string& error : file.errors) std::fprintf(stderr, "%s\n", error.c_str());
    return usage_error("set", "nothing was sent: " + name + " has bad lines");
  }
  if (file.elements.empty()) return usage_error("set", name + " holds no elements");
  return with_daemon([&](DaemonClient& daemon) {
    // The set's family, when portierd says it: a file of the wrong one is refused here,
    // naming its first line, before anything is sent.
    auto facts = daemon.GetStatus();
    if (auto it = facts.find(bus_key::status::kSetFamilies);
        it != facts.end() && it->second.containsValueOfType<std::map<std::string, std::string>>()) {
      auto families = it->second.get<std::map<std::string, std::string>>();
      if (auto family = families.find(request.set);
          family != families.end() && family->second != file.family) {
        auto one = [](const std::string& kind) {
          return kind == "port" ? std::string("a port") : "an " + kind + " address";
        };
        auto all = [](const std::string& kind) {
          return kind == "port" ? std::string("ports") : kind + " addresses";
        };
        std::fprintf(stderr, "%s:%u:1: error: '%s' is %s, but set '%s' holds %s\n", name.c_str(),
                     file.lines.front(), file.elements.front().c_str(), one(file.family).c_str(),
                     request.set.c_str(), all(family->second).c_str());
        return usage_error("set",
                           "nothing was sent: " + name + " holds elements of another family");
      }
    }
    return send(daemon, request, std::move(file.elements), name, file.lines);
  });
}

}  // namespace

int set(Args args) {
  if (args.size() < 2) return usage_error("set", "needs add|del|list and a SET name");
  std::string_view action = args[0];
  Request request;
  request.set = args[1];
  std::vector<std::string> elements;
  std::optional<std::string> file;
  for (std::size_t i = 2; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--timeout") {
      request.timeout = i + 1 < args.size() ? duration_seconds(args[++i]) : std::nullopt;
      if (!request.timeout)
        return usage_error("set", "--timeout takes a duration such as 90s, 30m or 1h");
    } else if (arg == "--file" || arg == "-") {
      if (file) return usage_error("set", "give one --file");
      if (arg == "-")
        file = "-";
      else if (i + 1 < args.size())
        file = args[++i];
      else
        return usage_error("set", "--file needs a FILE (- for stdin)");
    } else if (arg == "--json") {
      request.json = true;
    } else if (arg.starts_with("-")) {
      return usage_error("set", "unknown option '" + std::string(arg) + "'");
    } else {
      elements.emplace_back(arg);
    }
  }
  if (action == "list") {
    if (!elements.empty() || file || request.timeout)
      return usage_error("set", "list takes only the SET name (and --json)");
    return with_daemon([&](DaemonClient& daemon) {
      auto listed = daemon.ListSetElements(request.set);
      if (request.json) {
        std::printf("%s\n", Json().values(listed).str().c_str());
        return kOk;
      }
      for (const std::string& element : listed) std::printf("%s\n", element.c_str());
      return kOk;
    });
  }
  if (action != "add" && action != "del")
    return usage_error("set", "the action is add, del or list");
  request.add = action == "add";
  if (!request.add && request.timeout) return usage_error("set", "--timeout is for add only");
  if (file && !elements.empty()) return usage_error("set", "give ELEMENTs or --file, not both");
  if (file) return read_and_send(request, *file);
  if (elements.empty()) return usage_error("set", "give at least one ELEMENT (or --file FILE)");
  return with_daemon(
      [&](DaemonClient& daemon) { return send(daemon, request, std::move(elements), "", {}); });
}

}  // namespace portier::cli
