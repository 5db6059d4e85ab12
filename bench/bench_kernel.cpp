// Benchmarks 2-4: loading into the kernel. portier's side runs in this long-lived process
// (NetlinkKernel, as portierd holds it); the baseline is a whole `nft -f` process. Every
// measurement happens in a network namespace made for it (enter_fresh_netns), and the
// two sides alternate which goes first.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "commands.h"
#include "compile_policy.h"
#include "generate.h"
#include "measure.h"
#include "netlink_kernel.h"
#include "parse_policy.h"
#include "render_nft.h"

namespace portier::bench {
namespace {

ir::Ruleset compile_file(const std::string& path, const SystemTables& tables) {
  ParsedPolicy parsed = parse_policy_file(path, tables);
  if (!parsed.ok()) throw std::runtime_error(parsed.report());
  return compile_policy(parsed.policy);
}

ProcessRun nft_file(const std::string& path) {
  ProcessRun run = run_process({"nft", "-f", path});
  if (!run.ok()) throw std::runtime_error("nft -f " + path + " failed (status " + std::to_string(run.status) + ")");
  return run;
}

// Empties the namespace we are about to leave, outside any timing, so the kernel's
// teardown of a big table does not run in the background of the next measurement.
void drop_table(const std::string& table) {
  run_process({"nft", "delete", "table", "inet", table});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// Runs the sides in a different order on each run, so neither always goes first.
void alternate(std::size_t run, const std::vector<std::function<void()>>& sides) {
  for (std::size_t i = 0; i < sides.size(); ++i) sides[(i + run) % sides.size()]();
}

// The three stages of a whole reload, timed one by one; returns the total.
struct StageTimes {
  Samples parse, compile, apply, total;
  Samples apply_system;  // kernel CPU time of the apply (the batch runs inside sendmsg())
};

void timed_reload(const std::string& policy, const SystemTables& tables, NetlinkKernel& kernel,
                  StageTimes& times) {
  ParsedPolicy parsed;
  double parse_ms = time_ms([&] { parsed = parse_policy_file(policy, tables); });
  if (!parsed.ok()) throw std::runtime_error(parsed.report());
  ir::Ruleset ruleset;
  double compile_ms = time_ms([&] { ruleset = compile_policy(parsed.policy); });
  double system_before = own_system_ms();
  double apply_ms = time_ms([&] { kernel.apply(ruleset); });
  times.apply_system.add(own_system_ms() - system_before);
  times.parse.add(parse_ms);
  times.compile.add(compile_ms);
  times.apply.add(apply_ms);
  times.total.add(parse_ms + compile_ms + apply_ms);
}

}  // namespace

int apply(const Args& args) {
  const std::string dir = args.get("dir", "/tmp");
  const std::size_t rules = args.number("rules", 10000);
  const std::size_t runs = args.number("runs", 7);
  const SystemTables tables = SystemTables::load();
  const std::string policy = dir + "/apply.toml", nft_path = dir + "/apply.nft";
  write_text(policy, generated_policy(rules));
  const ir::Ruleset ruleset = compile_file(policy, tables);
  write_text(nft_path, render_nft_replace(ruleset));

  Samples portier_fresh, portier_replace, nft_fresh, nft_replace;
  for (std::size_t run = 0; run < runs; ++run) {
    alternate(run, {[&] {
                      enter_fresh_netns();
                      NetlinkKernel kernel;
                      portier_fresh.add(time_ms([&] { kernel.apply(ruleset); }));
                      portier_replace.add(time_ms([&] { kernel.apply(ruleset); }));
                      drop_table("portier");
                    },
                    [&] {
                      enter_fresh_netns();
                      nft_fresh.add(nft_file(nft_path).wall_ms);
                      nft_replace.add(nft_file(nft_path).wall_ms);
                      drop_table("portier");
                    }});
  }
  const std::string n = std::to_string(rules) + " rules";
  print_table_header();
  print_row({.what = "**apply " + n + ", fresh namespace**: NetlinkKernel::apply (long-lived process)",
             .portier = portier_fresh,
             .baseline_name = "`nft -f` of render_nft_replace() (whole process)",
             .baseline = nft_fresh,
             .target = "<= 0.8x",
             .target_ratio = 0.8});
  print_row({.what = "apply " + n + ", replacing the loaded table",
             .portier = portier_replace,
             .baseline_name = "`nft -f` of the same file again",
             .baseline = nft_replace,
             .target = "<= 0.8x",
             .target_ratio = 0.8});
  return 0;
}

int reload(const Args& args) {
  const std::string dir = args.get("dir", "/tmp");
  const std::size_t rules = args.number("rules", 10000);
  const std::size_t runs = args.number("runs", 7);
  const SystemTables tables = SystemTables::load();
  const std::string policy = dir + "/reload.toml", rendered = dir + "/reload.nft", plain = dir + "/plain.nft";
  write_text(policy, generated_policy(rules));
  write_text(rendered, render_nft_replace(compile_file(policy, tables)));
  write_text(plain, plain_nft(rules));

  StageTimes fresh, replace;
  Samples rendered_fresh, rendered_replace, plain_fresh, plain_replace;
  for (std::size_t run = 0; run < runs; ++run) {
    alternate(run, {[&] {
                      enter_fresh_netns();
                      NetlinkKernel kernel;
                      timed_reload(policy, tables, kernel, fresh);
                      timed_reload(policy, tables, kernel, replace);
                      drop_table("portier");
                    },
                    [&] {
                      enter_fresh_netns();
                      rendered_fresh.add(nft_file(rendered).wall_ms);
                      rendered_replace.add(nft_file(rendered).wall_ms);
                      drop_table("portier");
                    },
                    [&] {
                      enter_fresh_netns();
                      plain_fresh.add(nft_file(plain).wall_ms);
                      plain_replace.add(nft_file(plain).wall_ms);
                      drop_table("filter");
                    }});
  }
  const std::string n = std::to_string(rules) + "-rule policy";
  const std::string vs_rendered = "`nft -f` of its rendering", vs_plain = "`nft -f` of the plain file";
  print_table_header();
  print_row({.what = "**reload of a " + n + "** (parse + compile + apply, table loaded)",
             .portier = replace.total, .baseline_name = vs_rendered + " (table loaded)", .baseline = rendered_replace,
             .target = "<= 1.0x", .target_ratio = 1.0});
  print_row({.what = "**reload of a " + n + "**", .portier = replace.total,
             .baseline_name = vs_plain + " (`flush ruleset` + one rule per line, loaded again)",
             .baseline = plain_replace, .target = "<= 0.5x", .target_ratio = 0.5});
  print_row({.what = "of which parse + validate", .portier = replace.parse, .baseline_name = vs_rendered,
             .baseline = rendered_replace});
  print_row({.what = "of which compile", .portier = replace.compile, .baseline_name = vs_rendered,
             .baseline = rendered_replace});
  print_row({.what = "of which apply", .portier = replace.apply, .baseline_name = vs_rendered,
             .baseline = rendered_replace});
  print_row({.what = "first load of a " + n + " (fresh namespace)", .portier = fresh.total,
             .baseline_name = vs_rendered + " (fresh ns)", .baseline = rendered_fresh});
  print_row({.what = "first load of a " + n + " (fresh namespace)", .portier = fresh.total,
             .baseline_name = vs_plain + " (fresh ns)", .baseline = plain_fresh});
  return 0;
}

int sets(const Args& args) {
  const std::string dir = args.get("dir", "/tmp");
  const std::size_t elements = args.number("elements", 1000000);
  const std::size_t runs = args.number("runs", 3);
  const bool replace_too = args.get("replace", "0") == "1";
  const SystemTables tables = SystemTables::load();
  const std::string n = std::to_string(elements);
  const std::string set_path = dir + "/blocklist-" + n + ".txt", policy = dir + "/set-" + n + ".toml",
                    rendered = dir + "/set-" + n + ".nft";
  write_text(set_path, set_file(elements));
  write_text(policy, set_policy("blocklist-" + n + ".txt"));
  write_text(rendered, render_nft_replace(compile_file(policy, tables)));

  StageTimes fresh, replace;
  Samples nft_fresh, nft_replace, nft_rss, nft_user, nft_system;
  for (std::size_t run = 0; run < runs; ++run) {
    alternate(run, {[&] {
                      enter_fresh_netns();
                      NetlinkKernel kernel;
                      timed_reload(policy, tables, kernel, fresh);
                      if (replace_too) timed_reload(policy, tables, kernel, replace);
                      drop_table("portier");
                    },
                    [&] {
                      enter_fresh_netns();
                      ProcessRun loaded = nft_file(rendered);
                      nft_fresh.add(loaded.wall_ms);
                      nft_rss.add(static_cast<double>(loaded.max_rss_kib) / 1024);
                      nft_user.add(loaded.user_ms);
                      nft_system.add(loaded.system_ms);
                      if (replace_too) nft_replace.add(nft_file(rendered).wall_ms);
                      drop_table("portier");
                    }});
  }
  const std::string what = "set of " + n + " elements from a `file =` set file";
  const std::string baseline = "`nft -f` of the rendering (fresh ns)";
  char rss[96];
  std::snprintf(rss, sizeof rss, "nft's peak RSS %.0f MiB", nft_rss.median());
  char cpu[160];
  std::snprintf(cpu, sizeof cpu, "kernel CPU time: portier's apply %s, nft %s (nft user %s)",
                format_ms(fresh.apply_system.median()).c_str(), format_ms(nft_system.median()).c_str(),
                format_ms(nft_user.median()).c_str());
  print_table_header();
  print_row({.what = "**" + what + "**, parse + compile + apply, fresh namespace", .portier = fresh.total,
             .baseline_name = baseline, .baseline = nft_fresh, .target = "<= 0.5x", .target_ratio = 0.5,
             .note = rss});
  print_row({.what = "of which parse (TOML + set file)", .portier = fresh.parse, .baseline_name = baseline,
             .baseline = nft_fresh});
  print_row({.what = "of which compile", .portier = fresh.compile, .baseline_name = baseline, .baseline = nft_fresh});
  print_row({.what = "of which apply", .portier = fresh.apply, .baseline_name = baseline, .baseline = nft_fresh,
             .note = cpu});
  if (replace_too)
    print_row({.what = what + ", loaded again over itself (reload)", .portier = replace.total,
               .baseline_name = "`nft -f` of the rendering again", .baseline = nft_replace,
               .target = "<= 0.5x", .target_ratio = 0.5});
  return 0;
}

int load(const Args& args) {
  if (args.positional.size() != 1) throw std::runtime_error("load takes one POLICY file");
  require_private_netns();
  const SystemTables tables = SystemTables::load();
  NetlinkKernel kernel;
  kernel.apply(compile_file(args.positional[0], tables));
  return 0;
}

}  // namespace portier::bench
