// The worker's state machine, per record (entry::st):
//
//   queued --dispatch--> running --ok/duplicate--> done
//                           |--failed, retry in memory--> waiting --due--> running
//                           |--failed, tier or dead letter--> routing --ack--> done
//                           |                                    `--send failed--> route_failed
//                           --due--> routing
//                           `--not run (an earlier failure in the chunk, or the
//                              chunk ran out of time: chunk_budget)--> queued
//
// Per partition (part) the entries sit in offset order; the committed
// offset is the first entry not done (finished entries at the front are
// dropped). One chunk of a partition runs at a time, on a pool thread -
// in key_ordered one chunk per lane, a key's records in one lane at a time
// (key-level concurrency); the polling thread owns every other piece of
// state. A chunk is the
// entries that may run now: in_order, the queued ones from the first
// unfinished (stopping at one waiting for its retry); key_ordered, every
// queued or due entry whose key no earlier waiting entry holds; tiers,
// the due records at the front.
#include "worker_impl.h"

namespace ferry::runtime {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  return detail::worker_logger();
}

}  // namespace

// --- start / stop --------------------------------------------------------------

result<void> worker::impl::start() {
  if (subs_.empty()) return fail(ferry::errc::invalid_argument, "no subscription");
  if (o_.consumer.group_id.empty())
    return fail(ferry::errc::invalid_argument, "worker_options.consumer.group_id is required");
  if (!o_.metrics_listen.empty() && !endpoint_) {
    // Up before the group is joined: /readyz says 503 until then.
    ::ferry::metrics::register_process_metrics(*registry_, "worker");
    std::string why;
    auto ep = ::ferry::metrics::http_endpoint::start(
        o_.metrics_listen, *registry_, [this] { return not_ready(); }, why);
    if (!ep) return fail(ferry::errc::config_invalid, "metrics_listen: " + why);
    endpoint_ = std::move(ep).value();
    std::lock_guard lock(address_mu_);
    metrics_address_ = endpoint_->address();
  }
  if (auto up = await_broker(subs_.front()->s.topics.front()); !up) {
    return fail(up.error(), last_error_);
  } else if (!up.value()) {
    return success();  // stop() while waiting: nothing started
  }
  admin_ = std::make_unique<client::admin>(static_cast<const client::client_options&>(o_.consumer));
  // Targets exist with as many partitions as their origin, so that
  // partition p routes to partition p (and a new owner knows where to look).
  std::vector<std::string> topics;
  for (const auto& s : subs_)
    for (const auto& t : s->s.topics) {
      auto d = admin_->describe_topic(t);
      if (!d) return fail(d.error(), fmt::format("topic {}: {}", t, d.error().message()));
      const auto n = static_cast<std::int32_t>(d.value().partitions.size());
      std::vector<std::string> targets{s->dlq_for(t)};
      for (const auto& tier : s->s.tiers) targets.push_back(tier_topic(t, tier));
      for (const auto& target : targets) {
        auto td = admin_->describe_topic(target);
        if (!td && td.error() == client::errc::unknown_topic && o_.create_topics) {
          client::topic_config c;
          c.partitions = n;
          auto cr = admin_->create_topic(target, c);
          if (!cr && cr.error() != client::errc::topic_already_exists)
            return fail(cr.error(), fmt::format("creating {}: {}", target, cr.error().message()));
          td = admin_->describe_topic(target);
        }
        if (!td)
          return fail(td.error(), fmt::format("topic {} ({}): {}", target,
                                              "dead-letter or retry tier", td.error().message()));
        target_partitions_[target] = static_cast<std::int32_t>(td.value().partitions.size());
      }
      topics.push_back(t);
      for (const auto& tier : s->s.tiers) topics.push_back(tier_topic(t, tier));
    }
  consumer_ = std::make_unique<client::consumer>(o_.consumer);
  producer_ = std::make_unique<client::producer>(o_.producer);
  FERRY_TRY(consumer_->subscribe(topics, &listener_));
  wake_target_.store(consumer_.get());
  start_pool();
  started_ = true;
  next_commit_ = std::chrono::steady_clock::now() + o_.commit_interval;
  logger()->info("worker {} in group {}: {} topics, concurrency {}", o_.worker_name,
                 o_.consumer.group_id, topics.size(), o_.concurrency);
  return success();
}

