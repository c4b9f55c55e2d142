#include "kafka_ledger.h"

#include <fmt/format.h>

#include <functional>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client::kafka {

namespace {

using sclock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kPrefix = "__ferry_ledger.";
// Longer than any window a worker uses by default (7 days), like the native
// ledger's groups.ledger_retention_ms. An operator may change retention.ms
// of the topic; keys older than it are forgotten.
constexpr std::int64_t kRetentionMs = 7ll * 24 * 3600 * 1000;

// A ledger record: kFormat, then each key as a uvarint length and its bytes.
constexpr char kFormat = 1;
constexpr std::size_t kRecordBytes = 512u << 10;

void put_uvarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::optional<std::size_t> get_uvarint(std::string_view& in) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 35 && !in.empty(); shift += 7) {
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return static_cast<std::size_t>(v);
  }
  return std::nullopt;
}

// Counts the acknowledgements of one record() call.
struct batch_state {
  std::size_t acked = 0;
  rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::vector<std::int64_t> offsets;  // where the acknowledged records are
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* b = static_cast<batch_state*>(m->_private);
  if (b == nullptr) return;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++b->acked;
    b->offsets.push_back(m->offset);
  } else if (b->first_error == RD_KAFKA_RESP_ERR_NO_ERROR)
    b->first_error = m->err;
}

}  // namespace

std::string ledger_topic(const std::string& group) {
  // Kafka refuses a topic whose name equals another's but for '.' versus
  // '_' ("a.b" and "a_b"): the group's exact name goes into a hash suffix
  // (FNV-1a, stable everywhere), which keeps every group's ledger apart.
  std::uint64_t h = 1469598103934665603ull;
  for (const char ch : group) {
    const auto c = static_cast<unsigned char>(ch);
    h ^= c;
    h *= 1099511628211ull;
  }
  const auto suffix = fmt::format(".{:016x}", h);
  std::string readable = group.substr(0, 249 - kPrefix.size() - suffix.size());
  return std::string(kPrefix) + readable + suffix;
}

ledger::ledger(client_options o, std::string group, std::size_t max_keys)
    : o_(std::move(o)),
      group_(std::move(group)),
      topic_(ledger_topic(group_)),
      max_keys_(max_keys) {}

result<rd_kafka_t*> ledger::writer(std::string* why) {
  if (!producer_) {
    FERRY_TRY(producer_, make_writer(o_, 1000000, on_delivery, why));
  }
  return producer_.get();
}

result<void> ledger::ensure_topic(std::string* why) {
  FERRY_TRY(writer(why));
  if (topic_ready_) return success();
  const auto deadline = sclock::now() + o_.api_timeout;
  bool created = false;
  for (;;) {
    auto n = partition_count(producer_.get(), topic_, o_.request_timeout, why);
    if (n) break;
    if (n.error() != errc::unknown_topic && !is_retriable(n.error())) return n.error();
    if (n.error() == errc::unknown_topic && !created) {
      auto c = create_topic(
          producer_.get(), topic_, 1,
          {{"retention.ms", std::to_string(kRetentionMs)}, {"cleanup.policy", "delete"}},
          o_.request_timeout, why);
      if (!c && c.error() != errc::topic_already_exists && !is_retriable(c.error())) {
        *why = fmt::format("cannot create the idempotency ledger {} of group {}: {}", topic_,
                           group_, *why);
        return c.error();
      }
      created = c.has_value() || c.error() == errc::topic_already_exists;
    }
    if (sclock::now() >= deadline) return n.error();
    std::this_thread::sleep_for(o_.retry_backoff);
  }
  topic_ready_ = true;
  return success();
}

result<void> ledger::record(const std::vector<std::string>& keys, std::string* why) {
  if (keys.empty()) return success();
  FERRY_TRY(ensure_topic(why));
  batch_state b;
  const auto now = system_clock::instance().wall_now().value();
  // Keys are packed into records of up to kRecordBytes (a record per key
  // costs a produce and a read each; a commit's keys in one record, one).
  std::vector<std::string> values;
  std::string v;
  for (const auto& k : keys) {
    if (!v.empty() && v.size() + k.size() + 5 > kRecordBytes)
      values.push_back(std::exchange(v, {}));
    if (v.empty()) v.push_back(kFormat);
    put_uvarint(v, k.size());
    v += k;
  }
  if (!v.empty()) values.push_back(std::move(v));
  std::size_t queued = 0;
  for (const auto& value : values) {
    kafka::outgoing m;
    m.topic = &topic_;
    m.partition = 0;
    m.value = &value;
    m.timestamp = now;
    m.opaque = &b;
    const auto err = produce(producer_.get(), m);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      b.first_error = err;
      break;
    }
    ++queued;
  }
  // Every queued record reports back (delivered, failed, or timed out by
  // message.timeout.ms) before `b` goes out of scope: the out queue counts
  // unserved delivery reports too.
  while (rd_kafka_outq_len(producer_.get()) > 0) (void)rd_kafka_flush(producer_.get(), 1000);
  if (b.first_error != RD_KAFKA_RESP_ERR_NO_ERROR || b.acked < values.size() ||
      queued < values.size()) {
    const auto e =
        b.first_error != RD_KAFKA_RESP_ERR_NO_ERROR ? b.first_error : RD_KAFKA_RESP_ERR__FAIL;
    *why = fmt::format("recording {} key(s) in the idempotency ledger {} failed: {}", keys.size(),
                       topic_, rd_kafka_err2str(e));
    return from_kafka(e);
  }
  for (const auto& k : keys) remember(k, now);
  // Already in the index: catch_up() need not read these records back.
  own_.insert(b.offsets.begin(), b.offsets.end());
  return success();
}

