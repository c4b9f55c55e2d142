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

#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "ferry/client/connection.h"
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "ferry/storage/batch.h"
#include "rpc.h"

namespace ferry::client {
namespace {

using std::chrono::milliseconds;
using sclock = std::chrono::steady_clock;

enum class reset_kind { none, earliest, latest, timestamp };

struct partition_state {
  std::optional<offset> position;  // empty while a reset is pending
  reset_kind pending = reset_kind::earliest;
  timestamp_ms reset_timestamp = timestamp_ms::none();
  std::uint64_t epoch = 0;
};

struct request_in_flight {
  std::uint64_t id = 0;
  sclock::time_point sent;
  sclock::time_point expires;
  std::map<topic_partition, std::uint64_t> epochs;  // partitions asked about
  std::vector<detail::offset_query> queries;        // ListOffsets only
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
  explicit impl(consumer_options o) : o_(std::move(o)), conn_(std::make_unique<connection>(o_)) {}

  result<void> assign(std::vector<topic_partition> partitions);
  std::vector<topic_partition> assignment() const;
  result<void> seek(const topic_partition& tp, offset position);
  result<void> seek_lazy(std::span<const topic_partition> partitions, reset_kind kind,
                         timestamp_ms ts);
  result<offset> position(const topic_partition& tp);
  result<std::vector<consumer_record>> poll(milliseconds timeout);

  std::string last_error_message_;

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
  partition_state* find(const topic_partition& tp) {
    auto it = partitions_.find(tp);
    return it == partitions_.end() ? nullptr : &it->second;
  }

  const consumer_options o_;
  std::unique_ptr<connection> conn_;
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
    if (st.position) continue;
    detail::offset_query q{tp, offset_spec::earliest, timestamp_ms::none()};
    switch (st.pending) {
      case reset_kind::none:
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
    if (!st.position) continue;
    entries.push_back(wire::CreateFetchEntryDirect(fbb, tp.topic.c_str(), tp.partition.value(),
                                                   st.position->value(), o_.partition_max_bytes));
    req.epochs.emplace(tp, st.epoch);
  }
  if (entries.empty()) return success();
  // The broker may hold the fetch until poll()'s own timeout at most.
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
  const milliseconds max_wait = std::clamp(left, milliseconds(0), o_.fetch_max_wait);
  auto body = wire::CreateFetchRequestDirect(fbb, &entries, detail::wire_ms(max_wait), 1,
                                             o_.fetch_max_bytes);
  auto id = conn_->send(fbb, wire::Body::FetchRequest, body.Union());
  if (!id) {
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
    if (data.size() < storage::kBatchHeaderSize) {
      why = fmt::format("{} trailing bytes are not a whole batch header", data.size());
      return errc::corrupt_data;
    }
    const auto h = storage::batch_header::decode(data.data());
    if (h.batch_length < storage::kBatchHeaderSize || h.batch_length > data.size()) {
      why = fmt::format("batch_length {} with {} bytes left", h.batch_length, data.size());
      return errc::corrupt_data;
    }
    const auto one = data.first(h.batch_length);
    std::string what;
    if (auto v = storage::validate_batch(one, storage::validation::full, &what); !v) {
      why = fmt::format("batch at offset {} failed validation: {}", h.base_offset.value(), what);
      return errc::corrupt_data;
    }
    if (prev_next && h.base_offset < *prev_next) {
      why = fmt::format("batch at offset {} overlaps the previous one", h.base_offset.value());
      return errc::corrupt_data;
    }
    prev_next = h.next_offset();
    storage::for_each_record(one, [&](const storage::record_view& rv) {
      if (rv.off < position) return;  // the first batch may start before the position
      consumer_record rec;
      rec.topic = tp.topic;
      rec.partition = tp.partition;
      rec.offset = rv.off;
      rec.timestamp = rv.timestamp;
      rec.key = str_of(rv.key);
      rec.value = str_of(rv.value);
      for (const auto& hv : rv.headers())
        rec.headers.push_back({std::string(hv.key), str_of(hv.value)});
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
    if (is_retriable(ok.error())) {
      fetch_retry_at_ = now + o_.retry_backoff;
      return success();
    }
    last_error_message_ = message;
    return ok.error();
  }
  std::error_code first_error;
  std::string first_message;
  auto note_error = [&](std::error_code ec, std::string msg) {
    if (!first_error) {
      first_error = ec;
      first_message = std::move(msg);
    }
  };
  for (const auto* x : *r.envelope().body_as_FetchResponse()->results()) {
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
              "consumer: {}; resetting to the {}", what,
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
    req.reset();
    retry_at = now + o_.retry_backoff;
    failed = true;
  };
  for (std::uint64_t id : conn_->take_lost()) {
    if (fetch_ && fetch_->id == id) give_up(fetch_, fetch_retry_at_);
    if (list_offsets_ && list_offsets_->id == id) give_up(list_offsets_, list_offsets_retry_at_);
  }
  if (fetch_ && now >= fetch_->expires) give_up(fetch_, fetch_retry_at_);
  if (list_offsets_ && now >= list_offsets_->expires)
    give_up(list_offsets_, list_offsets_retry_at_);
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
  if (deferred_error_) {
    last_error_message_ = std::move(deferred_message_);
    return std::exchange(deferred_error_, {});
  }
  const auto deadline = saturating_add(sclock::now(), timeout);
  std::vector<consumer_record> out;
  for (;;) {
    auto now = sclock::now();
    FERRY_TRY(expire(now));
    if (!list_offsets_ && now >= list_offsets_retry_at_) {
      FERRY_TRY(send_list_offsets(now));
    }
    if (!fetch_ && now >= fetch_retry_at_) {
      FERRY_TRY(send_fetch(now, deadline));
    }
    auto wake = deadline;
    if (fetch_)
      wake = std::min(wake, fetch_->expires);
    else if (fetch_retry_at_ > now)
      wake = std::min(wake, fetch_retry_at_);
    if (list_offsets_)
      wake = std::min(wake, list_offsets_->expires);
    else if (list_offsets_retry_at_ > now)
      wake = std::min(wake, list_offsets_retry_at_);
    FERRY_TRY(auto r, conn_->next_reply(wake));
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
        if (!out.empty()) return out;
      }
      continue;
    }
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
    if (st->position) return *st->position;
    auto now = sclock::now();
    if (now >= deadline) return last;
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

// --- consumer -----------------------------------------------------------------

consumer::consumer(consumer_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
consumer::~consumer() = default;
consumer::consumer(consumer&&) noexcept = default;
consumer& consumer::operator=(consumer&&) noexcept = default;

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
