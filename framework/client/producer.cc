// The producer's state lives in producer::impl, guarded by one mutex. User
// threads append records to open batches; the I/O thread owns the
// connection and does everything that touches the network.
//
// Batch life cycle (one deque per partition, oldest first):
//   open      builder accepts records (only the back batch can be open)
//   closed    finished bytes; closed when full, when the next batch opens,
//             or when the I/O thread picks it to send
//   in flight part of exactly one ProduceRequest; only the front batch of a
//             partition, and at most one per partition, so order holds
//   done      acked (callbacks get offsets) or failed (callbacks get the
//             error); popped from the deque, buffer space released
// A failed attempt with a retriable error (or a lost reply) returns the
// front batch to closed with retry_at = now + retry_backoff, unless its
// delivery deadline would pass first; then it fails with that error.
// A closed batch keeps its builder until its first send, which finishes
// its bytes ("stamps" it): with idempotence, with the producer id, epoch
// and the partition's next sequence number. Retries resend those bytes.
//
// Idempotence (the producer's identity, guarded by mu_ like the rest):
//   none --InitProducer sent--> requesting --answer--> ready
//   requesting --lost/timed out/retriable error--> none (retry after backoff)
//   requesting --refused (e.g. a broker without InitProducer)--> fatal
//   ready --a stamped batch fails without a definite "not stored" answer,
//           or with out_of_order_sequence / invalid_producer--> renewing
//   renewing --no stamped batch left anywhere, InitProducer answered--> ready
//           (new identity generation: every partition restarts at sequence 0)
//   any --producer_fenced--> fatal
// Only the front batch of a partition can be stamped and unfinished, so a
// stamped batch that the broker refused for sure (it was not stored) gives
// its sequence numbers back: the partition's next sequence rewinds to the
// batch's base sequence. In fatal, every batch not in flight fails with the
// fatal error and so does every later send().
//
// Waking the I/O thread: it sleeps in zmq_poll on the socket and the read
// end of a pipe. wake() writes one byte, at most once until the I/O thread
// drained the pipe (wake_pending_), so a busy producer does not do a
// syscall per record: senders wake it only when a batch opens (to arm its
// linger timer) or fills, and for flush, close and metadata lookups.
#include "ferry/client/producer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "ferry/client/connection.h"
#include "ferry/client/errc.h"
#include "ferry/client/partitioner.h"
#include "ferry/core/clock.h"
#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "rpc.h"
#include "transport.h"

namespace ferry::client {
namespace {

using std::chrono::milliseconds;
using sclock = std::chrono::steady_clock;

const std::shared_ptr<spdlog::logger>& logger() {
  static const auto l = log::get("client");
  return l;
}

// Upper bounds for one ProduceRequest (the broker decodes at most
// protocol::limits::max_entries entries).
constexpr std::size_t kMaxRequestBytes = 16u << 20;
constexpr std::size_t kMaxRequestEntries = 4096;

// An upper bound on what batch_builder::add() appends for `r` (varints at
// their widest), so the buffer and size checks never undercount.
std::size_t record_size(const producer_record& r) {
  std::size_t n =
      5 + 1 + 10 + 5 + 10 + 10 + 5;  // length, attributes, ts delta, offset delta, 2 lengths, count
  if (r.key) n += r.key->size();
  if (r.value) n += r.value->size();
  for (const auto& h : r.headers) n += 5 + h.key.size() + 10 + (h.value ? h.value->size() : 0);
  return n;
}

// Exactly what batch_builder::add() appends for `r` as the record with
// offset delta `off_delta` and timestamp delta `ts_delta` in its batch.
std::size_t encoded_size(const producer_record& r, std::int64_t ts_delta, std::uint64_t off_delta) {
  auto nullable = [](const std::optional<std::string>& s) {
    return s ? varint::size(varint::zigzag(static_cast<std::int64_t>(s->size()))) + s->size()
             : std::size_t{1};
  };
  // Every varint of a record is zigzag-encoded (Kafka's RecordBatch v2).
  auto z = [](std::uint64_t v) {
    return varint::size(varint::zigzag(static_cast<std::int64_t>(v)));
  };
  std::size_t body = 1 + varint::size(varint::zigzag(ts_delta)) + z(off_delta) + nullable(r.key) +
                     nullable(r.value) + z(r.headers.size());
  for (const auto& h : r.headers) body += z(h.key.size()) + h.key.size() + nullable(h.value);
  return z(body) + body;
}

std::optional<std::span<const std::byte>> bytes_of(const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  return format::as_bytes(*s);
}

struct batch {
  std::uint64_t id = 0;  // creation order
  std::string topic;
  partition_id partition{0};
  std::optional<format::batch_builder> builder;  // set while open
  std::vector<std::byte> bytes;                  // set once closed
  std::vector<delivery_callback> callbacks;      // one per record, in order
  std::size_t reserved = 0;                      // buffer bytes held
  std::uint64_t first_seq = 0;                   // send() sequence number of the first record
  timestamp_ms first_ts;                         // timestamp of the first record
  sclock::time_point created;                    // first record
  sclock::time_point deadline;                   // created + delivery_timeout
  sclock::time_point retry_at;
  int attempts = 0;
  std::error_code last_error;
  bool closed = false;         // no more records; bytes not final until stamped
  bool stamped = false;        // bytes final (first send)
  std::int32_t base_seq = -1;  // idempotence: sequence number of the first record
  std::uint64_t identity = 0;  // idempotence: identity generation it was stamped under
  bool maybe_stored = false;   // an attempt ended without a definite "not stored" answer

