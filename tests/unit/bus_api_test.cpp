// The D-Bus API's authorization, checked against its one description: every method the
// introspection XML marks org.portier.Changing or org.portier.Privileged must be authorized
// by portierd (routed through when_authorized) and called by portierctl with interactive
// authorization allowed (a DaemonClient member of the same name that goes through
// call_authorized). The CLI side is the one that fails quietly: without its wrapper the
// generated proxy method is called, the build passes, root still works, and a non-root
// user is refused without ever being asked for a password. The shared names header must
// also spell the bus and interface names as the XML does.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "firewall1_api.h"

namespace fs = std::filesystem;

namespace {

std::string read_source(const fs::path& relative) {
  const fs::path path = fs::path(PORTIER_SOURCE_DIR) / relative;
  std::ifstream file(path, std::ios::binary);
  REQUIRE_MESSAGE(file, "cannot read " << path.string());
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct Method {
  std::map<std::string, std::string> annotations;  // name -> value
};

// The methods of the XML with their annotations. A small reader of the file's own shape
// (one <method> element after another, annotations inside), not a general XML parser.
std::map<std::string, Method> methods_of(const std::string& xml) {
  std::map<std::string, Method> methods;
  static const std::regex method(R"re(<method\s+name="(\w+)"\s*(/?)>)re");
  static const std::regex annotation(R"re(<annotation\s+name="([\w.]+)"\s+value="(\w*)"\s*/>)re");
  for (auto it = std::sregex_iterator(xml.begin(), xml.end(), method); it != std::sregex_iterator();
       ++it) {
    Method& entry = methods[(*it)[1]];
    if ((*it)[2] == "/") continue;
    const auto body_begin = it->suffix().first;
    const std::size_t begin = static_cast<std::size_t>(body_begin - xml.begin());
    const std::size_t end = xml.find("</method>", begin);
    REQUIRE(end != std::string::npos);
    const std::string body = xml.substr(begin, end - begin);
    for (auto a = std::sregex_iterator(body.begin(), body.end(), annotation);
         a != std::sregex_iterator(); ++a)
      entry.annotations[(*a)[1]] = (*a)[2];
  }
  return methods;
}

// The body of each member function `owner::name(...) { ... }` defined in `source`, by
// name: from its opening brace to the brace that closes it.
std::map<std::string, std::string> member_bodies(const std::string& source,
                                                 const std::string& owner) {
  std::map<std::string, std::string> bodies;
  const std::regex definition("\\b" + owner + "::(\\w+)\\(");
  for (auto it = std::sregex_iterator(source.begin(), source.end(), definition);
       it != std::sregex_iterator(); ++it) {
    std::size_t open = source.find('{', static_cast<std::size_t>(it->position(0)));
    // A declaration or call (`;` first) has no body.
    const std::size_t semicolon = source.find(';', static_cast<std::size_t>(it->position(0)));
    if (open == std::string::npos || semicolon < open) continue;
    int depth = 0;
    std::size_t close = open;
    for (; close < source.size(); ++close) {
      if (source[close] == '{') ++depth;
      if (source[close] == '}' && --depth == 0) break;
    }
    bodies[(*it)[1]] += source.substr(open, close - open + 1);
  }
  return bodies;
}

std::set<std::string> needing_authorization(const std::map<std::string, Method>& methods) {
  std::set<std::string> names;
  for (const auto& [name, method] : methods) {
    // Captured by an init-capture: clang 14 cannot capture a structured binding.
    auto marked = [&annotations = method.annotations](const char* annotation) {
      auto it = annotations.find(annotation);
      return it != annotations.end() && it->second == "true";
    };
    if (marked("org.portier.Changing") || marked("org.portier.Privileged")) names.insert(name);
  }
  return names;
}

// "Apply Confirm ...", so that a failed comparison names the methods.
std::string joined(const std::set<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : " ") + name;
  return text;
}

}  // namespace

