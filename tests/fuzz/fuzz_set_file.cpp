// Set files (`file = ...` of a [set]): one element a line, read by the policy parser.
// The first byte picks the set's family; the rest is the file, served from a memfd so
// that each run reads the real file path without touching the disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "compile_policy.h"
#include "fuzz_support.h"
#include "parse_policy.h"
#include "render_nft.h"

using namespace portier;

namespace {

int set_file_fd() {
  static const int fd = memfd_create("portier-fuzz-set", 0);
  if (fd < 0) fuzz::fail("memfd_create failed");
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* const kFamilies[] = {"ipv4", "ipv6", "port"};
  const char* family = kFamilies[data[0] % 3];
  const int fd = set_file_fd();
  if (ftruncate(fd, 0) != 0) fuzz::fail("ftruncate failed");
  for (std::size_t done = 1; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done - 1));
    if (n <= 0) fuzz::fail("pwrite failed");
    done += static_cast<std::size_t>(n);
  }
  const std::string policy = std::string("[set.s]\nfamily = \"") + family +
                             "\"\nfile = \"/proc/self/fd/" + std::to_string(fd) +
                             "\"\n\n[[rule]]\nname = \"r\"\nfrom = \"@s\"\naction = \"drop\"\n";
  ParsedPolicy parsed =
      parse_policy(policy, "/nonexistent/portier-fuzz/policy.toml", fuzz::golden_tables());
  (void)parsed.report();
  if (!parsed.ok()) return 0;
  try {
    (void)render_nft(compile_policy(parsed.policy));
  } catch (const std::exception& e) {
    fuzz::fail(std::string("a valid set does not compile or render: ") + e.what());
  }
  return 0;
}