  [[nodiscard]] bool open() const noexcept { return builder.has_value() && !closed; }
  /// Whether `r` (timestamp `ts`) still fits into this open batch.
  [[nodiscard]] bool fits(const producer_record& r, timestamp_ms ts, std::size_t limit) const {
    return builder->size_bytes() +
               encoded_size(r, ts - first_ts,
                            static_cast<std::uint64_t>(builder->record_count())) <=
           limit;
  }
  void close() { closed = true; }
  /// Finishes the bytes (first send).
  void stamp(const format::producer_info& producer, format::compression codec) {
    bytes = builder->finish(producer, codec);
    builder.reset();
    closed = stamped = true;
  }
};

struct partition_queue {
  std::deque<std::unique_ptr<batch>> batches;
  bool in_flight = false;
  std::uint64_t identity = 0;  // idempotence: the identity generation next_seq belongs to
  std::int32_t next_seq = 0;   // idempotence: sequence number of the next batch's first record
};

// The sequence number `count` after `seq`; wraps from INT32_MAX to 0 (as
// the broker and Kafka do).
std::int32_t advance(std::int32_t seq, std::int32_t count) {
  constexpr std::int64_t modulus = std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1;
  return static_cast<std::int32_t>((std::int64_t{seq} + count) % modulus);
}

// Whether a failed produce attempt proves that the broker did not store the
// batch: the broker answered, and with an error it gives only before
// appending. Anything else (no answer, a sync or write failure, a malformed
// reply) leaves the outcome open.
bool refused_before_append(std::error_code ec) {
  if (ec.category() != wire_category()) return false;
  switch (static_cast<errc>(ec.value())) {
    case errc::unknown_topic:
    case errc::unknown_partition:
    case errc::invalid_request:
    case errc::invalid_batch:
    case errc::record_too_large:
    case errc::disk_full:  // the write was rolled back
    case errc::shutting_down:
    case errc::unsupported_version:
    case errc::invalid_topic_name:
    case errc::too_many_requests:
    case errc::producer_fenced:
    case errc::out_of_order_sequence:
    case errc::invalid_producer:
    case errc::schema_required:  // checked before the append; nothing of the batch stored
      return true;
    default:
      return false;
  }
}

struct topic_state {
  std::int32_t partitions = 0;
  std::int32_t max_message_bytes = 0;
  bool stale = false;
  std::int32_t sticky = -1;        // partition for records without key
  std::uint64_t sticky_batch = 0;  // the batch the sticky partition was chosen for
};

// A DescribeTopic lookup that senders wait for.
struct metadata_lookup {
  int waiters = 0;
  bool wanted = false;  // set by a waiting sender, cleared by an outcome
  bool in_flight = false;
  sclock::time_point expires;
  sclock::time_point retry_at;
};

struct metadata_outcome {
  std::uint64_t seq = 0;  // bumped on every finished lookup
  std::error_code error;
};

struct produce_request {
  std::vector<batch*> batches;  // each the front of its partition's deque
  sclock::time_point expires;
};

struct completion {
  std::unique_ptr<batch> b;
  std::error_code error;
  std::int64_t base_offset = -1;
};

sclock::time_point saturating_add(sclock::time_point t, milliseconds d) {
  if (d >= std::chrono::duration_cast<milliseconds>(sclock::time_point::max() - t))
    return sclock::time_point::max();
  return t + d;
}

}  // namespace

class producer::impl final : public producer::backend {
 public:
  explicit impl(producer_options o);
  ~impl() override {
    (void)close(milliseconds::max());
    for (int fd : wake_fds_)
      if (fd >= 0) ::close(fd);
  }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  result<void> send(producer_record rec, delivery_callback cb) override;
  result<void> flush(milliseconds timeout) override;
  result<void> close(milliseconds timeout) override;
  producer_stats stats() const override;

 private:
  void wake() noexcept;
  void drain_wake_pipe() noexcept;
  result<topic_state*> topic_for(std::unique_lock<std::mutex>& lock, const std::string& name,
                                 sclock::time_point deadline, bool on_io);
  bool wait_done_through(std::unique_lock<std::mutex>& lock, std::uint64_t seq,
                         milliseconds timeout);

  // I/O thread.
  void run();
  void handle_reply(const reply& r, sclock::time_point now, std::vector<completion>& done);
  void handle_produce(std::uint64_t id, const reply& r, sclock::time_point now,
                      std::vector<completion>& done);
  void handle_metadata(const std::string& topic, const reply& r, sclock::time_point now);
  void expire(sclock::time_point now, std::vector<completion>& done);
  void give_up(std::uint64_t id, std::error_code ec, sclock::time_point now,
               std::vector<completion>& done);
  void send_metadata(sclock::time_point now);
  void send_batches(sclock::time_point now, std::vector<completion>& done);
  void send_request(std::vector<batch*>& batches, sclock::time_point now,
                    std::vector<completion>& done);
  void fail_or_retry(batch& b, std::error_code ec, const std::string& message,
                     sclock::time_point now, std::vector<completion>& done);
  void finish_front(batch& b, std::error_code ec, std::int64_t base, std::vector<completion>& done);
  void abandon_all(std::vector<completion>& done);
  // Idempotence.
  [[nodiscard]] bool identity_ready() const noexcept;
  [[nodiscard]] bool stamped_pending() const;
  void send_init(sclock::time_point now);
  void handle_init(const reply& r, sclock::time_point now);
  void stamp(partition_queue& q, batch& b);
  void settle_failed(partition_queue& q, batch& b, std::error_code ec);
  void fail_unsent(std::vector<completion>& done);
  [[nodiscard]] bool ready(const batch& b, sclock::time_point now) const;
  [[nodiscard]] sclock::time_point next_wake(sclock::time_point now) const;
  void complete(std::vector<completion>& done);

