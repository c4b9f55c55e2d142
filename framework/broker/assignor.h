// Partition assignment for consumer groups (private to the broker).
//
// The broker assigns partitions itself when a rebalance completes. Every
// strategy returns a function from partition to member: a partition is
// never given to two members, and every partition of a subscribed topic
// goes to exactly one member subscribed to that topic.
//
//   sticky       balanced (member counts differ by at most one when all
//                members subscribe to the same topics) while keeping as many
//                partitions as possible with their previous owner. Default.
//   range        per topic, contiguous ranges of partitions over the members
//                subscribed to it, in member id order (Kafka's RangeAssignor).
//   round_robin  all partitions in (topic, partition) order dealt to the
//                members in id order, skipping members not subscribed.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ferry::broker {

enum class assign_strategy : std::uint8_t { sticky = 0, range = 1, round_robin = 2 };

using tp_key = std::pair<std::string, std::int32_t>;  // (topic, partition)

struct member_subscription {
  std::string member_id;
  std::set<std::string> topics;
};

/// member id -> its partitions, sorted; every member appears (possibly with
/// none). `partition_counts` gives the partitions of each existing topic;
/// subscribed topics missing from it are skipped. `previous` (partition ->
/// owner) is used by the sticky strategy only.
[[nodiscard]] std::map<std::string, std::vector<tp_key>> assign_partitions(
    assign_strategy strategy, const std::vector<member_subscription>& members,
    const std::map<std::string, std::int32_t, std::less<>>& partition_counts,
    const std::map<tp_key, std::string>& previous);

[[nodiscard]] const char* strategy_name(assign_strategy s) noexcept;

}  // namespace ferry::broker
