// Fetch: committed data from each partition asked for, long-polled until
// min_bytes or the deadline (fetch_waiters.h); a member's fetch may carry a
// commit, staged this round and answered with the data.
#include <fmt/format.h>

#include <algorithm>

#include "ferry/broker/wire_errors.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

namespace {

struct fetch_state {
  std::unique_ptr<native_request> q;
  std::optional<staged_commit> commit;  // the fetch's commit, final after the offsets sync
};

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<CommitResult>>> commits_of(
    flatbuffers::FlatBufferBuilder& fbb, broker_metrics& stats, const fetch_state& s) {
  return s.commit ? commit_results(fbb, stats, *s.commit) : 0;
}

// Answers the fetch, or reports what it found when it is below min_bytes
// and not `final`.
fetch_attempt attempt(round& r, fetch_state& s, bool final) FERRY_REQUIRES(core_thread) {
  auto& c = r.core();
  const auto* req = s.q->env->body_as_FetchRequest();
  flatbuffers::FlatBufferBuilder fbb(256);
  fetch_attempt a;
  if (const auto* m = req->member()) {
    // A member's fetch: refused for a stale or unknown member, and while
    // the group rebalances (the member must rejoin first).
    auto st = c.groups->check_fetch(m->group()->string_view(), m->member_id()->string_view(),
                                    m->generation(), steady::now(), instance_of(m));
    if (!st) {
      c.stats.refuse(st.error);
      auto commits = commits_of(fbb, c.stats, s);
      std::vector<flatbuffers::Offset<FetchResult>> none;
      auto body = CreateFetchResponse(fbb, fbb.CreateVector(none), st.error,
                                      fbb.CreateString(st.message), commits);
      s.q->respond(envelope(fbb, s.q->id(), Body::FetchResponse, body.Union()));
      a.answered = true;
      return a;
    }
  }
  std::vector<flatbuffers::Offset<FetchResult>> results;
  std::vector<std::vector<std::byte>> data;
  // The broker caps what one fetch may return, whatever the client asks.
  std::int64_t budget = std::min<std::int64_t>(req->max_bytes(), c.cfg.max_fetch_bytes);
  bool any_error = false;
  struct served {
    topic_counters* counters;
    std::uint64_t records, bytes;
  };
  std::vector<served> out;  // counted only when the fetch is answered
  for (const auto* e : *req->entries()) {
    ErrorCode err;
    auto* p = c.topics.find(e->topic()->string_view(), e->partition(), err);
    std::int64_t hw = -1, start = -1;
    std::uint32_t frame = 0;
    std::string msg;
    if (p != nullptr) {
      auto& log = *p->log;
      hw = log.high_watermark().value();
      start = log.log_start_offset().value();
      a.positions.emplace_back(p, e->offset());
      if (budget > 0) {
        auto got =
            log.read(offset(e->offset()),
                     static_cast<std::size_t>(std::min<std::int64_t>(e->max_bytes(), budget)));
        if (!got) {
          err = to_wire(got.error());
          msg = err == ErrorCode::OffsetOutOfRange
                    ? fmt::format("offset {} is outside [{}, {}]", e->offset(), start, hw)
                    : got.error().message();
        } else if (got.value().batches > 0) {
          auto n = static_cast<std::int64_t>(got.value().data.size());
          budget -= n;
          a.bytes += n;
          // Offsets are dense: the records from the one asked for on.
          const auto from = std::max(e->offset(), start);
          out.push_back({p->counters,
                         static_cast<std::uint64_t>(
                             std::max<std::int64_t>(0, got.value().next_offset.value() - from)),
                         static_cast<std::uint64_t>(n)});
          data.push_back(std::move(got.value().data));
          frame = static_cast<std::uint32_t>(data.size());
        }
      }
    } else {
      msg = topic_table::missing(e->topic()->string_view(), e->partition(), err);
    }
    if (err != ErrorCode::None) {
      any_error = true;
      c.stats.refuse(err);
    }
    results.push_back(CreateFetchResult(fbb, fbb.CreateString(e->topic()->string_view()),
                                        e->partition(), err, hw, start, frame,
                                        opt_string(fbb, msg)));
  }
  if (!final && !any_error && a.bytes < std::max(1, req->min_bytes())) return a;
  for (const auto& o : out) {
    if (o.counters == nullptr) continue;
    o.counters->records_out->inc(o.records);
    o.counters->bytes_out->inc(o.bytes);
  }
  auto commits = commits_of(fbb, c.stats, s);
  auto body = CreateFetchResponse(fbb, fbb.CreateVector(results), ErrorCode::None, 0, commits);
  if (c.quotas && a.bytes > 0) {
    // The records it carries, against the principal's fetch rate.
    const auto wait = c.quotas->charge(quota_principal(s.q->principal), quota_kind::fetch,
                                       static_cast<std::int64_t>(a.bytes));
    s.q->throttle_ms = std::max(s.q->throttle_ms, static_cast<std::uint32_t>(wait.count()));
  }
  auto resp = envelope(fbb, s.q->id(), Body::FetchResponse, body.Union(), s.q->throttle_ms);
  resp.data = std::move(data);
  s.q->respond(std::move(resp));
  a.answered = true;
  return a;
}

}  // namespace

void handle_fetch(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto* req = q->env->body_as_FetchRequest();
  auto s = std::make_shared<fetch_state>();
  if (req->commit()) {
    const auto* m = req->member();
    auto entries = commit_entries(req->commit());
    s->commit =
        stage_commit(c, m->group()->string_view(),
                     member_ref{m->member_id()->string_view(), m->generation(), instance_of(m)},
                     entries, false, r.now());
    r.after_offsets_sync([s](round& rr, std::error_code sync) {
      core_thread.assert_held();  // the pipeline runs it after the offsets sync
      finish_commit(rr.core(), *s->commit, sync);
    });
  }
  auto w = std::make_unique<fetch_waiter>();
  w->deadline = q->deadline;
  w->min_bytes = std::max(1, req->min_bytes());
  w->member = req->member() != nullptr;
  s->q = std::move(q);
  w->attempt = [s](round& rr, bool final) {
    core_thread.assert_held();  // the pipeline tries fetches in its rounds
    return attempt(rr, *s, final);
  };
  r.fetch(std::move(w));
}

}  // namespace ferry::broker
