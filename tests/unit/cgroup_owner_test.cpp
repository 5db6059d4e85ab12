// Finding a bind's owner in a cgroup tree (rules/cgroup_owner.h), on a fake tree.
#include <doctest/doctest.h>

#include <map>

#include "cgroup_owner.h"
#include "fake_cgroup_tree.h"

using namespace portier;
using portier::testing::FakeTree;

TEST_CASE("cgroup owners: a unit is found in whatever slice it runs") {
  FakeTree tree;
  tree.make("init.scope", 2);
  tree.make("system.slice", 3);
  tree.make("system.slice/ssh.service", 10);
  tree.make("system.slice/ssh.service/sub", 11);  // a service's own sub-cgroup
  tree.make("system.slice/system-getty.slice", 4);
  tree.make("system.slice/system-getty.slice/getty@tty1.service", 12);
  tree.make("user.slice", 5);
  tree.make("user.slice/user-1000.slice", 6);
  tree.make("user.slice/user-1000.slice/user@1000.service", 13);
  tree.make("user.slice/user-1000.slice/user@1000.service/app.slice", 14);
  tree.make("user.slice/user-1000.slice/user@1000.service/app.slice/web.service", 15);
  tree.make("web.slice", 7);
  tree.make("web.slice/nginx.service", 16);

  CHECK(locate(tree, {"ssh.service", ""}) == ir::CgroupMember{"system.slice/ssh.service", 10});
  CHECK(locate(tree, {"getty@tty1.service", ""}) ==
        ir::CgroupMember{"system.slice/system-getty.slice/getty@tty1.service", 12});
  CHECK(locate(tree, {"nginx.service", ""}) == ir::CgroupMember{"web.slice/nginx.service", 16});
  CHECK(locate(tree, {"user@1000.service", ""}) ==
        ir::CgroupMember{"user.slice/user-1000.slice/user@1000.service", 13});
  CHECK(locate(tree, {"system-getty.slice", ""}) ==
        ir::CgroupMember{"system.slice/system-getty.slice", 4});
  // Below a unit is the unit's own business (a user's manager, a container): not the system's.
  CHECK_FALSE(locate(tree, {"web.service", ""}));
  CHECK_FALSE(locate(tree, {"sub", ""}));
  CHECK_FALSE(locate(tree, {"cron.service", ""}));
  // A cgroup owner is its path.
  CHECK(locate(tree, {"", "system.slice/ssh.service/sub"}) ==
        ir::CgroupMember{"system.slice/ssh.service/sub", 11});
  CHECK_FALSE(locate(tree, {"", "lab/allowed"}));

  // Restarted: a new cgroup, a new id.
  tree.remove("system.slice/ssh.service/sub");
  tree.remove("system.slice/ssh.service");
  CHECK_FALSE(locate(tree, {"ssh.service", ""}));
  tree.make("system.slice/ssh.service", 20);
  CHECK(locate(tree, {"ssh.service", ""}) == ir::CgroupMember{"system.slice/ssh.service", 20});
}

TEST_CASE("cgroup owners: what to watch, so that a unit or cgroup is seen when it comes") {
  FakeTree tree;
  tree.make("system.slice", 3);
  tree.make("system.slice/system-getty.slice", 4);
  tree.make("system.slice/ssh.service", 10);
  tree.make("lab", 30);
  // Units: the root and every slice, where systemd makes units' cgroups.
  CHECK(cgroups_to_watch(tree, {{"ssh.service", ""}}) ==
        std::vector<std::string>{"", "system.slice", "system.slice/system-getty.slice"});
  // A path: its existing ancestors; lab/allowed's parent lab exists, lab/x/y's x does not yet.
  CHECK(cgroups_to_watch(tree, {{"", "lab/allowed"}}) == std::vector<std::string>{"", "lab"});
  CHECK(cgroups_to_watch(tree, {{"", "lab/x/y"}}) == std::vector<std::string>{"", "lab"});
  tree.make("lab/x", 31);
  CHECK(cgroups_to_watch(tree, {{"", "lab/x/y"}}) == std::vector<std::string>{"", "lab", "lab/x"});
}

TEST_CASE("cgroup owners: which cgroup of a socket's path is the owner's") {
  const ir::CgroupOwner ssh{"ssh.service", ""};
  CHECK(owner_cgroup_in(ssh, "system.slice/ssh.service") == "system.slice/ssh.service");
  CHECK(owner_cgroup_in(ssh, "system.slice/ssh.service/sub") == "system.slice/ssh.service");
  CHECK(owner_cgroup_in(ssh, "a.slice/a-b.slice/ssh.service") == "a.slice/a-b.slice/ssh.service");
  CHECK_FALSE(owner_cgroup_in(ssh, "system.slice/sshd.service"));
  CHECK_FALSE(owner_cgroup_in(ssh, "machine.slice/c.scope/system.slice/ssh.service"));
  CHECK_FALSE(owner_cgroup_in(ssh, ""));
  const ir::CgroupOwner lab{"", "lab/allowed"};
  CHECK(owner_cgroup_in(lab, "lab/allowed/worker") == "lab/allowed");
  CHECK_FALSE(owner_cgroup_in(lab, "lab/allowed-not"));
  CHECK_FALSE(owner_cgroup_in(lab, "lab"));
  CHECK(describe(ssh) == "ssh.service");
  CHECK(describe(lab) == "cgroup lab/allowed");
}
