// portierctl's pure text: human numbers, the progress line of set loads, set element files.
#include <doctest/doctest.h>

#include <sstream>

#include "element_file.h"
#include "output.h"
#include "progress.h"

using namespace portier::cli;

TEST_CASE("human_count rounds into the next unit instead of printing 1000k") {
  CHECK(human_count(0) == "0");
  CHECK(human_count(999) == "999");
  CHECK(human_count(1000) == "1.0k");
  CHECK(human_count(1234) == "1.2k");
  CHECK(human_count(350000) == "350k");
  CHECK(human_count(999499) == "999k");
  CHECK(human_count(999999) == "1.0M");
  CHECK(human_count(1000000) == "1.0M");
  CHECK(human_count(3400000) == "3.4M");
  CHECK(human_count(999999999) == "1.0G");
}

TEST_CASE("progress_line at the start, part way and at the end") {
  CHECK(progress_line("blocklist", 0, 1000000, "added") ==
        "blocklist: 0 of 1.0M elements added (0%)");
  CHECK(progress_line("blocklist", 350000, 1000000, "added") ==
        "blocklist: 350k of 1.0M elements added (35%)");
  CHECK(progress_line("blocklist", 1000000, 1000000, "added") ==
        "blocklist: 1.0M of 1.0M elements added (100%)");
  CHECK(progress_line("ports", 50000, 120000, "removed") ==
        "ports: 50k of 120k elements removed (41%)");
  // Not 100% while one element is still out.
  CHECK(progress_line("big", 999999, 1000000, "added") == "big: 1.0M of 1.0M elements added (99%)");
  CHECK(progress_line("one", 0, 1, "added") == "one: 0 of 1 element added (0%)");
  CHECK(progress_line("none", 0, 0, "added") == "none: 0 of 0 elements added (100%)");
}

TEST_CASE("rewrite_line blanks what is left of a longer previous line") {
  CHECK(rewrite_line(0, "abc") == "\rabc");
  CHECK(rewrite_line(3, "abc") == "\rabc");
  CHECK(rewrite_line(5, "abc") == "\rabc  ");
}

TEST_CASE("read_element_file: comments, blanks and spaces as in a policy set file") {
  std::istringstream in(
      "# blocklist\n\n203.0.113.9\n  198.51.100.0/24  # a network\r\n\t192.0.2.1\n#\n");
  ElementFile file = read_element_file(in, "list.txt");
  CHECK(file.errors.empty());
  CHECK(file.elements == std::vector<std::string>{"203.0.113.9", "198.51.100.0/24", "192.0.2.1"});
  CHECK(file.lines == std::vector<std::uint32_t>{3, 4, 5});
}

TEST_CASE("read_element_file: ports and ipv6") {
  std::istringstream ports("22\n8080\n65535\n0\n");
  CHECK(read_element_file(ports, "p").elements.size() == 4);
  std::istringstream v6("2001:db8::1\nfd00::/8\n");
  ElementFile file = read_element_file(v6, "v6");
  CHECK(file.errors.empty());
  CHECK(file.elements.size() == 2);
}

TEST_CASE("read_element_file: bad lines are named by FILE:LINE:COL") {
  std::istringstream in("203.0.113.9\n  203.0.113.300\n10.0.0.1/8\n2001:db8::1\n8080\n70000\n");
  ElementFile file = read_element_file(in, "list.txt");
  CHECK(file.elements == std::vector<std::string>{"203.0.113.9"});
  REQUIRE(file.errors.size() == 5);
  CHECK(file.errors[0] ==
        "list.txt:2:3: error: '203.0.113.300' is not an address, a network or a port");
  CHECK(file.errors[1] ==
        "list.txt:3:1: error: '10.0.0.1/8' is not an address, a network or a port");
  CHECK(file.errors[2] ==
        "list.txt:4:1: error: '2001:db8::1' is an ipv6 address, but line 1 holds an ipv4 address: "
        "a set holds "
        "one family");
  CHECK(file.errors[3] ==
        "list.txt:5:1: error: '8080' is a port, but line 1 holds an ipv4 address: a set holds one "
        "family");
  CHECK(file.errors[4] == "list.txt:6:1: error: '70000' is not an address, a network or a port");
}

TEST_CASE("read_element_file: ten errors, then a count of the rest") {
  std::string text;
  for (int i = 0; i < 25; ++i) text += "nope\n";
  std::istringstream in(text);
  ElementFile file = read_element_file(in, "f");
  REQUIRE(file.errors.size() == 11);
  CHECK(file.errors[10] == "f: 15 more bad lines");
}

TEST_CASE("human numbers switch to no decimal at 10 and to the next unit before 1000") {
  CHECK(human_count(9940) == "9.9k");
  CHECK(human_count(9960) == "10k");
  CHECK(human_bytes(1023) == "1023 B");
  CHECK(human_bytes(1024) == "1.0 KiB");
  CHECK(human_bytes(3565158) == "3.4 MiB");
  CHECK(human_bytes(1024 * 1024 - 1) == "1.0 MiB");
}
