// Group membership:
//
//   unsubscribed --subscribe--> joining (JoinGroup in flight, a new member
//     or our member id) --answer--> member of generation g: assignment set,
//     committed offsets looked up (FetchOffsets), heartbeats from their own
//     thread
//   member --RebalanceInProgress (heartbeat, fetch)--> revoke (the listener
//     commits what it finished) --> joining
//   member --fenced / unknown member--> lost (on_lost: nothing committed) --> joining
//   any --unsubscribe/close--> LeaveGroup, unsubscribed
#include "consumer_impl.h"

namespace ferry::client {

using namespace detail;

void rebalance_listener::on_assigned(consumer&, const std::vector<topic_partition>&) {}
void rebalance_listener::on_revoked(consumer&, const std::vector<topic_partition>&) {}
void rebalance_listener::on_lost(consumer&, const std::vector<topic_partition>&) {}

namespace {
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
  if (!o_.group_instance_id.empty() && !protocol::valid_group_name(o_.group_instance_id)) {
    last_error_message_ =
        fmt::format("invalid group_instance_id '{}': 1 to 249 of letters, digits, '.', '_' and '-'",
                    o_.group_instance_id);
    return ferry::errc::invalid_argument;
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
      note_lost(f.fenced ? std::error_code(errc::fenced_instance_id) : std::error_code(), f.why);
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
  if (fenced_) {
    // For good: rejoining would fence the process that took our place.
    last_error_message_ = fenced_why_;
    return errc::fenced_instance_id;
  }
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
      detail::wire_ms(o_.session_timeout), detail::wire_ms(o_.rebalance_timeout),
      o_.group_instance_id.empty() ? 0 : fbb.CreateString(o_.group_instance_id));
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
    if (ec == errc::fenced_instance_id) note_lost(ec, last_error_message_);
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

result<void> consumer::impl::unsubscribe() {
  last_error_message_.clear();
  if (!subscribed_) return success();
  if (member() && listener_) listener_->on_revoked(*self_, assignment());
  leave_quietly(true);
  return success();
}

result<std::vector<committed_position>> consumer::impl::committed(
    std::vector<topic_partition> partitions, milliseconds timeout) {
  last_error_message_.clear();
  if (o_.group_id.empty()) {
    last_error_message_ = "committed() needs consumer_options::group_id";
    return ferry::errc::invalid_argument;
  }
  if (partitions.empty()) partitions = assignment();
  std::map<std::string, std::vector<std::int32_t>> by_topic;
  for (const auto& tp : partitions) by_topic[tp.topic].push_back(tp.partition.value());
  return detail::call<std::vector<committed_position>>(
      *conn_, saturating_add(sclock::now(), timeout), detail::retry_timeouts::yes,
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

}  // namespace ferry::client
