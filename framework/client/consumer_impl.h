// consumer::impl, shared by the files that implement it (private). Each
// file is one unit, with its state machine at its top:
//   consumer.cc         positions per partition, poll(), seek, pause, close
//   consumer_fetch.cc   the fetcher: ListOffsets and Fetch, records decoded and checked
//   consumer_group.cc   group membership: join, heartbeats, assignment, committed offsets
//   consumer_commit.cc  the commit queue: sync and async commits, their callbacks
#pragma once

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "ferry/client/connection.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "rpc.h"
#include "transport.h"

namespace ferry::client {
namespace detail {

using std::chrono::milliseconds;
using sclock = std::chrono::steady_clock;

using std::chrono::milliseconds;
using sclock = std::chrono::steady_clock;

// `committed`: look up the group's committed offset first (FetchOffsets),
// then fall back to auto_offset_reset.
enum class reset_kind { none, earliest, latest, timestamp, committed };

struct partition_state {
  std::optional<offset> position;  // empty while a reset is pending
  reset_kind pending = reset_kind::earliest;
  timestamp_ms reset_timestamp = timestamp_ms::none();
  std::uint64_t epoch = 0;
};

struct async_commit {
  std::vector<offset_commit> offsets;
  consumer::commit_callback done;
};

using commit_entries =
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::CommitEntry>>>;

// The CommitEntry vector for `offsets` (a commit or a fetch's commits).
inline commit_entries build_commit_entries(flatbuffers::FlatBufferBuilder& fbb,
                                           const std::vector<const offset_commit*>& offsets) {
  std::vector<flatbuffers::Offset<wire::CommitEntry>> ce;
  ce.reserve(offsets.size());
  for (const auto* oc : offsets) {
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> keys;
    if (!oc->ledger_keys.empty()) keys = fbb.CreateVectorOfStrings(oc->ledger_keys);
    ce.push_back(wire::CreateCommitEntry(fbb, fbb.CreateString(oc->tp.topic),
                                         oc->tp.partition.value(), oc->next.value(),
                                         fbb.CreateString(oc->metadata), keys));
  }
  return fbb.CreateVector(ce);
}

inline std::vector<const offset_commit*> all_offsets(const std::vector<async_commit>& items) {
  std::vector<const offset_commit*> out;
  for (const auto& c : items)
    for (const auto& oc : c.offsets) out.push_back(&oc);
  return out;
}

// CommitResult tables (CommitOffsetsResponse.results, FetchResponse.commit_results).
inline std::vector<commit_result> parse_commit_results(
    const flatbuffers::Vector<flatbuffers::Offset<wire::CommitResult>>* v) {
  std::vector<commit_result> out;
  if (v == nullptr) return out;
  for (const auto* x : *v)
    out.push_back({{x->topic() ? x->topic()->str() : std::string(), partition_id(x->partition())},
                   from_wire(x->error()),
                   x->message() ? x->message()->str() : std::string()});
  return out;
}

struct request_in_flight {
  std::uint64_t id = 0;
  sclock::time_point sent;
  sclock::time_point expires;
  std::map<topic_partition, std::uint64_t> epochs;  // partitions asked about
  std::vector<detail::offset_query> queries;        // ListOffsets only
  std::int32_t generation = -1;                     // group requests: the member's generation
  std::vector<async_commit> commits;                // commits riding on this request
};

// Heartbeats from a thread of its own (with its own connection), so a
// member stays alive while the application processes between polls. It
// only raises flags; the polling thread acts on them in poll(). An
// eventfd wakes a poll() that is waiting.
class heartbeater {
 public:
  // `wake_fd` (owned by the consumer) is written to raise a flag.
  heartbeater(const consumer_options& o, int wake_fd) : o_(o), fd_(wake_fd) {
    last_poll_ = sclock::now();
    thread_ = std::thread([this] { run(); });
  }
  ~heartbeater() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  heartbeater(const heartbeater&) = delete;
  heartbeater& operator=(const heartbeater&) = delete;

  void set(std::string member, std::int32_t generation) {
    std::lock_guard lock(mu_);
    member_ = std::move(member);
    generation_ = generation;
    active_ = true;
  }
  void clear() {
    std::lock_guard lock(mu_);
    active_ = false;
  }
  void polled() {
    std::lock_guard lock(mu_);
    last_poll_ = sclock::now();
  }
  /// What the thread saw since the last call (for the current generation).
  struct flags {
    bool rebalance = false;
    bool lost = false;
    bool fenced = false;  // lost for good: another process holds our group_instance_id
    std::string why;
  };
  flags take() {
    std::lock_guard lock(mu_);
    return std::exchange(flags_, {});
  }

 private:
  void raise(bool lost, std::string why) {
    if (lost)
      flags_.lost = true;
    else
      flags_.rebalance = true;
    flags_.why = std::move(why);
    std::uint64_t one = 1;
    if (fd_ >= 0) (void)!::write(fd_, &one, sizeof one);
  }

