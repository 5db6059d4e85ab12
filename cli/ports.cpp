// portierctl ports: every listening socket of the host, who serves it, and whether a new
// connection from each zone (and from anywhere) gets through the loaded ruleset.
#include <cctype>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"
#include "output.h"

namespace portier::cli {
namespace {

struct ZoneCell {
  std::string zone;
  bool open = false;
  std::string decided_by;
};

// One entry of ListPorts (keys documented in org.portier.Firewall1.xml). A key the daemon
// did not send reads as empty, so an older daemon still prints.
struct PortRow {
  std::string protocol, family, address, scope, process, user, unit, cgroup;
  // kind "published": a port another table DNATs to `target` (on interface `via`), by a
  // rule in `published_by`; an older daemon sends no kind (listeners only).
  std::string kind, target, via, published_by, comment;
  std::uint16_t port = 0, port_last = 0;
  std::uint32_t pid = 0, uid = 0;
  std::vector<ZoneCell> zones;
  std::vector<std::string> warnings;
};

template <typename T>
T field(const std::map<std::string, sdbus::Variant>& entry, const char* key) {
  auto it = entry.find(key);
  return it == entry.end() ? T{} : it->second.get<T>();
}

PortRow row_of(const std::map<std::string, sdbus::Variant>& entry) {
  namespace key = bus_key::port;
  PortRow row;
  row.protocol = field<std::string>(entry, key::kProtocol);
  row.family = field<std::string>(entry, key::kFamily);
  row.address = field<std::string>(entry, key::kAddress);
  row.port = field<std::uint16_t>(entry, key::kPort);
  row.scope = field<std::string>(entry, key::kScope);
  row.pid = field<std::uint32_t>(entry, key::kPid);
  row.process = field<std::string>(entry, key::kProcess);
  row.uid = field<std::uint32_t>(entry, key::kUid);
  row.user = field<std::string>(entry, key::kUser);
  row.unit = field<std::string>(entry, key::kUnit);
  row.cgroup = field<std::string>(entry, key::kCgroup);
  row.kind = field<std::string>(entry, key::kKind);
  if (row.kind.empty()) row.kind = key::kKindListener;
  row.port_last = field<std::uint16_t>(entry, key::kPortLast);
  row.target = field<std::string>(entry, key::kTarget);
  row.via = field<std::string>(entry, key::kVia);
  row.published_by = field<std::string>(entry, key::kPublishedBy);
  row.comment = field<std::string>(entry, key::kComment);
  for (const auto& zone :
       field<std::vector<sdbus::Struct<std::string, bool, std::string>>>(entry, key::kZones))
    row.zones.push_back({zone.get<0>(), zone.get<1>(), zone.get<2>()});
  row.warnings = field<std::vector<std::string>>(entry, key::kWarnings);
  return row;
}

void print_json(const std::vector<PortRow>& rows) {
  Json out;
  out.begin_array();
  for (const PortRow& row : rows) {
    out.begin_object()
        .key("kind")
        .value(row.kind)
        .key("protocol")
        .value(row.protocol)
        .key("family")
        .value(row.family)
        .key("address")
        .value(row.address)
        .key("port")
        .value(std::uint64_t{row.port})
        .key("scope")
        .value(row.scope)
        .key("pid")
        .value(std::uint64_t{row.pid})
        .key("process")
        .value(row.process)
        .key("uid")
        .value(std::uint64_t{row.uid})
        .key("user")
        .value(row.user)
        .key("unit")
        .value(row.unit)
        .key("cgroup")
        .value(row.cgroup);
    if (row.kind == bus_key::port::kKindPublished)
      out.key("port_last")
          .value(std::uint64_t{row.port_last})
          .key("target")
          .value(row.target)
          .key("via")
          .value(row.via)
          .key("published_by")
          .value(row.published_by)
          .key("comment")
          .value(row.comment);
    out.key("zones")
        .begin_array();
    for (const ZoneCell& zone : row.zones)
      out.begin_object()
          .key("zone")
          .value(zone.zone)
          .key("open")
          .value(zone.open)
          .key("decided_by")
          .value(zone.decided_by)
          .end_object();
    out.end_array().key("warnings").values(row.warnings).end_object();
  }
  out.end_array();
  std::printf("%s\n", out.str().c_str());
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

void add_zone_cells(const PortRow& row, std::vector<std::string>& cells) {
  for (const ZoneCell& zone : row.zones) {
    if (!zone.open) {
      cells.push_back("closed");
      continue;
    }
    // Open from anywhere is what a reader must not miss; open from a zone may be the point.
    cells.push_back(
        coloured("open (" + zone.decided_by + ")", zone.zone == "anywhere" ? "red" : "yellow"));
  }
}

// The header of a table, then the zone columns of its first row; every row has the same
// zones in the same order (the policy's zones, then anywhere).
std::vector<std::string> header_of(std::vector<std::string> header, const PortRow& first) {
  for (const ZoneCell& zone : first.zones) {
    std::string name = zone.zone;
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    header.push_back(name);
  }
  return header;
}

void print_text(const std::vector<PortRow>& rows) {
  std::vector<const PortRow*> listeners, published;
  for (const PortRow& row : rows)
    (row.kind == bus_key::port::kKindPublished ? published : listeners).push_back(&row);

  std::vector<std::vector<std::string>> table = {
      header_of({"PROTO", "ADDRESS", "PORT", "PROCESS", "USER", "UNIT"},
                listeners.empty() ? PortRow{} : *listeners.front())};
  for (const PortRow* row : listeners) {
    std::string process =
        row->process.empty() ? "-"
                             : row->process + (row->pid ? "[" + std::to_string(row->pid) + "]" : "");
    std::string user = row->user.empty() ? std::to_string(row->uid) : row->user;
    std::vector<std::string> cells = {row->protocol, row->address, std::to_string(row->port),
                                      process,       user,         or_dash(row->unit)};
    add_zone_cells(*row, cells);
    table.push_back(std::move(cells));
  }
  print_table(table);

  // Ports other tables DNAT to containers and guests: no socket of the host need listen
  // (dockerd --userland-proxy=false), and the verdict is the forward chain's.
  if (!published.empty()) {
    std::printf("\n%s\n", coloured("published by other tables (DNAT):", "bold").c_str());
    std::vector<std::vector<std::string>> nat = {
        header_of({"PROTO", "ADDRESS", "PORT", "TO", "VIA", "RULE"}, *published.front())};
    for (const PortRow* row : published) {
      std::string port = std::to_string(row->port);
      if (row->port_last > row->port) port += "-" + std::to_string(row->port_last);
      std::string rule = row->published_by;
      if (!row->comment.empty()) rule += " \"" + row->comment + "\"";
      std::vector<std::string> cells = {row->protocol, row->address, port,
                                        row->target,   or_dash(row->via), rule};
      add_zone_cells(*row, cells);
      nat.push_back(std::move(cells));
    }
    print_table(nat);
  }

  bool first = true;
  for (const PortRow& row : rows)
    for (const std::string& warning : row.warnings) {
      if (first) std::printf("\n%s\n", coloured("warnings:", "bold").c_str());
      first = false;
      std::printf("  %s\n", warning.c_str());
    }
}

}  // namespace

int ports(Args args) {
  bool json = false;
  for (std::string_view arg : args) {
    if (arg == "--json")
      json = true;
    else
      return usage_error("ports", "takes only --json");
  }
  return with_daemon([&](DaemonClient& daemon) {
    std::vector<PortRow> rows;
    for (const auto& entry : daemon.ListPorts()) rows.push_back(row_of(entry));
    if (json)
      print_json(rows);
    else
      print_text(rows);
    return kOk;
  });
}

}  // namespace portier::cli