  const producer_options o_;
  std::error_code init_error_;
  int wake_fds_[2] = {-1, -1};
  std::atomic<bool> wake_pending_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;  // buffer space, metadata outcomes, completions
  std::map<topic_partition, partition_queue> queues_;
  std::map<std::string, topic_state, std::less<>> topics_;
  std::map<std::string, metadata_lookup, std::less<>> lookups_;
  std::map<std::string, metadata_outcome, std::less<>> outcomes_;
  std::size_t buffered_ = 0;
  std::uint64_t next_seq_ = 1;
  std::uint64_t next_batch_id_ = 1;
  std::set<std::uint64_t> incomplete_;  // first_seq of every batch without callbacks yet
  std::uint64_t flush_through_ = 0;     // batches whose first_seq <= this skip linger
  bool closing_ = false;
  bool stop_ = false;
  bool joined_ = false;
  std::minstd_rand rng_{std::random_device{}()};
  std::thread::id io_thread_id_;

  // Owned by the I/O thread (touched under mu_ anyway).
  std::unique_ptr<connection> conn_;
  std::map<std::uint64_t, produce_request> in_flight_;
  std::map<std::uint64_t, std::string> metadata_in_flight_;
  std::thread thread_;

  // Idempotence (state machine at the top of the file).
  std::int64_t pid_ = -1;
  std::int16_t epoch_ = -1;
  std::uint64_t identity_gen_ = 0;  // bumped by every InitProducer answer; 0: none yet
  bool renew_ = false;              // a new identity is needed before stamping more batches
  bool init_in_flight_ = false;
  std::uint64_t init_request_ = 0;
  sclock::time_point init_expires_{};
  sclock::time_point init_retry_at_{};
  std::error_code init_last_error_;  // why the identity is not there yet
  std::error_code fatal_;            // set: every unsent batch and every send() fails with it
  std::uint64_t duplicates_ = 0;
  std::uint64_t renewals_ = 0;
};

producer::impl::impl(producer_options o) : o_(std::move(o)) {
  const char* bad = nullptr;
  if (o_.batch_bytes == 0 || o_.batch_bytes > format::kMaxBatchBytes)
    bad = "batch_bytes must be in 1..64 MiB";
  else if (o_.buffer_bytes == 0)
    bad = "buffer_bytes must be > 0";
  else if (o_.max_in_flight < 1)
    bad = "max_in_flight must be >= 1";
  else if (o_.linger.count() < 0 || o_.delivery_timeout.count() <= 0 ||
           o_.request_timeout.count() <= 0 || o_.max_block.count() < 0 ||
           o_.retry_backoff.count() < 0)
    bad = "negative or zero durations";
  else if (o_.producer_name.size() > 255)
    bad = "producer_name must be at most 255 bytes";
  else if (!o_.producer_name.empty() && !o_.enable_idempotence)
    bad = "producer_name needs enable_idempotence";
  if (bad) {
    logger()->error("producer: invalid options: {}", bad);
    init_error_ = ferry::errc::invalid_argument;
    return;
  }
  if (::pipe(wake_fds_) != 0) {
    init_error_ = errno_code();
    return;
  }
  for (int fd : wake_fds_) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  conn_ = std::make_unique<connection>(o_);
  if (auto s = conn_->status(); !s) {
    init_error_ = s.error();
    return;
  }
  thread_ = std::thread([this] { run(); });
  io_thread_id_ = thread_.get_id();
}

void producer::impl::wake() noexcept {
  if (!wake_pending_.exchange(true)) {
    const char c = 1;
    [[maybe_unused]] auto n = ::write(wake_fds_[1], &c, 1);  // EAGAIN: already awake
  }
}

void producer::impl::drain_wake_pipe() noexcept {
  char buf[64];
  while (::read(wake_fds_[0], buf, sizeof buf) > 0) {
  }
  wake_pending_.store(false);
}

// --- user threads -----------------------------------------------------------

result<topic_state*> producer::impl::topic_for(std::unique_lock<std::mutex>& lock,
                                               const std::string& name, sclock::time_point deadline,
                                               bool on_io) {
  for (;;) {
    if (auto it = topics_.find(name); it != topics_.end() && !it->second.stale) return &it->second;
    if (on_io) return ferry::errc::timed_out;  // the I/O thread cannot wait for itself
    const std::uint64_t seen = outcomes_[name].seq;
    auto& lk = lookups_[name];
    ++lk.waiters;
    lk.wanted = true;
    wake();
    cv_.wait_until(lock, deadline, [&] { return outcomes_[name].seq != seen || closing_; });
    --lookups_[name].waiters;
    if (closing_) return ferry::errc::shutting_down;
    const auto& out = outcomes_[name];
    if (out.seq == seen) return ferry::errc::timed_out;
    if (out.error) return out.error;
  }
}

result<void> producer::impl::send(producer_record rec, delivery_callback cb) {
  if (init_error_) return init_error_;
  FERRY_TRY(prepare_record(rec));
  const std::size_t size = record_size(rec);
  if (size + format::kBatchHeaderSize >
      std::min<std::size_t>(format::kMaxBatchBytes, o_.buffer_bytes))
    return errc::record_too_large;
  const timestamp_ms ts = rec.timestamp.value_or(system_clock::instance().wall_now());
  const bool on_io = std::this_thread::get_id() == io_thread_id_;
  const auto deadline = saturating_add(sclock::now(), o_.max_block);

  std::unique_lock lock(mu_);
  if (closing_) return ferry::errc::shutting_down;
  if (fatal_) return fatal_;
  FERRY_TRY(auto* topic, topic_for(lock, rec.topic, deadline, on_io));
  std::size_t batch_limit = o_.batch_bytes;
  if (topic->max_message_bytes > 0) {
    const auto max = static_cast<std::size_t>(topic->max_message_bytes);
    if (size + format::kBatchHeaderSize > max) return errc::record_too_large;
    batch_limit = std::min(batch_limit, max);
  }
  // Back-pressure.
  while (buffered_ + size > o_.buffer_bytes && !closing_) {
    if (on_io || cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (buffered_ + size > o_.buffer_bytes && !closing_) return ferry::errc::timed_out;
    }
  }
  if (closing_) return ferry::errc::shutting_down;
  if (fatal_) return fatal_;

  // Partition (after waiting: the count may have been refreshed meanwhile).
  const std::int32_t n = topic->partitions;
  partition_id p{0};
  const bool sticky = !rec.partition && !rec.key;
  if (rec.partition) {
    if (rec.partition->value() >= n) return errc::unknown_partition;
    p = *rec.partition;
  } else if (rec.key) {
    p = partition_for_key(*rec.key, n);
  } else {
    bool keep = false;
    if (topic->sticky >= 0 && topic->sticky < n) {
      auto it = queues_.find({rec.topic, partition_id(topic->sticky)});
      if (it != queues_.end() && !it->second.batches.empty()) {
        const batch& b = *it->second.batches.back();
        keep = b.open() && b.id == topic->sticky_batch && b.fits(rec, ts, batch_limit);
      }
    }
    if (!keep)
      topic->sticky = topic->sticky < 0
                          ? static_cast<std::int32_t>(rng_() % static_cast<std::uint32_t>(n))
                          : (topic->sticky + 1) % n;
    p = partition_id(topic->sticky);
  }

  // Append to the partition's open batch, opening one if needed.
  auto& q = queues_[{rec.topic, p}];
  batch* b = (!q.batches.empty() && q.batches.back()->open()) ? q.batches.back().get() : nullptr;
  if (b && !b->fits(rec, ts, batch_limit)) {
    b->close();
    b = nullptr;
  }
  const std::uint64_t seq = next_seq_++;
  const bool opened = b == nullptr;
  if (opened) {
    auto nb = std::make_unique<batch>();
    nb->id = next_batch_id_++;
    nb->topic = rec.topic;
    nb->partition = p;
    nb->builder.emplace();
    nb->first_seq = seq;
    nb->first_ts = ts;
    nb->created = sclock::now();
    nb->deadline = saturating_add(nb->created, o_.delivery_timeout);
    b = nb.get();
    q.batches.push_back(std::move(nb));
    incomplete_.insert(seq);
  }
  std::vector<format::batch_builder::header_input> hs;
  hs.reserve(rec.headers.size());
  for (const auto& h : rec.headers) hs.push_back({h.key, bytes_of(h.value)});
  b->builder->add(ts, bytes_of(rec.key), bytes_of(rec.value), hs);
  b->callbacks.push_back(std::move(cb));
  b->reserved += size;
  buffered_ += size;
  if (sticky) topic->sticky_batch = b->id;
  const bool full = b->builder->size_bytes() >= batch_limit;
  if (full) b->close();
  lock.unlock();
  if (opened || full) wake();
  return success();
}

bool producer::impl::wait_done_through(std::unique_lock<std::mutex>& lock, std::uint64_t seq,
                                       milliseconds timeout) {
  auto done = [&] { return incomplete_.empty() || *incomplete_.begin() > seq; };
  const auto deadline = saturating_add(sclock::now(), timeout);
  if (deadline == sclock::time_point::max()) {
    cv_.wait(lock, done);
    return true;
  }
  return cv_.wait_until(lock, deadline, done);
}

result<void> producer::impl::flush(milliseconds timeout) {
  if (init_error_) return init_error_;
  if (std::this_thread::get_id() == io_thread_id_)
    return ferry::errc::invalid_argument;  // would deadlock
  std::unique_lock lock(mu_);
  const std::uint64_t target = next_seq_ - 1;
  flush_through_ = std::max(flush_through_, target);
  wake();
  if (!wait_done_through(lock, target, timeout)) return ferry::errc::timed_out;
  return success();
}

result<void> producer::impl::close(milliseconds timeout) {
  if (thread_.joinable() && std::this_thread::get_id() == io_thread_id_)
    return ferry::errc::invalid_argument;
  std::unique_lock lock(mu_);
  if (joined_ || !thread_.joinable()) return success();
  closing_ = true;
  flush_through_ = next_seq_ - 1;
  cv_.notify_all();  // blocked senders give up
  wake();
  const bool flushed = wait_done_through(lock, next_seq_ - 1, timeout);
  stop_ = true;
  wake();
  lock.unlock();
  thread_.join();
  lock.lock();
  joined_ = true;
  lock.unlock();
  if (!flushed) return ferry::errc::timed_out;
  return success();
}

// --- I/O thread -------------------------------------------------------------

void producer::impl::run() {
  std::vector<reply> replies;
  std::vector<completion> done;
  for (;;) {
    bool exiting = false;
    sclock::time_point wake_at;
    {
      std::lock_guard lock(mu_);
      auto now = sclock::now();
      for (const auto& r : replies) handle_reply(r, now, done);
      replies.clear();
      expire(now, done);
      if (fatal_) fail_unsent(done);
      if (stop_) {
        abandon_all(done);
        exiting = true;
      } else {
        send_metadata(now);
        send_init(now);
        send_batches(now, done);
        wake_at = next_wake(now);
      }
    }
    complete(done);
    if (exiting) return;

    auto r = conn_->next_reply(wake_at, wake_fds_[0]);
    drain_wake_pipe();
    if (!r) {
      logger()->error("producer: polling the broker connection failed: {}", r.error().message());
      std::this_thread::sleep_for(milliseconds(10));
      continue;
    }
    if (r.value()) {
      replies.push_back(std::move(*r.value()));
      // Take whatever else is already there, without waiting.
      for (;;) {
        auto more = conn_->next_reply(sclock::now());
        if (!more || !more.value()) break;
        replies.push_back(std::move(*more.value()));
      }
    }
  }
}

void producer::impl::handle_reply(const reply& r, sclock::time_point now,
                                  std::vector<completion>& done) {
  if (auto it = metadata_in_flight_.find(r.request_id); it != metadata_in_flight_.end()) {
    const std::string topic = it->second;
    metadata_in_flight_.erase(it);
    handle_metadata(topic, r, now);
  } else if (in_flight_.contains(r.request_id)) {
    handle_produce(r.request_id, r, now, done);
  } else if (init_in_flight_ && r.request_id == init_request_) {
    handle_init(r, now);
  }
}

void producer::impl::handle_produce(std::uint64_t id, const reply& r, sclock::time_point now,
                                    std::vector<completion>& done) {
  produce_request req = std::move(in_flight_.at(id));
  in_flight_.erase(id);
  std::string message;
  auto ok = detail::expect_body(r, wire::Body::ProduceResponse, &message);
  const wire::ProduceResponse* resp = ok ? r.envelope().body_as_ProduceResponse() : nullptr;
  for (batch* b : req.batches) {
    queues_.at({b->topic, b->partition}).in_flight = false;
    std::error_code ec;
    std::int64_t base = -1;
    bool duplicate = false;
    if (!ok) {
      ec = ok.error();
    } else {
      const wire::ProduceResult* found = nullptr;
      for (const auto* x : *resp->results()) {
        if (x->partition() == b->partition.value() && x->topic() &&
            x->topic()->string_view() == b->topic) {
          found = x;
          break;
        }
      }
      if (!found) {
        ec = protocol::errc::missing_field;
        message = "the produce reply has no result for this partition";
      } else {
        ec = from_wire(found->error());
        base = found->base_offset();
        duplicate = found->duplicate();
        message = found->message() ? found->message()->str() : std::string();
        if (!ec && base < 0) {
          ec = protocol::errc::invalid_value;
          message = "the produce reply has a negative base offset";
        }
      }
    }
    if (!ec) {
      // A duplicate: an earlier attempt was stored; these are its offsets.
      if (duplicate) ++duplicates_;
      finish_front(*b, {}, base, done);
    } else {
      if (!refused_before_append(ec)) b->maybe_stored = true;
      fail_or_retry(*b, ec, message, now, done);
    }
  }
}

void producer::impl::handle_metadata(const std::string& topic, const reply& r,
                                     sclock::time_point now) {
  auto& lk = lookups_[topic];
  lk.in_flight = false;
  std::string message;
  auto d = detail::parse_describe_topic(r, &message);
  std::int32_t partitions = 0;
  if (d) {
    partitions = d.value().partitions.empty()
                     ? d.value().config.partitions
                     : static_cast<std::int32_t>(d.value().partitions.size());
    if (partitions <= 0) d = protocol::errc::invalid_value;
  }
  if (!d && is_retriable(d.error())) {
    lk.retry_at = now + o_.retry_backoff;
    return;
  }
  lk.wanted = false;
  auto& out = outcomes_[topic];
  ++out.seq;
  if (d) {
    auto& t = topics_[topic];
    t.partitions = partitions;
    t.max_message_bytes = d.value().config.max_message_bytes;
    t.stale = false;
    out.error = {};
  } else {
    out.error = d.error();
    // send() returns the error to its caller, who logs it if it should: not here too.
    FERRY_LOG_DEBUG(logger(), "producer: looking up topic '{}' failed: {} {}", topic,
                    d.error().message(), message);
  }
  cv_.notify_all();
}

void producer::impl::finish_front(batch& b, std::error_code ec, std::int64_t base,
                                  std::vector<completion>& done) {
  auto& q = queues_.at({b.topic, b.partition});
  if (ec) settle_failed(q, b, ec);
  // Only the front batch of a partition is ever in flight or expired.
  completion c{std::move(q.batches.front()), ec, base};
  q.batches.pop_front();
  done.push_back(std::move(c));
}

void producer::impl::fail_or_retry(batch& b, std::error_code ec, const std::string& message,
                                   sclock::time_point now, std::vector<completion>& done) {
  if (ec == errc::unknown_topic || ec == errc::unknown_partition) {
    if (auto it = topics_.find(b.topic); it != topics_.end()) it->second.stale = true;
  }
  b.last_error = ec;
  if (is_retriable(ec) && now + o_.retry_backoff < b.deadline && !stop_) {
    FERRY_LOG_DEBUG(logger(), "producer: {}-{} attempt {} failed ({}), retrying", b.topic,
                    b.partition, b.attempts, ec.message());
    b.retry_at = now + o_.retry_backoff;
    return;
  }
  // The callbacks get the error code only; the broker's explanation
  // (`message`: which header is missing, which limit was hit) reaches the
  // application through this line alone, so it stays although the caller
  // usually logs the failure too. It can go once delivery results carry the
  // message.
  logger()->warn("producer: {} records for {}-{} failed after {} attempt(s): {}{}{}",
                 b.callbacks.size(), b.topic, b.partition, b.attempts, ec.message(),
                 message.empty() ? "" : ": ", message);
  finish_front(b, ec, -1, done);
}

void producer::impl::give_up(std::uint64_t id, std::error_code ec, sclock::time_point now,
                             std::vector<completion>& done) {
  conn_->forget(id);
  if (auto it = in_flight_.find(id); it != in_flight_.end()) {
    auto batches = std::move(it->second.batches);
    in_flight_.erase(it);
    for (batch* b : batches) {
      queues_.at({b->topic, b->partition}).in_flight = false;
      b->maybe_stored = true;  // the request may have been carried out
      fail_or_retry(*b, ec, "no reply from the broker", now, done);
    }
  } else if (init_in_flight_ && id == init_request_) {
    init_in_flight_ = false;
    init_last_error_ = ec;
    init_retry_at_ = now + o_.retry_backoff;
  } else if (auto m = metadata_in_flight_.find(id); m != metadata_in_flight_.end()) {
    auto& lk = lookups_[m->second];
    lk.in_flight = false;
    lk.retry_at = now + o_.retry_backoff;
    metadata_in_flight_.erase(m);
  }
}

void producer::impl::expire(sclock::time_point now, std::vector<completion>& done) {
  // Requests lost with a dropped connection, or without a reply in time:
  // each batch is retried or, past its deadline, failed with the error.
  for (std::uint64_t id : conn_->take_lost()) give_up(id, protocol::errc::disconnected, now, done);
  std::vector<std::uint64_t> expired;
  for (const auto& [id, req] : in_flight_)
    if (req.expires <= now) expired.push_back(id);
  for (const auto& [id, topic] : metadata_in_flight_)
    if (lookups_[topic].expires <= now) expired.push_back(id);
  if (init_in_flight_ && init_expires_ <= now) expired.push_back(init_request_);
  for (std::uint64_t id : expired) give_up(id, protocol::errc::timed_out, now, done);
  // Batches waiting past their delivery deadline (front first, so callbacks
  // of a partition stay in order; deadlines grow towards the back).
  for (auto& [tp, q] : queues_) {
    while (!q.in_flight && !q.batches.empty() && q.batches.front()->deadline <= now) {
      batch& b = *q.batches.front();
      // A batch that never went out may have waited for the producer id.
      const auto ec = b.last_error ? b.last_error
                      : (!b.stamped && init_last_error_)
                          ? init_last_error_
                          : std::error_code(protocol::errc::timed_out);
      // Reported to the callbacks, which have all there is to say: the
      // application logs it where it handles it (the worker with the offset
      // it was routing), not here as well.
      FERRY_LOG_DEBUG(logger(),
                      "producer: {} records for {}-{} not delivered within delivery_timeout: {}",
                      b.callbacks.size(), b.topic, b.partition, ec.message());
      finish_front(b, ec, -1, done);
    }
  }
}

void producer::impl::send_metadata(sclock::time_point now) {
  for (auto& [name, lk] : lookups_) {
    if (!lk.wanted || lk.waiters == 0 || lk.in_flight || lk.retry_at > now) continue;
    flatbuffers::FlatBufferBuilder fbb;
    auto [type, body] = detail::build_describe_topic(fbb, name);
    auto id = conn_->send(fbb, type, body);
    if (!id) {
      if (is_retriable(id.error())) {
        lk.retry_at = now + o_.retry_backoff;
      } else {
        lk.wanted = false;
        auto& out = outcomes_[name];
        ++out.seq;
        out.error = id.error();
        cv_.notify_all();
      }
      continue;
    }
    lk.in_flight = true;
    lk.expires = now + o_.request_timeout;
    metadata_in_flight_[id.value()] = name;
  }
}

bool producer::impl::ready(const batch& b, sclock::time_point now) const {
  return !b.open() || closing_ || b.first_seq <= flush_through_ || now >= b.created + o_.linger;
}

void producer::impl::send_batches(sclock::time_point now, std::vector<completion>& done) {
  std::vector<batch*> picked;
  std::size_t bytes = 0;
  for (auto& [tp, q] : queues_) {
    if (in_flight_.size() >= static_cast<std::size_t>(o_.max_in_flight)) return;
    if (q.in_flight || q.batches.empty()) continue;
    batch& b = *q.batches.front();
    if (b.retry_at > now || !ready(b, now)) continue;
    if (!b.stamped) {
      if (!identity_ready()) continue;  // waits for InitProducer
      stamp(q, b);
    }
    if (!picked.empty() &&
        (bytes + b.bytes.size() > kMaxRequestBytes || picked.size() >= kMaxRequestEntries)) {
      send_request(picked, now, done);
      picked.clear();
      bytes = 0;
      if (in_flight_.size() >= static_cast<std::size_t>(o_.max_in_flight)) return;
    }
    picked.push_back(&b);
    bytes += b.bytes.size();
  }
  if (!picked.empty()) send_request(picked, now, done);
}

void producer::impl::send_request(std::vector<batch*>& batches, sclock::time_point now,
                                  std::vector<completion>& done) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::ProduceEntry>> entries;
  std::vector<zmq::message_t> frames;
  entries.reserve(batches.size());
  frames.reserve(batches.size());
  auto expires = now + o_.request_timeout;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const batch& b = *batches[i];
    entries.push_back(wire::CreateProduceEntryDirect(fbb, b.topic.c_str(), b.partition.value(),
                                                     static_cast<std::uint32_t>(i + 1)));
    frames.emplace_back(b.bytes.data(), b.bytes.size());
    expires = std::min(expires, b.deadline);
  }
  auto body = wire::CreateProduceRequestDirect(fbb, &entries, detail::wire_ms(o_.request_timeout));
  auto id = conn_->send(fbb, wire::Body::ProduceRequest, body.Union(), frames);
  for (batch* b : batches) ++b->attempts;
  if (!id) {
    for (batch* b : batches) fail_or_retry(*b, id.error(), "sending failed", now, done);
    return;
  }
  for (batch* b : batches) queues_.at({b->topic, b->partition}).in_flight = true;
  in_flight_[id.value()] = produce_request{batches, expires};
}