TEST_CASE("bus api: the XML marks the changing methods, and each is asynchronous on the server") {
  const auto methods = methods_of(read_source("daemon/org.portier.Firewall1.xml"));
  REQUIRE(methods.count("GetStatus") == 1);
  const std::set<std::string> marked = needing_authorization(methods);
  // Those that change the firewall are marked; reading is open to everyone.
  for (const char* changing : {"SetRuleEnabled", "Reload", "Apply", "AddSetElements", "SetPanic"}) {
    CAPTURE(changing);
    CHECK(marked.count(changing) == 1);
  }
  for (const char* reading :
       {"GetStatus", "ListRules", "Check", "ListSetElements", "Explain", "GetRuleset"}) {
    CAPTURE(reading);
    CHECK(marked.count(reading) == 0);
  }
  // The reply waits for polkit, which may ask for a password: the method cannot be answered
  // in the handler that received it.
  for (const std::string& name : marked) {
    CAPTURE(name);
    const auto& annotations = methods.at(name).annotations;
    auto async = annotations.find("org.freedesktop.DBus.Method.Async");
    CHECK((async != annotations.end() && async->second == "server"));
  }
}

TEST_CASE("bus api: portierctl calls every marked method with interactive authorization") {
  const std::set<std::string> marked =
      needing_authorization(methods_of(read_source("daemon/org.portier.Firewall1.xml")));
  REQUIRE(marked.size() >= 10);
  const std::string client = read_source("cli/daemon_client.cpp");
  const auto bodies = member_bodies(client, "DaemonClient");
  // The one helper: it sets the header flag and waits long enough for a typed password.
  REQUIRE(bodies.count("call_authorized") == 1);
  CHECK(bodies.at("call_authorized").find("sd_bus_message_set_allow_interactive_authorization") !=
        std::string::npos);
  std::set<std::string> wrapped;
  for (const auto& [name, body] : bodies)
    if (body.find("call_authorized(\"" + name + "\"") != std::string::npos) wrapped.insert(name);
  for (const std::string& name : marked) {
    CAPTURE(name);
    CHECK_MESSAGE(wrapped.count(name) == 1,
                  "cli/daemon_client.cpp has no DaemonClient::"
                      << name << " calling call_authorized(\"" << name
                      << "\"): non-root users would get no polkit prompt");
  }
  // And nothing is wrapped that the XML does not mark (a stale or misspelled wrapper).
  for (const std::string& name : wrapped) {
    CAPTURE(name);
    CHECK(marked.count(name) == 1);
  }
}

TEST_CASE("bus api: portierd authorizes every marked method, and only those") {
  const std::set<std::string> marked =
      needing_authorization(methods_of(read_source("daemon/org.portier.Firewall1.xml")));
  std::set<std::string> authorized;
  for (const auto& [name, body] :
       member_bodies(read_source("daemon/dbus_service.cpp"), "FirewallService"))
    if (body.find("when_authorized(std::move(result)") != std::string::npos)
      authorized.insert(name);
  CHECK(joined(authorized) == joined(marked));
}

TEST_CASE("bus api: the shared header spells the names the XML has") {
  const std::string xml = read_source("daemon/org.portier.Firewall1.xml");
  CHECK(xml.find("<node name=\"" + std::string(portier::kObjectPath) + "\">") != std::string::npos);
  CHECK(xml.find("<interface name=\"" + std::string(portier::kInterfaceName) + "\">") !=
        std::string::npos);
  // The bus name is the interface's name, and every error name is under it.
  CHECK(std::string(portier::kBusName) == portier::kInterfaceName);
  CHECK(std::string(portier::bus_error::kPrefix) ==
        std::string(portier::kInterfaceName) + ".Error.");
  for (const char* error : {portier::bus_error::kAccessDenied, portier::bus_error::kNoSuchRule,
                            portier::bus_error::kNoSuchSet, portier::bus_error::kInvalidPolicy,
                            portier::bus_error::kKernelRefused,
                            portier::bus_error::kInvalidArgument, portier::bus_error::kNotPending,
                            portier::bus_error::kFailed, portier::bus_error::kNotSaved}) {
    CAPTURE(error);
    const std::string name(error);
    REQUIRE(name.rfind(portier::bus_error::kPrefix, 0) == 0);
    // The XML's comment documents each as .Name.
    CHECK(xml.find("." + name.substr(std::string(portier::bus_error::kPrefix).size())) !=
          std::string::npos);
  }
}
