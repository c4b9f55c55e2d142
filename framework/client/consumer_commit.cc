// The commit queue: synchronous commits wait for their answer; async
// commits queue, ride on the member's next fetch (or go alone when no fetch
// will carry them soon, or at close), and their callbacks run from poll()
// in the order they were made. A commit never reports success before the
// broker synced it.
#include "consumer_impl.h"

namespace ferry::client {

using namespace detail;

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
      if (cr.error == errc::stale_generation || cr.error == errc::unknown_member ||
          cr.error == errc::fenced_instance_id)
        note_lost(cr.error, cr.message);
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

result<void> consumer::impl::commit(const std::vector<offset_commit>& offsets,
                                    milliseconds timeout) {
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
  const auto deadline = saturating_add(sclock::now(), timeout);
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
      if (ec == errc::stale_generation || ec == errc::unknown_member ||
          ec == errc::fenced_instance_id)
        note_lost(ec, message);
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
  return commit(offsets, o_.api_timeout);
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

}  // namespace ferry::client