void producer::impl::abandon_all(std::vector<completion>& done) {
  for (const auto& [id, req] : in_flight_) conn_->forget(id);
  in_flight_.clear();
  for (auto& [tp, q] : queues_) {
    q.in_flight = false;
    while (!q.batches.empty())
      finish_front(*q.batches.front(), ferry::errc::shutting_down, -1, done);
  }
}

sclock::time_point producer::impl::next_wake(sclock::time_point now) const {
  auto t = now + milliseconds(1000);
  for (const auto& [id, req] : in_flight_) t = std::min(t, req.expires);
  for (const auto& [tp, q] : queues_) {
    if (q.in_flight || q.batches.empty()) continue;
    const batch& b = *q.batches.front();
    t = std::min(t, b.deadline);
    if (b.retry_at > now) {
      t = std::min(t, b.retry_at);
    } else if (!ready(b, now)) {
      t = std::min(t, b.created + o_.linger);
    }
    // Ready but held back by max_in_flight: a reply wakes us.
  }
  for (const auto& [name, lk] : lookups_) {
    if (lk.in_flight)
      t = std::min(t, lk.expires);
    else if (lk.wanted && lk.waiters > 0)
      t = std::min(t, lk.retry_at);
  }
  if (init_in_flight_)
    t = std::min(t, init_expires_);
  else if (o_.enable_idempotence && !fatal_ && (identity_gen_ == 0 || renew_))
    t = std::min(t, init_retry_at_);
  return t;
}

