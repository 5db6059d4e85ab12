// The subcommands of portier_bench, one per measurement (see main.cpp for the list).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace portier::bench {

/// `--key value` options and positional arguments; everything after `--` stays positional.
struct Args {
  std::map<std::string, std::string> options;
  std::vector<std::string> positional;

  std::string get(const std::string& key, const std::string& fallback = "") const;
  std::size_t number(const std::string& key, std::size_t fallback) const;
  /// A comma-separated list of numbers: `--sizes 10,1000,10000`.
  std::vector<std::size_t> numbers(const std::string& key, const std::vector<std::size_t>& fallback) const;
};

int engine(const Args& args);        // compile and render times
int apply(const Args& args);         // NetlinkKernel::apply vs nft -f, 10k rules
int reload(const Args& args);        // parse + compile + apply vs nft -f (rendering, plain file)
int sets(const Args& args);          // big named sets from a set file
int load(const Args& args);          // loads a policy into the current (private) namespace
int ready(const Args& args);         // portierd start to READY=1, and its idle RSS
int dbus_calls(const Args& args);    // bare D-Bus calls from a long-lived client
int time_command(const Args& args);  // wall time of whole processes
int row(const Args& args);           // prints one table row from samples
int generate(const Args& args);      // writes a generated policy or set file

}  // namespace portier::bench