result<bool> worker::impl::await_broker(const std::string& topic) {
  using sclock = std::chrono::steady_clock;
  // Short attempts, so that stop() is taken within a couple of seconds.
  client::client_options po = o_.consumer;
  po.request_timeout = po.api_timeout = std::min<milliseconds>(po.request_timeout, 2s);
  client::admin probe(po);
  const auto t0 = sclock::now();
  const auto give_up =
      wait_for_broker_forever_ ? sclock::time_point::max() : t0 + o_.consumer.api_timeout;
  milliseconds backoff = 250ms, log_every = 5s;
  auto next_log = t0;
  for (int attempt = 1;; ++attempt) {
    if (stop_requested_.load()) return false;
    auto d = probe.describe_topic(topic);
    // Any answer but "none came" is the broker's: the real calls report it.
    if (d || !client::is_retriable(d.error())) {
      if (attempt > 1)
        logger()->info("worker {}: the broker at {} answers (after {:.1f} s); starting",
                       o_.worker_name, o_.consumer.broker,
                       std::chrono::duration<double>(sclock::now() - t0).count());
      return true;
    }
    const auto now = sclock::now();
    const double waited = std::chrono::duration<double>(now - t0).count();
    if (now >= give_up) {
      last_error_ = fmt::format(
          "no answer from the broker at {} for {:.0f} s ({}): is the broker "
          "running there? (check worker_options.consumer.broker)",
          o_.consumer.broker, waited, probe.last_error_message());
      return d.error();
    }
    if (now >= next_log) {
      logger()->warn(
          "worker {}: waiting for the broker at {} ({} after {:.0f} s, attempt {}); retrying "
          "with backoff until it answers or the worker is stopped",
          o_.worker_name, o_.consumer.broker, d.error().message(), waited, attempt);
      next_log = now + log_every;
      log_every = std::min<milliseconds>(log_every * 2, 60s);
    }
    // Slept in slices: stop() may come from a signal handler, which can
    // only set the flag.
    const auto wake = std::min(sclock::now() + backoff, give_up);
    while (sclock::now() < wake && !stop_requested_.load()) std::this_thread::sleep_for(50ms);
    backoff = std::min<milliseconds>(backoff * 2, 5s);
  }
}

void worker::impl::start_pool() {
  for (int i = 0; i < o_.concurrency; ++i)
    threads_.emplace_back([this] {
      std::unique_lock lock(pool_mu_);
      for (;;) {
        pool_cv_.wait(lock, [&] { return pool_stop_ || !todo_.empty(); });
        if (todo_.empty()) return;
        auto t = std::move(todo_.front());
        todo_.pop_front();
        lock.unlock();
        run_task(o_, *clock_, *t);
        lock.lock();
        done_.push_back(std::move(t));
        done_cv_.notify_all();
        if (auto* c = wake_target_.load()) c->wakeup();
      }
    });
}