void producer::impl::complete(std::vector<completion>& done) {
  if (done.empty()) return;
  for (auto& c : done) {
    batch& b = *c.b;
    for (std::size_t i = 0; i < b.callbacks.size(); ++i) {
      if (!b.callbacks[i]) continue;
      try {
        if (c.error) {
          b.callbacks[i](result<record_metadata>(c.error));
        } else {
          b.callbacks[i](record_metadata{b.topic, b.partition,
                                         offset(c.base_offset + static_cast<std::int64_t>(i))});
        }
      } catch (const std::exception& e) {
        logger()->error("producer: a delivery callback threw: {}", e.what());
      } catch (...) {
        logger()->error("producer: a delivery callback threw");
      }
    }
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& c : done) {
      buffered_ -= c.b->reserved;
      incomplete_.erase(c.b->first_seq);
    }
  }
  cv_.notify_all();
  done.clear();
}

// --- idempotence (I/O thread, under mu_) ----------------------------------------

bool producer::impl::identity_ready() const noexcept {
  return !o_.enable_idempotence || (identity_gen_ > 0 && !renew_ && !fatal_);
}

bool producer::impl::stamped_pending() const {
  for (const auto& [tp, q] : queues_)
    if (!q.batches.empty() && q.batches.front()->stamped) return true;
  return false;
}

