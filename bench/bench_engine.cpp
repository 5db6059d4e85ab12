// Benchmark 1: the policy engine alone (no kernel): parse + validate, compile, render and
// encode, for generated policies of several sizes, beside `nft -f` of the same ruleset.
#include <cstdio>
#include <stdexcept>

#include "commands.h"
#include "compile_policy.h"
#include "encode_batch.h"
#include "generate.h"
#include "measure.h"
#include "parse_policy.h"
#include "render_nft.h"

namespace portier::bench {

int engine(const Args& args) {
  const std::string dir = args.get("dir", "/tmp");
  const std::size_t runs = args.number("runs", 15);
  const std::size_t nft_runs = args.number("nft-runs", 7);
  const SystemTables tables = SystemTables::load();
  enter_fresh_netns();  // for the nft baseline only
  print_table_header();
  for (std::size_t size : args.numbers("sizes", {10, 1000, 10000})) {
    const std::string policy_path = dir + "/engine-" + std::to_string(size) + ".toml";
    const std::string policy_text = generated_policy(size);
    // The same policy with one rule edited, as bench/reload.sh edits it.
    std::string edited = policy_text;
    if (auto at = edited.find("\nports = 1024\n"); at != std::string::npos)
      edited.replace(at, 14, "\nports = 1023\n");
    write_text(policy_path, policy_text);
    Samples parse, compile, both, render, encode, nft, first_read, edited_read;
    std::string text;
    for (std::size_t run = 0; run < runs; ++run) {
      // Through a PolicyReadCache (portierd's reads): a first read, and one after the edit.
      PolicyReadCache cache;
      first_read.add(time_ms([&] {
        if (!parse_policy_file(policy_path, tables, disk_files(), &cache).ok())
          throw std::runtime_error("the policy does not parse");
      }));
      write_text(policy_path, edited);
      edited_read.add(time_ms([&] {
        if (!parse_policy_file(policy_path, tables, disk_files(), &cache).ok())
          throw std::runtime_error("the edited policy does not parse");
      }));
      write_text(policy_path, policy_text);
      ParsedPolicy parsed;
      double parse_ms = time_ms([&] { parsed = parse_policy_file(policy_path, tables); });
      if (!parsed.ok()) throw std::runtime_error(parsed.report());
      ir::Ruleset ruleset;
      double compile_ms = time_ms([&] { ruleset = compile_policy(parsed.policy); });
      parse.add(parse_ms);
      compile.add(compile_ms);
      both.add(parse_ms + compile_ms);
      render.add(time_ms([&] { text = render_nft_replace(ruleset); }));
      EncodedBatch batch;
      encode.add(time_ms([&] { batch = encode_replace_batch(ruleset, 1); }));
    }
    const std::string nft_path = dir + "/engine-" + std::to_string(size) + ".nft";
    write_text(nft_path, text);
    for (std::size_t run = 0; run < nft_runs; ++run) {
      enter_fresh_netns();
      ProcessRun loaded = run_process({"nft", "-f", nft_path});
      if (!loaded.ok()) throw std::runtime_error("nft -f " + nft_path + " failed");
      nft.add(loaded.wall_ms);
    }
    const std::string n = std::to_string(size) + " rules";
    const std::string baseline = "`nft -f` of the rendering (whole process, fresh ns)";
    Row parse_row{.what = "parse + validate, " + n, .portier = parse, .baseline_name = baseline, .baseline = nft};
    print_row(parse_row);
    print_row({.what = "parse + validate through PolicyReadCache, first read (portierd's start), " + n,
               .portier = first_read, .baseline_name = "parse + validate (above)", .baseline = parse});
    print_row({.what = "parse + validate through PolicyReadCache, one rule edited since (portierd's reload), " + n,
               .portier = edited_read, .baseline_name = "parse + validate (above)", .baseline = parse});
    // The 50 ms for "compile time" at 10k rules is shown against both readings:
    // the compile stage alone (policy model to IR), and parse + validate + compile.
    Row compile_row{.what = "compile, " + n, .portier = compile, .baseline_name = baseline, .baseline = nft};
    if (size == 10000) {
      compile_row.target = "< 50 ms";
      compile_row.target_abs = 50;
    }
    print_row(compile_row);
    Row total{.what = "**parse + validate + compile, " + n + "**", .portier = both, .baseline_name = baseline,
              .baseline = nft};
    if (size == 10000) {
      total.target = "< 50 ms";
      total.target_abs = 50;
    }
    print_row(total);
    print_row({.what = "render_nft_replace, " + n, .portier = render, .baseline_name = baseline, .baseline = nft});
    print_row({.what = "encode_replace_batch, " + n, .portier = encode, .baseline_name = baseline, .baseline = nft});
  }
  return 0;
}

}  // namespace portier::bench
