// broker_core: the state every front-end's handlers work on - one topic
// table, one producer registry, one group coordinator, one offset store,
// one schema registry, one board of parked fetches (DESIGN.md decision 11:
// front-ends are adapters and own no state of their own).
//
// Thread ownership, checked by clang's -Wthread-safety
// (core/thread_annotations.h): the broker's core thread alone touches this
// state; its fields are guarded by the core_thread role, and only the
// pipeline's loop (pipeline.cc) and broker::open() (before that thread
// exists) take the role. Front-ends run on their own threads and reach the
// state only through the pipeline's queue.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "acl.h"
#include "audit.h"
#include "broker_metrics.h"
#include "ferry/broker/config.h"
#include "ferry/core/thread_annotations.h"
#include "fetch_waiters.h"
#include "groups.h"
#include "offset_store.h"
#include "producer_state.h"
#include "quotas.h"
#include "schema_registry.h"
#include "security.h"
#include "topic_table.h"

namespace ferry::broker {

/// Where the groups' membership is kept between runs (groups_state.cc).
[[nodiscard]] inline std::filesystem::path group_members_file(const broker_config& c) {
  return c.data_dir / "groups" / "members.json";
}

class janitor;

/// The broker's core thread: the pipeline's rounds (pipeline.h).
extern const thread_role core_thread;
/// A front-end's network thread (the ZeroMQ ROUTER's).
extern const thread_role network_thread;

struct broker_core {
  broker_core(const broker_config& c, broker_metrics& m, janitor& j)
      : cfg(c), stats(m), janitor_(j), topics(c, m, j) {}

  const broker_config& cfg;
  broker_metrics& stats;
  janitor& janitor_;
  topic_table topics FERRY_GUARDED_BY(core_thread);
  std::unique_ptr<producer_registry> producer_ids FERRY_GUARDED_BY(core_thread);
  std::unique_ptr<offset_store> offsets FERRY_GUARDED_BY(core_thread);
  std::unique_ptr<schema_registry> registry FERRY_GUARDED_BY(core_thread);
  std::unique_ptr<group_coordinator> groups FERRY_GUARDED_BY(core_thread);
  waiter_board fetches FERRY_GUARDED_BY(core_thread);
  /// security.audit_file; null when not configured (audit.h).
  std::unique_ptr<audit_log> audit;
  /// With security on: the users file (thread-safe; the ZeroMQ front-end's
  /// handshakes read it too), the ACLs and the authorizer over both. Null
  /// with security off: nothing is checked.
  std::unique_ptr<user_directory> users;
  std::unique_ptr<acl_store> acls FERRY_GUARDED_BY(core_thread);
  std::unique_ptr<authorizer> access FERRY_GUARDED_BY(core_thread);
  /// Quotas per principal (thread-safe; the front-ends charge it too).
  /// Null with security off and no [quotas]: nothing is limited.
  std::unique_ptr<quota_book> quotas;
  steady::time_point started_at = steady::now();
  /// Topics deleted since open (a cache keyed by topic name is stale when
  /// this moved: a topic of the same name may follow, with other records).
  std::uint64_t topic_deletions FERRY_GUARDED_BY(core_thread) = 0;
};

/// Why a topic's schema rule cannot be turned on: validation needs a
/// subject with at least one version (a subject with only a mode has no id
/// to accept). An empty outcome when it can, or is off.
[[nodiscard]] outcome schema_rule_problem(broker_core& c, const std::string& topic,
                                          const topic_settings& s) FERRY_REQUIRES(core_thread);

/// Deletes a topic: durably renamed away, its parked fetches answered, its
/// committed offsets dropped (with the round's offsets sync), its files
/// removed by the janitor.
[[nodiscard]] outcome delete_topic(broker_core& c, std::string_view name)
    FERRY_REQUIRES(core_thread);

/// Changes a topic's settings (`ferry topics alter`, Kafka's AlterConfigs
/// and CreatePartitions): `change` edits a copy of the current settings;
/// fewer partitions or values out of range are refused (InvalidConfig),
/// nothing is changed when `validate_only`. `*after` gets the settings as
/// they are (or would be) afterwards.
[[nodiscard]] outcome alter_topic(broker_core& c, std::string_view name,
                                  const std::function<void(topic_settings&)>& change,
                                  bool validate_only, topic_settings* after)
    FERRY_REQUIRES(core_thread);

class pipeline;

/// Loads the state from cfg.data_dir: every topic (log recovery, producer
/// state), the producer registry, the group offsets and ledger, the schema
/// registry; makes the group coordinator, which answers joins through
/// `line`.
[[nodiscard]] result<void> open_core(broker_core& c, pipeline& line) FERRY_REQUIRES(core_thread);

/// The timestamp of the record at `at` (the oldest one a group has not
/// consumed), or -1.
[[nodiscard]] std::int64_t timestamp_at(storage::partition_log& log, std::int64_t at);

}  // namespace ferry::broker