void producer::impl::send_init(sclock::time_point now) {
  if (!o_.enable_idempotence || fatal_ || init_in_flight_ || now < init_retry_at_) return;
  if (identity_gen_ > 0 && !renew_) return;
  // A new identity (a new id, or for a named producer a new epoch that
  // fences the old one) only once nothing stamped with the old one can
  // still be stored or retried.
  if (renew_ && stamped_pending()) return;
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateInitProducerRequest(
      fbb, o_.producer_name.empty() ? 0 : fbb.CreateString(o_.producer_name));
  auto id = conn_->send(fbb, wire::Body::InitProducerRequest, body.Union());
  if (!id) {
    init_last_error_ = id.error();
    init_retry_at_ = now + o_.retry_backoff;
    return;
  }
  init_in_flight_ = true;
  init_request_ = id.value();
  init_expires_ = now + o_.request_timeout;
}

void producer::impl::handle_init(const reply& r, sclock::time_point now) {
  init_in_flight_ = false;
  std::string message;
  std::error_code ec;
  if (auto ok = detail::expect_body(r, wire::Body::InitProducerResponse, &message); !ok) {
    ec = ok.error();
  } else {
    const auto* b = r.envelope().body_as_InitProducerResponse();
    ec = from_wire(b->error());
    if (b->message()) message = b->message()->str();
    if (!ec && (b->producer_id() < 0 || b->epoch() < 0)) {
      ec = protocol::errc::invalid_value;
      message = "InitProducer answered without a producer id";
    }
    if (!ec) {
      if (identity_gen_ > 0) ++renewals_;
      pid_ = b->producer_id();
      epoch_ = b->epoch();
      ++identity_gen_;
      renew_ = false;
      init_last_error_ = {};
      FERRY_LOG_DEBUG(logger(), "producer: idempotent as producer id {} epoch {}{}{}", pid_, epoch_,
                      o_.producer_name.empty() ? "" : " for name ", o_.producer_name);
      return;
    }
  }
  init_last_error_ = ec;
  if (is_retriable(ec)) {
    init_retry_at_ = now + o_.retry_backoff;
    return;
  }
  logger()->error(
      "producer: the broker refused InitProducer: {}{}{}; every send fails with this error "
      "(a broker without idempotent producers needs enable_idempotence = false)",
      ec.message(), message.empty() ? "" : ": ", message);
  fatal_ = ec;
}

