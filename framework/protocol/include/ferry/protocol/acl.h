// The ACL model shared by the broker, the client and the CLI
// (docs/security.md#authorization): a rule is (principal, resource type,
// pattern, name, operations, allow or deny). The broker's store and
// authorizer are in framework/broker/acl.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ferry/schemas/protocol_generated.h"

namespace ferry::protocol {

enum class acl_resource : std::uint8_t { topic, group, dlq, schema, cluster };
enum class acl_pattern : std::uint8_t { literal, prefix };

/// Operations as bits of acl_rule::operations (the wire's AclRule too).
enum class acl_op : std::uint16_t {
  read = 1,
  write = 2,
  create = 4,
  remove = 8,  ///< "delete"
  describe = 16,
  alter = 32,
  redrive = 64,
  purge = 128,
};
inline constexpr std::uint16_t kAllAclOps = 255;

[[nodiscard]] std::string_view to_string(acl_resource r) noexcept;
[[nodiscard]] std::string_view to_string(acl_pattern p) noexcept;
[[nodiscard]] std::string_view to_string(acl_op o) noexcept;
[[nodiscard]] std::optional<acl_resource> parse_acl_resource(std::string_view s) noexcept;
[[nodiscard]] std::optional<acl_pattern> parse_acl_pattern(std::string_view s) noexcept;
/// One operation's name ("delete" for remove); nullopt for anything else.
[[nodiscard]] std::optional<acl_op> parse_acl_op(std::string_view s) noexcept;
/// "read,write" for a bit set (in the order of acl_op).
[[nodiscard]] std::string ops_to_string(std::uint16_t ops);
/// "read,write" or "all" as a bit set; nullopt with `why` for an unknown name.
[[nodiscard]] std::optional<std::uint16_t> parse_ops(std::string_view list, std::string& why);
/// The operations that mean something on `r` (redrive and purge only on a
/// dlq; the cluster: describe, alter, create, write).
[[nodiscard]] std::uint16_t ops_of(acl_resource r) noexcept;

struct acl_rule {
  std::string principal;  ///< a user name, or "*"
  acl_resource resource = acl_resource::topic;
  acl_pattern pattern = acl_pattern::literal;
  std::string name;  ///< empty for cluster
  std::uint16_t operations = 0;
  bool deny = false;

  /// The rule's identity: everything but the operations.
  [[nodiscard]] bool same_binding(const acl_rule& o) const noexcept {
    return principal == o.principal && resource == o.resource && pattern == o.pattern &&
           name == o.name && deny == o.deny;
  }
  [[nodiscard]] bool operator==(const acl_rule&) const = default;
};

/// What is wrong with a rule, or empty: a bad principal or name, no
/// operations, an operation that means nothing on its resource.
[[nodiscard]] std::string acl_rule_problem(const acl_rule& r);

/// "allow billing read,write on topic prefix orders" for messages and logs.
[[nodiscard]] std::string describe(const acl_rule& r);

[[nodiscard]] acl_rule from_wire(const wire::AclRule& r);
[[nodiscard]] flatbuffers::Offset<wire::AclRule> to_wire(flatbuffers::FlatBufferBuilder& fbb,
                                                         const acl_rule& r);

}  // namespace ferry::protocol