result<void> ledger::start_reader(std::string* why) {
  if (reading_ || !topic_ready_) return success();
  // Made once the topic exists: a handle made before keeps the topic as
  // unknown in its metadata, and its fetches for the topic did not start
  // until something refreshed it (seen: a lookup stalled for a second).
  if (!reader_) {
    FERRY_TRY(reader_, make_reader(o_, why));
  }
  // From next_: what this ledger has not read (or written) yet. Always a
  // concrete offset (catch_up() moved next_ to the log start first): from
  // a logical one (the beginning) librdkafka 2.0.2 first asks for the
  // offset and, on a new handle, starts fetching only 0.5-1 s later.
  partition_list l(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(l.get(), topic_.c_str(), 0)->offset = next_;
  if (const auto err = rd_kafka_assign(reader_.get(), l.get()); err) {
    *why = fmt::format("cannot read the idempotency ledger {}: {}", topic_, rd_kafka_err2str(err));
    return from_kafka(err);
  }
  reading_ = true;
  return success();
}

// Moves next_ over records this ledger wrote itself (their keys are in the
// index already); the reader, if it was reading, now lags and is restarted
// at next_ when something else must be read.
void ledger::skip_own() {
  while (!own_.empty() && *own_.begin() < next_) own_.erase(own_.begin());
  while (!own_.empty() && *own_.begin() == next_) {
    own_.erase(own_.begin());
    ++next_;
    reading_ = false;
  }
}

result<void> ledger::catch_up(std::string* why) {
  const auto deadline = sclock::now() + o_.api_timeout;
  if (!topic_ready_) {
    for (;;) {
      FERRY_TRY(auto* control, writer(why));
      auto n = partition_count(control, topic_, o_.request_timeout, why);
      if (n) break;
      if (n.error() == errc::unknown_topic) return success();  // nothing recorded yet
      if (!is_retriable(n.error()) || sclock::now() >= deadline) return n.error();
      std::this_thread::sleep_for(o_.retry_backoff);
    }
    topic_ready_ = true;
  }
  // Where the ledger ends now: every key acknowledged before this point is
  // below the high watermark (acks=all). Asked through the producer's
  // connections: on the reader's, the answer would queue behind its parked
  // fetch (a broker answers a connection's requests in order).
  FERRY_TRY(auto* control, writer(why));
  FERRY_TRY(const auto ends, watermarks(control, topic_, o_, why));
  const auto [low, high] = ends;
  if (next_ < low) next_ = low;  // retention removed the rest
  skip_own();
  if (next_ >= high) return success();
  FERRY_TRY(start_reader(why));
  while (next_ < high) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - sclock::now());
    if (left <= milliseconds(0)) {
      *why = fmt::format("reading the idempotency ledger {} timed out at offset {} of {}", topic_,
                         next_, high);
      return protocol::errc::timed_out;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader_.get(), timeout_ms(left));
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const auto ec = from_kafka(m->err);
      std::string text = rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      if (is_retriable(ec) || ec == errc::offset_out_of_range) continue;
      *why = fmt::format("reading the idempotency ledger {}: {}", topic_, text);
      return ec;
    }
    if (m->offset < next_) {  // fetched before the reader was moved on
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->offset > next_ && !reading_) {
      rd_kafka_message_destroy(m);
      continue;
    }
    if (own_.erase(m->offset) == 0 && m->payload != nullptr && m->len > 0 &&
        static_cast<const char*>(m->payload)[0] == kFormat) {
      rd_kafka_timestamp_type_t tstype;
      const auto ts = rd_kafka_message_timestamp(m, &tstype);
      std::string_view rest(static_cast<const char*>(m->payload) + 1, m->len - 1);
      while (!rest.empty()) {
        auto n = get_uvarint(rest);
        if (!n || *n > rest.size()) break;  // a torn record: what it held is lost, not invented
        remember(std::string(rest.substr(0, *n)), ts);
        rest.remove_prefix(*n);
      }
    }
    next_ = m->offset + 1;
    rd_kafka_message_destroy(m);
    skip_own();
    if (!reading_ && next_ < high) {
      FERRY_TRY(start_reader(why));
    }
  }
  return success();
}

void ledger::remember(std::string key, std::int64_t ts) {
  // The key's bytes live once, in its newest order_ entry (a deque keeps
  // its elements in place); the index refers to them.
  auto it = index_.find(std::string_view(key));
  if (it != index_.end() && ts <= it->second) return;
  order_.emplace_back(ts, std::move(key));
  const std::string_view stored = order_.back().second;
  if (it == index_.end()) {
    index_.emplace(stored, ts);
  } else {
    // Re-recorded later: the entry now refers to the new copy, and the
    // older one no longer matches (it is dropped without erasing).
    auto node = index_.extract(it);
    node.key() = stored;
    node.mapped() = ts;
    index_.insert(std::move(node));
  }
  while (index_.size() > max_keys_ && !order_.empty()) {
    auto& [t, k] = order_.front();
    auto f = index_.find(std::string_view(k));
    if (f != index_.end() && f->second == t && f->first.data() == k.data()) index_.erase(f);
    order_.pop_front();
  }
}

result<std::vector<std::optional<timestamp_ms>>> ledger::lookup(
    const std::vector<std::string>& keys, std::chrono::milliseconds window, std::string* why) {
  FERRY_TRY(catch_up(why));
  const auto now = system_clock::instance().wall_now().value();
  std::vector<std::optional<timestamp_ms>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    auto it = index_.find(std::string_view(k));
    if (it == index_.end() || (window.count() > 0 && it->second < now - window.count()))
      out.emplace_back();
    else
      out.emplace_back(timestamp_ms(it->second));
  }
  return out;
}

}  // namespace ferry::client::kafka