void producer::impl::stamp(partition_queue& q, batch& b) {
  format::producer_info info;
  if (o_.enable_idempotence) {
    if (q.identity != identity_gen_) {
      q.identity = identity_gen_;
      q.next_seq = 0;
    }
    info.pid = producer_id(pid_);
    info.epoch = producer_epoch(epoch_);
    info.base_sequence = sequence_number(q.next_seq);
    b.base_seq = q.next_seq;
    b.identity = identity_gen_;
    q.next_seq = advance(q.next_seq, b.builder->record_count());
  }
  b.stamp(info, o_.compression);
}

// A stamped batch failed for good (its callbacks get `ec`): what that means
// for the sequence numbers that follow it.
void producer::impl::settle_failed(partition_queue& q, batch& b, std::error_code ec) {
  if (!o_.enable_idempotence || !b.stamped || stop_ || b.identity != identity_gen_) return;
  if (ec == errc::producer_fenced) {
    if (!fatal_)
      logger()->error(
          "producer: fenced: a newer producer named '{}' started (or this id was retired); "
          "every record not yet sent fails with producer_fenced",
          o_.producer_name);
    fatal_ = ec;
  } else if (ec == errc::out_of_order_sequence || ec == errc::invalid_producer) {
    logger()->error(
        "producer: the broker refused {}-{} sequence {} ({}): its records failed; later batches "
        "go out under a new producer identity",
        b.topic, b.partition, b.base_seq, ec.message());
    renew_ = true;
  } else if (b.maybe_stored) {
    logger()->warn(
        "producer: {}-{} sequence {} failed without a definite answer ({}), so the broker may or "
        "may not hold it; later batches go out under a new producer identity",
        b.topic, b.partition, b.base_seq, ec.message());
    renew_ = true;
  } else {
    // Refused for sure, and no later batch of this partition is stamped.
    q.next_seq = b.base_seq;
  }
}