  void run() {
    connection conn(o_);
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, o_.heartbeat_interval, [&] { return stop_; });
      if (stop_ || !active_) continue;
      const std::string member = member_;
      const std::int32_t generation = generation_;
      const bool poll_overdue = sclock::now() - last_poll_ > o_.max_poll_interval;
      lock.unlock();
      flatbuffers::FlatBufferBuilder fbb;
      std::error_code ec;
      std::string message;
      if (poll_overdue) {
        log::get("client")->warn(
            "consumer {}: no poll() for {} ms (max_poll_interval): leaving group {} so others can "
            "take over; the next poll() rejoins",
            member, o_.max_poll_interval.count(), o_.group_id);
        auto body = wire::CreateLeaveGroupRequestDirect(fbb, o_.group_id.c_str(), member.c_str());
        if (auto id = conn.send(fbb, wire::Body::LeaveGroupRequest, body.Union()))
          (void)conn.wait_for(id.value(), sclock::now() + o_.request_timeout);
        lock.lock();
        if (active_ && member_ == member && generation_ == generation) {
          active_ = false;
          raise(true, "left the group after max_poll_interval without a poll()");
        }
        continue;
      }
      auto m = wire::CreateGroupMemberDirect(
          fbb, o_.group_id.c_str(), member.c_str(), generation,
          o_.group_instance_id.empty() ? nullptr : o_.group_instance_id.c_str());
      auto body = wire::CreateHeartbeatRequest(fbb, m);
      if (auto id = conn.send(fbb, wire::Body::HeartbeatRequest, body.Union())) {
        auto wait = std::min(o_.request_timeout, o_.session_timeout);
        if (auto r = conn.wait_for(id.value(), sclock::now() + wait)) {
          if (auto ok = detail::expect_body(r.value(), wire::Body::HeartbeatResponse, &message);
              !ok) {
            ec = ok.error();
          } else {
            const auto* hb = r.value().envelope().body_as_HeartbeatResponse();
            ec = from_wire(hb->error());
            if (hb->message()) message = hb->message()->str();
          }
        }
      }
      lock.lock();
      if (!ec || !active_ || member_ != member || generation_ != generation) continue;
      if (ec == errc::rebalance_in_progress) {
        raise(false, message);
      } else if (ec == errc::unknown_member || ec == errc::stale_generation ||
                 ec == errc::fenced_instance_id) {
        active_ = false;
        raise(true, message.empty() ? ec.message() : message);
        if (ec == errc::fenced_instance_id) flags_.fenced = true;
      }
    }
  }

  const consumer_options o_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool active_ = false;
  std::string member_;
  std::int32_t generation_ = -1;
  sclock::time_point last_poll_;
  flags flags_;
  std::thread thread_;
};

inline std::string tp_name(const topic_partition& tp) {
  return fmt::format("{}-{}", tp.topic, tp.partition.value());
}

inline std::optional<std::string> str_of(std::optional<std::span<const std::byte>> b) {
  if (!b) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(b->data()), b->size());
}

inline sclock::time_point saturating_add(sclock::time_point t, milliseconds d) {
  if (d >= std::chrono::duration_cast<milliseconds>(sclock::time_point::max() - t))
    return sclock::time_point::max();
  return t + d;
}

}  // namespace detail

using detail::async_commit;
using detail::heartbeater;
using detail::partition_state;
using detail::request_in_flight;
using detail::reset_kind;
using detail::sclock;
using std::chrono::milliseconds;

