// Consumer group coordination (private to the broker; runs on the disk
// thread, which owns it).
//
// States of a group:
//
//   Empty --join--> PreparingRebalance --all members rejoined, or the
//   rebalance deadline passed (stragglers removed)--> Stable
//   Stable --join of a new member, a leave, a session timeout, a change of
//   the subscribed topics or their partition counts--> PreparingRebalance
//   any --last member gone--> Empty
//
// When a rebalance completes the generation goes up by one and the broker
// assigns the partitions (assignor.h); every waiting JoinGroup is answered
// with the member's share. Until a member rejoins it keeps the partitions
// of its generation and may commit them, so it can finish what it has
// (the client does this in its revoke callback); a member of an older
// generation, or one the group no longer knows, is refused (fenced).
// Fetches that carry a member are refused while the group rebalances, so
// no two members of different generations read the same partition for
// long: the old owner learns of the rebalance at its next fetch or
// heartbeat, and the new owner only starts after it rejoined.
//
// Static membership (Kafka's group.instance.id, KIP-345): a member may
// carry an instance id that outlives its process. A new process joining
// with the id of a member still in the group (within that member's
// session timeout) takes its place under a new member id: the same
// assignment, the same generation, no rebalance when the group is stable
// and the subscription is the same. The replaced member id is fenced:
// any request that carries it with the instance id gets FencedInstanceId,
// so two live processes sharing an id cannot both own the partitions.
//
// Liveness: a member is alive while it heartbeats (HeartbeatRequest, or
// any fetch or commit it sends) within its session timeout; a member
// waiting in JoinGroup counts as alive.
//
// Kafka-protocol groups (groups_kafka.cc; the Kafka front-end's JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup) are the same state machine with
// client-side assignment, as Kafka's classic protocol: a completed
// rebalance picks the protocol every member supports (by the members'
// preferences) and a leader, answers the leader's JoinGroup with every
// member's metadata, and waits in CompletingRebalance for the leader's
// SyncGroup, whose assignments - opaque bytes to the broker - it relays
// to each member's SyncGroup. A group speaks one protocol while it has
// members: a member of the other kind is refused with
// InconsistentGroupProtocol. Offsets are one store for both kinds.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "assignor.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::broker {

using steady_tp = std::chrono::steady_clock::time_point;

struct join_params {
  std::string group;
  std::string member_id;  // empty: new member
  /// Static membership: a new member (empty member_id) with the id of a
  /// member already in the group takes that member's place - its
  /// assignment, and no rebalance when the group is stable and the topics
  /// are the same. The replaced member is fenced (FencedInstanceId).
  std::string instance_id;
  std::string client_id;
  std::string host;
  std::vector<std::string> topics;
  assign_strategy strategy = assign_strategy::sticky;
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds rebalance_timeout{30'000};
};

/// A Kafka member's protocol (JoinGroup): its name ("range",
/// "cooperative-sticky", ...) and metadata (the subscription).
struct kafka_protocol {
  std::string name;
  std::string metadata;
};

struct kafka_join_params {
  std::string group;
  std::string member_id;                   // empty: new member
  std::optional<std::string> instance_id;  // group.instance.id: static membership (KIP-345)
  std::string client_id;
  std::string host;
  std::string protocol_type;              // "consumer" for consumers
  std::vector<kafka_protocol> protocols;  // by the member's preference
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds rebalance_timeout{30'000};
  /// JoinGroup v4+ (KIP-394): a new member is first given its id and
  /// joins again with it.
  bool member_id_required = false;
};

struct kafka_sync_params {
  std::string group;
  std::string member_id;
  std::string instance_id;  // group.instance.id, empty: none
  std::int32_t generation = 0;
  std::vector<std::pair<std::string, std::string>> assignments;  // the leader's: member, bytes
};

struct kafka_member {
  std::string member_id;
  std::optional<std::string> instance_id;
  std::string metadata;  // of the chosen protocol
};

struct join_outcome {
  wire::ErrorCode error = wire::ErrorCode::None;
  std::string message;
  std::string member_id;
  std::int32_t generation = 0;
  assign_strategy strategy = assign_strategy::sticky;
  std::vector<tp_key> assignment;
  // Kafka-protocol groups only:
  bool member_id_required = false;    // answer MEMBER_ID_REQUIRED with member_id
  std::string protocol;               // JoinGroup: the chosen protocol
  std::string leader;                 // JoinGroup: the leader's member id
  std::vector<kafka_member> members;  // JoinGroup: to the leader only
  std::string assignment_bytes;       // SyncGroup: this member's assignment
};

/// A join (or sync) answer.
[[nodiscard]] inline join_outcome make_outcome(wire::ErrorCode error, std::string message,
                                               std::string member_id, std::int32_t generation,
                                               assign_strategy strategy,
                                               std::vector<tp_key> assignment) {
  join_outcome o;
  o.error = error;
  o.message = std::move(message);
  o.member_id = std::move(member_id);
  o.generation = generation;
  o.strategy = strategy;
  o.assignment = std::move(assignment);
  return o;
}

/// A wire error with its explanation; error None means success.
struct group_status {
  wire::ErrorCode error = wire::ErrorCode::None;
  std::string message;
  explicit operator bool() const noexcept { return error == wire::ErrorCode::None; }
};

/// CompletingRebalance: a Kafka-protocol group waiting for its leader's
/// assignment (SyncGroup).
enum class group_state { empty, preparing_rebalance, completing_rebalance, stable };
[[nodiscard]] const char* state_name(group_state s) noexcept;

/// Which protocol a group's members speak; set by its first member, kept
/// while it has members.
enum class group_protocol { ferry, kafka };

struct member_view {
  std::string member_id, client_id, host;
  std::vector<std::string> topics;
  std::vector<tp_key> assignment;
  std::chrono::milliseconds since_seen{0};
  // Kafka members: as sent, for DescribeGroups (topics and assignment
  // above are decoded from them for a "consumer" group).
  std::optional<std::string> instance_id;
  std::string metadata, assignment_bytes;
};

struct group_view {
  std::string name;
  group_state state = group_state::empty;
  std::int32_t generation = 0;
  assign_strategy strategy = assign_strategy::sticky;
  std::vector<member_view> members;
  std::map<tp_key, std::string> owners;  // current generation
  group_protocol kind = group_protocol::ferry;
  std::string protocol_type, protocol, leader;  // Kafka groups
};

class group_coordinator {
 public:
  struct options {
    std::chrono::milliseconds min_session_timeout{100};
    std::chrono::milliseconds max_session_timeout{300'000};
  };
  /// Partitions of a topic; 0 when it does not exist.
  using partition_lookup = std::function<std::int32_t(std::string_view topic)>;
  /// Answers the JoinGroup that join() was given `token` for.
  using join_done = std::function<void(std::uint64_t token, join_outcome)>;

