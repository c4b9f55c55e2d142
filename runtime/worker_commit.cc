// Commits (offsets, attempt metadata, route watermarks, ledger keys) and
// rebalances (loading committed state, scanning routes, revoking).
#include "worker_impl.h"

namespace ferry::runtime {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  return detail::worker_logger();
}

}  // namespace

// --- commits ------------------------------------------------------------------------

result<void> worker::impl::commit(bool force, const std::vector<client::topic_partition>* only) {
  struct unit {
    part* p = nullptr;
    client::offset_commit c;
    std::size_t keys_to = 0;  // p->keys[0, keys_to) are in this or an earlier unit
    bool last = false;        // the partition's final unit: offset = next
  };
  std::vector<unit> units;
  for (auto& [tp, pp] : parts_) {
    if (only && std::find(only->begin(), only->end(), tp) == only->end()) continue;
    part& p = *pp;
    if (!p.loaded) continue;  // its progress is not known: never overwrite it
    while (!p.q.empty() && p.q.front()->state == entry::st::done) {
      p.next = p.q.front()->rec.offset.value() + 1;
      p.q.pop_front();
    }
    detail::progress pr;
    // Watermarks move up to what this partition had acknowledged once
    // nothing of it is on its way (progress.h).
    bool routing = false;
    for (const auto& e : p.q)
      if (e->state == entry::st::routing || e->state == entry::st::route_failed) routing = true;
    if (!routing)
      for (const auto& [target, off] : p.last_ack) p.wm[target] = std::max(p.wm[target], off + 1);
    pr.watermarks = p.wm;
    std::vector<std::int64_t> done;
    for (const auto& e : p.q) {
      if (e->state == entry::st::done) done.push_back(e->rec.offset.value());
      // Records on their way to a DLQ keep their attempts here until the
      // broker has the dead letter: a crash before that must not restart them.
      if (e->meta.attempts > 0 && e->state != entry::st::done && p.tier < 0)
        pr.attempts.push_back(e->meta);
    }
    for (auto s : p.skip)
      if (s >= p.next) done.push_back(s);
    for (const auto& [off, a] : p.restored)  // not fetched again yet
      if (off >= p.next) pr.attempts.push_back(a);
    std::sort(done.begin(), done.end());
    pr.done = detail::to_ranges(done);
    auto meta = detail::encode_progress(pr);
    if (!force && p.next == p.last_next && meta == p.last_meta && p.keys.empty()) continue;
    // The keys go with the offset that covers them, in one durable write;
    // many keys are spread over several commits of rising offsets (each at
    // most kKeysPerCommit keys / kKeyBytesPerCommit bytes).
    std::stable_sort(p.keys.begin(), p.keys.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t i = 0;
    do {
      unit u;
      u.p = &p;
      u.c.tp = tp;
      u.c.metadata = meta;
      std::size_t bytes = 0;
      std::int64_t last_off = -1;
      while (i < p.keys.size() && u.c.ledger_keys.size() < kKeysPerCommit &&
             bytes < kKeyBytesPerCommit) {
        bytes += p.keys[i].second.size() + 8;
        last_off = p.keys[i].first;
        u.c.ledger_keys.push_back(p.keys[i].second);
        ++i;
      }
      u.keys_to = i;
      u.last = i >= p.keys.size();
      // Never below what may be committed already (a refused regression
      // would fail the whole request, every time).
      u.c.next = offset(u.last ? p.next : std::max(p.last_next, std::min(p.next, last_off + 1)));
      units.push_back(std::move(u));
    } while (i < p.keys.size());
  }
  if (units.empty()) return success();
  result<void> r = success();
  std::size_t at = 0;
  while (at < units.size()) {
    std::vector<client::offset_commit> req;
    std::size_t bytes = 0, end = at;
    while (end < units.size() && (req.empty() || bytes < kKeyBytesPerCommit)) {
      for (const auto& k : units[end].c.ledger_keys) bytes += k.size() + 8;
      bytes += units[end].c.metadata.size() + 64;
      req.push_back(units[end].c);
      ++end;
    }
    const auto timeout = closing_ ? remaining_close_budget() : o_.commit_timeout;
    r = consumer_->commit(req, timeout);
    if (!r) {
      // Logged here, once per failed request, with what it was for; callers
      // do not log it again. A later commit carries the same offsets.
      std::string what;
      for (std::size_t k = at; k < end && k < at + 4; ++k)
        what += fmt::format("{}{}-{}@{}", what.empty() ? "" : ", ", units[k].c.tp.topic,
                            units[k].c.tp.partition.value(), units[k].c.next.value());
      if (end - at > 4) what += fmt::format(" and {} more", end - at - 4);
      logger()->info("commit of {} failed: {} ({}); the next commit retries it{}", what,
                     r.error().message(), consumer_->last_error_message(),
                     force ? " (routes of newly assigned partitions wait for it)" : "");
      if (closing_) break;  // no next commit
      // The outcome may be unknown (a lost reply) or partial: learn what the
      // broker has, so that the next commit starts from there.
      std::vector<client::topic_partition> tps;
      for (std::size_t k = at; k < end; ++k) tps.push_back(units[k].c.tp);
      if (auto c = consumer_->committed(tps, o_.commit_timeout))
        for (const auto& x : c.value())
          if (auto it = parts_.find(x.tp); it != parts_.end() && x.next)
            it->second->last_next = std::max(it->second->last_next, x.next->value());
      break;
    }
    for (std::size_t k = at; k < end; ++k) {
      part& p = *units[k].p;
      p.keys_done = units[k].keys_to;
      p.last_next = std::max(p.last_next, units[k].c.next.value());
      if (units[k].last) {
        p.last_meta = units[k].c.metadata;
        p.urgent = false;
        p.wm_committed = true;
        bump([](worker_stats& st) { ++st.commits; });
        metrics_->commits().inc();
      }
    }
    at = end;
  }
  // Keys that went out are no longer pending; the rest go with the next commit.
  for (auto& u : units) {
    part& p = *u.p;
    if (p.keys_done == 0) continue;
    pending_keys_ -= std::min(pending_keys_, p.keys_done);
    for (std::size_t k = 0; k < p.keys_done; ++k) uncommitted_.erase(p.keys[k].second);
    p.keys.erase(p.keys.begin(), p.keys.begin() + static_cast<std::ptrdiff_t>(p.keys_done));
    p.keys_done = 0;
  }
  return r;
}

// --- rebalances -----------------------------------------------------------------------

std::vector<std::string> worker::impl::targets_of(const part& p) const {
  std::vector<std::string> t{p.sub->dlq_for(p.origin_topic)};
  for (const auto& tier : p.sub->s.tiers) t.push_back(tier_topic(p.origin_topic, tier));
  return t;
}

// Records this partition routed but whose origin offsets were not
// committed (a crash or rebalance in between): find them in the targets
// from the watermarks on, and treat them as done.
result<void> worker::impl::scan_routes(part& p) {
  client::consumer_options co = o_.consumer;
  co.group_id.clear();
  co.fetch_max_wait = 50ms;
  std::map<std::string, std::int64_t> ends;
  for (const auto& target : targets_of(p)) {
    const auto n = target_partitions_[target];
    const partition_id tpart(n > 0 ? p.tp.partition.value() % n : 0);
    FERRY_TRY(auto end, admin_->list_offsets(target, tpart, client::offset_spec::latest));
    const std::int64_t end_off = end ? end->value() : 0;
    ends[target] = end_off;
    auto w = p.wm.find(target);
    if (w == p.wm.end() || w->second >= end_off) continue;
    client::consumer c(co);
    FERRY_TRY(c.assign({{target, tpart}}));
    FERRY_TRY(c.seek({target, tpart}, offset(w->second)));
    std::int64_t at = w->second;
    const auto deadline = std::chrono::steady_clock::now() + o_.consumer.api_timeout;
    while (at < end_off) {
      if (std::chrono::steady_clock::now() > deadline) return ferry::errc::timed_out;
      FERRY_TRY(auto recs, c.poll(100ms));
      for (const auto& r : recs) {
        at = r.offset.value() + 1;
        auto h = get_header(r.headers, kRouteHeader);
        if (!h) continue;
        auto id = parse_route(*h);
        if (!id || id->group != o_.consumer.group_id || id->source.topic != p.tp.topic ||
            id->source.partition != p.tp.partition.value() || id->source.offset < p.next)
          continue;
        if (p.skip.insert(id->source.offset).second) {
          bump([](worker_stats& s) { ++s.recovered_routes; });
          logger()->info("{}-{} offset {}: already routed to {} at offset {}; not again",
                         p.tp.topic, p.tp.partition.value(), id->source.offset, target,
                         r.offset.value());
        }
      }
    }
  }
  // From now on a route lands at or above today's ends.
  p.wm = std::move(ends);
  return success();
}

void worker::impl::assigned(const std::vector<client::topic_partition>& tps) {
  joined_ = true;  // in the group (with or without partitions): ready
  std::vector<client::topic_partition> fresh;
  for (const auto& tp : tps) {
    if (parts_.count(tp)) continue;
    auto it = by_topic_.find(tp.topic);
    if (it == by_topic_.end()) continue;
    auto p = std::make_unique<part>();
    p->tp = tp;
    p->sub = it->second.sub;
    p->tier = it->second.tier;
    p->origin_topic = it->second.origin;
    p->m = &metrics_->topic(p->origin_topic);
    parts_[tp] = std::move(p);
    fresh.push_back(tp);
  }
  if (fresh.empty()) return;
  for (const auto& tp : fresh) {
    part& p = *parts_[tp];
    if (!load(p)) {
      // Retried by run_once(); its records are not fetched meanwhile.
      if (consumer_->pause({tp})) p.paused = true;
    }
  }
  const std::vector<client::topic_partition> only = fresh;
  (void)commit(true, &only);  // a failure is logged by commit(); routes wait for it
}

// Reads the partition's committed offset and progress and scans the route
// targets. False (logged) when the broker could not tell: then nothing of
// the partition may be handled, or its progress would be overwritten.
bool worker::impl::load(part& p) {
  const auto& tp = p.tp;
  // Retried every second while the broker cannot tell: one line per
  // distinct failure, and one when it finally worked.
  auto failed = [&](std::string what) {
    ++p.load_failures;
    if (what != p.load_error)
      logger()->warn("{}-{}: {}; trying again every second (nothing of it is handled meanwhile)",
                     tp.topic, tp.partition.value(), what);
    p.load_error = std::move(what);
    return false;
  };
  auto committed = consumer_->committed({tp});
  if (!committed)
    return failed(
        fmt::format("cannot read the committed offset ({})", committed.error().message()));
  std::optional<detail::progress> pr;
  bool have = false;
  for (const auto& c : committed.value())
    if (c.tp == tp && c.next) {
      p.next = c.next->value();
      p.last_next = p.next;
      pr = detail::decode_progress(c.metadata);
      have = true;
    }
  if (!have) {
    auto pos = consumer_->position(tp);
    if (!pos)
      return failed(fmt::format("cannot look up the start position ({})", pos.error().message()));
    p.next = pos.value().value();
  }
  p.wm.clear();
  p.skip.clear();
  p.restored.clear();
  if (pr) {
    p.wm = pr->watermarks;
    for (const auto& [a, b] : pr->done)
      for (auto o = std::max(a, p.next); o <= b && o - a < 100'000; ++o) p.skip.insert(o);
    for (const auto& a : pr->attempts)
      if (a.offset >= p.next) p.restored[a.offset] = a;
  }
  if (auto r = scan_routes(p); !r)
    return failed(
        fmt::format("looking for records already routed failed ({})", r.error().message()));
  if (p.load_failures > 0)
    logger()->info("{}-{}: loaded after {} failed attempt(s)", tp.topic, tp.partition.value(),
                   p.load_failures);
  p.load_error.clear();
  p.load_failures = 0;
  p.loaded = true;
  p.wm_committed = false;
  p.urgent = true;  // the new watermarks must be committed before the first route
  return true;
}

void worker::impl::revoked(const std::vector<client::topic_partition>& tps, bool lost) {
  if (lost) joined_ = false;  // out of the group until the next assignment
  for (const auto& tp : tps) {
    auto it = parts_.find(tp);
    if (it != parts_.end()) wait_idle(it->second.get());
  }
  if (routes_out_ > 0)
    (void)producer_->flush(closing_ ? remaining_close_budget() : o_.producer.delivery_timeout);
  take_acks();
  if (!lost) (void)commit(true, &tps);
  for (const auto& tp : tps) {
    auto it = parts_.find(tp);
    if (it == parts_.end()) continue;
    std::size_t unfinished = 0;
    for (const auto& e : it->second->q) {
      if (e->state != entry::st::done) ++unfinished;
      if (e->state == entry::st::waiting) waiting_.fetch_sub(1);
    }
    in_flight_.fetch_sub(std::min(unfinished, in_flight_.load()));
    pending_keys_ -= std::min(pending_keys_, it->second->keys.size());
    for (const auto& k : it->second->keys) uncommitted_.erase(k.second);
    // Acknowledgements may still arrive for it (flush timed out): keep it
    // alive until none is outstanding.
    if (routes_out_ > 0) graveyard_.push_back(std::move(it->second));
    parts_.erase(it);
  }
}

}  // namespace ferry::runtime
