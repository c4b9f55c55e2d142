#include "acl.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <sstream>

#include "ferry/core/logging.h"
#include "ferry/storage/env.h"
#include "security.h"

namespace ferry::broker {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("security");
  return l;
}

constexpr std::uint16_t bit(acl_op o) noexcept {
  return static_cast<std::uint16_t>(o);
}

// Whether a rule's bits cover `op`. An allow of any operation that acts on
// a resource also allows describing it (Kafka's implied DESCRIBE); on the
// cluster only alter does (describing the cluster lists the ACLs). A deny
// covers exactly its own operations.
bool covers(const acl_rule& r, acl_op op) noexcept {
  if ((r.operations & bit(op)) != 0) return true;
  if (op != acl_op::describe || r.deny) return false;
  if (r.resource == acl_resource::cluster) return (r.operations & bit(acl_op::alter)) != 0;
  return (r.operations & ~bit(acl_op::create)) != 0;
}

bool matches(const acl_rule& r, std::string_view principal, acl_resource resource,
             std::string_view name) noexcept {
  if (r.resource != resource) return false;
  if (r.principal != "*" && r.principal != principal) return false;
  if (resource == acl_resource::cluster) return true;
  if (r.pattern == acl_pattern::prefix) return name.starts_with(r.name);
  return r.name == "*" || r.name == name;
}

// Names and principals are [A-Za-z0-9._-] or "*" (acl_rule_problem): no
// escaping needed.
std::string toml_str(std::string_view s) {
  return fmt::format("\"{}\"", s);
}

}  // namespace

