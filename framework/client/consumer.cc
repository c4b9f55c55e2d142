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
#include "consumer_impl.h"

namespace ferry::client {

using namespace detail;

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

// Leaves the group without callbacks: the broker rebalances at once instead
// of waiting for the session timeout.
void consumer::impl::leave_quietly(bool leave) {
  hb_.reset();
  if (leave && subscribed_ && !member_id_.empty() && !fenced_) {
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
  leave_quietly(leave_on_close());
  run_callbacks();
  closed_ = true;
  return success();
}

// --- consumer -----------------------------------------------------------------

namespace {
std::unique_ptr<consumer::backend> make_backend(consumer& self, consumer_options o) {
  if (is_kafka_url(o.broker)) return make_kafka_consumer(self, std::move(o));
  return std::make_unique<consumer::impl>(self, std::move(o));
}
}  // namespace

consumer::consumer(consumer_options options) : impl_(make_backend(*this, std::move(options))) {}
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
  return impl_->commit(offsets, impl_->api_timeout_);
}
result<void> consumer::commit(const std::vector<offset_commit>& offsets,
                              std::chrono::milliseconds timeout) {
  return impl_->commit(offsets, timeout);
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
  return impl_->committed(std::move(partitions), impl_->api_timeout_);
}
result<std::vector<committed_position>> consumer::committed(std::vector<topic_partition> partitions,
                                                            std::chrono::milliseconds timeout) {
  return impl_->committed(std::move(partitions), timeout);
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
  return impl_->seek_to_beginning(partitions);
}
result<void> consumer::seek_to_end(std::span<const topic_partition> partitions) {
  return impl_->seek_to_end(partitions);
}
result<void> consumer::seek_to_timestamp(std::span<const topic_partition> partitions,
                                         timestamp_ms timestamp) {
  return impl_->seek_to_timestamp(partitions, timestamp);
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
