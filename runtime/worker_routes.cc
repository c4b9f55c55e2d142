// Routing failed records to tier and dead-letter topics, and the
// producer acknowledgements that finish them.
#include "worker_impl.h"

namespace ferry::runtime {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  return detail::worker_logger();
}

}  // namespace

void worker::impl::route(part& p, entry& e) {
  if (!p.wm_committed) {
    // A crash after this route must find it: the watermarks go first.
    e.state = entry::st::route_failed;
    e.due = clock_->steady_now();
    p.urgent = true;
    return;
  }
  client::producer_record r;
  r.topic = e.route_target;
  const auto n = target_partitions_[e.route_target];
  r.partition = partition_id(n > 0 ? p.tp.partition.value() % n : 0);
  r.key = e.rec.key;
  r.value = e.rec.value;
  r.headers = e.rec.headers;
  failure_record f = e.history;
  f.origin_topic = e.origin.topic;
  f.origin_partition = e.origin.partition;
  f.origin_offset = e.origin.offset;
  f.origin_key = e.rec.key;
  if (p.tier < 0) f.origin_timestamp_ms = e.rec.timestamp.value();
  f.group = o_.consumer.group_id;
  f.worker = o_.worker_name;
  f.attempts_total = e.attempts;
  if (e.route_reason) {
    f.reason = *e.route_reason;
    f.reason_message = e.route_message;
    f.dead_lettered_ms = clock_->wall_now().value();
  }
  set_header(r.headers, kFailureHeader, encode_failure(f));
  set_header(r.headers, kOriginHeader, format_position(e.origin));
  set_header(r.headers, kRouteHeader,
             format_route({o_.consumer.group_id,
                           {p.tp.topic, p.tp.partition.value(), e.rec.offset.value()}}));
  set_header(r.headers, kAttemptHeader, std::to_string(e.attempts));
  // Due times of tier records are their timestamps plus the tier's delay.
  r.timestamp = clock_->wall_now();
  e.state = entry::st::routing;
  ++routes_out_;
  auto sent = producer_->send(std::move(r), [this, pp = &p, pe = &e](const auto& m) {
    {
      std::lock_guard lock(ack_mu_);
      acks_.push_back({pp, pe, m});
    }
    if (auto* c = wake_target_.load()) c->wakeup();
  });
  if (!sent) {
    --routes_out_;
    route_failed(p, e, sent.error());
  }
}

// The record stays (its offset is not committed) and is routed again; the
// failure is counted, kept in last_error() and logged once per record and
// error, not every second.
void worker::impl::route_failed(part& p, entry& e, std::error_code ec) {
  bump([](worker_stats& st) { ++st.route_failures; });
  metrics_->route_failures().inc();
  const auto what =
      fmt::format("{}-{} offset {}: routing to {} failed: {}", p.tp.topic, p.tp.partition.value(),
                  e.rec.offset.value(), e.route_target, ec.message());
  if (e.route_error != ec) {
    e.route_error = ec;
    logger()->warn("{}; trying again every second (the offset stays uncommitted)", what);
  }
  route_error_ = what;
  e.state = entry::st::route_failed;
  e.due = clock_->steady_now() + 1s;
}

void worker::impl::take_acks() {
  std::vector<ack> acks;
  {
    std::lock_guard lock(ack_mu_);
    acks.swap(acks_);
  }
  if (acks.empty() && routes_out_ == 0) graveyard_.clear();
  for (auto& a : acks) {
    --routes_out_;
    entry& e = *a.e;
    if (!a.r) {
      route_failed(*a.p, e, a.r.error());
      continue;
    }
    auto& last = a.p->last_ack[e.route_target];
    last = std::max(last, a.r.value().offset.value());
    // A record handed to a retry tier is not finished for good: its last
    // attempt is counted where it succeeds or is dead-lettered.
    finished(*a.p, e, e.route_reason ? e.attempts : 0);
    crash_point("runtime.route_acked");  // routed, origin offset not committed
    if (e.route_reason) {
      bump([](worker_stats& s) { ++s.dead_lettered; });
      a.p->m->dead_lettered->inc();
      (void)log_failure(
          spdlog::level::warn,
          fmt::format("{}{}: dead-lettered to {} at offset {} after {} attempt(s) "
                      "({}): {}. See: ferry dlq show {} {}/{}",
                      format_position(e.origin), e.rec.key ? " key " + *e.rec.key : std::string(),
                      e.route_target, a.r.value().offset.value(), e.attempts,
                      to_string(*e.route_reason), e.route_message, e.route_target,
                      a.r.value().partition.value(), a.r.value().offset.value()));
    } else {
      bump([](worker_stats& s) { ++s.tier_routed; });
      a.p->m->retried->inc();
    }
  }
}

void worker::impl::wait_idle(part* only) {
  for (;;) {
    const bool busy = only ? only->running : tasks_out_ > 0;
    if (!busy) return;
    drain_completions(true);
  }
}

}  // namespace ferry::runtime