  group_coordinator(options o, partition_lookup partitions, join_done done);

  /// Takes part in the group's (next) rebalance; `done` is called when it
  /// completes, possibly from inside this call, or with an error.
  void join(std::uint64_t token, join_params p, steady_tp now);
  /// A Kafka JoinGroup: `done` with the generation, protocol, leader (and
  /// for the leader the members) when the rebalance completes.
  void kafka_join(std::uint64_t token, kafka_join_params p, steady_tp now);
  /// A Kafka SyncGroup: `done` with the member's assignment once the
  /// leader sent the assignments (at once for the leader itself).
  void kafka_sync(std::uint64_t token, kafka_sync_params p, steady_tp now);
  [[nodiscard]] const options& limits() const noexcept { return opts_; }
  /// The protocol of a group with members; nothing for an empty or unknown one.
  [[nodiscard]] std::optional<group_protocol> protocol_of(std::string_view group) const;
  // `instance` (empty: none) is the member's group_instance_id: a request
  // whose instance id another member now holds is FencedInstanceId.
  [[nodiscard]] group_status heartbeat(std::string_view group, std::string_view member,
                                       std::int32_t generation, steady_tp now,
                                       std::string_view instance = {});
  [[nodiscard]] group_status leave(std::string_view group, std::string_view member, steady_tp now,
                                   std::string_view instance = {});
  /// LeaveGroup by a static member's instance id alone (Kafka's
  /// --remove-members); UnknownMember when no member holds it.
  [[nodiscard]] group_status leave_instance(std::string_view group, std::string_view instance,
                                            steady_tp now);
  /// May this member fetch now? Counts as a heartbeat. RebalanceInProgress
  /// while the group rebalances.
  [[nodiscard]] group_status check_fetch(std::string_view group, std::string_view member,
                                         std::int32_t generation, steady_tp now,
                                         std::string_view instance = {});
  /// May this member commit? (Allowed while the group prepares a rebalance:
  /// the member still owns its partitions until it rejoins.) Counts as a
  /// heartbeat.
  [[nodiscard]] group_status check_commit(std::string_view group, std::string_view member,
                                          std::int32_t generation, steady_tp now,
                                          std::string_view instance = {});
  /// Does `member` own `tp` in the group's current generation?
  [[nodiscard]] bool owns(std::string_view group, std::string_view member, const tp_key& tp) const;
  [[nodiscard]] bool has_members(std::string_view group) const;

  /// Session timeouts, rebalance deadlines, subscribed topics whose
  /// partition count changed. Cheap to call often.
  void tick(steady_tp now);
  /// When tick() next has something to do.
  [[nodiscard]] steady_tp next_deadline() const;
  /// True once after any group started rebalancing or lost a member since
  /// the last call: parked fetches of members should be answered.
  [[nodiscard]] bool take_wakeup() noexcept { return std::exchange(wakeup_, false); }
  /// Answers every waiting join with `error` (broker shutdown).
  void abort_all(wire::ErrorCode error, const std::string& message);

  [[nodiscard]] std::vector<group_view> list(steady_tp now) const;
  [[nodiscard]] std::optional<group_view> describe(std::string_view group, steady_tp now) const;
  /// When the group last became empty (for offsets retention); nothing for
  /// groups with members or never seen since the broker started.
  [[nodiscard]] std::optional<steady_tp> emptied_at(std::string_view group) const;
  /// Forgets an empty group (DeleteGroup); false if it has members.
  bool erase(std::string_view group);