// In the fatal state: every batch that is not in flight fails now. A
// partition with a batch in flight waits for its answer first, so the
// partition's callbacks stay in order.
void producer::impl::fail_unsent(std::vector<completion>& done) {
  for (auto& [tp, q] : queues_) {
    if (q.in_flight) continue;
    while (!q.batches.empty()) finish_front(*q.batches.front(), fatal_, -1, done);
  }
}

producer_stats producer::impl::stats() const {
  std::lock_guard lock(mu_);
  producer_stats s;
  s.id = pid_;
  s.epoch = epoch_;
  s.duplicates = duplicates_;
  s.identity_renewals = renewals_;
  return s;
}

// --- producer -----------------------------------------------------------------

result<void> prepare_record(producer_record& rec) {
  if (!protocol::valid_topic_name(rec.topic)) return errc::invalid_topic_name;
  if (rec.partition && rec.partition->value() < 0) return ferry::errc::invalid_argument;
  if (rec.timestamp && rec.timestamp->value() < 0) return ferry::errc::invalid_argument;
  if (rec.idempotency_key) {
    const auto n = rec.idempotency_key->size();
    if (n == 0 || n > protocol::kMaxIdempotencyKeyBytes) return ferry::errc::invalid_argument;
    rec.headers.push_back(
        {std::string(protocol::kIdempotencyKeyHeader), std::move(*rec.idempotency_key)});
    rec.idempotency_key.reset();
  }
  return success();
}

namespace {
std::unique_ptr<producer::backend> make_backend(producer_options o) {
  if (is_kafka_url(o.broker)) return make_kafka_producer(std::move(o));
  return std::make_unique<producer::impl>(std::move(o));
}
}  // namespace

producer::producer(producer_options options) : impl_(make_backend(std::move(options))) {}
producer::~producer() = default;
producer::producer(producer&&) noexcept = default;
producer& producer::operator=(producer&&) noexcept = default;

result<void> producer::send(producer_record record, delivery_callback callback) {
  if (!impl_) return ferry::errc::shutting_down;
  return impl_->send(std::move(record), std::move(callback));
}

std::future<result<record_metadata>> producer::send(producer_record record) {
  auto promise = std::make_shared<std::promise<result<record_metadata>>>();
  auto f = promise->get_future();
  auto r = send(std::move(record),
                [promise](const result<record_metadata>& m) { promise->set_value(m); });
  if (!r) promise->set_value(result<record_metadata>(r.error()));
  return f;
}

result<void> producer::flush(std::chrono::milliseconds timeout) {
  if (!impl_) return ferry::errc::shutting_down;
  return impl_->flush(timeout);
}

result<void> producer::close(std::chrono::milliseconds timeout) {
  if (!impl_) return success();
  return impl_->close(timeout);
}

producer_stats producer::stats() const {
  if (!impl_) return {};
  return impl_->stats();
}

}  // namespace ferry::client
