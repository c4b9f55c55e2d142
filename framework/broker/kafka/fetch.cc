// Fetch and ListOffsets. A fetch returns the stored batches as they are -
// the same bytes a native consumer gets, taken into the response without a
// copy - and long-polls through the same parked-fetch index
// (fetch_waiters.h). Fetch sessions (KIP-227) are not kept: every answer
// says session 0, so clients send full requests.
#include <fmt/format.h>

#include <algorithm>

#include "../core.h"
#include "ferry/broker/wire_errors.h"
#include "frontend.h"

namespace ferry::broker {

namespace {

struct fetch_partition {
  std::int32_t index = 0;
  std::int64_t offset = 0;
  std::int32_t max_bytes = 0;
};

struct fetch_topic {
  std::string name;
  bool allowed = true;  // read on it (security on), checked once
  std::vector<fetch_partition> partitions;
};

struct fetch_state {
  std::unique_ptr<kafka_request> q;
  std::int32_t max_bytes = 0;
  std::int32_t min_bytes = 1;
  std::vector<fetch_topic> topics;
};

fetch_attempt attempt(round& r, fetch_state& s, bool final) FERRY_REQUIRES(core_thread) {
  auto& c = r.core();
  const auto& q = *s.q;
  fetch_attempt a;
  std::int64_t budget = std::min<std::int64_t>(s.max_bytes, c.cfg.max_fetch_bytes);
  bool any_error = false;
  struct part_out {
    std::int32_t index;
    kafka::error err;
    std::int64_t hw, start;
    std::vector<std::byte> data;
  };
  struct served {
    topic_counters* counters;
    std::uint64_t records, bytes;
  };
  std::vector<std::vector<part_out>> out(s.topics.size());
  std::vector<served> counted;
  for (std::size_t t = 0; t < s.topics.size(); ++t) {
    for (const auto& fp : s.topics[t].partitions) {
      part_out po{fp.index, kafka::error::none, -1, -1, {}};
      wire::ErrorCode err;
      auto* p = s.topics[t].allowed ? c.topics.find(s.topics[t].name, fp.index, err) : nullptr;
      if (!s.topics[t].allowed) {
        po.err = kafka::error::topic_authorization_failed;
      } else if (p == nullptr) {
        po.err = kafka::error::unknown_topic_or_partition;
      } else {
        auto& log = *p->log;
        po.hw = log.high_watermark().value();
        po.start = log.log_start_offset().value();
        a.positions.emplace_back(p, fp.offset);
        if (log.failed()) {
          po.err = kafka::error::kafka_storage_error;
        } else if (budget > 0 && fp.offset != po.hw) {
          auto got = log.read(offset(fp.offset), static_cast<std::size_t>(std::min<std::int64_t>(
                                                     std::max(fp.max_bytes, 1), budget)));
          if (!got) {
            po.err = kafka::from_broker(to_wire(got.error()));
          } else if (got.value().batches > 0) {
            const auto n = static_cast<std::int64_t>(got.value().data.size());
            budget -= n;
            a.bytes += n;
            const auto from = std::max(fp.offset, po.start);
            counted.push_back({p->counters,
                               static_cast<std::uint64_t>(std::max<std::int64_t>(
                                   0, got.value().next_offset.value() - from)),
                               static_cast<std::uint64_t>(n)});
            po.data = std::move(got.value().data);
          }
        }
      }
      if (po.err != kafka::error::none) any_error = true;
      out[t].push_back(std::move(po));
    }
  }
  if (!final && !any_error && a.bytes < std::max(1, s.min_bytes)) return a;
  for (const auto& o : counted) {
    if (o.counters == nullptr) continue;
    o.counters->records_out->inc(o.records);
    o.counters->bytes_out->inc(o.bytes);
  }
  if (auto* book = q.frontend != nullptr ? q.frontend->quotas() : nullptr; book && a.bytes > 0)
    s.q->throttle_ms = std::max(
        q.throttle_ms,
        static_cast<std::int32_t>(
            book->charge(quota_principal(q.principal), quota_kind::fetch, a.bytes).count()));
  auto w = q.response();
  w.i32(q.throttle_ms);  // a quota (quotas.h)
  if (since(q, 7)) {
    w.i16(kafka::code(kafka::error::none));
    w.i32(0);  // session id: no fetch sessions
  }
  w.array(static_cast<std::int32_t>(s.topics.size()));
  for (std::size_t t = 0; t < s.topics.size(); ++t) {
    w.string(s.topics[t].name);
    w.array(static_cast<std::int32_t>(out[t].size()));
    for (auto& po : out[t]) {
      w.i32(po.index);
      w.i16(kafka::code(po.err));
      w.i64(po.hw);
      w.i64(po.hw);  // last stable offset: no transactions
      if (since(q, 5)) w.i64(po.start);
      w.array(0);                   // aborted transactions
      if (since(q, 11)) w.i32(-1);  // preferred read replica
      if (po.data.empty())
        w.i32(0);  // no records
      else
        w.owned_bytes(std::move(po.data));
    }
  }
  s.q->respond(std::move(w));
  a.answered = true;
  return a;
}

}  // namespace

void kafka_fetch(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  auto s = std::make_shared<fetch_state>();
  (void)in.i32();  // replica id: -1 for a consumer
  const auto max_wait = in.i32();
  s->min_bytes = in.i32();
  s->max_bytes = in.i32();  // v3+
  (void)in.i8();            // isolation level: every record is committed (no transactions)
  std::int32_t session_id = 0, session_epoch = -1;
  if (since(*q, 7)) {
    session_id = in.i32();
    session_epoch = in.i32();
  }
  const auto nt = in.array(6);
  for (std::int32_t t = 0; t < nt && in.ok(); ++t) {
    fetch_topic ft;
    ft.name = std::string(in.string());
    ft.allowed = kafka_may(c, *q, acl_resource::topic, ft.name, acl_op::read);
    const auto np = in.array(16);
    for (std::int32_t p = 0; p < np && in.ok(); ++p) {
      fetch_partition fp;
      fp.index = in.i32();
      if (since(*q, 9)) (void)in.i32();  // current leader epoch
      fp.offset = in.i64();
      if (since(*q, 5)) (void)in.i64();  // the follower's log start: not a follower
      fp.max_bytes = in.i32();
      ft.partitions.push_back(fp);
    }
    s->topics.push_back(std::move(ft));
  }
  if (since(*q, 7)) {
    const auto nf = in.array(6);
    for (std::int32_t f = 0; f < nf && in.ok(); ++f) {
      (void)in.string();
      const auto np = in.array(4);
      for (std::int32_t p = 0; p < np && in.ok(); ++p) (void)in.i32();
    }
  }
  if (since(*q, 11)) (void)in.string();  // rack id
  if (!in.ok()) return q->malformed("Fetch");
  if (session_id != 0 || session_epoch > 0) {
    // An incremental fetch of a session ferryd never opened: the client
    // starts over with a full fetch (KIP-227).
    auto w = q->response();
    w.i32(0);
    w.i16(70);  // FETCH_SESSION_ID_NOT_FOUND
    w.i32(0);
    w.array(0);
    return q->respond(std::move(w));
  }
  const auto wait = std::min<std::int64_t>(std::max(max_wait, 0), c.cfg.max_fetch_wait.count());
  auto waiter = std::make_unique<fetch_waiter>();
  waiter->deadline = q->received + std::chrono::milliseconds(wait);
  waiter->min_bytes = std::max(1, s->min_bytes);
  s->q = std::move(q);
  waiter->attempt = [s](round& rr, bool final) {
    core_thread.assert_held();  // the pipeline tries fetches in its rounds
    return attempt(rr, *s, final);
  };
  r.fetch(std::move(waiter));
}

void kafka_list_offsets(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  (void)in.i32();                   // replica id
  if (since(*q, 2)) (void)in.i8();  // isolation level
  struct want {
    std::int32_t index;
    std::int64_t timestamp;
  };
  std::vector<std::pair<std::string, std::vector<want>>> topics;
  const auto nt = in.array(6);
  for (std::int32_t t = 0; t < nt && in.ok(); ++t) {
    std::pair<std::string, std::vector<want>> tw{std::string(in.string()), {}};
    const auto np = in.array(12);
    for (std::int32_t p = 0; p < np && in.ok(); ++p) {
      want wp;
      wp.index = in.i32();
      if (since(*q, 4)) (void)in.i32();  // current leader epoch
      wp.timestamp = in.i64();
      tw.second.push_back(wp);
    }
    topics.push_back(std::move(tw));
  }
  if (!in.ok()) return q->malformed("ListOffsets");
  auto w = q->response();
  if (since(*q, 2)) w.i32(0);  // throttle
  w.array(static_cast<std::int32_t>(topics.size()));
  for (const auto& [name, parts] : topics) {
    w.string(name);
    w.array(static_cast<std::int32_t>(parts.size()));
    for (const auto& wp : parts) {
      kafka::error err = kafka::error::none;
      std::int64_t ts = -1, off = -1;
      wire::ErrorCode e;
      if (!kafka_may(c, *q, acl_resource::topic, name, acl_op::describe)) {
        err = kafka::error::topic_authorization_failed;
      } else if (auto* p = c.topics.find(name, wp.index, e)) {
        auto& log = *p->log;
        if (wp.timestamp == -1) {
          off = log.high_watermark().value();  // latest
        } else if (wp.timestamp == -2) {
          off = log.log_start_offset().value();  // earliest
        } else {
          auto found = log.offset_for_timestamp(timestamp_ms(wp.timestamp));
          if (!found) {
            err = kafka::from_broker(to_wire(found.error()));
          } else if (found.value()) {
            off = found.value()->value();
            ts = timestamp_at(log, off);
          }
        }
      } else {
        err = kafka::error::unknown_topic_or_partition;
      }
      w.i32(wp.index);
      w.i16(kafka::code(err));
      w.i64(ts);
      w.i64(off);
      if (since(*q, 4)) w.i32(0);  // leader epoch
    }
  }
  q->respond(std::move(w));
}

}  // namespace ferry::broker
