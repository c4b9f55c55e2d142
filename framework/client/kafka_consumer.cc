// The consumer over kafka:// (transport.h), on librdkafka's consumer.
//
// How the contract of consumer.h is kept:
// - Positions are Ferry's own (pos_): poll() returns records at or above a
//   partition's position and moves it, and drops what librdkafka had
//   already fetched for a paused partition or below a seek; resume() seeks
//   librdkafka back to the position, so nothing dropped is skipped.
// - Groups use Kafka's group protocol with the consumer's assignor: range,
//   roundrobin, or (sticky) cooperative-sticky, so a rebalance revokes only
//   what moves. The listener is called from inside poll() (librdkafka's
//   rebalance callback runs there), and seek() inside on_assigned() sets
//   where the new partitions start.
// - commit() is synchronous. Its ledger keys are recorded durably in the
//   group's ledger topic (kafka_ledger.h) before the offsets are committed,
//   so a crash between the two replays records whose keys the ledger
//   already has. The metadata goes with the offsets (Kafka keeps up to
//   offset.metadata.max.bytes, 4096 by default).
// - commit_async() commits at once too; its callback runs from a later
//   poll(), commit() or close(), as over the native protocol.
// Differences: Kafka lets a group commit below its committed offset (no
// errc::offset_regression) and does not check that a committed partition
// is assigned to the member (a fenced member still gets
// errc::stale_generation or errc::unknown_member); generation() is -1.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "kafka_common.h"
#include "kafka_ledger.h"
#include "transport.h"

