// ferry acls add|remove|list: the broker's authorization rules
// (docs/security.md#authorization).
#include <fmt/format.h>

#include <iostream>

#include "cli.h"
#include "commands.h"

namespace ferry::cli {

namespace {

// The rule the flags describe; nullopt after printing why (exit 2).
std::optional<client::acl_rule> rule_of(const acl_args& a, bool ops_required) {
  client::acl_rule r;
  r.principal = a.principal;
  int given = 0;
  auto take = [&](const std::optional<std::string>& v, protocol::acl_resource res) {
    if (!v) return;
    ++given;
    r.resource = res;
    r.name = *v;
  };
  take(a.topic, protocol::acl_resource::topic);
  take(a.group, protocol::acl_resource::group);
  take(a.dlq, protocol::acl_resource::dlq);
  take(a.schema, protocol::acl_resource::schema);
  if (a.cluster) {
    ++given;
    r.resource = protocol::acl_resource::cluster;
  }
  if (given != 1) {
    std::cerr << "error: give one resource: --topic NAME, --group NAME, --dlq NAME, --schema "
                 "SUBJECT or --cluster\n";
    return std::nullopt;
  }
  r.pattern = a.prefix ? protocol::acl_pattern::prefix : protocol::acl_pattern::literal;
  r.deny = a.deny;
  if (a.operations.empty()) {
    if (ops_required) {
      std::cerr << fmt::format("error: give --operations, e.g. read,describe (a {} takes {})\n",
                               protocol::to_string(r.resource),
                               protocol::ops_to_string(protocol::ops_of(r.resource)));
      return std::nullopt;
    }
  } else {
    std::string why;
    auto ops = protocol::parse_ops(a.operations, why);
    if (!ops) {
      std::cerr << "error: --operations: " << why << "\n";
      return std::nullopt;
    }
    // "all" is everything the resource takes.
    r.operations = *ops == protocol::kAllAclOps ? protocol::ops_of(r.resource) : *ops;
  }
  if (ops_required || r.operations != 0) {
    if (auto p = protocol::acl_rule_problem(r); !p.empty()) {
      std::cerr << "error: " << p << "\n";
      return std::nullopt;
    }
  }
  return r;
}

nlohmann::json to_json(const client::acl_rule& r) {
  nlohmann::json j = {{"principal", r.principal},
                      {"resource", protocol::to_string(r.resource)},
                      {"operations", nlohmann::json::array()},
                      {"permission", r.deny ? "deny" : "allow"}};
  if (r.resource != protocol::acl_resource::cluster) {
    j["pattern"] = protocol::to_string(r.pattern);
    j["name"] = r.name;
  }
  for (unsigned b = 1; b <= 128; b <<= 1)
    if ((r.operations & b) != 0)
      j["operations"].push_back(protocol::to_string(static_cast<protocol::acl_op>(b)));
  return j;
}

}  // namespace

int acls_change(const globals& g, const acl_args& a, bool adding) {
  auto rule = rule_of(a, adding);
  if (!rule) return kUsage;
  client::admin adm(g.client());
  auto r = adding ? adm.add_acls({*rule}) : adm.remove_acls({*rule});
  const auto what = protocol::describe(*rule);
  if (!r)
    return report(fmt::format("cannot {} the rule \"{}\"", adding ? "add" : "remove", what),
                  r.error(), adm.last_error_message());
  if (g.json()) {
    print_json({{adding ? "added" : "removed", to_json(*rule)}, {"changed", r.value()}});
  } else if (r.value() == 0) {
    std::cout << (adding
                      ? fmt::format("already in force: {}\n", what)
                      : fmt::format("no such rule: {} (see them with: ferry acls list)\n", what));
  } else {
    std::cout << fmt::format("{}: {}\n", adding ? "added" : "removed", what);
  }
  return kOk;
}

int acls_list(const globals& g, const std::string& principal) {
  client::admin adm(g.client());
  auto r = adm.list_acls(principal);
  if (!r) return report("cannot list the ACLs", r.error(), adm.last_error_message());
  if (g.json()) {
    auto rules = nlohmann::json::array();
    for (const auto& x : r.value().rules) rules.push_back(to_json(x));
    print_json({{"rules", rules}, {"file", r.value().file}});
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& x : r.value().rules)
    rows.push_back({x.principal, std::string(protocol::to_string(x.resource)),
                    x.resource == protocol::acl_resource::cluster
                        ? std::string("-")
                        : std::string(protocol::to_string(x.pattern)),
                    x.resource == protocol::acl_resource::cluster ? std::string("-") : x.name,
                    protocol::ops_to_string(x.operations), x.deny ? "deny" : "allow"});
  if (rows.empty()) {
    std::cout << fmt::format("no rules{} (kept in {}): only super users are served\n",
                             principal.empty() ? "" : " for " + principal, r.value().file);
    return kOk;
  }
  print_table({"PRINCIPAL", "RESOURCE", "PATTERN", "NAME", "OPERATIONS", "PERMISSION"}, rows);
  return kOk;
}

}  // namespace ferry::cli
