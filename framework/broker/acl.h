// Authorization (docs/security.md#authorization): rules of the form
// (principal, resource type, pattern, operations, allow or deny), kept in
// the ACL file and changed online with `ferry acls`.
//
// With security on, a request is served only when a rule allows its
// operation on its resource and no rule denies it; super users (the users
// file's super_user = true) pass every check. Nothing allowed is refused:
// there is no rule-less access ("fail closed"). With security off there is
// no authorizer and nothing is checked.
//
// Matching:
//  - principal: the user's name, or "*" for every authenticated user;
//  - resource: topic, group, dlq (a dead-letter topic: redrive and purge
//    markers), schema (a subject), cluster (the broker itself: ACLs,
//    idempotent producer ids);
//  - pattern: literal (the whole name, "*" for every name) or prefix;
//  - an allow of read, write, delete, alter (redrive, purge on a dlq) also
//    allows describe, as in Kafka; on the cluster only alter does. A deny
//    covers exactly its own operations.
//  - a deny wins over any allow.
//
// The ACL file (TOML), written by ferryd on each change (atomically, synced)
// and re-read when someone else changed it:
//
//   [[acl]]
//   principal = "billing"
//   resource = "topic"          # topic, group, dlq, schema, cluster
//   pattern = "prefix"          # literal (default) or prefix
//   name = "orders"
//   operations = ["read", "describe"]
//   permission = "allow"        # or "deny"
//
// Thread safety: acl_store and authorizer are used on the broker's core
// thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/result.h"
#include "ferry/protocol/acl.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::storage {
class env;
}

namespace ferry::broker {

class user_directory;

using protocol::acl_op;
using protocol::acl_pattern;
using protocol::acl_resource;
using protocol::acl_rule;

/// The ACL file's text as rules; nullopt with `why` naming the file and the
/// entry.
[[nodiscard]] std::optional<std::vector<acl_rule>> parse_acls(const std::string& text,
                                                              const std::string& file,
                                                              std::string& why);
/// The rules as the ACL file's text (one [[acl]] table each, in order).
[[nodiscard]] std::string format_acls(const std::vector<acl_rule>& rules);

/// The rules, persisted in one file. Changes are merged per binding: adding
/// operations to a rule that exists extends it, removing takes them out and
/// drops a rule left with none.
class acl_store {
 public:
  acl_store(storage::env& env, std::filesystem::path file);
  /// The first read: a missing file is no rules; one that does not parse
  /// stops the start.
  [[nodiscard]] result<void> load(std::string& why);
  /// Re-reads the file when it may have been edited by hand (at most once a
  /// second); a file that no longer parses keeps the rules in force and is
  /// logged once per problem.
  void refresh(std::chrono::steady_clock::time_point now);
  [[nodiscard]] const std::vector<acl_rule>& rules() const noexcept { return rules_; }
  /// Adds the rules (each checked first; nothing changes when one is bad or
  /// the file cannot be written). `changed` counts rules created or extended.
  [[nodiscard]] result<void> add(const std::vector<acl_rule>& rules, int& changed,
                                 std::string& why);
  /// Takes out each rule's operations from the rule of the same binding
  /// (all of them when `operations` is 0). `changed` counts rules touched.
  [[nodiscard]] result<void> remove(const std::vector<acl_rule>& rules, int& changed,
                                    std::string& why);
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

 private:
  /// Takes the file as it is now (a change starts from it); an error when
  /// it does not parse.
  [[nodiscard]] result<void> current(std::string& why);
  [[nodiscard]] result<void> persist(const std::vector<acl_rule>& next, std::string& why);

  storage::env& env_;
  std::filesystem::path file_;
  std::vector<acl_rule> rules_;
  std::string text_;  // the file as last read or written
  std::string last_problem_;
  std::chrono::steady_clock::time_point next_check_{};
};

/// An authorization decision.
struct access_decision {
  bool allowed = false;
  /// Why not: "no rule allows it", or the deny rule that matched.
  std::string why;
};

/// Checks principals against the users (super users) and the rules.
class authorizer {
 public:
  authorizer(const user_directory& users, acl_store& store) : users_(users), store_(store) {}

  [[nodiscard]] access_decision check(std::string_view principal, acl_resource resource,
                                      std::string_view name, acl_op op) const;
  /// check() for a principal known not to be a super user.
  [[nodiscard]] access_decision by_rules(std::string_view principal, acl_resource resource,
                                         std::string_view name, acl_op op) const;
  /// True when any rule could allow `op` on some resource of `resource`'s
  /// type (InitProducer: a producer id is for a principal that may write
  /// somewhere).
  [[nodiscard]] bool allowed_somewhere(std::string_view principal, acl_resource resource,
                                       acl_op op) const;
  [[nodiscard]] bool is_super(std::string_view principal) const;
  [[nodiscard]] acl_store& store() noexcept { return store_; }

 private:
  const user_directory& users_;
  acl_store& store_;
};

/// "not authorized to write on topic orders" and a hint on what to do.
[[nodiscard]] std::string refusal_message(std::string_view principal, acl_resource resource,
                                          std::string_view name, acl_op op,
                                          const access_decision& d);

}  // namespace ferry::broker