namespace ferry::client {

namespace {

using std::chrono::milliseconds;
using sclock = std::chrono::steady_clock;

std::string tp_name(const topic_partition& tp) {
  return fmt::format("{}-{}", tp.topic, tp.partition.value());
}

const char* strategy_name(assign_strategy s) {
  switch (s) {
    case assign_strategy::range:
      return "range";
    case assign_strategy::round_robin:
      return "roundrobin";
    case assign_strategy::sticky:
      break;
  }
  return "cooperative-sticky";
}

const char* reset_name(offset_reset r) {
  switch (r) {
    case offset_reset::earliest:
      return "earliest";
    case offset_reset::latest:
      return "latest";
    case offset_reset::none:
      break;
  }
  return "error";
}

// At most this many records per poll(): the rest wait in librdkafka.
constexpr std::size_t kMaxRecordsPerPoll = 10'000;
// Messages taken from librdkafka's queue at a time.
constexpr std::size_t kBatch = 512;

class kafka_consumer final : public consumer::backend {
 public:
  kafka_consumer(consumer& self, consumer_options o) : self_(&self), o_(std::move(o)) {
    api_timeout_ = o_.api_timeout;
    kafka::settings s = {
        {"client.id", o_.client_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"allow.auto.create.topics", "false"},
        {"check.crcs", "true"},
        {"auto.offset.reset", reset_name(o_.auto_offset_reset)},
        {"fetch.max.bytes", std::to_string(std::max(1, o_.fetch_max_bytes))},
        {"max.partition.fetch.bytes", std::to_string(std::max(1, o_.partition_max_bytes))},
        {"fetch.wait.max.ms",
         std::to_string(std::clamp<std::int64_t>(o_.fetch_max_wait.count(), 0, 300'000))},
        {"session.timeout.ms", std::to_string(o_.session_timeout.count())},
        {"heartbeat.interval.ms", std::to_string(o_.heartbeat_interval.count())},
        {"max.poll.interval.ms",
         std::to_string(std::max(o_.max_poll_interval.count(), o_.session_timeout.count()))},
        {"partition.assignment.strategy", strategy_name(o_.strategy)},
        // A long poll must not outlast the socket time-out (librdkafka wants
        // a second between them).
        {"socket.timeout.ms",
         std::to_string(std::clamp<std::int64_t>(
             std::max(o_.request_timeout.count(),
                      std::min<std::int64_t>(o_.fetch_max_wait.count(), 300'000) + 1000),
             10, 300'000))},
    };
    // librdkafka's assign() needs a group.id even when nothing joins or
    // commits; without one of its own the consumer never uses it.
    s.emplace_back("group.id", o_.group_id.empty() ? kafka::kAssignOnlyGroup : o_.group_id);
    if (!o_.group_instance_id.empty()) s.emplace_back("group.instance.id", o_.group_instance_id);
    auto h = kafka::make_handle(
        RD_KAFKA_CONSUMER, o_, s, &init_why_,
        [](rd_kafka_conf_t* conf, void* me) {
          rd_kafka_conf_set_opaque(conf, me);
          rd_kafka_conf_set_rebalance_cb(conf, &kafka_consumer::rebalance_cb);
        },
        this);
    if (!h) {
      init_error_ = h.error();
      log::get("client")->error("{}", init_why_);
      return;
    }
    rk_ = std::move(h).value();
    rd_kafka_poll_set_consumer(rk_.get());
    queue_ = rd_kafka_queue_get_consumer(rk_.get());
    if (!o_.group_id.empty())
      ledger_ =
          std::make_unique<kafka::ledger>(static_cast<const client_options&>(o_), o_.group_id);
  }

  ~kafka_consumer() override {
    if (!rk_) return;
    listener_ = nullptr;  // the destructor leaves without callbacks
    closing_ = true;
    if (!closed_) (void)rd_kafka_consumer_close(rk_.get());
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
    rk_.reset();
  }

  void rebind(consumer& self) noexcept override { self_ = &self; }

  // --- assignment and positions ------------------------------------------------

  result<void> assign(std::vector<topic_partition> partitions) override {
    FERRY_TRY(ready());
    last_error_message_.clear();
    if (subscribed_) {
      last_error_message_ = "assign() cannot be combined with subscribe(); unsubscribe() first";
      return ferry::errc::invalid_argument;
    }
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
    std::set<topic_partition> next(partitions.begin(), partitions.end());
    for (auto it = pos_.begin(); it != pos_.end();)
      it = next.count(it->first) ? std::next(it) : pos_.erase(it);
    for (auto it = paused_.begin(); it != paused_.end();)
      it = next.count(*it) ? std::next(it) : paused_.erase(it);
    assigned_ = std::move(next);
    return reassign();
  }

  std::vector<topic_partition> assignment() const override {
    return {assigned_.begin(), assigned_.end()};
  }

  result<void> seek(const topic_partition& tp, offset position) override {
    FERRY_TRY(ready());
    last_error_message_.clear();
    if (!assigned_.count(tp)) {
      last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
      return ferry::errc::not_found;
    }
    if (position.value() < 0) return ferry::errc::invalid_argument;
    return move_to({{tp, position.value()}});
  }

  result<void> seek_to_beginning(std::span<const topic_partition> partitions) override {
    return seek_logical(partitions, [&](const topic_partition& tp) { return watermark(tp, true); });
  }
  result<void> seek_to_end(std::span<const topic_partition> partitions) override {
    return seek_logical(partitions,
                        [&](const topic_partition& tp) { return watermark(tp, false); });
  }
  result<void> seek_to_timestamp(std::span<const topic_partition> partitions,
                                 timestamp_ms timestamp) override {
    return seek_logical(partitions, [&](const topic_partition& tp) -> result<std::int64_t> {
      kafka::partition_list l = kafka::make_list({tp});
      l->elems[0].offset = timestamp.value();
      const auto err = rd_kafka_offsets_for_times(rk_.get(), l.get(), api_ms());
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::from_kafka(err);
      if (l->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::from_kafka(l->elems[0].err);
      if (l->elems[0].offset >= 0) return l->elems[0].offset;
      return watermark(tp, false);  // no record at or after it: the log end
    });
  }

  result<offset> position(const topic_partition& tp) override {
    FERRY_TRY(ready());
    last_error_message_.clear();
    if (!assigned_.count(tp)) {
      last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
      return ferry::errc::not_found;
    }
    if (auto it = pos_.find(tp); it != pos_.end()) return offset(it->second);
    // Nothing returned yet: where librdkafka starts, i.e. the committed
    // offset of a group, else per auto_offset_reset.
    if (!o_.group_id.empty()) {
      FERRY_TRY(auto c, committed({tp}, o_.api_timeout));
      if (!c.empty() && c.front().next) {
        pos_[tp] = c.front().next->value();
        return *c.front().next;
      }
    }
    if (o_.auto_offset_reset == offset_reset::none) {
      last_error_message_ = fmt::format("{} has no position (auto_offset_reset none)", tp_name(tp));
      return errc::offset_out_of_range;
    }
    FERRY_TRY(auto w, watermark(tp, o_.auto_offset_reset == offset_reset::earliest));
    pos_[tp] = w;
    return offset(w);
  }

  // --- polling -------------------------------------------------------------------

  result<std::vector<consumer_record>> poll(milliseconds timeout) override {
    FERRY_TRY(ready());
    last_poll_ = sclock::now();
    last_error_message_.clear();
    run_callbacks();
    std::vector<consumer_record> out;
    if (!deferred_.empty()) return take_deferred();  // met by an earlier poll()
    const auto deadline = sclock::now() + timeout;
    if (woken_.exchange(false)) return out;           // woken before this poll: return at once
    std::map<topic_partition, std::int64_t> dropped;  // paused: first offset dropped
    // Messages come in batches (one lock and wake-up per batch, not per
    // record): the first wait is for one message, then whatever is there.
    std::array<rd_kafka_message_t*, kBatch> batch{};
    while (out.size() < kMaxRecordsPerPoll && deferred_.empty()) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - sclock::now());
      const bool first = out.empty();
      const int wait = first ? kafka::timeout_ms(std::max(left, milliseconds(0))) : 0;
      const std::size_t want = first ? 1 : std::min(kBatch, kMaxRecordsPerPoll - out.size());
      const ssize_t n = rd_kafka_consume_batch_queue(queue_, wait, batch.data(), want);
      run_callbacks();
      if (n <= 0) {
        if (!out.empty() || woken_.exchange(false) || sclock::now() >= deadline) break;
        continue;
      }
      // Every message of the batch is looked at (none may be left behind).
      for (ssize_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = batch[static_cast<std::size_t>(i)];
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          on_error(m);
          continue;
        }
        const topic_partition tp{rd_kafka_topic_name(m->rkt), partition_id(m->partition)};
        const auto pos = pos_.find(tp);
        if (!assigned_.count(tp) || (pos != pos_.end() && m->offset < pos->second)) {
          rd_kafka_message_destroy(m);
          continue;
        }
        if (paused_.count(tp)) {
          dropped.try_emplace(tp, m->offset);
          rd_kafka_message_destroy(m);
          continue;
        }
        out.push_back(kafka::to_record(m));
        pos_[tp] = m->offset + 1;
        rd_kafka_message_destroy(m);
      }
    }
    // librdkafka moved past what was dropped: it starts there on resume().
    for (const auto& [tp, first] : dropped)
      if (!pos_.count(tp)) pos_[tp] = first;
    // Every error is reported, one per poll(): the first now when no record
    // came with it, the rest (say, an offset reset on each of several
    // partitions) by the next calls.
    if (out.empty() && !deferred_.empty()) return take_deferred();
    return out;
  }

  std::error_code take_deferred() {
    auto [e, text] = std::move(deferred_.front());
    deferred_.pop_front();
    last_error_message_ = std::move(text);
    return e;
  }

  // An error message from librdkafka: retried by librdkafka (a broker that
  // cannot be reached) or by rejoining (a member that went too long
  // without poll() left the group; the revocation comes through the
  // listener), else kept for the caller (deferred_).
  void on_error(rd_kafka_message_t* m) {
    const auto kerr = m->err;
    auto ec = kafka::from_kafka(kerr);
    std::string text = rd_kafka_message_errstr(m);
    if (m->rkt != nullptr)
      text = fmt::format("{}-{}: {}", rd_kafka_topic_name(m->rkt), m->partition, text);
    rd_kafka_message_destroy(m);
    if (kerr == RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED) {
      log::get("client")->warn("kafka consumer: {}; rejoining the group", text);
      return;
    }
    if (is_retriable(ec)) {
      log::get("client")->debug("kafka consumer: {}", text);
      return;
    }
    if (kerr == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) ec = errc::offset_out_of_range;
    deferred_.emplace_back(ec, std::move(text));
  }

  // --- groups --------------------------------------------------------------------

  result<void> subscribe(std::vector<std::string> topics, rebalance_listener* listener) override {
    FERRY_TRY(ready());
    last_error_message_.clear();
    if (o_.group_id.empty() || topics.empty() || (!subscribed_ && !assigned_.empty())) {
      last_error_message_ = o_.group_id.empty() ? "subscribe() needs consumer_options::group_id"
                            : topics.empty()    ? "subscribe() needs at least one topic"
                                                : "unassign() before subscribe()";
      return ferry::errc::invalid_argument;
    }
    for (const auto& t : topics)
      if (!protocol::valid_topic_name(t)) {
        last_error_message_ = fmt::format("invalid topic name '{}'", t);
        return errc::invalid_topic_name;
      }
    kafka::partition_list l(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
    for (const auto& t : topics)
      rd_kafka_topic_partition_list_add(l.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    if (const auto err = rd_kafka_subscribe(rk_.get(), l.get()); err) {
      last_error_message_ = rd_kafka_err2str(err);
      return kafka::from_kafka(err);
    }
    topics_ = std::move(topics);
    listener_ = listener;
    subscribed_ = true;
    return success();
  }

  result<void> unsubscribe() override {
    FERRY_TRY(ready());
    if (!subscribed_) return success();
    revoke_all();
    (void)rd_kafka_unsubscribe(rk_.get());
    subscribed_ = false;
    topics_.clear();
    return success();
  }

  std::vector<std::string> subscription() const override {
    return subscribed_ ? topics_ : std::vector<std::string>{};
  }

  result<void> commit(const std::vector<offset_commit>& offsets,
                      std::chrono::milliseconds /*timeout: librdkafka's own bound it*/) override {
    FERRY_TRY(ready());
    run_callbacks();
    return commit_now(offsets);
  }

  result<void> commit_positions() override {
    std::vector<offset_commit> v;
    for (const auto& tp : assigned_)
      if (auto it = pos_.find(tp); it != pos_.end()) v.push_back({tp, offset(it->second), {}, {}});
    return commit(v, o_.api_timeout);
  }

  void commit_async(std::vector<offset_commit> offsets, consumer::commit_callback done) override {
    std::vector<commit_result> results;
    auto r = commit_now(offsets, &results);
    if (!r && results.empty())
      for (const auto& c : offsets) results.push_back({c.tp, r.error(), last_error_message_});
    if (done) completed_.emplace_back(std::move(done), std::move(results));
  }

  result<std::vector<committed_position>> committed(std::vector<topic_partition> partitions,
                                                    std::chrono::milliseconds timeout) override {
    FERRY_TRY(ready());
    if (o_.group_id.empty()) {
      last_error_message_ = "committed() needs consumer_options::group_id";
      return ferry::errc::invalid_argument;
    }
    if (partitions.empty()) partitions.assign(assigned_.begin(), assigned_.end());
    std::vector<committed_position> out;
    if (partitions.empty()) return out;
    kafka::partition_list l = kafka::make_list(partitions);
    const auto deadline = sclock::now() + timeout;
    for (;;) {
      const auto err = rd_kafka_committed(rk_.get(), l.get(),
                                          kafka::timeout_ms(std::min(o_.request_timeout, timeout)));
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      const auto ec = kafka::from_kafka(err);
      if (!is_retriable(ec) || sclock::now() >= deadline) {
        last_error_message_ =
            fmt::format("committed offsets of group {}: {}", o_.group_id, rd_kafka_err2str(err));
        return ec;
      }
      std::this_thread::sleep_for(o_.retry_backoff);
    }
    for (int i = 0; i < l->cnt; ++i) {
      const auto& e = l->elems[i];
      committed_position c;
      c.tp = {e.topic, partition_id(e.partition)};
      if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        last_error_message_ = fmt::format("{}: {}", tp_name(c.tp), rd_kafka_err2str(e.err));
        return kafka::from_kafka(e.err);
      }
      if (e.offset >= 0) c.next = offset(e.offset);
      if (e.metadata != nullptr && e.metadata_size > 0)
        c.metadata.assign(static_cast<const char*>(e.metadata), e.metadata_size);
      c.commit_time = timestamp_ms::none();  // Kafka's OffsetFetch does not tell
      out.push_back(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.tp < b.tp; });
    return out;
  }

  result<std::vector<std::optional<timestamp_ms>>> ledger_lookup(
      const std::vector<std::string>& keys, milliseconds window) override {
    FERRY_TRY(ready());
    if (!ledger_) {
      last_error_message_ = "ledger_lookup() needs consumer_options::group_id";
      return ferry::errc::invalid_argument;
    }
    auto r = ledger_->lookup(keys, window, &last_error_message_);
    if (r) last_error_message_.clear();
    return r;
  }

  result<void> pause(const std::vector<topic_partition>& partitions, bool on) override {
    FERRY_TRY(ready());
    last_error_message_.clear();
    for (const auto& tp : partitions)
      if (!assigned_.count(tp)) {
        last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
        return ferry::errc::not_found;
      }
    kafka::partition_list l = kafka::make_list(partitions);
    const auto err = on ? rd_kafka_pause_partitions(rk_.get(), l.get())
                        : rd_kafka_resume_partitions(rk_.get(), l.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last_error_message_ = rd_kafka_err2str(err);
      return kafka::from_kafka(err);
    }
    std::vector<std::pair<topic_partition, std::int64_t>> back;
    for (const auto& tp : partitions) {
      if (on) {
        paused_.insert(tp);
      } else if (paused_.erase(tp)) {
        // librdkafka may have fetched past the position while paused.
        if (auto it = pos_.find(tp); it != pos_.end()) back.emplace_back(tp, it->second);
      }
    }
    if (!back.empty()) return move_to(back, /*wait=*/false);
    return success();
  }

  std::vector<topic_partition> paused() const override { return {paused_.begin(), paused_.end()}; }

  result<void> close() override {
    if (!rk_ || closed_) return success();
    run_callbacks();
    if (subscribed_) revoke_all();
    closing_ = true;
    const auto err = rd_kafka_consumer_close(rk_.get());
    closed_ = true;
    run_callbacks();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last_error_message_ = rd_kafka_err2str(err);
      return kafka::from_kafka(err);
    }
    return success();
  }

  void wakeup() noexcept override {
    woken_.store(true);
    if (queue_ != nullptr) rd_kafka_queue_yield(queue_);
  }

 private:
  result<void> ready() {
    if (init_error_) {
      last_error_message_ = init_why_;
      return init_error_;
    }
    if (closed_) return ferry::errc::shutting_down;
    return success();
  }
  int api_ms() const { return kafka::timeout_ms(o_.api_timeout); }

  // The log start (earliest) or end of a partition.
  result<std::int64_t> watermark(const topic_partition& tp, bool low) {
    std::int64_t lo = 0, hi = 0;
    const auto err = rd_kafka_query_watermark_offsets(rk_.get(), tp.topic.c_str(),
                                                      tp.partition.value(), &lo, &hi, api_ms());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last_error_message_ = fmt::format("{}: {}", tp_name(tp), rd_kafka_err2str(err));
      return kafka::from_kafka(err);
    }
    return low ? lo : hi;
  }

  template <typename F>
  result<void> seek_logical(std::span<const topic_partition> partitions, F&& where) {
    FERRY_TRY(ready());
    last_error_message_.clear();
    std::vector<topic_partition> tps(partitions.begin(), partitions.end());
    if (tps.empty()) tps.assign(assigned_.begin(), assigned_.end());
    for (const auto& tp : tps)
      if (!assigned_.count(tp)) {
        last_error_message_ = fmt::format("{} is not assigned", tp_name(tp));
        return ferry::errc::not_found;
      }
    std::vector<std::pair<topic_partition, std::int64_t>> to;
    for (const auto& tp : tps) {
      FERRY_TRY(auto o, where(tp));
      to.emplace_back(tp, o);
    }
    return move_to(to);
  }

  // Sets positions: inside a rebalance they become the start offsets of the
  // assignment being made; with assign() the assignment is made again;
  // otherwise librdkafka seeks.
  result<void> move_to(const std::vector<std::pair<topic_partition, std::int64_t>>& to,
                       bool wait = true) {
    for (const auto& [tp, o] : to) pos_[tp] = o;
    if (in_rebalance_ || to.empty()) return success();
    if (!subscribed_) return reassign();
    kafka::partition_list l(rd_kafka_topic_partition_list_new(static_cast<int>(to.size())));
    for (const auto& [tp, o] : to)
      rd_kafka_topic_partition_list_add(l.get(), tp.topic.c_str(), tp.partition.value())->offset =
          o;
    // wait = false: asynchronous (records fetched before it are below the
    // position and dropped by poll(), or discarded by librdkafka).
    rd_kafka_error_t* e = rd_kafka_seek_partitions(rk_.get(), l.get(), wait ? api_ms() : 0);
    if (e != nullptr) {
      last_error_message_ = rd_kafka_error_string(e);
      const auto ec = kafka::from_kafka(rd_kafka_error_code(e));
      rd_kafka_error_destroy(e);
      return ec;
    }
    for (int i = 0; i < l->cnt; ++i)
      if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        last_error_message_ = fmt::format("seek {}-{}: {}", l->elems[i].topic,
                                          l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
        return kafka::from_kafka(l->elems[i].err);
      }
    return success();
  }

  // assign(): the whole assignment again, each partition from its position
  // (new ones from the log start).
  result<void> reassign() {
    kafka::partition_list l(rd_kafka_topic_partition_list_new(static_cast<int>(assigned_.size())));
    for (const auto& tp : assigned_) {
      auto* e = rd_kafka_topic_partition_list_add(l.get(), tp.topic.c_str(), tp.partition.value());
      auto it = pos_.find(tp);
      e->offset = it != pos_.end() ? it->second : RD_KAFKA_OFFSET_BEGINNING;
    }
    if (const auto err = rd_kafka_assign(rk_.get(), l.get()); err) {
      last_error_message_ = rd_kafka_err2str(err);
      return kafka::from_kafka(err);
    }
    if (!paused_.empty()) {
      kafka::partition_list p = kafka::make_list({paused_.begin(), paused_.end()});
      (void)rd_kafka_pause_partitions(rk_.get(), p.get());
    }
    return success();
  }

  result<void> commit_now(const std::vector<offset_commit>& offsets,
                          std::vector<commit_result>* results = nullptr) {
    FERRY_TRY(ready());
    last_error_message_.clear();
    if (offsets.empty()) return success();
    if (o_.group_id.empty()) {
      last_error_message_ = "commit() needs consumer_options::group_id";
      return ferry::errc::invalid_argument;
    }
    std::vector<std::string> keys;
    for (const auto& c : offsets) {
      if (c.metadata.size() > 4096) {
        last_error_message_ = fmt::format("{}: commit metadata of {} bytes (at most 4096)",
                                          tp_name(c.tp), c.metadata.size());
        return ferry::errc::invalid_argument;
      }
      keys.insert(keys.end(), c.ledger_keys.begin(), c.ledger_keys.end());
    }
    // The ledger first: an offset that covers a key is committed only once
    // the key is durable.
    if (!keys.empty()) {
      if (auto r = ledger_->record(keys, &last_error_message_); !r) return r.error();
    }
    kafka::partition_list l = kafka::make_commit_list(offsets);
    const auto deadline = sclock::now() + o_.api_timeout;
    rd_kafka_resp_err_t err;
    for (;;) {
      err = rd_kafka_commit(rk_.get(), l.get(), 0);
      const auto ec = kafka::from_kafka(err);
      if (!ec || !is_retriable(ec) || sclock::now() >= deadline) break;
      std::this_thread::sleep_for(o_.retry_backoff);
    }
    std::error_code first;
    for (int i = 0; i < l->cnt; ++i) {
      const auto& e = l->elems[i];
      const topic_partition tp{e.topic, partition_id(e.partition)};
      const auto ec = kafka::from_kafka(e.err != RD_KAFKA_RESP_ERR_NO_ERROR ? e.err : err);
      if (results) results->push_back({tp, ec, ec ? rd_kafka_err2str(e.err ? e.err : err) : ""});
      if (ec && !first) {
        first = ec;
        last_error_message_ =
            fmt::format("commit {}: {}", tp_name(tp), rd_kafka_err2str(e.err ? e.err : err));
      }
    }
    if (!first && err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      first = kafka::from_kafka(err);
      last_error_message_ = fmt::format("commit: {}", rd_kafka_err2str(err));
    }
    if (first) return first;
    return success();
  }

  void run_callbacks() {
    auto done = std::exchange(completed_, {});
    for (auto& [cb, results] : done) cb(results);
  }

  // on_revoked for the whole assignment, outside librdkafka's callback (so
  // it happens before unsubscribe()/close() return, as natively); the
  // callback that follows only lets go.
  void revoke_all() {
    if (listener_ && !assigned_.empty()) listener_->on_revoked(*self_, assignment());
    revoked_early_ = true;
  }

  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<kafka_consumer*>(opaque)->rebalance(rk, err, parts);
  }

  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    // NULL once the member has left the group (e.g. past max.poll.interval):
    // then everything is let go at once (an incremental unassign inside
    // close() there never returned: seen hanging in librdkafka 2.0.2).
    // Inside close() the protocol is not asked for at all: the call waits
    // on the group's queue, which close() may have stopped serving (seen
    // hanging forever in librdkafka 2.0.2 after the member had left); the
    // protocol of the last assignment is used, unless the member has left
    // by not polling.
    bool cooperative = false;
    if (!closing_) {
      const char* protocol = rd_kafka_rebalance_protocol(rk);
      cooperative = protocol != nullptr && std::string_view(protocol) == "COOPERATIVE";
      cooperative_ = cooperative;
    } else {
      cooperative = cooperative_ && sclock::now() - last_poll_ < o_.max_poll_interval;
    }
    const auto tps = kafka::from_list(parts);
    if (char* id = rd_kafka_memberid(rk)) {
      member_id_ = id;
      rd_kafka_mem_free(rk, id);
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      revoked_early_ = false;
      for (const auto& tp : tps) {
        assigned_.insert(tp);
        pos_.erase(tp);
      }
      in_rebalance_ = true;
      if (listener_) listener_->on_assigned(*self_, assignment());
      in_rebalance_ = false;
      // Start where on_assigned() sought, else at the committed offset.
      for (int i = 0; i < parts->cnt; ++i) {
        auto it = pos_.find({parts->elems[i].topic, partition_id(parts->elems[i].partition)});
        parts->elems[i].offset = it != pos_.end() ? it->second : RD_KAFKA_OFFSET_INVALID;
      }
      if (cooperative) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, parts)) {
          log::get("client")->warn("kafka consumer: assign: {}", rd_kafka_error_string(e));
          rd_kafka_error_destroy(e);
        }
      } else if (const auto e = rd_kafka_assign(rk, parts); e) {
        log::get("client")->warn("kafka consumer: assign: {}", rd_kafka_err2str(e));
      }
      return;
    }
    // Revoked (or an error: let everything go).
    const bool lost = rd_kafka_assignment_lost(rk) != 0;
    if (listener_ && !revoked_early_ && !tps.empty()) {
      if (lost)
        listener_->on_lost(*self_, tps);
      else
        listener_->on_revoked(*self_, tps);
    }
    for (const auto& tp : tps) {
      assigned_.erase(tp);
      pos_.erase(tp);
      paused_.erase(tp);
    }
    if (cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) {
        log::get("client")->warn("kafka consumer: unassign: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    } else {
      assigned_.clear();
      if (const auto e = rd_kafka_assign(rk, nullptr); e)
        log::get("client")->warn("kafka consumer: unassign: {}", rd_kafka_err2str(e));
    }
  }

  consumer* self_;
  const consumer_options o_;
  std::error_code init_error_;
  std::string init_why_;
  kafka::handle rk_;
  rd_kafka_queue_t* queue_ = nullptr;
  std::unique_ptr<kafka::ledger> ledger_;

  bool subscribed_ = false;
  bool closed_ = false;
  bool closing_ = false;      // inside rd_kafka_consumer_close()
  bool cooperative_ = false;  // the rebalance protocol, as of the last callback outside close
  sclock::time_point last_poll_ = sclock::now();
  bool in_rebalance_ = false;
  bool revoked_early_ = false;
  std::vector<std::string> topics_;
  rebalance_listener* listener_ = nullptr;
  std::set<topic_partition> assigned_;
  std::set<topic_partition> paused_;
  std::map<topic_partition, std::int64_t> pos_;  // next offset poll() may return
  std::atomic<bool> woken_{false};
  std::deque<std::pair<std::error_code, std::string>> deferred_;  // errors for poll() to report
  std::vector<std::pair<consumer::commit_callback, std::vector<commit_result>>> completed_;
};

}  // namespace

std::unique_ptr<consumer::backend> make_kafka_consumer(consumer& self, consumer_options options) {
  return std::make_unique<kafka_consumer>(self, std::move(options));
}

}  // namespace ferry::client
