// The fetcher: ListOffsets for partitions without a position, one Fetch at
// a time for every positioned partition (a member's fetch carries the
// commits queued for it), and the records of each answer decoded and
// checked (format::validate_batch) before poll() returns them. An answer
// is applied only if the partition's epoch is still the one the request
// was built for (consumer.cc's state machine).
#include "consumer_impl.h"

namespace ferry::client {

using namespace detail;

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
    if (h.size() < format::kBatchHeaderSize || h.size() > data.size()) {
      why = fmt::format("batchLength {} with {} bytes left", h.batch_length, data.size());
      return errc::corrupt_data;
    }
    const auto one = data.first(static_cast<std::size_t>(h.size()));
    std::string what;
    // Validated once; a compressed batch's records are decompressed once, here.
    std::vector<std::byte> inflated;
    if (auto v = format::validate_batch(one, format::validation::full, &what, &inflated); !v) {
      why = fmt::format("batch at offset {} failed validation: {}", h.base_offset.value(), what);
      return errc::corrupt_data;
    }
    if (prev_next && h.base_offset < *prev_next) {
      why = fmt::format("batch at offset {} overlaps the previous one", h.base_offset.value());
      return errc::corrupt_data;
    }
    prev_next = h.next_offset();
    const auto records = h.codec() == format::compression::none
                             ? one.subspan(format::kBatchHeaderSize)
                             : std::span<const std::byte>(inflated);
    format::for_each_record_in(h, records, [&](const format::record_view& rv) {
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
    data = data.subspan(static_cast<std::size_t>(h.size()));
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
        note_lost(ge, why);
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

}  // namespace ferry::client
