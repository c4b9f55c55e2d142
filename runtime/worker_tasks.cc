// Running handlers on the pool and what their outcomes do: the retry
// decision (decide_after_failure), attempts, skipped duplicates.
#include "worker_impl.h"

namespace ferry::runtime {

using detail::kInlineRetryBudget;

void worker::impl::run_task(const worker_options& o, ferry::clock& clk, task& t) {
  const std::string& worker_name = o.worker_name;
  const auto& s = t.p->sub->s;
  const std::string_view origin_topic = t.p->origin_topic;
  std::unordered_set<std::string> failed_keys, ok_keys;
  bool stop = false;
  auto call = [&](auto&& fn) -> result<void> {
    detail::clear_note();
    try {
      return fn();
    } catch (const std::exception& ex) {
      return retriable(errc::handler_exception, ex.what());
    } catch (...) {
      return retriable(errc::handler_exception, "an exception that is not a std::exception");
    }
  };
  auto record_failure = [&](entry& e, const std::error_code& ec,
                            std::optional<detail::error_note> taken = std::nullopt) {
    e.out = entry::outcome::failed;
    e.err = ec;
    auto n = taken ? std::move(*taken) : detail::take_note();
    if (n.ec == ec) {
      e.cls = n.cls;
      e.err_message = std::move(n.message);
    } else {
      e.cls = error_class::retriable;
      e.err_message.clear();
    }
    if (e.err_message.empty()) e.err_message = ec.message();
  };
  if (s.on_batch) {
    std::vector<message> msgs;
    std::vector<entry*> run;
    // Only what the ledger (or this worker) already finished is skipped: a
    // repeat of a key inside the batch runs with it (the batch may fail).
    for (auto* e : t.items) {
      if (e->duplicate) {
        e->out = entry::outcome::skipped;
        continue;
      }
      run.push_back(e);
    }
    for (auto* e : run)
      msgs.emplace_back(e->rec, origin_topic, e->origin, e->idem, e->attempts + 1);
    if (!run.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = call([&] { return s.on_batch(std::span<const message>(msgs)); });
      t.p->m->handler_seconds->observe(std::chrono::steady_clock::now() - t0);
      const auto ended = clk.wall_now().value();
      // One note for the whole batch: every record gets its class.
      auto note = r ? detail::error_note{} : detail::take_note();
      for (auto* e : run) {
        e->ended_ms = ended;
        if (r)
          e->out = entry::outcome::ok;
        else
          record_failure(*e, r.error(), note);
      }
    }
    return;
  }
  // A chunk hands its results back after o.chunk_budget at most: what it has
  // not started goes back to the queue for the next chunk. Without the
  // bound, a chunk of hundreds of slow records (a handler that waits on a
  // database or a produce) finished nothing for seconds - no commit, no
  // progress, and a crash repeated all of it.
  const auto started = std::chrono::steady_clock::now();
  const auto budget = o.chunk_budget;
  bool out_of_time = false;
  for (auto* e : t.items) {
    const std::string* key = e->rec.key ? &*e->rec.key : nullptr;
    if (!out_of_time && budget.count() > 0 && e != t.items.front())
      out_of_time = std::chrono::steady_clock::now() - started >= budget;
    if (stop || out_of_time || (s.order != ordering::in_order && key && failed_keys.count(*key))) {
      e->out = out_of_time && !stop ? entry::outcome::deferred : entry::outcome::not_run;
      continue;
    }
    if (e->duplicate || (s.skip_processed_keys && e->idem && ok_keys.count(*e->idem))) {
      e->out = entry::outcome::skipped;
      continue;
    }
    result<void> r = success();
    bool final_failure = false;  // the record goes to a DLQ or tier: nothing waits for it
    const auto chain_start = std::chrono::steady_clock::now();
    // One clock read per attempt: its end is the next one's start (the
    // handler histogram and the inline retry budget share it).
    auto attempt_start = chain_start;
    for (;;) {
      message m(e->rec, origin_topic, e->origin, e->idem, e->attempts + 1);
      r = call([&] { return s.handler(m); });
      const auto attempt_end = std::chrono::steady_clock::now();
      t.p->m->handler_seconds->observe(attempt_end - attempt_start);
      attempt_start = attempt_end;
      e->ended_ms = clk.wall_now().value();
      if (r) break;
      record_failure(*e, r.error());
      // A retry with no backoff runs here at once (no round trip through the
      // polling thread); the last attempt's failure is left to on_failure().
      // The decision is the one on_failure() makes (decide_after_failure).
      const auto d = decide_after_failure(s, e->cls, e->err, e->attempts + 1);
      if (d.what == failure_decision::action::dead_letter ||
          d.what == failure_decision::action::tier || t.p->tier >= 0) {
        final_failure = true;
        break;
      }
      if (d.what == failure_decision::action::retry_later) break;  // waits for its backoff
      // Slow attempts go back to the polling thread, which commits the count
      // before the next one (a crash then loses at most the last attempt).
      if (attempt_start - chain_start > kInlineRetryBudget) break;
      ++e->attempts;
      e->inline_failures++;
      e->history.add_attempt({e->ended_ms, e->cls, e->err.category().name(), e->err.value(),
                              e->err_message, worker_name});
      e->history.attempts_total = e->attempts;
    }
    if (r) {
      e->out = entry::outcome::ok;
      if (e->idem) ok_keys.insert(*e->idem);
      continue;
    }
    if (final_failure) continue;  // dead-lettered or sent to a tier: later records go on
    if (t.p->tier < 0 && s.order == ordering::in_order) stop = true;
    if (key) failed_keys.insert(*key);
  }
  t.handled_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (const auto* e : t.items)
    if (e->out == entry::outcome::ok || e->out == entry::outcome::failed) ++t.handled;
}

bool worker::impl::drain_completions(bool block) {
  std::deque<std::unique_ptr<task>> done;
  {
    std::unique_lock lock(pool_mu_);
    if (block) done_cv_.wait_for(lock, 50ms, [&] { return !done_.empty(); });
    done.swap(done_);
  }
  for (auto& t : done) {
    --tasks_out_;
    complete(*t);
  }
  return !done.empty();
}

void worker::impl::complete(task& t) {
  part& p = *t.p;
  const auto wall = clock_->wall_now().value();
  --p.running;
  if (t.handled > 0) {
    // How long a record's handling takes here, smoothed: key-level lanes
    // open only for handlers that wait (lanes_of).
    const double per = t.handled_seconds / static_cast<double>(t.handled);
    p.record_seconds = p.record_seconds < 0 ? per : 0.8 * p.record_seconds + 0.2 * per;
  }
  if (t.lane < p.lane_busy.size()) p.lane_busy[t.lane] = false;
  for (const auto& k : t.held_keys) p.running_keys.erase(k);
  for (const auto& k : t.held_idem) p.running_idem.erase(k);
  for (auto* e : t.items) {
    if (e->inline_failures > 0) {
      bump([n = e->inline_failures](worker_stats& st) {
        st.failed_attempts += static_cast<std::uint64_t>(n);
      });
      p.m->retried->inc(static_cast<std::uint64_t>(e->inline_failures));
      e->inline_failures = 0;
    }
    switch (e->out) {
      case entry::outcome::ok:
        crash_point("runtime.handled");  // side effect done, offset not committed
        finished(p, *e, e->attempts + 1);
        bump([](worker_stats& s) { ++s.succeeded; });
        p.m->ok->inc();
        if (e->idem) {
          p.keys.emplace_back(e->rec.offset.value(), *e->idem);
          ++pending_keys_;
          uncommitted_.insert_or_assign(*e->idem, wall);
        }
        break;
      case entry::outcome::skipped:
        finished(p, *e, 0);  // no attempt: not in the attempts histogram
        bump([](worker_stats& s) { ++s.duplicates_skipped; });
        p.m->duplicate_skipped->inc();
        break;
      case entry::outcome::not_run:
      case entry::outcome::deferred:
      case entry::outcome::none:
        // Ask the ledger again before it runs (its key may be done by now),
        // unless it was only deferred: then only this worker's own finished
        // keys can have changed, and those are checked every time.
        if (e->out != entry::outcome::deferred) e->checked = false;
        if (e->attempts > 0) {
          e->state = entry::st::waiting;  // its due time has passed: runs next
          waiting_.fetch_add(1);
        } else {
          e->state = entry::st::queued;
        }
        break;
      case entry::outcome::failed:
        on_failure(p, *e);
        break;
    }
    e->out = entry::outcome::none;
  }
}

void worker::impl::finished(part& p, entry& e, int attempts) {
  e.state = entry::st::done;
  if (attempts > 0) {
    note_attempts(attempts);
    p.m->attempts->observe(static_cast<double>(attempts));
  }
  in_flight_.fetch_sub(1);
}

bool worker::impl::log_failure(spdlog::level::level_enum level, const std::string& line) {
  const auto now = clock_->steady_now();
  if (now >= failure_log_window_) {
    failure_log_window_ = now + std::chrono::seconds(1);
    failure_lines_ = 0;
  }
  if (failure_lines_ >= kFailureLinesPerSecond) {
    ++failure_lines_dropped_;
    return false;
  }
  ++failure_lines_;
  if (failure_lines_dropped_ > 0) {
    detail::worker_logger()->log(
        level, "{} ({} more failure line(s) not logged; ferry_worker_records_total counts all)",
        line, failure_lines_dropped_);
    failure_lines_dropped_ = 0;
  } else {
    detail::worker_logger()->log(level, "{}", line);
  }
  return true;
}

void worker::impl::on_failure(part& p, entry& e) {
  const auto& s = p.sub->s;
  if (!e.failure_logged) {
    e.failure_logged = true;
    (void)log_failure(spdlog::level::info,
                      fmt::format("{}/{}/{}{}: attempt {} failed ({}, {}:{}): {}; max_attempts {}",
                                  p.tp.topic, p.tp.partition.value(), e.rec.offset.value(),
                                  e.rec.key ? " key " + *e.rec.key : std::string(), e.attempts + 1,
                                  to_string(e.cls), e.err.category().name(), e.err.value(),
                                  e.err_message, s.retry.max_attempts));
  }
  ++e.attempts;
  bump([](worker_stats& st) { ++st.failed_attempts; });
  e.history.add_attempt(
      {e.ended_ms, e.cls, e.err.category().name(), e.err.value(), e.err_message, o_.worker_name});
  e.history.attempts_total = e.attempts;
  e.meta = {e.rec.offset.value(), e.attempts,
            e.history.attempts.empty() ? e.ended_ms : e.history.attempts.front().time_ms,
            e.err_message, -1};
  const auto d = decide_after_failure(s, e.cls, e.err, e.attempts);
  switch (d.what) {
    case failure_decision::action::dead_letter:
      e.meta.route = static_cast<int>(d.reason);
      e.route_target = p.sub->dlq_for(p.origin_topic);
      e.route_reason = d.reason;
      e.route_message = d.reason == dead_letter_reason::attempts_exhausted
                            ? fmt::format("{} attempts failed; last: {}", e.attempts, e.err_message)
                            : e.err_message;
      route(p, e);
      return;
    case failure_decision::action::tier:
      e.route_target = tier_topic(p.origin_topic, s.tiers[d.tier]);
      e.route_reason.reset();
      e.route_message.clear();
      route(p, e);
      return;
    case failure_decision::action::retry_now:
    case failure_decision::action::retry_later:
      break;
  }
  e.due = clock_->steady_now() + d.backoff->delay(e.attempts, o_.random());
  e.state = entry::st::waiting;
  e.checked = false;  // ask again before the retry: its key may be done by now
  waiting_.fetch_add(1);
  // The attempt count goes into the committed metadata before the next
  // attempt (zero-backoff retries that stay within kInlineRetryBudget run
  // inside the task and do not come here until their last failure).
  p.urgent = true;
  crash_point("runtime.retry_scheduled");
  bump([](worker_stats& st) { ++st.retries_scheduled; });
  p.m->retried->inc();
}

}  // namespace ferry::runtime