class consumer::impl final : public consumer::backend {
 public:
  impl(consumer& self, consumer_options o)
      : self_(&self), o_(std::move(o)), conn_(std::make_unique<connection>(o_)) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    api_timeout_ = o_.api_timeout;
  }
  ~impl() override {
    leave_quietly(leave_on_close());
    hb_.reset();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  // Thread-safe: makes a waiting poll() return.
  void wakeup() noexcept override {
    wakeup_requested_.store(true, std::memory_order_release);
    std::uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
  }
  void drain_wake() noexcept {
    std::uint64_t v;
    if (wake_fd_ >= 0) (void)!::read(wake_fd_, &v, sizeof v);
  }

  result<void> assign(std::vector<topic_partition> partitions) override;
  std::vector<topic_partition> assignment() const override;
  result<void> seek(const topic_partition& tp, offset position) override;
  result<void> seek_to_beginning(std::span<const topic_partition> partitions) override {
    return seek_lazy(partitions, reset_kind::earliest, timestamp_ms::none());
  }
  result<void> seek_to_end(std::span<const topic_partition> partitions) override {
    return seek_lazy(partitions, reset_kind::latest, timestamp_ms::none());
  }
  result<void> seek_to_timestamp(std::span<const topic_partition> partitions,
                                 timestamp_ms timestamp) override {
    return seek_lazy(partitions, reset_kind::timestamp, timestamp);
  }
  result<void> seek_lazy(std::span<const topic_partition> partitions, reset_kind kind,
                         timestamp_ms ts);
  result<offset> position(const topic_partition& tp) override;
  result<std::vector<consumer_record>> poll(milliseconds timeout) override;

  // groups
  result<void> subscribe(std::vector<std::string> topics, rebalance_listener* listener) override;
  result<void> unsubscribe() override;
  std::vector<std::string> subscription() const override {
    return subscribed_ ? topics_ : std::vector<std::string>{};
  }
  result<void> commit(const std::vector<offset_commit>& offsets,
                      std::chrono::milliseconds timeout) override;
  result<void> commit_positions() override;
  void commit_async(std::vector<offset_commit> offsets, commit_callback done) override;
  result<std::vector<committed_position>> committed(std::vector<topic_partition> partitions,
                                                    std::chrono::milliseconds timeout) override;
  result<std::vector<std::optional<timestamp_ms>>> ledger_lookup(
      const std::vector<std::string>& keys, milliseconds window) override;
  result<void> pause(const std::vector<topic_partition>& partitions, bool on) override;
  std::vector<topic_partition> paused() const override { return {paused_.begin(), paused_.end()}; }
  result<void> close() override;
  void rebind(consumer& self) noexcept override { self_ = &self; }

 private:
  result<void> send_list_offsets(sclock::time_point now);
  result<void> send_fetch(sclock::time_point now, sclock::time_point deadline);
  result<void> handle_list_offsets(const reply& r, const request_in_flight& req);
  result<void> handle_fetch(const reply& r, const request_in_flight& req,
                            std::vector<consumer_record>& out);
  std::error_code decode_partition(const topic_partition& tp, std::span<const std::byte> data,
                                   offset position, std::vector<consumer_record>& out,
                                   std::string& why) const;
  result<void> expire(sclock::time_point now);
  // groups
  result<void> group_step(sclock::time_point now);
  result<void> send_join(sclock::time_point now);
  result<void> handle_join(const reply& r);
  result<void> send_fetch_offsets(sclock::time_point now);
  result<void> handle_fetch_offsets(const reply& r, const request_in_flight& req);
  // `alone`: send now even if a fetch could carry them (close()).
  void send_async_commits(sclock::time_point now, bool alone = false);
  // The reply to a standalone async commit in commits_ (ignored otherwise).
  void handle_commit_reply(const reply& r);
  void finish_commits(std::vector<async_commit>& items, const std::vector<commit_result>& results,
                      std::error_code all);
  void run_callbacks();
  void set_assignment(const std::vector<topic_partition>& parts);
  void drop_assignment();
  bool member() const noexcept { return subscribed_ && joined_; }
  // Leaves the group (LeaveGroup when `leave`; a static member's close()
  // does not, so its restart gets its partitions back) without callbacks.
  void leave_quietly(bool leave);
  [[nodiscard]] bool leave_on_close() const noexcept { return o_.group_instance_id.empty(); }
  flatbuffers::Offset<wire::GroupMember> member_table(flatbuffers::FlatBufferBuilder& fbb) const {
    return wire::CreateGroupMemberDirect(
        fbb, o_.group_id.c_str(), member_id_.c_str(), generation_,
        o_.group_instance_id.empty() ? nullptr : o_.group_instance_id.c_str());
  }
  // A refusal that ends this membership: lost (rejoin at the next poll) or,
  // for errc::fenced_instance_id, fenced for good.
  void note_lost(std::error_code ec, const std::string& why) {
    lost_ = true;
    if (ec == errc::fenced_instance_id && !fenced_) {
      fenced_ = true;
      fenced_why_ = why.empty() ? ec.message() : why;
    }
  }
  partition_state* find(const topic_partition& tp) {
    auto it = partitions_.find(tp);
    return it == partitions_.end() ? nullptr : &it->second;
  }

  consumer* self_;
  const consumer_options o_;
  std::unique_ptr<connection> conn_;
  // groups
  bool subscribed_ = false;
  bool joined_ = false;       // holds the assignment of generation_
  bool need_rejoin_ = false;  // the group is rebalancing
  bool lost_ = false;         // fenced or forgotten by the broker
  bool fenced_ = false;       // another process took our group_instance_id: for good
  std::string fenced_why_;
  bool closed_ = false;
  std::vector<std::string> topics_;
  rebalance_listener* listener_ = nullptr;
  std::unique_ptr<heartbeater> hb_;
  int wake_fd_ = -1;  // eventfd: wakeup() and the heartbeater make poll() look up
  std::atomic<bool> wakeup_requested_{false};
  std::optional<request_in_flight> join_;
  std::optional<request_in_flight> fetch_offsets_;
  std::vector<request_in_flight> commits_;  // standalone async commits in flight
  std::vector<async_commit> queued_;        // async commits not sent yet
  std::vector<std::pair<commit_callback, std::vector<commit_result>>> completed_;
  sclock::time_point join_retry_at_{};
  sclock::time_point fetch_offsets_retry_at_{};
  std::set<topic_partition> paused_;
  std::map<topic_partition, partition_state> partitions_;
  std::optional<request_in_flight> fetch_;
  std::optional<request_in_flight> list_offsets_;
  sclock::time_point fetch_retry_at_{};
  sclock::time_point list_offsets_retry_at_{};
  std::error_code deferred_error_;  // reported by the next poll()
  std::string deferred_message_;
  // When the oldest request still unanswered was sent, while requests keep
  // getting lost; reset by every reply.
  std::optional<sclock::time_point> failing_since_;
};

}  // namespace ferry::client