  // Persisted membership (groups_state.cc), as Kafka keeps group metadata:
  // a broker restart does not send every member back through a join.
  /// True once after the membership, a generation or an assignment of any
  /// group changed since the last call: snapshot() should be written.
  [[nodiscard]] bool take_dirty() noexcept { return std::exchange(dirty_, false); }
  /// The last snapshot did not reach the disk: write it again.
  void mark_dirty() noexcept { dirty_ = true; }
  /// The Stable groups with members (JSON): generation, strategy or Kafka
  /// protocol, and each member's id, instance id, subscription, timeouts
  /// and assignment. Groups in the middle of a rebalance are left out:
  /// their members rejoin after a restart, as before.
  [[nodiscard]] std::string snapshot() const;
  /// Takes a snapshot back at start, each group Stable with its members'
  /// sessions starting `now`. Returns the groups restored; a snapshot that
  /// does not parse restores nothing and says why.
  std::size_t restore(std::string_view json, steady_tp now, std::string* why);

 private:
  struct member_rec {
    std::string id, client_id, host;
    std::vector<std::string> topics;
    std::chrono::milliseconds session_timeout{10'000};
    std::chrono::milliseconds rebalance_timeout{30'000};
    steady_tp last_seen{};
    std::optional<std::uint64_t> join_token;  // waiting in JoinGroup
    std::vector<tp_key> assignment;
    // Restored from the snapshot and not heard from since: the snapshot may
    // predate a static takeover, so its instance id does not fence yet.
    bool restored_unseen = false;
    // Kafka members:
    std::optional<std::string> instance_id;
    std::vector<kafka_protocol> protocols;
    std::optional<std::uint64_t> sync_token;  // waiting in SyncGroup
    std::string assignment_bytes;
  };
  struct group_rec {
    std::string name;
    group_state state = group_state::empty;
    std::int32_t generation = 0;
    assign_strategy strategy = assign_strategy::sticky;
    std::map<std::string, member_rec, std::less<>> members;
    std::map<tp_key, std::string> owners;
    std::map<std::string, std::int32_t, std::less<>> counts_used;  // at the last assignment
    steady_tp rebalance_deadline{};  // also: the leader's SyncGroup, in CompletingRebalance
    steady_tp emptied_at{};
    group_protocol kind = group_protocol::ferry;
    std::string protocol_type, protocol, leader;            // Kafka groups
    std::map<std::string, steady_tp, std::less<>> pending;  // KIP-394 ids given out, until
  };

  group_rec* find(std::string_view name);
  const group_rec* find(std::string_view name) const;
  group_status check_member(group_rec* g, std::string_view member, std::int32_t generation,
                            steady_tp now, const char* what, std::string_view instance = {});
  /// The member holding a group_instance_id; end() if none.
  static std::map<std::string, member_rec, std::less<>>::iterator holder(group_rec& g,
                                                                         std::string_view instance);
  /// A join's claim on a group_instance_id, for both protocols: `taken` is
  /// the member the join now is when it took another's place (a new
  /// process, or one a restored snapshot does not know yet), end() when it
  /// took none; `fenced` when another member holds the id.
  struct instance_claim {
    std::map<std::string, member_rec, std::less<>>::iterator taken;
    std::optional<group_status> fenced;
  };
  instance_claim claim_instance(group_rec& g, std::string_view instance, std::string_view member_id,
                                std::string_view client_id);
  /// A holder restored from the snapshot and not heard from since, and a
  /// request from a member id the group does not know: the snapshot may
  /// predate that member's takeover, so the instance id does not fence.
  static bool unconfirmed(const group_rec& g, const member_rec& holder, std::string_view member) {
    return holder.restored_unseen && !g.members.count(member);
  }
  /// Moves the static member `from` to a new member id (its process
  /// restarted); `from`'s waiting requests are answered FencedInstanceId.
  std::map<std::string, member_rec, std::less<>>::iterator replace_static(
      group_rec& g, std::map<std::string, member_rec, std::less<>>::iterator from,
      std::string_view client_id);
  void prepare(group_rec& g, steady_tp now, const std::string& why);
  void maybe_complete(group_rec& g, steady_tp now);
  void complete(group_rec& g, steady_tp now);
  void complete_kafka(group_rec& g);
  [[nodiscard]] join_outcome kafka_answer(const group_rec& g, const member_rec& m) const;
  void answer_syncs(group_rec& g, wire::ErrorCode error, const std::string& message);
  void remove_member(group_rec& g, std::string_view id, steady_tp now, const std::string& why);
  std::string new_member_id(std::string_view client_id);
  group_view view(const group_rec& g, steady_tp now) const;

  options opts_;
  partition_lookup partitions_;
  join_done done_;
  std::map<std::string, group_rec, std::less<>> groups_;
  std::uint64_t next_member_ = 0;
  std::uint64_t seed_;
  bool wakeup_ = false;
  bool dirty_ = false;
  steady_tp next_scan_{};
};

}  // namespace ferry::broker
