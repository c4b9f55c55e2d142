// Committed offsets: commit (with idempotency keys into the group's
// ledger, commits.h), fetch, and the ledger lookup the runtime uses to skip
// keys already processed.
#include <limits>

#include "ferry/core/clock.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

void handle_commit_offsets(round& r, std::unique_ptr<native_request> q) {
  const auto* req = q->env->body_as_CommitOffsetsRequest();
  std::optional<member_ref> member;
  if (const auto* m = req->member())
    member = member_ref{m->member_id()->string_view(), m->generation(), instance_of(m)};
  auto entries = commit_entries(req->entries());
  auto staged =
      stage_commit(r.core(), req->group()->string_view(), member, entries, req->reset(), r.now());
  r.after_offsets_sync(
      [q = std::move(q), s = std::move(staged)](round& rr, std::error_code sync) mutable {
        core_thread.assert_held();  // the pipeline runs it after the offsets sync
        auto& c = rr.core();
        finish_commit(c, s, sync);
        const auto* rq = q->env->body_as_CommitOffsetsRequest();
        if (rq->member() == nullptr) {
          // Offsets moved by an administrator (ferry groups reset-offsets).
          auto moved = nlohmann::json::array();
          if (rq->entries())
            for (const auto* e : *rq->entries())
              moved.push_back({{"topic", e->topic()->string_view()},
                               {"partition", e->partition()},
                               {"offset", e->offset()}});
          audit(c, *q, "group.reset_offsets",
                {{"group", rq->group()->string_view()}, {"offsets", moved}}, s.request.error,
                s.request.message);
        }
        flatbuffers::FlatBufferBuilder fbb(256);
        auto msg = opt_string(fbb, s.request.message);
        auto results = commit_results(fbb, c.stats, s);
        auto body = CreateCommitOffsetsResponse(fbb, s.request.error, msg, results);
        q->respond(envelope(fbb, q->id(), Body::CommitOffsetsResponse, body.Union()));
      });
}

void handle_fetch_offsets(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto* req = q->env->body_as_FetchOffsetsRequest();
  const auto group = req->group()->string_view();
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<CommittedOffset>> v;
  auto add = [&](const std::string& t, std::int32_t p) {
    core_thread.assert_held();  // called right here
    const auto* committed = c.offsets->committed(group, {t, p});
    v.push_back(CreateCommittedOffset(fbb, fbb.CreateString(t), p,
                                      committed ? committed->offset : -1,
                                      committed ? opt_string(fbb, committed->metadata) : 0,
                                      committed ? committed->commit_ms : 0));
  };
  if (req->partitions() != nullptr && req->partitions()->size() > 0) {
    for (const auto* tp : *req->partitions())
      if (tp->partitions())
        for (auto p : *tp->partitions()) add(tp->topic()->str(), p);
  } else if (auto g = c.offsets->groups().find(group); g != c.offsets->groups().end()) {
    for (const auto& [tp, _] : g->second)
      if (may(c, *q, acl_resource::topic, tp.first, acl_op::describe)) add(tp.first, tp.second);
  }
  auto body = CreateFetchOffsetsResponse(fbb, ErrorCode::None, 0, fbb.CreateVector(v));
  q->respond(envelope(fbb, q->id(), Body::FetchOffsetsResponse, body.Union()));
}

void handle_ledger_lookup(round& r, std::unique_ptr<native_request> q) {
  // Only durable keys are visible (a key staged in this round is not).
  auto& c = r.core();
  const auto* req = q->env->body_as_LedgerLookupRequest();
  const auto group = req->group()->string_view();
  const auto wall = system_clock::instance().wall_now().value();
  const std::int64_t min_ms =
      req->window_ms() > 0 ? wall - req->window_ms() : std::numeric_limits<std::int64_t>::min();
  std::vector<std::int64_t> found;
  found.reserve(req->keys()->size());
  for (const auto* k : *req->keys())
    found.push_back(c.offsets->ledger_lookup(group, k->string_view(), min_ms).value_or(-1));
  flatbuffers::FlatBufferBuilder fbb(256 + 8 * found.size());
  auto body = CreateLedgerLookupResponse(fbb, ErrorCode::None, 0, fbb.CreateVector(found));
  q->respond(envelope(fbb, q->id(), Body::LedgerLookupResponse, body.Union()));
}

}  // namespace ferry::broker
