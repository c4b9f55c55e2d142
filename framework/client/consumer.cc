// Consumer state per assigned partition:
//
//   pending reset (no position) --ListOffsets answer--> positioned
//   positioned --fetch answer with records--> positioned (moved forward)
//   positioned --OffsetOutOfRange--> pending reset (auto_offset_reset)
//   any --seek*/assign--> positioned or pending reset, epoch + 1
//
// Every change made by the user bumps the partition's epoch. Requests in
// flight remember the epoch they were built for; an answer for an older
// epoch is discarded, so data fetched for a position the user has since
// moved away from is never returned.
#include "ferry/client/consumer.h"

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
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "rpc.h"

namespace ferry::client {
namespace {

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
commit_entries build_commit_entries(flatbuffers::FlatBufferBuilder& fbb,
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

std::vector<const offset_commit*> all_offsets(const std::vector<async_commit>& items) {
  std::vector<const offset_commit*> out;
  for (const auto& c : items)
    for (const auto& oc : c.offsets) out.push_back(&oc);
  return out;
}

// CommitResult tables (CommitOffsetsResponse.results, FetchResponse.commit_results).
std::vector<commit_result> parse_commit_results(
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
      auto m = wire::CreateGroupMemberDirect(fbb, o_.group_id.c_str(), member.c_str(), generation);
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
      } else if (ec == errc::unknown_member || ec == errc::stale_generation) {
        active_ = false;
        raise(true, message.empty() ? ec.message() : message);
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

std::string tp_name(const topic_partition& tp) {
  return fmt::format("{}-{}", tp.topic, tp.partition.value());
}

std::optional<std::string> str_of(std::optional<std::span<const std::byte>> b) {
  if (!b) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(b->data()), b->size());
}

sclock::time_point saturating_add(sclock::time_point t, milliseconds d) {
  if (d >= std::chrono::duration_cast<milliseconds>(sclock::time_point::max() - t))
    return sclock::time_point::max();
  return t + d;
}

}  // namespace

class consumer::impl {
 public:
  impl(consumer& self, consumer_options o)
      : self_(&self), o_(std::move(o)), conn_(std::make_unique<connection>(o_)) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~impl() {
    leave_quietly();
    hb_.reset();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  // Thread-safe: makes a waiting poll() return.
  void wakeup() noexcept {
    wakeup_requested_.store(true, std::memory_order_release);
    std::uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
  }
  void drain_wake() noexcept {
    std::uint64_t v;
    if (wake_fd_ >= 0) (void)!::read(wake_fd_, &v, sizeof v);
  }

  result<void> assign(std::vector<topic_partition> partitions);
  std::vector<topic_partition> assignment() const;
  result<void> seek(const topic_partition& tp, offset position);
  result<void> seek_lazy(std::span<const topic_partition> partitions, reset_kind kind,
                         timestamp_ms ts);
  result<offset> position(const topic_partition& tp);
  result<std::vector<consumer_record>> poll(milliseconds timeout);

  // groups
  result<void> subscribe(std::vector<std::string> topics, rebalance_listener* listener);
  result<void> unsubscribe();
  std::vector<std::string> subscription() const {
    return subscribed_ ? topics_ : std::vector<std::string>{};
  }
  result<void> commit(const std::vector<offset_commit>& offsets);
  result<void> commit_positions();
  void commit_async(std::vector<offset_commit> offsets, commit_callback done);
  result<std::vector<committed_position>> committed(std::vector<topic_partition> partitions);
  result<std::vector<std::optional<timestamp_ms>>> ledger_lookup(
      const std::vector<std::string>& keys, milliseconds window);
  result<void> pause(const std::vector<topic_partition>& partitions, bool on);
  std::vector<topic_partition> paused() const { return {paused_.begin(), paused_.end()}; }
  result<void> close();
  void rebind(consumer& self) noexcept { self_ = &self; }

  std::string last_error_message_;
  std::string member_id_;
  std::int32_t generation_ = -1;

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
  void leave_quietly();
  flatbuffers::Offset<wire::GroupMember> member_table(flatbuffers::FlatBufferBuilder& fbb) const {
    return wire::CreateGroupMemberDirect(fbb, o_.group_id.c_str(), member_id_.c_str(), generation_);
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

result<void> consumer::impl::assign(std::vector<topic_partition> partitions) {
  last_error_message_.clear();
  if (subscribed_) {
    last_error_message_ = "assign() cannot be combined with subscribe(); unsubscribe() first";
    return ferry::errc::invalid_argument;
  }
  for (const auto& tp : partitions) {
    if (!protocol::valid_topic_name(tp.topic)) {
      last_error_message_ = fmt::format("invalid topic name '{}'", tp.topic);
      return errc::invalid_topic_name;
    }
    if (tp.partition.value() < 0) {
      last_error_message_ = fmt::format("negative partition for topic '{}'", tp.topic);
      return ferry::errc::invalid_argument;
    }
  }
  std::map<topic_partition, partition_state> next;
  for (auto& tp : partitions) {
    auto it = partitions_.find(tp);
    next.emplace(std::move(tp), it != partitions_.end() ? it->second : partition_state{});
  }
  partitions_ = std::move(next);
  return success();
}

std::vector<topic_partition> consumer::impl::assignment() const {
  std::vector<topic_partition> out;
  out.reserve(partitions_.size());
  for (const auto& [tp, st] : partitions_) out.push_back(tp);
  return out;
}

result<void> consumer::impl::seek(const topic_partition& tp, offset position) {
  last_error_message_.clear();
  auto* st = find(tp);
  if (!st) {
    last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
    return ferry::errc::not_found;
  }
  if (position.value() < 0) return ferry::errc::invalid_argument;
  st->position = position;
  st->pending = reset_kind::none;
  ++st->epoch;
  return success();
}

result<void> consumer::impl::seek_lazy(std::span<const topic_partition> partitions, reset_kind kind,
                                       timestamp_ms ts) {
  last_error_message_.clear();
  for (const auto& tp : partitions) {
    if (!find(tp)) {
      last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
      return ferry::errc::not_found;
    }
  }
  auto apply = [&](partition_state& st) {
    st.position.reset();
    st.pending = kind;
    st.reset_timestamp = ts;
    ++st.epoch;
  };
  if (partitions.empty()) {
    for (auto& [tp, st] : partitions_) apply(st);
  } else {
    for (const auto& tp : partitions) apply(*find(tp));
  }
  return success();
}

result<void> consumer::impl::send_list_offsets(sclock::time_point now) {
  request_in_flight req;
  for (const auto& [tp, st] : partitions_) {
    if (st.position || st.pending == reset_kind::committed) continue;
    detail::offset_query q{tp, offset_spec::earliest, timestamp_ms::none()};
    switch (st.pending) {
      case reset_kind::none:
      case reset_kind::committed:
      case reset_kind::earliest:
        q.spec = offset_spec::earliest;
        break;
      case reset_kind::latest:
        q.spec = offset_spec::latest;
        break;
      case reset_kind::timestamp:
        q.spec = offset_spec::timestamp;
        q.timestamp = st.reset_timestamp;
        break;
    }
    req.queries.push_back(std::move(q));
    req.epochs.emplace(tp, st.epoch);
  }
  if (req.queries.empty()) return success();
  flatbuffers::FlatBufferBuilder fbb;
  auto [type, body] = detail::build_list_offsets(fbb, req.queries);
  auto id = conn_->send(fbb, type, body);
  if (!id) {
    if (!is_retriable(id.error())) return id.error();
    list_offsets_retry_at_ = now + o_.retry_backoff;
    return success();
  }
  req.id = id.value();
  req.sent = now;
  req.expires = now + o_.request_timeout;
  list_offsets_ = std::move(req);
  return success();
}

result<void> consumer::impl::send_fetch(sclock::time_point now, sclock::time_point deadline) {
  request_in_flight req;
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::FetchEntry>> entries;
  for (const auto& [tp, st] : partitions_) {
    if (!st.position || paused_.count(tp)) continue;
    entries.push_back(wire::CreateFetchEntryDirect(fbb, tp.topic.c_str(), tp.partition.value(),
                                                   st.position->value(), o_.partition_max_bytes));
    req.epochs.emplace(tp, st.epoch);
  }
  if (entries.empty()) return success();
  // The broker may hold the fetch until poll()'s own timeout at most.
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
  const milliseconds max_wait = std::clamp(left, milliseconds(0), o_.fetch_max_wait);
  flatbuffers::Offset<wire::GroupMember> m = 0;
  commit_entries commits = 0;
  if (member()) {
    m = member_table(fbb);
    req.generation = generation_;
    if (!queued_.empty()) {
      // Queued async commits ride on the fetch (made durable before it is
      // served); their outcome comes back with it.
      commits = build_commit_entries(fbb, all_offsets(queued_));
      req.commits = std::move(queued_);
      queued_.clear();
    }
  }
  auto body = wire::CreateFetchRequest(fbb, fbb.CreateVector(entries), detail::wire_ms(max_wait), 1,
                                       o_.fetch_max_bytes, m, commits);
  auto id = conn_->send(fbb, wire::Body::FetchRequest, body.Union());
  if (!id) {
    if (!req.commits.empty()) queued_ = std::move(req.commits);  // not sent: try again later
    if (!is_retriable(id.error())) return id.error();
    fetch_retry_at_ = now + o_.retry_backoff;
    return success();
  }
  req.id = id.value();
  req.sent = now;
  req.expires = now + max_wait + o_.request_timeout;
  fetch_ = std::move(req);
  return success();
}

result<void> consumer::impl::handle_list_offsets(const reply& r, const request_in_flight& req) {
  const auto now = sclock::now();
  std::string message;
  auto answers = detail::parse_list_offsets(r, req.queries, &message);
  if (!answers) {
    if (is_retriable(answers.error())) {
      list_offsets_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = message;
    return answers.error();
  }
  std::error_code first_error;
  for (std::size_t i = 0; i < req.queries.size(); ++i) {
    const auto& q = req.queries[i];
    auto* st = find(q.tp);
    if (!st || st->epoch != req.epochs.at(q.tp) || st->position) continue;  // moved on meanwhile
    const auto& a = answers.value()[i];
    if (a.error) {
      if (is_retriable(a.error)) {
        list_offsets_retry_at_ = now + o_.retry_backoff;
      } else if (!first_error) {
        first_error = a.error;
        last_error_message_ =
            fmt::format("looking up the position of {}: {}", tp_name(q.tp), a.error.message());
      }
      continue;
    }
    if (a.offset < 0) {
      st->pending = reset_kind::latest;  // no record at or after the timestamp: go to the end
      continue;
    }
    st->position = offset(a.offset);
    st->pending = reset_kind::none;
  }
  if (first_error) return first_error;
  return success();
}

std::error_code consumer::impl::decode_partition(const topic_partition& tp,
                                                 std::span<const std::byte> data, offset position,
                                                 std::vector<consumer_record>& out,
                                                 std::string& why) const {
  std::optional<offset> prev_next;
  while (!data.empty()) {
    if (data.size() < format::kBatchHeaderSize) {
      why = fmt::format("{} trailing bytes are not a whole batch header", data.size());
      return errc::corrupt_data;
    }
    const auto h = format::batch_header::decode(data.data());
    if (h.batch_length < format::kBatchHeaderSize || h.batch_length > data.size()) {
      why = fmt::format("batch_length {} with {} bytes left", h.batch_length, data.size());
      return errc::corrupt_data;
    }
    const auto one = data.first(h.batch_length);
    std::string what;
    if (auto v = format::validate_batch(one, format::validation::full, &what); !v) {
      why = fmt::format("batch at offset {} failed validation: {}", h.base_offset.value(), what);
      return errc::corrupt_data;
    }
    if (prev_next && h.base_offset < *prev_next) {
      why = fmt::format("batch at offset {} overlaps the previous one", h.base_offset.value());
      return errc::corrupt_data;
    }
    prev_next = h.next_offset();
    format::for_each_record(one, [&](const format::record_view& rv) {
      if (rv.off < position) return;  // the first batch may start before the position
      consumer_record rec;
      rec.topic = tp.topic;
      rec.partition = tp.partition;
      rec.offset = rv.off;
      rec.timestamp = rv.timestamp;
      rec.key = str_of(rv.key);
      rec.value = str_of(rv.value);
      rec.headers.reserve(rv.header_count);
      rv.for_each_header([&](const format::header_view& hv) {
        rec.headers.push_back({std::string(hv.key), str_of(hv.value)});
      });
      out.push_back(std::move(rec));
    });
    data = data.subspan(h.batch_length);
  }
  return {};
}

result<void> consumer::impl::handle_fetch(const reply& r, const request_in_flight& req,
                                          std::vector<consumer_record>& out) {
  const auto now = sclock::now();
  std::string message;
  if (auto ok = detail::expect_body(r, wire::Body::FetchResponse, &message); !ok) {
    if (!req.commits.empty()) {
      auto items = req.commits;
      finish_commits(items, {}, ok.error());
    }
    if (is_retriable(ok.error())) {
      fetch_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = message;
    return ok.error();
  }
  const auto* resp = r.envelope().body_as_FetchResponse();
  if (!req.commits.empty()) {
    auto items = req.commits;
    finish_commits(items, parse_commit_results(resp->commit_results()), {});
  }
  if (auto ge = from_wire(resp->group_error())) {
    // Only news about the generation this fetch was sent for counts.
    if (member() && req.generation == generation_) {
      const std::string why = resp->group_message() ? resp->group_message()->str() : ge.message();
      if (ge == errc::rebalance_in_progress) {
        need_rejoin_ = true;
      } else {
        lost_ = true;
        log::get("client")->warn("consumer {} of group {}: {}; its partitions are lost", member_id_,
                                 o_.group_id, why);
      }
    }
    return success();
  }
  std::error_code first_error;
  std::string first_message;
  auto note_error = [&](std::error_code ec, std::string msg) {
    if (!first_error) {
      first_error = ec;
      first_message = std::move(msg);
    }
  };
  for (const auto* x : *resp->results()) {
    if (!x->topic()) continue;
    const topic_partition tp{x->topic()->str(), partition_id(x->partition())};
    auto asked = req.epochs.find(tp);
    auto* st = find(tp);
    if (asked == req.epochs.end() || !st || st->epoch != asked->second || !st->position)
      continue;  // stale
    const auto ec = from_wire(x->error());
    if (ec == errc::offset_out_of_range) {
      const std::string what =
          fmt::format("{}: position {} out of range (log start {}, high watermark {})", tp_name(tp),
                      st->position->value(), x->log_start(), x->high_watermark());
      switch (o_.auto_offset_reset) {
        case offset_reset::earliest:
        case offset_reset::latest:
          st->position.reset();
          st->pending = o_.auto_offset_reset == offset_reset::earliest ? reset_kind::earliest
                                                                       : reset_kind::latest;
          ++st->epoch;
          log::get("client")->warn(
              "consumer{}{}: {}; resetting to the {}", o_.group_id.empty() ? "" : " of group ",
              o_.group_id, what,
              st->pending == reset_kind::earliest ? "earliest offset" : "log end");
          break;
        case offset_reset::none:
          note_error(ec, what);
          break;
      }
      continue;
    }
    if (ec) {
      if (is_retriable(ec)) {
        fetch_retry_at_ = now + o_.retry_backoff;
      } else {
        note_error(ec,
                   fmt::format("{}: {}{}{}", tp_name(tp), ec.message(), x->message() ? ": " : "",
                               x->message() ? x->message()->str() : std::string()));
      }
      continue;
    }
    if (x->frame() == 0) continue;
    std::vector<consumer_record> recs;
    std::string why;
    const auto bad = decode_partition(tp, r.frame(x->frame()), *st->position, recs, why);
    // Records of the batches before a bad one are still returned; the
    // position then stops at the bad batch, so the next fetch reports it.
    if (!recs.empty()) {
      st->position = recs.back().offset + 1;
      out.insert(out.end(), std::make_move_iterator(recs.begin()),
                 std::make_move_iterator(recs.end()));
    }
    if (bad) note_error(bad, fmt::format("{}: fetched data is corrupt: {}", tp_name(tp), why));
  }
  if (first_error) {
    if (out.empty()) {
      last_error_message_ = std::move(first_message);
      return first_error;
    }
    deferred_error_ = first_error;
    deferred_message_ = std::move(first_message);
  }
  return success();
}

// Fetches and offset lookups are idempotent: one that got no reply (lost
// with a dropped connection, or expired) is simply sent again after
// retry_backoff. Only when requests have gone unanswered for api_timeout
// does poll() report protocol::errc::timed_out.
result<void> consumer::impl::expire(sclock::time_point now) {
  bool failed = false;
  auto give_up = [&](std::optional<request_in_flight>& req, sclock::time_point& retry_at) {
    conn_->forget(req->id);
    failing_since_ = std::min(failing_since_.value_or(req->sent), req->sent);
    if (!req->commits.empty())  // unknown outcome: report it, do not resend
      finish_commits(req->commits, {}, protocol::errc::timed_out);
    req.reset();
    retry_at = now + o_.retry_backoff;
    failed = true;
  };
  auto lost = conn_->take_lost();
  auto is_lost = [&](std::uint64_t id) {
    return std::find(lost.begin(), lost.end(), id) != lost.end();
  };
  if (fetch_ && (is_lost(fetch_->id) || now >= fetch_->expires)) give_up(fetch_, fetch_retry_at_);
  if (list_offsets_ && (is_lost(list_offsets_->id) || now >= list_offsets_->expires))
    give_up(list_offsets_, list_offsets_retry_at_);
  if (join_ && (is_lost(join_->id) || now >= join_->expires)) give_up(join_, join_retry_at_);
  if (fetch_offsets_ && (is_lost(fetch_offsets_->id) || now >= fetch_offsets_->expires))
    give_up(fetch_offsets_, fetch_offsets_retry_at_);
  for (auto it = commits_.begin(); it != commits_.end();) {
    if (is_lost(it->id) || now >= it->expires) {
      conn_->forget(it->id);
      finish_commits(it->commits, {}, protocol::errc::timed_out);
      it = commits_.erase(it);
    } else {
      ++it;
    }
  }
  if (failed && now - *failing_since_ >= o_.api_timeout) {
    failing_since_.reset();
    last_error_message_ =
        fmt::format("no reply from the broker at {} for {} ms", o_.broker, o_.api_timeout.count());
    return protocol::errc::timed_out;
  }
  return success();
}

result<std::vector<consumer_record>> consumer::impl::poll(milliseconds timeout) {
  last_error_message_.clear();
  FERRY_TRY(conn_->status());
  if (closed_) {
    last_error_message_ = "the consumer is closed";
    return ferry::errc::invalid_argument;
  }
  if (hb_) hb_->polled();
  run_callbacks();
  if (deferred_error_) {
    last_error_message_ = std::move(deferred_message_);
    return std::exchange(deferred_error_, {});
  }
  const auto deadline = saturating_add(sclock::now(), timeout);
  std::vector<consumer_record> out;
  for (;;) {
    auto now = sclock::now();
    FERRY_TRY(expire(now));
    FERRY_TRY(group_step(now));
    now = sclock::now();
    if (!fetch_offsets_ && now >= fetch_offsets_retry_at_) {
      FERRY_TRY(send_fetch_offsets(now));
    }
    if (!list_offsets_ && now >= list_offsets_retry_at_) {
      FERRY_TRY(send_list_offsets(now));
    }
    if (!fetch_ && now >= fetch_retry_at_) {
      FERRY_TRY(send_fetch(now, deadline));
    }
    send_async_commits(now);
    run_callbacks();
    auto wake = deadline;
    auto consider = [&](const std::optional<request_in_flight>& req, sclock::time_point retry_at) {
      if (req)
        wake = std::min(wake, req->expires);
      else if (retry_at > now)
        wake = std::min(wake, retry_at);
    };
    consider(fetch_, fetch_retry_at_);
    consider(list_offsets_, list_offsets_retry_at_);
    consider(fetch_offsets_, fetch_offsets_retry_at_);
    consider(join_, join_retry_at_);
    for (const auto& c : commits_) wake = std::min(wake, c.expires);
    FERRY_TRY(auto r, conn_->next_reply(wake, wake_fd_));
    drain_wake();
    if (r) {
      failing_since_.reset();
      if (list_offsets_ && r->request_id == list_offsets_->id) {
        auto req = std::move(*list_offsets_);
        list_offsets_.reset();
        FERRY_TRY(handle_list_offsets(*r, req));
      } else if (fetch_ && r->request_id == fetch_->id) {
        auto req = std::move(*fetch_);
        fetch_.reset();
        FERRY_TRY(handle_fetch(*r, req, out));
        run_callbacks();
        if (!out.empty()) return out;
      } else if (join_ && r->request_id == join_->id) {
        join_.reset();
        FERRY_TRY(handle_join(*r));
      } else if (fetch_offsets_ && r->request_id == fetch_offsets_->id) {
        auto req = std::move(*fetch_offsets_);
        fetch_offsets_.reset();
        FERRY_TRY(handle_fetch_offsets(*r, req));
      } else {
        handle_commit_reply(*r);
        run_callbacks();
      }
      continue;
    }
    if (wakeup_requested_.exchange(false, std::memory_order_acq_rel)) return out;
    if (sclock::now() >= deadline) return out;
  }
}

result<offset> consumer::impl::position(const topic_partition& tp) {
  last_error_message_.clear();
  FERRY_TRY(conn_->status());
  if (!find(tp)) {
    last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
    return ferry::errc::not_found;
  }
  const auto deadline = saturating_add(sclock::now(), o_.api_timeout);
  std::error_code last = protocol::errc::timed_out;
  for (;;) {
    auto* st = find(tp);
    if (st == nullptr) {
      last_error_message_ = fmt::format("{} is no longer assigned", tp_name(tp));
      return ferry::errc::not_found;
    }
    if (st->position) return *st->position;
    auto now = sclock::now();
    if (now >= deadline) return last;
    if (st->pending == reset_kind::none) {
      last_error_message_ = fmt::format("{} has no position: seek() it", tp_name(tp));
      return errc::offset_out_of_range;
    }
    if (st->pending == reset_kind::committed) {
      // The group's committed offset first.
      if (!fetch_offsets_) {
        if (now < fetch_offsets_retry_at_) {
          std::this_thread::sleep_until(std::min(fetch_offsets_retry_at_, deadline));
          continue;
        }
        FERRY_TRY(send_fetch_offsets(now));
        if (!fetch_offsets_) continue;
      }
      auto r = conn_->wait_for(fetch_offsets_->id, std::min(deadline, fetch_offsets_->expires));
      auto req = std::move(*fetch_offsets_);
      fetch_offsets_.reset();
      if (!r) {
        last = r.error();
        fetch_offsets_retry_at_ = sclock::now() + o_.retry_backoff;
        continue;
      }
      failing_since_.reset();
      FERRY_TRY(handle_fetch_offsets(r.value(), req));
      continue;
    }
    if (!list_offsets_) {
      if (now < list_offsets_retry_at_) {
        std::this_thread::sleep_until(std::min(list_offsets_retry_at_, deadline));
        continue;
      }
      FERRY_TRY(send_list_offsets(now));
      if (!list_offsets_) continue;  // not sent (retriable); backing off
    }
    auto r = conn_->wait_for(list_offsets_->id, std::min(deadline, list_offsets_->expires));
    auto req = std::move(*list_offsets_);
    list_offsets_.reset();
    if (!r) {  // timed out or disconnected: wait_for forgot the id; try again
      last = r.error();
      list_offsets_retry_at_ = sclock::now() + o_.retry_backoff;
      continue;
    }
    failing_since_.reset();
    FERRY_TRY(handle_list_offsets(r.value(), req));
  }
}

// --- groups ---------------------------------------------------------------------

void rebalance_listener::on_assigned(consumer&, const std::vector<topic_partition>&) {}
void rebalance_listener::on_revoked(consumer&, const std::vector<topic_partition>&) {}
void rebalance_listener::on_lost(consumer&, const std::vector<topic_partition>&) {}

namespace {
wire::AssignStrategy to_wire(assign_strategy s) {
  switch (s) {
    case assign_strategy::range:
      return wire::AssignStrategy::Range;
    case assign_strategy::round_robin:
      return wire::AssignStrategy::RoundRobin;
    case assign_strategy::sticky:
      break;
  }
  return wire::AssignStrategy::Sticky;
}
}  // namespace

result<void> consumer::impl::subscribe(std::vector<std::string> topics,
                                       rebalance_listener* listener) {
  last_error_message_.clear();
  if (o_.group_id.empty()) {
    last_error_message_ = "subscribe() needs consumer_options::group_id";
    return ferry::errc::invalid_argument;
  }
  if (!protocol::valid_group_name(o_.group_id)) {
    last_error_message_ = fmt::format("invalid group name '{}'", o_.group_id);
    return errc::invalid_group_name;
  }
  if (topics.empty()) {
    last_error_message_ = "subscribe() needs at least one topic";
    return ferry::errc::invalid_argument;
  }
  for (const auto& t : topics)
    if (!protocol::valid_topic_name(t)) {
      last_error_message_ = fmt::format("invalid topic name '{}'", t);
      return errc::invalid_topic_name;
    }
  if (!subscribed_ && !partitions_.empty()) {
    last_error_message_ = "subscribe() cannot be combined with assign(); assign({}) first";
    return ferry::errc::invalid_argument;
  }
  if (closed_) {
    last_error_message_ = "the consumer is closed";
    return ferry::errc::invalid_argument;
  }
  std::sort(topics.begin(), topics.end());
  topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
  if (subscribed_ && topics != topics_) need_rejoin_ = true;
  topics_ = std::move(topics);
  listener_ = listener;
  subscribed_ = true;
  if (!hb_) hb_ = std::make_unique<heartbeater>(o_, wake_fd_);
  return success();
}

void consumer::impl::set_assignment(const std::vector<topic_partition>& parts) {
  std::map<topic_partition, partition_state> next;
  for (const auto& tp : parts) {
    partition_state st;
    st.pending = reset_kind::committed;
    next.emplace(tp, st);
  }
  // Epochs keep rising across assignments, so answers for the previous
  // generation's positions are discarded.
  for (auto& [tp, st] : next)
    if (auto it = partitions_.find(tp); it != partitions_.end()) st.epoch = it->second.epoch + 1;
  partitions_ = std::move(next);
  for (auto it = paused_.begin(); it != paused_.end();)
    it = partitions_.count(*it) ? std::next(it) : paused_.erase(it);
}

void consumer::impl::drop_assignment() {
  partitions_.clear();
  paused_.clear();
  joined_ = false;
  if (hb_) hb_->clear();
}

result<void> consumer::impl::group_step(sclock::time_point now) {
  if (!subscribed_) return success();
  if (hb_) {
    auto f = hb_->take();
    if (f.lost && member()) {
      lost_ = true;
      log::get("client")->warn("consumer {} of group {}: {}; its partitions are lost", member_id_,
                               o_.group_id, f.why);
    }
    if (f.rebalance) need_rejoin_ = true;
  }
  if (member() && lost_) {
    auto parts = assignment();
    drop_assignment();
    if (listener_) listener_->on_lost(*self_, parts);
  } else if (member() && need_rejoin_) {
    // Still the owner: the listener may commit what it finished.
    auto parts = assignment();
    if (listener_) listener_->on_revoked(*self_, parts);
    drop_assignment();
  }
  lost_ = need_rejoin_ = false;
  if (!joined_ && !join_ && now >= join_retry_at_) return send_join(now);
  return success();
}

result<void> consumer::impl::send_join(sclock::time_point now) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<flatbuffers::String>> ts;
  for (const auto& t : topics_) ts.push_back(fbb.CreateString(t));
  auto body = wire::CreateJoinGroupRequest(
      fbb, fbb.CreateString(o_.group_id), fbb.CreateString(member_id_),
      fbb.CreateString(o_.client_id), fbb.CreateVector(ts), to_wire(o_.strategy),
      detail::wire_ms(o_.session_timeout), detail::wire_ms(o_.rebalance_timeout));
  auto id = conn_->send(fbb, wire::Body::JoinGroupRequest, body.Union());
  if (!id) {
    if (!is_retriable(id.error())) return id.error();
    join_retry_at_ = now + o_.retry_backoff;
    return success();
  }
  request_in_flight req;
  req.id = id.value();
  req.sent = now;
  // The broker answers when the rebalance completes (at most the
  // rebalance timeout).
  req.expires = now + o_.rebalance_timeout + o_.request_timeout;
  join_ = std::move(req);
  return success();
}

result<void> consumer::impl::handle_join(const reply& r) {
  const auto now = sclock::now();
  std::string message;
  if (auto ok = detail::expect_body(r, wire::Body::JoinGroupResponse, &message); !ok) {
    if (is_retriable(ok.error())) {
      join_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = message;
    return ok.error();
  }
  const auto* resp = r.envelope().body_as_JoinGroupResponse();
  if (auto ec = from_wire(resp->error())) {
    message = resp->message() ? resp->message()->str() : ec.message();
    if (ec == errc::unknown_member) {
      member_id_.clear();  // forgotten: join as a new member
      return success();
    }
    if (ec == errc::rebalance_in_progress || is_retriable(ec)) {
      join_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = fmt::format("joining group {}: {}", o_.group_id, message);
    return ec;
  }
  member_id_ = resp->member_id() ? resp->member_id()->str() : std::string();
  generation_ = resp->generation();
  std::vector<topic_partition> parts;
  if (resp->assignment())
    for (const auto* tp : *resp->assignment())
      if (tp->partitions())
        for (auto p : *tp->partitions()) parts.push_back({tp->topic()->str(), partition_id(p)});
  std::sort(parts.begin(), parts.end());
  set_assignment(parts);
  joined_ = true;
  if (hb_) hb_->set(member_id_, generation_);
  log::get("client")->debug("consumer {}: generation {} of {}: {} partitions", member_id_,
                            generation_, o_.group_id, parts.size());
  if (listener_) listener_->on_assigned(*self_, parts);
  return success();
}

result<void> consumer::impl::send_fetch_offsets(sclock::time_point now) {
  request_in_flight req;
  std::map<std::string, std::vector<std::int32_t>> by_topic;
  for (const auto& [tp, st] : partitions_) {
    if (st.position || st.pending != reset_kind::committed) continue;
    by_topic[tp.topic].push_back(tp.partition.value());
    req.epochs.emplace(tp, st.epoch);
  }
  if (by_topic.empty()) return success();
  if (o_.group_id.empty()) {
    // assign() without a group: nothing can be committed; start per policy.
    for (auto& [tp, st] : partitions_)
      if (!st.position && st.pending == reset_kind::committed) st.pending = reset_kind::earliest;
    return success();
  }
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TopicPartitions>> v;
  for (const auto& [t, ps] : by_topic)
    v.push_back(wire::CreateTopicPartitionsDirect(fbb, t.c_str(), &ps));
  auto body =
      wire::CreateFetchOffsetsRequest(fbb, fbb.CreateString(o_.group_id), fbb.CreateVector(v));
  auto id = conn_->send(fbb, wire::Body::FetchOffsetsRequest, body.Union());
  if (!id) {
    if (!is_retriable(id.error())) return id.error();
    fetch_offsets_retry_at_ = now + o_.retry_backoff;
    return success();
  }
  req.id = id.value();
  req.sent = now;
  req.expires = now + o_.request_timeout;
  fetch_offsets_ = std::move(req);
  return success();
}

result<void> consumer::impl::handle_fetch_offsets(const reply& r, const request_in_flight& req) {
  const auto now = sclock::now();
  std::string message;
  if (auto ok = detail::expect_body(r, wire::Body::FetchOffsetsResponse, &message); !ok) {
    if (is_retriable(ok.error())) {
      fetch_offsets_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = message;
    return ok.error();
  }
  const auto* resp = r.envelope().body_as_FetchOffsetsResponse();
  if (auto ec = from_wire(resp->error())) {
    if (is_retriable(ec)) {
      fetch_offsets_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = resp->message() ? resp->message()->str() : ec.message();
    return ec;
  }
  std::map<topic_partition, std::int64_t> got;
  if (resp->offsets())
    for (const auto* c : *resp->offsets())
      if (c->topic()) got[{c->topic()->str(), partition_id(c->partition())}] = c->offset();
  std::error_code first_error;
  for (const auto& [tp, epoch] : req.epochs) {
    auto* st = find(tp);
    if (!st || st->epoch != epoch || st->position || st->pending != reset_kind::committed) continue;
    auto it = got.find(tp);
    if (it != got.end() && it->second >= 0) {
      st->position = offset(it->second);
      st->pending = reset_kind::none;
      continue;
    }
    switch (o_.auto_offset_reset) {
      case offset_reset::earliest:
        st->pending = reset_kind::earliest;
        break;
      case offset_reset::latest:
        st->pending = reset_kind::latest;
        break;
      case offset_reset::none:
        if (!first_error) {
          first_error = errc::offset_out_of_range;
          last_error_message_ = fmt::format(
              "group {} has no committed offset for {} and auto_offset_reset is none: seek() it",
              o_.group_id, tp_name(tp));
        }
        st->pending = reset_kind::none;  // stays without a position until seek()
        break;
    }
  }
  if (first_error) return first_error;
  return success();
}

void consumer::impl::finish_commits(std::vector<async_commit>& items,
                                    const std::vector<commit_result>& results,
                                    std::error_code all) {
  // Results come in the order of the entries sent: item by item.
  std::size_t at = 0;
  for (auto& item : items) {
    std::vector<commit_result> mine;
    for (const auto& oc : item.offsets) {
      commit_result cr{oc.tp, all, {}};
      if (!all && at < results.size()) cr = results[at];
      if (!all && at >= results.size()) cr.error = protocol::errc::missing_field;
      if (all) cr.message = all.message();
      ++at;
      mine.push_back(std::move(cr));
    }
    for (const auto& cr : mine)
      if (cr.error == errc::stale_generation || cr.error == errc::unknown_member) lost_ = true;
    if (item.done) completed_.emplace_back(std::move(item.done), std::move(mine));
  }
  items.clear();
}

void consumer::impl::run_callbacks() {
  auto done = std::move(completed_);
  completed_.clear();
  for (auto& [cb, results] : done) cb(results);
}

void consumer::impl::handle_commit_reply(const reply& r) {
  auto it = std::find_if(commits_.begin(), commits_.end(),
                         [&](const request_in_flight& c) { return c.id == r.request_id; });
  if (it == commits_.end()) return;
  auto req = std::move(*it);
  commits_.erase(it);
  std::string message;
  if (auto ok = detail::expect_body(r, wire::Body::CommitOffsetsResponse, &message); !ok) {
    finish_commits(req.commits, {}, ok.error());
    return;
  }
  const auto* resp = r.envelope().body_as_CommitOffsetsResponse();
  finish_commits(req.commits, parse_commit_results(resp->results()), from_wire(resp->error()));
}

void consumer::impl::send_async_commits(sclock::time_point now, bool alone) {
  if (queued_.empty()) return;
  // With a member and a fetch about to go out, the commits ride on it; a
  // fetch already in flight (or none to send) means they go on their own.
  if (!alone && member() && !fetch_ && now >= fetch_retry_at_) return;
  if (subscribed_ && !joined_) return;  // wait for the (re)join
  flatbuffers::FlatBufferBuilder fbb;
  auto entries = build_commit_entries(fbb, all_offsets(queued_));
  auto body = wire::CreateCommitOffsetsRequest(fbb, fbb.CreateString(o_.group_id),
                                               member() ? member_table(fbb) : 0, entries, false);
  request_in_flight req;
  req.commits = std::move(queued_);
  queued_.clear();
  auto id = conn_->send(fbb, wire::Body::CommitOffsetsRequest, body.Union());
  if (!id) {
    finish_commits(req.commits, {}, id.error());
    return;
  }
  req.id = id.value();
  req.sent = now;
  req.expires = now + o_.request_timeout;
  req.generation = generation_;
  commits_.push_back(std::move(req));
}

void consumer::impl::commit_async(std::vector<offset_commit> offsets, commit_callback done) {
  if (o_.group_id.empty() || offsets.empty() || closed_) {
    std::vector<commit_result> r;
    for (auto& oc : offsets)
      r.push_back({oc.tp, ferry::errc::invalid_argument,
                   closed_ ? "the consumer is closed" : "commits need consumer_options::group_id"});
    if (done) completed_.emplace_back(std::move(done), std::move(r));
    return;
  }
  queued_.push_back({std::move(offsets), std::move(done)});
}

result<void> consumer::impl::commit(const std::vector<offset_commit>& offsets) {
  last_error_message_.clear();
  if (o_.group_id.empty()) {
    last_error_message_ = "commit() needs consumer_options::group_id";
    return ferry::errc::invalid_argument;
  }
  if (offsets.empty()) return success();
  if (subscribed_ && !joined_) {
    last_error_message_ = fmt::format(
        "not a member of group {} right now (rejoining): poll() and commit again", o_.group_id);
    return errc::rebalance_in_progress;
  }
  std::vector<const offset_commit*> all;
  for (const auto& oc : offsets) {
    if (oc.next.value() < 0) {
      last_error_message_ = fmt::format("negative offset for {}", tp_name(oc.tp));
      return ferry::errc::invalid_argument;
    }
    all.push_back(&oc);
  }
  const auto deadline = saturating_add(sclock::now(), o_.api_timeout);
  for (;;) {
    flatbuffers::FlatBufferBuilder fbb;
    auto entries = build_commit_entries(fbb, all);
    auto body = wire::CreateCommitOffsetsRequest(fbb, fbb.CreateString(o_.group_id),
                                                 member() ? member_table(fbb) : 0, entries, false);
    auto now = sclock::now();
    std::error_code ec;
    std::string message;
    if (auto id = conn_->send(fbb, wire::Body::CommitOffsetsRequest, body.Union()); !id) {
      ec = id.error();
    } else if (auto r = conn_->wait_for(id.value(), std::min(deadline, now + o_.request_timeout));
               !r) {
      ec = r.error();
    } else if (auto ok =
                   detail::expect_body(r.value(), wire::Body::CommitOffsetsResponse, &message);
               !ok) {
      ec = ok.error();
    } else {
      const auto* resp = r.value().envelope().body_as_CommitOffsetsResponse();
      ec = from_wire(resp->error());
      if (ec) {
        message = resp->message() ? resp->message()->str() : ec.message();
      } else if (resp->results()) {
        for (const auto* x : *resp->results())
          if (auto e = from_wire(x->error())) {
            ec = e;
            message = x->message() ? x->message()->str() : e.message();
            break;
          }
      }
      if (ec == errc::stale_generation || ec == errc::unknown_member) lost_ = true;
      if (!ec) return success();
      last_error_message_ = message;
      return ec;
    }
    // No answer (or a retriable refusal): a commit may be sent again — the
    // same offsets again are no regression.
    if (!is_retriable(ec) || sclock::now() + o_.retry_backoff >= deadline) {
      last_error_message_ = message.empty() ? ec.message() : message;
      return ec;
    }
    std::this_thread::sleep_for(o_.retry_backoff);
  }
}

result<void> consumer::impl::commit_positions() {
  std::vector<offset_commit> offsets;
  for (const auto& [tp, st] : partitions_)
    if (st.position) offsets.push_back({tp, *st.position, {}, {}});
  return commit(offsets);
}

result<std::vector<committed_position>> consumer::impl::committed(
    std::vector<topic_partition> partitions) {
  last_error_message_.clear();
  if (o_.group_id.empty()) {
    last_error_message_ = "committed() needs consumer_options::group_id";
    return ferry::errc::invalid_argument;
  }
  if (partitions.empty()) partitions = assignment();
  std::map<std::string, std::vector<std::int32_t>> by_topic;
  for (const auto& tp : partitions) by_topic[tp.topic].push_back(tp.partition.value());
  return detail::call<std::vector<committed_position>>(
      *conn_, saturating_add(sclock::now(), o_.api_timeout), detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        std::vector<flatbuffers::Offset<wire::TopicPartitions>> v;
        for (const auto& [t, ps] : by_topic)
          v.push_back(wire::CreateTopicPartitionsDirect(fbb, t.c_str(), &ps));
        auto body = wire::CreateFetchOffsetsRequest(fbb, fbb.CreateString(o_.group_id),
                                                    fbb.CreateVector(v));
        return std::pair{wire::Body::FetchOffsetsRequest, body.Union()};
      },
      [&](const reply& r) -> result<std::vector<committed_position>> {
        FERRY_TRY(detail::expect_body(r, wire::Body::FetchOffsetsResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_FetchOffsetsResponse();
        if (auto ec = from_wire(resp->error())) return ec;
        std::vector<committed_position> out;
        if (resp->offsets())
          for (const auto* c : *resp->offsets()) {
            committed_position cp;
            cp.tp = {c->topic() ? c->topic()->str() : std::string(), partition_id(c->partition())};
            if (c->offset() >= 0) cp.next = offset(c->offset());
            if (c->metadata()) cp.metadata = c->metadata()->str();
            cp.commit_time = timestamp_ms(c->commit_timestamp());
            out.push_back(std::move(cp));
          }
        return out;
      });
}

result<std::vector<std::optional<timestamp_ms>>> consumer::impl::ledger_lookup(
    const std::vector<std::string>& keys, milliseconds window) {
  last_error_message_.clear();
  if (o_.group_id.empty()) {
    last_error_message_ = "ledger_lookup() needs consumer_options::group_id";
    return ferry::errc::invalid_argument;
  }
  using out_t = std::vector<std::optional<timestamp_ms>>;
  if (keys.empty()) return out_t{};
  return detail::call<out_t>(
      *conn_, saturating_add(sclock::now(), o_.api_timeout), detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto body = wire::CreateLedgerLookupRequest(fbb, fbb.CreateString(o_.group_id),
                                                    fbb.CreateVectorOfStrings(keys),
                                                    std::max<std::int64_t>(0, window.count()));
        return std::pair{wire::Body::LedgerLookupRequest, body.Union()};
      },
      [&](const reply& r) -> result<out_t> {
        FERRY_TRY(detail::expect_body(r, wire::Body::LedgerLookupResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_LedgerLookupResponse();
        if (auto ec = from_wire(resp->error())) {
          if (resp->message()) last_error_message_ = resp->message()->str();
          return ec;
        }
        if (resp->processed_ms() == nullptr || resp->processed_ms()->size() != keys.size()) {
          last_error_message_ = "ledger lookup: the reply does not answer every key";
          return protocol::errc::invalid_value;
        }
        out_t out;
        out.reserve(keys.size());
        for (auto ms : *resp->processed_ms())
          out.push_back(ms >= 0 ? std::optional(timestamp_ms(ms)) : std::nullopt);
        return out;
      });
}

result<void> consumer::impl::pause(const std::vector<topic_partition>& partitions, bool on) {
  last_error_message_.clear();
  for (const auto& tp : partitions)
    if (!find(tp)) {
      last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
      return ferry::errc::not_found;
    }
  for (const auto& tp : partitions) {
    if (on) {
      paused_.insert(tp);
    } else {
      paused_.erase(tp);
    }
  }
  return success();
}

result<void> consumer::impl::unsubscribe() {
  last_error_message_.clear();
  if (!subscribed_) return success();
  if (member() && listener_) listener_->on_revoked(*self_, assignment());
  leave_quietly();
  return success();
}

// Leaves the group without callbacks: the broker rebalances at once instead
// of waiting for the session timeout.
void consumer::impl::leave_quietly() {
  hb_.reset();
  if (subscribed_ && !member_id_.empty()) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateLeaveGroupRequestDirect(fbb, o_.group_id.c_str(), member_id_.c_str());
    if (auto id = conn_->send(fbb, wire::Body::LeaveGroupRequest, body.Union()))
      (void)conn_->wait_for(id.value(), sclock::now() + std::min<milliseconds>(o_.request_timeout,
                                                                               milliseconds(5000)));
  }
  partitions_.clear();
  paused_.clear();
  subscribed_ = joined_ = need_rejoin_ = lost_ = false;
  member_id_.clear();
  generation_ = -1;
  if (join_) {
    conn_->forget(join_->id);
    join_.reset();
  }
}

result<void> consumer::impl::close() {
  last_error_message_.clear();
  if (closed_) return success();
  // Pending async commits: send them and wait for their answers.
  const auto deadline = sclock::now() + o_.request_timeout;
  if (!queued_.empty() && (!subscribed_ || joined_)) send_async_commits(sclock::now(), true);
  while ((!commits_.empty() || (fetch_ && !fetch_->commits.empty())) && sclock::now() < deadline) {
    auto r = conn_->next_reply(deadline);
    if (!r) break;
    if (!r.value()) continue;
    auto& rep = *r.value();
    if (fetch_ && rep.request_id == fetch_->id) {
      auto req = std::move(*fetch_);
      fetch_.reset();
      std::vector<consumer_record> ignored;
      (void)handle_fetch(rep, req, ignored);
      continue;
    }
    handle_commit_reply(rep);
  }
  for (auto& c : commits_) finish_commits(c.commits, {}, protocol::errc::timed_out);
  commits_.clear();
  if (fetch_ && !fetch_->commits.empty())
    finish_commits(fetch_->commits, {}, protocol::errc::timed_out);
  finish_commits(queued_, {}, protocol::errc::timed_out);
  run_callbacks();
  if (member() && listener_) listener_->on_revoked(*self_, assignment());
  leave_quietly();
  run_callbacks();
  closed_ = true;
  return success();
}

// --- consumer -----------------------------------------------------------------

consumer::consumer(consumer_options options)
    : impl_(std::make_unique<impl>(*this, std::move(options))) {}
consumer::~consumer() = default;
consumer::consumer(consumer&& other) noexcept : impl_(std::move(other.impl_)) {
  if (impl_) impl_->rebind(*this);
}
consumer& consumer::operator=(consumer&& other) noexcept {
  impl_ = std::move(other.impl_);
  if (impl_) impl_->rebind(*this);
  return *this;
}

result<void> consumer::subscribe(std::vector<std::string> topics, rebalance_listener* listener) {
  return impl_->subscribe(std::move(topics), listener);
}
result<void> consumer::unsubscribe() {
  return impl_->unsubscribe();
}
std::vector<std::string> consumer::subscription() const {
  return impl_->subscription();
}
const std::string& consumer::member_id() const noexcept {
  return impl_->member_id_;
}
std::int32_t consumer::generation() const noexcept {
  return impl_->generation_;
}
result<void> consumer::commit(const std::vector<offset_commit>& offsets) {
  return impl_->commit(offsets);
}
result<void> consumer::commit() {
  return impl_->commit_positions();
}
void consumer::wakeup() noexcept {
  if (impl_) impl_->wakeup();
}
void consumer::commit_async(std::vector<offset_commit> offsets, commit_callback done) {
  impl_->commit_async(std::move(offsets), std::move(done));
}
result<std::vector<std::optional<timestamp_ms>>> consumer::ledger_lookup(
    const std::vector<std::string>& keys, std::chrono::milliseconds window) {
  return impl_->ledger_lookup(keys, window);
}
result<std::vector<committed_position>> consumer::committed(
    std::vector<topic_partition> partitions) {
  return impl_->committed(std::move(partitions));
}
result<void> consumer::pause(const std::vector<topic_partition>& partitions) {
  return impl_->pause(partitions, true);
}
result<void> consumer::resume(const std::vector<topic_partition>& partitions) {
  return impl_->pause(partitions, false);
}
std::vector<topic_partition> consumer::paused() const {
  return impl_->paused();
}
result<void> consumer::close() {
  return impl_->close();
}

result<void> consumer::assign(std::vector<topic_partition> partitions) {
  return impl_->assign(std::move(partitions));
}
std::vector<topic_partition> consumer::assignment() const {
  return impl_->assignment();
}
result<void> consumer::seek(const topic_partition& tp, offset position) {
  return impl_->seek(tp, position);
}
result<void> consumer::seek_to_beginning(std::span<const topic_partition> partitions) {
  return impl_->seek_lazy(partitions, reset_kind::earliest, timestamp_ms::none());
}
result<void> consumer::seek_to_end(std::span<const topic_partition> partitions) {
  return impl_->seek_lazy(partitions, reset_kind::latest, timestamp_ms::none());
}
result<void> consumer::seek_to_timestamp(std::span<const topic_partition> partitions,
                                         timestamp_ms timestamp) {
  return impl_->seek_lazy(partitions, reset_kind::timestamp, timestamp);
}
result<offset> consumer::position(const topic_partition& tp) {
  return impl_->position(tp);
}
result<std::vector<consumer_record>> consumer::poll(std::chrono::milliseconds timeout) {
  return impl_->poll(timeout);
}
const std::string& consumer::last_error_message() const noexcept {
  return impl_->last_error_message_;
}

}  // namespace ferry::client
