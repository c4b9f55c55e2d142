#include "ferry/protocol/acl.h"

#include <fmt/format.h>

#include <array>

#include "ferry/protocol/codec.h"

namespace ferry::protocol {

namespace {

struct op_name {
  acl_op op;
  std::string_view name;
};
constexpr std::array<op_name, 8> kOps = {{
    {acl_op::read, "read"},
    {acl_op::write, "write"},
    {acl_op::create, "create"},
    {acl_op::remove, "delete"},
    {acl_op::describe, "describe"},
    {acl_op::alter, "alter"},
    {acl_op::redrive, "redrive"},
    {acl_op::purge, "purge"},
}};

constexpr std::uint16_t bit(acl_op o) noexcept {
  return static_cast<std::uint16_t>(o);
}

// A principal is a users-file name ([A-Za-z0-9._-]) or "*".
bool valid_principal(std::string_view p) noexcept {
  if (p == "*") return true;
  return !p.empty() && p.size() <= 249 &&
         p.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
             std::string_view::npos;
}

}  // namespace

std::string_view to_string(acl_resource r) noexcept {
  switch (r) {
    case acl_resource::topic:
      return "topic";
    case acl_resource::group:
      return "group";
    case acl_resource::dlq:
      return "dlq";
    case acl_resource::schema:
      return "schema";
    case acl_resource::cluster:
      return "cluster";
  }
  return "?";
}

std::string_view to_string(acl_pattern p) noexcept {
  return p == acl_pattern::prefix ? "prefix" : "literal";
}

std::string_view to_string(acl_op o) noexcept {
  for (const auto& x : kOps)
    if (x.op == o) return x.name;
  return "?";
}

std::optional<acl_resource> parse_acl_resource(std::string_view s) noexcept {
  for (auto r : {acl_resource::topic, acl_resource::group, acl_resource::dlq, acl_resource::schema,
                 acl_resource::cluster})
    if (to_string(r) == s) return r;
  return std::nullopt;
}

std::optional<acl_pattern> parse_acl_pattern(std::string_view s) noexcept {
  if (s == "literal") return acl_pattern::literal;
  if (s == "prefix" || s == "prefixed") return acl_pattern::prefix;
  return std::nullopt;
}

std::optional<acl_op> parse_acl_op(std::string_view s) noexcept {
  for (const auto& x : kOps)
    if (x.name == s) return x.op;
  return std::nullopt;
}

std::string ops_to_string(std::uint16_t ops) {
  std::string out;
  for (const auto& x : kOps)
    if ((ops & bit(x.op)) != 0) {
      if (!out.empty()) out += ',';
      out += x.name;
    }
  return out;
}

std::optional<std::uint16_t> parse_ops(std::string_view list, std::string& why) {
  std::uint16_t ops = 0;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto one = list.substr(0, comma);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    if (one == "all") {
      ops |= kAllAclOps;
    } else if (auto o = parse_acl_op(one)) {
      ops |= bit(*o);
    } else {
      why = fmt::format(
          "unknown operation '{}' (read, write, create, delete, describe, alter, redrive, purge "
          "or all)",
          one);
      return std::nullopt;
    }
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
  }
  return ops;
}

std::uint16_t ops_of(acl_resource r) noexcept {
  using enum acl_op;
  switch (r) {
    case acl_resource::topic:
      return bit(read) | bit(write) | bit(create) | bit(remove) | bit(describe) | bit(alter);
    case acl_resource::group:
      return bit(read) | bit(remove) | bit(describe) | bit(alter);
    case acl_resource::dlq:
      return bit(redrive) | bit(purge) | bit(describe);
    case acl_resource::schema:
      return bit(read) | bit(write) | bit(describe) | bit(alter);
    case acl_resource::cluster:
      return bit(create) | bit(write) | bit(describe) | bit(alter);
  }
  return 0;
}

std::string acl_rule_problem(const acl_rule& r) {
  if (!valid_principal(r.principal))
    return fmt::format("principal '{}' is not a user name (1-249 of [A-Za-z0-9._-]) or *",
                       r.principal);
  if (r.resource == acl_resource::cluster) {
    if (!r.name.empty() || r.pattern != acl_pattern::literal)
      return "a cluster rule has no name or pattern";
  } else if (r.name.empty()) {
    if (r.pattern == acl_pattern::literal)
      return fmt::format("a {} rule needs a name (literal \"*\" for every {}, or a prefix)",
                         to_string(r.resource), to_string(r.resource));
  } else if (r.name != "*" && !valid_subject_name(r.name)) {
    return fmt::format("name '{}' is not a valid {} name (1-249 of [A-Za-z0-9._-])", r.name,
                       to_string(r.resource));
  }
  if ((r.operations & kAllAclOps) == 0) return "no operations";
  if ((r.operations & ~kAllAclOps) != 0) return "unknown operation bits";
  if (const auto stray = static_cast<std::uint16_t>(r.operations & ~ops_of(r.resource)); stray != 0)
    return fmt::format("{} means nothing on a {} (a {} takes {})", ops_to_string(stray),
                       to_string(r.resource), to_string(r.resource),
                       ops_to_string(ops_of(r.resource)));
  return {};
}

std::string describe(const acl_rule& r) {
  std::string what = std::string(to_string(r.resource));
  if (r.resource != acl_resource::cluster)
    what += r.pattern == acl_pattern::prefix ? fmt::format(" prefix '{}'", r.name)
                                             : fmt::format(" '{}'", r.name);
  return fmt::format("{} {} {} on {}", r.deny ? "deny" : "allow", r.principal,
                     r.operations == 0 ? std::string("all") : ops_to_string(r.operations), what);
}

acl_rule from_wire(const wire::AclRule& r) {
  acl_rule out;
  out.principal = r.principal()->str();
  out.resource = static_cast<acl_resource>(r.resource());
  out.pattern = static_cast<acl_pattern>(r.pattern());
  if (r.name()) out.name = r.name()->str();
  out.operations = r.operations();
  out.deny = r.deny();
  return out;
}

flatbuffers::Offset<wire::AclRule> to_wire(flatbuffers::FlatBufferBuilder& fbb, const acl_rule& r) {
  auto principal = fbb.CreateString(r.principal);
  auto name =
      r.name.empty() ? flatbuffers::Offset<flatbuffers::String>() : fbb.CreateString(r.name);
  return wire::CreateAclRule(fbb, principal, static_cast<wire::AclResource>(r.resource),
                             static_cast<wire::AclPattern>(r.pattern), name, r.operations, r.deny);
}

static_assert(static_cast<int>(wire::AclResource::Cluster) ==
              static_cast<int>(acl_resource::cluster));
static_assert(static_cast<int>(wire::AclPattern::Prefix) == static_cast<int>(acl_pattern::prefix));

}  // namespace ferry::protocol