void worker::impl::stop_pool() {
  {
    std::lock_guard lock(pool_mu_);
    pool_stop_ = true;
  }
  pool_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

result<void> worker::impl::close() {
  if (!started_ || closed_) return success();
  closed_ = true;
  wait_idle(nullptr);
  // One budget for the rest: a broker that went away cannot hold the stop.
  closing_ = true;
  close_deadline_ = std::chrono::steady_clock::now() + o_.commit_timeout;
  (void)producer_->flush(std::min<milliseconds>(o_.producer.delivery_timeout, o_.commit_timeout));
  take_acks();
  auto r = commit(true);
  // close(): on_revoked commits once more (nothing new) and leaves the group.
  auto c = consumer_->close();
  parts_.clear();
  in_flight_.store(0);
  publish();
  refresh_waiting();
  (void)producer_->close(remaining_close_budget());  // undelivered routes run again
  if (!r)
    return fail(r.error(),
                fmt::format("stopping: the final commit to {} failed ({}); what was handled since "
                            "the last commit is handled again by the next owner (at least once; "
                            "keys the ledger recorded are skipped)",
                            o_.consumer.broker, r.error().message()));
  if (!c) return fail(c.error(), "stopping: leaving the group failed: " + c.error().message());
  return success();
}

// --- the loop ----------------------------------------------------------------------

result<void> worker::impl::run_once(milliseconds max_wait) {
  if (closed_) return fail(errc::stopped, "the worker was closed");
  if (!started_) {
    FERRY_TRY(start());
    if (!started_) return success();  // stopped while waiting for the broker
  }
  drain_completions(false);
  take_acks();
  for (auto& [tp, p] : parts_) {
    if (p->loaded || std::chrono::steady_clock::now() < p->retry_load_at) continue;
    if (load(*p)) {
      (void)consumer_->seek(tp, offset(p->next));
      if (consumer_->resume({tp})) p->paused = false;
    } else {
      p->retry_load_at = std::chrono::steady_clock::now() + 1s;
    }
  }
  for (auto& [_, p] : parts_) dispatch(*p);
  // Commits run on real time (the injected clock drives retries only).
  if (std::chrono::steady_clock::now() >= next_commit_ || pending_keys_ >= kCommitAtPendingKeys ||
      std::any_of(parts_.begin(), parts_.end(), [](const auto& kv) { return kv.second->urgent; })) {
    (void)commit(false);
    next_commit_ = std::chrono::steady_clock::now() + o_.commit_interval;
  }
  auto records = consumer_->poll(next_wait(max_wait));
  if (!records) {
    const auto ec = records.error();
    if (ec == protocol::errc::timed_out || ec == protocol::errc::disconnected) {
      logger()->warn("worker {}: no answer from the broker at {} ({}: {}); still trying",
                     o_.worker_name, o_.consumer.broker, ec.message(),
                     consumer_->last_error_message());
      return success();
    }
    if (client::is_retriable(ec) || ec == client::errc::rebalance_in_progress ||
        ec == client::errc::unknown_member || ec == client::errc::stale_generation) {
      logger()->info("poll: {} ({}); going on", ec.message(), consumer_->last_error_message());
      return success();
    }
    return fail(ec, fmt::format("poll: {}: {}", ec.message(), consumer_->last_error_message()));
  }
  enqueue(records.value());
  drain_completions(false);
  take_acks();
  for (auto& [_, p] : parts_) dispatch(*p);
  publish();
  if (clock_->steady_now() >= next_waiting_scan_) {
    refresh_waiting();
    next_waiting_scan_ = clock_->steady_now() + 100ms;
  }
  return success();
}

// ferry_worker_retry_waiting and _oldest_age_seconds per mode: a scan of
// the buffered records, at most every 100 ms (run_once). In memory retries
// (in_order, key_ordered) wait in state waiting; delay_tiers records wait
// in their tier partition until due.
void worker::impl::refresh_waiting() {
  struct acc {
    std::size_t n = 0;
    std::int64_t first_ms = std::numeric_limits<std::int64_t>::max();
  };
  std::array<acc, 3> by_mode{};
  const auto now_ms = clock_->wall_now().value();
  for (const auto& [_, p] : parts_) {
    const auto mode = p->sub->s.order;
    const bool tier = p->tier >= 0;
    if (!tier && waiting_.load() == 0) continue;
    auto& a = by_mode[static_cast<std::size_t>(mode)];
    for (const auto& e : p->q) {
      if (tier) {
        // Fetched from a tier and not yet due (as dispatch() decides).
        if (e->state != entry::st::queued) continue;
        const auto& t = p->sub->s.tiers[static_cast<std::size_t>(p->tier)];
        if (now_ms >= e->rec.timestamp.value() + t.delay.count()) continue;
      } else if (e->state != entry::st::waiting) {
        continue;
      }
      ++a.n;
      const std::int64_t first = e->history.attempts.empty() ? e->rec.timestamp.value()
                                                             : e->history.attempts.front().time_ms;
      a.first_ms = std::min(a.first_ms, first);
    }
  }
  const auto wall = clock_->wall_now().value();
  for (auto mode : {ordering::in_order, ordering::key_ordered, ordering::delay_tiers}) {
    const auto& a = by_mode[static_cast<std::size_t>(mode)];
    const double age =
        a.n == 0 ? 0.0 : static_cast<double>(std::max<std::int64_t>(0, wall - a.first_ms)) / 1000.0;
    metrics_->set_waiting(mode, a.n, age);
  }
}

milliseconds worker::impl::next_wait(milliseconds max_wait) const {
  {
    std::lock_guard lock(pool_mu_);
    if (!done_.empty()) return 0ms;
  }
  const auto real_now = std::chrono::steady_clock::now();
  if (next_commit_ <= real_now) return 0ms;
  max_wait = std::min(max_wait, std::chrono::ceil<milliseconds>(next_commit_ - real_now));
  const auto now = clock_->steady_now();
  auto until = now + max_wait;
  const auto wall = clock_->wall_now().value();
  // The same eligibility as dispatch(): only what it would run when due.
  for (const auto& [_, p] : parts_) {
    if (p->running || !p->loaded) continue;
    std::unordered_set<std::string_view> blocked;
    for (const auto& e : p->q) {
      if (e->state == entry::st::route_failed) {
        until = std::min(until, e->due);
        continue;
      }
      if (e->state != entry::st::waiting && e->state != entry::st::queued) continue;
      if (p->tier >= 0) {
        const auto due_ms = e->rec.timestamp.value() +
                            p->sub->s.tiers[static_cast<std::size_t>(p->tier)].delay.count();
        until = std::min(until, now + milliseconds(std::max<std::int64_t>(0, due_ms - wall)));
        break;
      }
      if (p->sub->s.order == ordering::in_order) {
        if (e->state == entry::st::waiting) until = std::min(until, e->due);
        break;  // the head decides
      }
      if (e->state != entry::st::waiting) continue;
      if (e->rec.key && !blocked.insert(*e->rec.key).second) continue;  // behind its key
      until = std::min(until, e->due);
    }
  }
  if (until <= now) return 0ms;
  return std::chrono::ceil<milliseconds>(until - now);
}

void worker::impl::enqueue(std::vector<client::consumer_record>& records) {
  for (auto& r : records) {
    auto it = parts_.find({r.topic, r.partition});
    if (it == parts_.end()) continue;  // revoked meanwhile
    part& p = *it->second;
    if (!p.loaded || r.offset.value() < p.next) continue;  // unloaded: fetched again after seek
    if (p.skip.erase(r.offset.value()) > 0) {
      p.restored.erase(r.offset.value());
      // Finished before a crash or rebalance (metadata "d" or a route found).
      if (p.q.empty() && r.offset.value() == p.next) {
        p.next = r.offset.value() + 1;
        continue;
      }
      auto e = std::make_unique<entry>();
      e->rec = std::move(r);
      e->state = entry::st::done;
      p.q.push_back(std::move(e));
      continue;
    }
    auto e = std::make_unique<entry>();
    e->rec = std::move(r);
    e->origin = {e->rec.topic, e->rec.partition.value(), e->rec.offset.value()};
    if (auto h = get_header(e->rec.headers, protocol::kIdempotencyKeyHeader))
      e->idem = std::move(h);
    if (p.tier >= 0) {
      // A record from a retry tier: its origin and attempts travel in headers.
      if (auto o = get_header(e->rec.headers, kOriginHeader))
        if (auto pos = parse_position(*o)) e->origin = *pos;
      if (auto f = get_header(e->rec.headers, kFailureHeader))
        if (auto fr = decode_failure(*f)) e->history = std::move(fr).value();
      if (auto a = get_header(e->rec.headers, kAttemptHeader)) {
        try {
          e->attempts = std::max(0, std::stoi(*a));
        } catch (const std::exception&) {
          e->attempts = e->history.attempts_total;
        }
      }
    }
    if (auto rs = p.restored.find(e->rec.offset.value()); rs != p.restored.end()) {
      // Attempts made by an earlier owner (in_order / key_ordered).
      e->attempts = rs->second.attempts;
      e->meta = rs->second;
      // One entry per earlier attempt, so attempts are numbered as they
      // happened: only the first's time and the last's error survived the
      // restart (the commit metadata), the rest say so.
      e->history.attempts_total = 0;
      e->history.attempts.clear();
      const int earlier = std::max(1, rs->second.attempts);
      for (int i = 1; i <= earlier; ++i) {
        const bool last = i == earlier;
        std::string what = last && !rs->second.last_error.empty()
                               ? rs->second.last_error
                               : std::string(
                                     "(made before a restart or rebalance; its error was "
                                     "not kept)");
        e->history.add_attempt({i == 1 ? rs->second.first_ms : 0, error_class::retriable, "", 0,
                                std::move(what), "(earlier owner)"});
      }
      p.restored.erase(rs);
      const bool was_routing = e->meta.route >= 0 && e->meta.route <= 2;
      if (was_routing || e->attempts >= p.sub->s.retry.max_attempts) {
        // It was dead-lettered before the restart, but its dead letter never
        // reached the broker (the route scan found none): route it now
        // instead of calling the handler once more.
        e->route_target = p.sub->dlq_for(p.origin_topic);
        e->route_reason = was_routing ? static_cast<dead_letter_reason>(e->meta.route)
                                      : dead_letter_reason::attempts_exhausted;
        e->route_message =
            *e->route_reason == dead_letter_reason::attempts_exhausted
                ? fmt::format("{} attempts failed; last: {}", e->attempts, e->meta.last_error)
                : e->meta.last_error;
        e->state = entry::st::route_failed;  // dispatch() routes it at once
        e->due = {};
      }
    }
    p.q.push_back(std::move(e));
    in_flight_.fetch_add(1);
  }
  for (auto& [tp, p] : parts_)
    if (!p->paused && p->q.size() >= o_.max_buffered) {
      if (consumer_->pause({tp})) p->paused = true;
    }
}

// --- dispatch -----------------------------------------------------------------------

void worker::impl::dispatch(part& p) {
  if (closed_ || !p.loaded) return;
  if (p.running == 0)  // the lane count changes only between chunks
    if (const auto want = lanes_of(p); p.lane_busy.size() != want) p.lane_busy.assign(want, false);
  const std::size_t lanes = p.lane_busy.size();
  if (p.running >= lanes) return;  // every lane has a chunk out
  // Finished entries at the front move the commit position.
  while (!p.q.empty() && p.q.front()->state == entry::st::done) {
    p.next = p.q.front()->rec.offset.value() + 1;
    p.q.pop_front();
  }
  if (p.paused && p.q.size() < o_.max_buffered / 2) {
    if (consumer_->resume({p.tp})) p.paused = false;
  }
  const auto now = clock_->steady_now();
  const auto order = p.sub->s.order;
  std::vector<entry*> items;
  std::unordered_set<std::string> blocked;
  for (auto& up : p.q) {
    entry& e = *up;
    if (e.state == entry::st::route_failed) {
      if (now >= e.due) route(p, e);
      continue;  // routed records do not hold the partition (in_order) or their key
    }
    if (e.state == entry::st::done || e.state == entry::st::routing ||
        e.state == entry::st::running)
      continue;
    if (p.tier >= 0) {
      // Tier records are due in order (one delay per tier): stop at the first not due.
      const auto due_ms =
          e.rec.timestamp.value() + p.sub->s.tiers[static_cast<std::size_t>(p.tier)].delay.count();
      if (clock_->wall_now().value() < due_ms) break;
      items.push_back(&e);
      continue;
    }
    if (order == ordering::in_order) {
      if (e.state == entry::st::waiting && now < e.due) break;
      items.push_back(&e);
      continue;
    }
    // key_ordered and delay_tiers (which never waits in memory). A key that
    // runs in another lane holds its later records.
    const std::string* key = e.rec.key ? &*e.rec.key : nullptr;
    if (key && (blocked.count(*key) || p.running_keys.count(*key))) continue;
    if (e.state == entry::st::waiting && now < e.due) {
      if (key) blocked.insert(*key);
      continue;
    }
    items.push_back(&e);
    if (items.size() >= 1024) break;
  }
  if (items.empty()) return;
  check_duplicates(p, items);
  // The free lanes share the records: each key's records go to one lane,
  // in offset order, keys round-robin, at most `cap` records a lane (the
  // rest wait for a lane to come back). A record whose idempotency key
  // runs, or is placed, in another lane waits too, and so does everything
  // after it with its record key: two records with one idempotency key
  // never run at once, and the later is a skipped duplicate once the
  // earlier succeeded.
  std::vector<std::size_t> free;
  for (std::size_t l = 0; l < lanes; ++l)
    if (!p.lane_busy[l]) free.push_back(l);
  std::vector<std::vector<entry*>> by_slot(free.size());
  if (lanes <= 1) {
    by_slot[0] = std::move(items);
  } else {
    const std::size_t cap = std::max<std::size_t>(16, 1024 / lanes);
    std::unordered_map<std::string_view, std::size_t> key_slot, idem_slot;
    std::unordered_set<std::string_view> held;
    std::size_t rr = 0;
    for (auto* e : items) {
      const std::string* key = e->rec.key ? &*e->rec.key : nullptr;
      if (key && held.count(*key)) continue;
      std::size_t slot = rr % free.size();
      bool fresh_key = true;
      if (key)
        if (auto it = key_slot.find(*key); it != key_slot.end()) {
          slot = it->second;
          fresh_key = false;
        }
      if (by_slot[slot].size() >= cap) {
        if (key) held.insert(*key);
        continue;
      }
      if (e->idem && !e->duplicate) {
        auto [it, fresh] = idem_slot.emplace(*e->idem, slot);
        if (p.running_idem.count(*e->idem) || (!fresh && it->second != slot)) {
          if (key) held.insert(*key);
          continue;
        }
      }
      if (fresh_key) ++rr;
      if (key) key_slot.emplace(*key, slot);
      by_slot[slot].push_back(e);
    }
  }
  for (std::size_t slot = 0; slot < free.size(); ++slot) {
    auto& run = by_slot[slot];
    if (run.empty()) continue;
    auto t = std::make_unique<task>();
    for (auto* e : run) {
      if (e->state == entry::st::waiting) waiting_.fetch_sub(1);
      e->state = entry::st::running;
      if (lanes > 1) {
        if (e->rec.key && p.running_keys.insert(*e->rec.key).second)
          t->held_keys.push_back(*e->rec.key);
        if (e->idem && !e->duplicate && p.running_idem.insert(*e->idem).second)
          t->held_idem.push_back(*e->idem);
      }
    }
    t->p = &p;
    t->lane = free[slot];
    t->items = std::move(run);
    p.lane_busy[t->lane] = true;
    ++p.running;
    submit(std::move(t));
  }
}

std::size_t worker::impl::lanes_of(const part& p) const {
  const auto& s = p.sub->s;
  if (s.order != ordering::key_ordered || p.tier >= 0 || s.on_batch || o_.concurrency <= 1)
    return 1;
  if (s.partition_concurrency > 0)
    return static_cast<std::size_t>(std::min(s.partition_concurrency, o_.concurrency));
  // The default opens lanes only for handlers that wait: for records handled
  // in microseconds more lanes only add bookkeeping (docs/benchmarks.md).
  if (p.record_seconds >= 0 && p.record_seconds < kLaneThresholdSeconds) return 1;
  return static_cast<std::size_t>(o_.concurrency);
}

void worker::impl::check_duplicates(part& p, const std::vector<entry*>& items) {
  if (!p.sub->s.skip_processed_keys) return;
  const auto window = p.sub->s.idempotency_window;
  const auto wall = clock_->wall_now().value();
  std::vector<std::string> ask;
  std::vector<entry*> asked;
  for (auto* e : items) {
    if (!e->idem || e->duplicate) continue;
    // Finished here and not committed yet: known without asking (checked
    // every time, cheap, as this worker finishes keys between chunks).
    if (auto it = uncommitted_.find(*e->idem);
        it != uncommitted_.end() && (window.count() == 0 || wall - it->second <= window.count())) {
      e->duplicate = true;
      e->checked = true;
      continue;
    }
    if (e->checked) continue;
    e->checked = true;
    ask.push_back(*e->idem);
    asked.push_back(e);
  }
  if (ask.empty()) return;
  auto found = consumer_->ledger_lookup(ask, window);
  if (!found) {
    // Not knowing is not a reason to skip: run the handler (at least once).
    logger()->warn(
        "{}-{} offsets {}..{}: idempotency ledger lookup failed: {} ({}); handling {} records "
        "without it (at least once)",
        p.tp.topic, p.tp.partition.value(), asked.front()->rec.offset.value(),
        asked.back()->rec.offset.value(), found.error().message(), consumer_->last_error_message(),
        ask.size());
    return;
  }
  for (std::size_t i = 0; i < asked.size(); ++i)
    if (found.value()[i]) asked[i]->duplicate = true;
}

void worker::impl::submit(std::unique_ptr<task> t) {
  ++tasks_out_;
  if (o_.concurrency <= 0) {
    // On this thread, finished at once: run_once() is deterministic.
    run_task(o_, *clock_, *t);
    --tasks_out_;
    complete(*t);
    return;
  }
  {
    std::lock_guard lock(pool_mu_);
    todo_.push_back(std::move(t));
  }
  pool_cv_.notify_one();
}

// --- worker -----------------------------------------------------------------------

worker::worker(worker_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
worker::~worker() = default;
result<void> worker::subscribe(subscription s) {
  return impl_->subscribe(std::move(s));
}
std::shared_ptr<schema_gate> worker::schemas() {
  std::lock_guard lock(schemas_mu_);
  if (!schemas_)
    schemas_ = std::make_shared<schema_gate>(std::make_shared<client::schema_cache>(
        static_cast<const client::client_options&>(impl_->options().consumer)));
  return schemas_;
}
result<void> worker::run() {
  return impl_->run();
}
result<void> worker::run_once(std::chrono::milliseconds max_wait) {
  return impl_->run_once(max_wait);
}
void worker::stop() noexcept {
  impl_->stop();
}
result<void> worker::close() {
  return impl_->close();
}
worker_stats worker::stats() const {
  return impl_->stats();
}
std::size_t worker::in_flight() const {
  return impl_->in_flight();
}
const std::string& worker::last_error() const noexcept {
  return impl_->last_error();
}
::ferry::metrics::registry& worker::metrics() noexcept {
  return impl_->registry();
}
std::string worker::metrics_address() const {
  return impl_->metrics_address();
}

}  // namespace ferry::runtime