std::optional<std::vector<acl_rule>> parse_acls(const std::string& text, const std::string& file,
                                                std::string& why) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    why = fmt::format("{}:{}:{}: {}", file, e.source().begin.line, e.source().begin.column,
                      e.description());
    return std::nullopt;
  }
  std::vector<acl_rule> out;
  for (const auto& [k, node] : tbl) {
    if (k.str() != "acl" || !node.is_array_of_tables()) {
      why = fmt::format("{}: unknown entry '{}'; rules go in [[acl]] tables", file, k.str());
      return std::nullopt;
    }
  }
  const auto* rules = tbl["acl"].as_array();
  if (rules == nullptr) return out;
  int index = 0;
  for (const auto& node : *rules) {
    ++index;
    const auto& t = *node.as_table();
    auto where = [&] { return fmt::format("{}: acl #{}", file, index); };
    acl_rule r;
    bool ops_given = false;
    bool all = false;  // "all": what the resource takes (known after the loop)
    for (const auto& entry : t) {
      const auto k = entry.first.str();
      const toml::node& v = entry.second;
      auto str = [&]() -> std::optional<std::string> {
        if (!v.is_string()) return std::nullopt;
        return *v.value<std::string>();
      };
      if (k == "principal" && str()) {
        r.principal = *str();
      } else if (k == "resource" && str() && protocol::parse_acl_resource(*str())) {
        r.resource = *protocol::parse_acl_resource(*str());
      } else if (k == "pattern" && str() && protocol::parse_acl_pattern(*str())) {
        r.pattern = *protocol::parse_acl_pattern(*str());
      } else if (k == "name" && str()) {
        r.name = *str();
      } else if (k == "permission" && str() && (*str() == "allow" || *str() == "deny")) {
        r.deny = *str() == "deny";
      } else if (k == "operations" && v.is_array()) {
        ops_given = true;
        for (const auto& o : *v.as_array()) {
          auto name = o.value<std::string>();
          auto op = name ? protocol::parse_acl_op(*name) : std::nullopt;
          if (!op && !(name && *name == "all")) {
            why = fmt::format(
                "{}: unknown operation {} (read, write, create, delete, describe, alter, "
                "redrive, purge, all)",
                where(), name ? "'" + *name + "'" : std::string("(not a string)"));
            return std::nullopt;
          }
          if (op)
            r.operations = static_cast<std::uint16_t>(r.operations | bit(*op));
          else
            all = true;
        }
      } else {
        why = fmt::format(
            "{}: '{}' is unknown or has a wrong value (principal, resource = topic|group|dlq|"
            "schema|cluster, pattern = literal|prefix, name, operations = [...], permission = "
            "allow|deny)",
            where(), k);
        return std::nullopt;
      }
    }
    if (!ops_given) {
      why = fmt::format("{}: no operations", where());
      return std::nullopt;
    }
    if (all) r.operations = protocol::ops_of(r.resource);
    if (auto p = protocol::acl_rule_problem(r); !p.empty()) {
      why = fmt::format("{} ({}): {}", where(), protocol::describe(r), p);
      return std::nullopt;
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string format_acls(const std::vector<acl_rule>& rules) {
  std::string out =
      "# Ferry's authorization rules (docs/security.md#authorization). ferryd rewrites this\n"
      "# file on `ferry acls add/remove`; edits by hand are taken within a second.\n";
  for (const auto& r : rules) {
    out += "\n[[acl]]\n";
    out += fmt::format("principal = {}\n", toml_str(r.principal));
    out += fmt::format("resource = \"{}\"\n", protocol::to_string(r.resource));
    if (r.resource != acl_resource::cluster) {
      out += fmt::format("pattern = \"{}\"\n", protocol::to_string(r.pattern));
      out += fmt::format("name = {}\n", toml_str(r.name));
    }
    std::string ops;
    for (unsigned b = 1; b <= 128; b <<= 1)
      if ((r.operations & b) != 0)
        ops += fmt::format("{}\"{}\"", ops.empty() ? "" : ", ",
                           protocol::to_string(static_cast<acl_op>(b)));
    out += fmt::format("operations = [{}]\n", ops);
    out += fmt::format("permission = \"{}\"\n", r.deny ? "deny" : "allow");
  }
  return out;
}

acl_store::acl_store(storage::env& env, std::filesystem::path file)
    : env_(env), file_(std::move(file)) {}

result<void> acl_store::load(std::string& why) {
  auto exists = env_.exists(file_);
  if (!exists) {
    why = fmt::format("cannot read the ACL file {}: {}", file_.string(), exists.error().message());
    return exists.error();
  }
  if (!exists.value()) {
    logger()->info("ACL file {} does not exist yet: no rules (only super users are served)",
                   file_.string());
    return success();
  }
  auto bytes = storage::read_file(env_, file_);
  if (!bytes) {
    why = fmt::format("cannot read the ACL file {}: {}", file_.string(), bytes.error().message());
    return bytes.error();
  }
  std::string text(reinterpret_cast<const char*>(bytes.value().data()), bytes.value().size());
  auto rules = parse_acls(text, file_.string(), why);
  if (!rules) return std::make_error_code(std::errc::invalid_argument);
  rules_ = std::move(*rules);
  text_ = std::move(text);
  logger()->info("ACL file {}: {} rule(s)", file_.string(), rules_.size());
  return success();
}

void acl_store::refresh(std::chrono::steady_clock::time_point now) {
  if (now < next_check_) return;
  next_check_ = now + std::chrono::seconds(1);
  auto exists = env_.exists(file_);
  std::string why;
  std::string text;
  if (exists && !exists.value()) {
    // Removed by hand: no rules, as at a start without the file.
    if (text_.empty() && rules_.empty()) return;
  } else {
    auto bytes =
        exists ? storage::read_file(env_, file_) : result<std::vector<std::byte>>(exists.error());
    if (!bytes) {
      why = fmt::format("cannot read the ACL file {}: {}", file_.string(), bytes.error().message());
    } else {
      text.assign(reinterpret_cast<const char*>(bytes.value().data()), bytes.value().size());
      if (text == text_) {
        last_problem_.clear();  // back to what is in force (an edit undone)
        return;
      }
    }
  }
  std::optional<std::vector<acl_rule>> rules;
  if (why.empty()) rules = parse_acls(text, file_.string(), why);
  if (!rules) {
    if (why != last_problem_)
      logger()->error("ACL file not reloaded, the previous rules stay in force: {}", why);
    last_problem_ = why;
    return;
  }
  last_problem_.clear();
  rules_ = std::move(*rules);
  text_ = std::move(text);
  logger()->info("ACL file {} reloaded: {} rule(s)", file_.string(), rules_.size());
}

result<void> acl_store::current(std::string& why) {
  // A change starts from the file as it is now, not from a read up to a
  // second old: a hand edit made just before is kept, and a file broken by
  // one is not overwritten.
  next_check_ = {};
  refresh(std::chrono::steady_clock::now());
  if (!last_problem_.empty()) {
    why = fmt::format("the ACL file does not parse, so it is not changed; fix it first: {}",
                      last_problem_);
    return std::make_error_code(std::errc::invalid_argument);
  }
  return success();
}

result<void> acl_store::persist(const std::vector<acl_rule>& next, std::string& why) {
  auto text = format_acls(next);
  auto w = storage::write_file_atomic(
      env_, file_, std::span(reinterpret_cast<const std::byte*>(text.data()), text.size()));
  if (!w) {
    // The rename may have happened before the failing sync: the rules in
    // force are re-read from the file at the next request.
    why = fmt::format(
        "cannot write the ACL file {}: {}; the change may not have been made, or not durably: "
        "check with ferry acls list",
        file_.string(), w.error().message());
    next_check_ = {};
    return w.error();
  }
  rules_ = next;
  text_ = std::move(text);
  return success();
}

result<void> acl_store::add(const std::vector<acl_rule>& rules, int& changed, std::string& why) {
  changed = 0;
  FERRY_TRY(current(why));
  auto next = rules_;
  for (const auto& r : rules) {
    if (auto p = protocol::acl_rule_problem(r); !p.empty()) {
      why = fmt::format("{}: {}", protocol::describe(r), p);
      return std::make_error_code(std::errc::invalid_argument);
    }
    auto it = std::find_if(next.begin(), next.end(),
                           [&](const acl_rule& x) { return x.same_binding(r); });
    if (it == next.end()) {
      next.push_back(r);
      ++changed;
    } else if ((it->operations | r.operations) != it->operations) {
      it->operations = static_cast<std::uint16_t>(it->operations | r.operations);
      ++changed;
    }
  }
  if (changed == 0) return success();
  return persist(next, why);
}

result<void> acl_store::remove(const std::vector<acl_rule>& rules, int& changed, std::string& why) {
  changed = 0;
  FERRY_TRY(current(why));
  auto next = rules_;
  for (const auto& r : rules) {
    // Every rule of the binding: a hand-edited file may hold it twice.
    const std::uint16_t take = r.operations == 0 ? protocol::kAllAclOps : r.operations;
    bool touched = false;
    for (auto& x : next)
      if (x.same_binding(r) && (x.operations & take) != 0) {
        x.operations = static_cast<std::uint16_t>(x.operations & ~take);
        touched = true;
      }
    if (!touched) continue;
    ++changed;
    std::erase_if(next, [](const acl_rule& x) { return x.operations == 0; });
  }
  if (changed == 0) return success();
  return persist(next, why);
}

bool authorizer::is_super(std::string_view principal) const {
  return users_.is_super(principal);
}

access_decision authorizer::check(std::string_view principal, acl_resource resource,
                                  std::string_view name, acl_op op) const {
  if (is_super(principal)) return {true, {}};
  return by_rules(principal, resource, name, op);
}

access_decision authorizer::by_rules(std::string_view principal, acl_resource resource,
                                     std::string_view name, acl_op op) const {
  access_decision d;
  for (const auto& r : store_.rules()) {
    if (!covers(r, op) || !matches(r, principal, resource, name)) continue;
    if (r.deny) {
      d.allowed = false;
      d.why = fmt::format("denied by the rule \"{}\"", protocol::describe(r));
      return d;
    }
    d.allowed = true;
  }
  if (!d.allowed) d.why = "no rule allows it";
  return d;
}

bool authorizer::allowed_somewhere(std::string_view principal, acl_resource resource,
                                   acl_op op) const {
  if (is_super(principal)) return true;
  const auto& rules = store_.rules();
  auto mine = [&](const acl_rule& r) {
    return r.resource == resource && (r.operations & bit(op)) != 0 &&
           (r.principal == "*" || r.principal == principal);
  };
  const bool denied_everywhere = std::any_of(rules.begin(), rules.end(), [&](const acl_rule& r) {
    return r.deny && mine(r) &&
           ((r.pattern == acl_pattern::literal && r.name == "*") ||
            (r.pattern == acl_pattern::prefix && r.name.empty()));
  });
  return !denied_everywhere && std::any_of(rules.begin(), rules.end(),
                                           [&](const acl_rule& r) { return !r.deny && mine(r); });
}

std::string refusal_message(std::string_view principal, acl_resource resource,
                            std::string_view name, acl_op op, const access_decision& d) {
  const auto what = resource == acl_resource::cluster
                        ? std::string("the cluster")
                        : fmt::format("{} {}", protocol::to_string(resource), name);
  const auto who = principal.empty() ? std::string_view("anonymous") : principal;
  if (d.why.starts_with("denied"))
    return fmt::format("not authorized to {} {}: {} is {}", protocol::to_string(op), what, who,
                       d.why);
  const auto flag = resource == acl_resource::cluster
                        ? std::string("--cluster")
                        : fmt::format("--{} {}", protocol::to_string(resource), name);
  return fmt::format(
      "not authorized to {} {}: {} for {}; an administrator can add one: ferry acls add "
      "--principal {} {} --operations {}",
      protocol::to_string(op), what, d.why.empty() ? "no rule allows it" : d.why, who, who, flag,
      protocol::to_string(op));
}

}  // namespace ferry::broker
