// A scripted broker for client tests: a ROUTER socket bound to
// tcp://127.0.0.1:* served by a thread. Every request is decoded with
// decode_envelope(direction::request) (a failure is counted, never
// answered) and handed to the test's handler, which may answer at once,
// keep the request to answer later, or never answer. on_tick runs every few
// milliseconds on the same thread (for replies released by the test).
//
// Handlers run on the fake's thread: state they share with the test body
// must be guarded (the tests use a mutex or atomics).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "ferry/client/producer.h"
#include "ferry/core/endian.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/socket.h"

namespace ferry::client::testing {

struct request {
  zmq::message_t identity;
  std::vector<zmq::message_t> frames;  // [0] envelope, [1..] data

  [[nodiscard]] const wire::Envelope& envelope() const {
    return *wire::GetEnvelope(frames[0].data());
  }
  [[nodiscard]] std::uint64_t id() const { return envelope().request_id(); }
  [[nodiscard]] wire::Body type() const { return envelope().body_type(); }
  [[nodiscard]] std::span<const std::byte> frame(std::size_t i) const {
    return protocol::bytes_of(frames[i]);
  }
};

/// One entry of a ProduceRequest with its batch.
struct produced {
  std::string topic;
  std::int32_t partition = 0;
  std::vector<std::byte> batch;
};

inline std::vector<produced> produce_entries(const request& r) {
  std::vector<produced> out;
  for (const auto* e : *r.envelope().body_as_ProduceRequest()->entries()) {
    auto b = r.frame(e->frame());
    out.push_back({e->topic()->str(), e->partition(), {b.begin(), b.end()}});
  }
  return out;
}

/// Values of a batch's records (null values as "<null>").
inline std::vector<std::string> batch_values(std::span<const std::byte> batch) {
  std::vector<std::string> out;
  format::for_each_record(batch, [&](const format::record_view& r) {
    out.push_back(r.value ? std::string(r.value_str()) : std::string("<null>"));
  });
  return out;
}

inline std::vector<std::string> batch_keys(std::span<const std::byte> batch) {
  std::vector<std::string> out;
  format::for_each_record(batch, [&](const format::record_view& r) {
    out.push_back(r.key ? std::string(r.key_str()) : std::string("<null>"));
  });
  return out;
}

/// A batch of records with values `values`, stamped with `base` as the log does.
inline std::vector<std::byte> make_batch(std::int64_t base, const std::vector<std::string>& values,
                                         timestamp_ms ts = timestamp_ms(1'000)) {
  format::batch_builder b;
  for (std::size_t i = 0; i < values.size(); ++i)
    b.add(ts + static_cast<std::int64_t>(i), "k" + values[i], values[i]);
  auto bytes = b.finish();
  be::store<std::int64_t>(bytes.data() + format::layout::base_offset, base);
  return bytes;
}

class fake_broker;

/// Options of client type `Options` with short timeouts, aimed at `fb`.
template <typename Options>
Options fast_options(const fake_broker& fb);

class fake_broker {
 public:
  using handler = std::function<void(fake_broker&, request&)>;
  using tick = std::function<void(fake_broker&)>;

  /// `bind`: a fixed endpoint only to restart a broker where a previous one was.
  explicit fake_broker(handler h, tick t = {}, const std::string& bind = "tcp://127.0.0.1:*")
      : handler_(std::move(h)), tick_(std::move(t)) {
    socket_ = zmq::socket_t(ctx_, zmq::socket_type::router);
    EXPECT_TRUE(protocol::configure_socket(socket_, {}, /*router=*/true));
    socket_.bind(bind);
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { run(); });
  }
  ~fake_broker() {
    stop_ = true;
    thread_.join();
  }
  fake_broker(const fake_broker&) = delete;
  fake_broker& operator=(const fake_broker&) = delete;

  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }
  [[nodiscard]] int decode_failures() const { return decode_failures_.load(); }
  [[nodiscard]] int requests() const { return requests_.load(); }

  // --- replies (call on the fake's thread only) -----------------------------

  void send_raw(const zmq::message_t& identity, std::span<const std::byte> envelope,
                const std::vector<std::vector<std::byte>>& data = {}) {
    std::vector<zmq::message_t> frames;
    frames.emplace_back(identity.data(), identity.size());
    frames.emplace_back(envelope.data(), envelope.size());
    for (const auto& d : data) frames.emplace_back(d.data(), d.size());
    auto r = protocol::send_message(socket_, frames);
    // EHOSTUNREACH: the client is gone (a test ended with a fetch parked).
    EXPECT_TRUE(r || r.error() == std::errc::host_unreachable) << r.error().message();
  }

  void reply(const request& r, flatbuffers::FlatBufferBuilder& fbb, wire::Body type,
             flatbuffers::Offset<void> body, const std::vector<std::vector<std::byte>>& data = {},
             std::optional<std::uint64_t> id = {}) {
    auto env = protocol::finish_envelope(fbb, id.value_or(r.id()), type, body);
    send_raw(r.identity, env, data);
  }

  struct produce_result {
    std::string topic;
    std::int32_t partition = 0;
    wire::ErrorCode error = wire::ErrorCode::None;
    std::int64_t base_offset = -1;
    std::string message;
  };
  void reply_produce(const request& r, const std::vector<produce_result>& results) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::ProduceResult>> v;
    for (const auto& x : results)
      v.push_back(wire::CreateProduceResultDirect(fbb, x.topic.c_str(), x.partition, x.error,
                                                  x.base_offset, x.message.c_str()));
    reply(r, fbb, wire::Body::ProduceResponse, wire::CreateProduceResponseDirect(fbb, &v).Union());
  }

  void reply_describe(const request& r, std::int32_t partitions,
                      wire::ErrorCode error = wire::ErrorCode::None,
                      std::int32_t max_message_bytes = 0, const std::string& message = {}) {
    flatbuffers::FlatBufferBuilder fbb;
    const std::string name = r.envelope().body_as_DescribeTopicRequest()->name()->str();
    std::vector<flatbuffers::Offset<wire::PartitionInfo>> ps;
    if (error == wire::ErrorCode::None) {
      for (std::int32_t p = 0; p < partitions; ++p)
        ps.push_back(wire::CreatePartitionInfoDirect(fbb, p, 0, 10, 10, 1000, 1));
    }
    auto cfg = wire::CreateTopicConfig(fbb, partitions, -2, -2, max_message_bytes, 0);
    reply(
        r, fbb, wire::Body::DescribeTopicResponse,
        wire::CreateDescribeTopicResponseDirect(fbb, error, message.c_str(), name.c_str(), cfg, &ps)
            .Union());
  }

  struct fetch_result {
    std::string topic;
    std::int32_t partition = 0;
    wire::ErrorCode error = wire::ErrorCode::None;
    std::int64_t high_watermark = -1;
    std::int64_t log_start = -1;
    std::vector<std::byte> data;  // empty: no data frame
  };
  void reply_fetch(const request& r, const std::vector<fetch_result>& results) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::FetchResult>> v;
    std::vector<std::vector<std::byte>> data;
    for (const auto& x : results) {
      std::uint32_t frame = 0;
      if (!x.data.empty()) {
        data.push_back(x.data);
        frame = static_cast<std::uint32_t>(data.size());
      }
      v.push_back(wire::CreateFetchResultDirect(fbb, x.topic.c_str(), x.partition, x.error,
                                                x.high_watermark, x.log_start, frame));
    }
    reply(r, fbb, wire::Body::FetchResponse, wire::CreateFetchResponseDirect(fbb, &v).Union(),
          data);
  }

  struct offset_result {
    std::string topic;
    std::int32_t partition = 0;
    wire::ErrorCode error = wire::ErrorCode::None;
    std::int64_t offset = -1;
  };
  void reply_list_offsets(const request& r, const std::vector<offset_result>& results) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::ListOffsetsResult>> v;
    for (const auto& x : results)
      v.push_back(wire::CreateListOffsetsResultDirect(fbb, x.topic.c_str(), x.partition, x.error,
                                                      x.offset));
    reply(r, fbb, wire::Body::ListOffsetsResponse,
          wire::CreateListOffsetsResponseDirect(fbb, &v).Union());
  }

  void reply_error(const request& r, wire::ErrorCode error, const std::string& message) {
    flatbuffers::FlatBufferBuilder fbb;
    reply(r, fbb, wire::Body::ErrorResponse,
          wire::CreateErrorResponseDirect(fbb, error, message.c_str()).Union());
  }

 private:
  void run() {
    while (!stop_) {
      zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(2));
      for (;;) {
        auto msg = protocol::recv_message(socket_, /*wait=*/false);
        ASSERT_TRUE(msg);
        if (msg.value().empty()) break;
        auto& frames = msg.value();
        request r;
        r.identity = std::move(frames[0]);
        r.frames.assign(std::make_move_iterator(frames.begin() + 1),
                        std::make_move_iterator(frames.end()));
        // Zero-copy frames may be misaligned for FlatBuffers (see connection.cc).
        if (reinterpret_cast<std::uintptr_t>(r.frames[0].data()) % 8 != 0)
          r.frames[0] = zmq::message_t(r.frames[0].data(), r.frames[0].size());
        std::string why;
        auto env = protocol::decode_envelope(r.frame(0), r.frames.size(),
                                             protocol::direction::request, {}, &why);
        if (!env) {
          ++decode_failures_;
          ADD_FAILURE() << "fake broker: undecodable request: " << why;
          continue;
        }
        ++requests_;
        handler_(*this, r);
      }
      if (tick_) tick_(*this);
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
  std::string endpoint_;
  handler handler_;
  tick tick_;
  std::atomic<bool> stop_{false};
  std::atomic<int> decode_failures_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

template <typename Options>
Options fast_options(const fake_broker& fb) {
  using namespace std::chrono_literals;
  Options o;
  o.broker = fb.endpoint();
  o.request_timeout = 1000ms;
  o.api_timeout = 2000ms;
  o.retry_backoff = 5ms;
  return o;
}

/// Producer options aimed at `fb`: fast_options, a 5 s delivery timeout, no
/// linger, 2 s max_block.
inline producer_options fast_producer_options(const fake_broker& fb) {
  using namespace std::chrono_literals;
  auto o = fast_options<producer_options>(fb);
  o.delivery_timeout = 5000ms;
  o.linger = 0ms;
  o.max_block = 2000ms;
  return o;
}

/// A record for topic "t" with value `value`, and `partition` and `key`
/// when given.
inline producer_record rec(std::string value, std::optional<std::int32_t> partition = {},
                           std::optional<std::string> key = {}) {
  producer_record r;
  r.topic = "t";
  r.key = std::move(key);
  r.value = std::move(value);
  if (partition) r.partition = partition_id(*partition);
  return r;
}

/// Holds back produce requests until released: a fake_broker's handler and
/// tick that keep every ProduceRequest while `release` is false and hand
/// the other requests to `serve` at once; once `release` is set, the held
/// requests go to `serve` at the next tick, in arrival order, and later
/// ones at once. Declare it before the fake_broker that uses it (it must
/// outlive the fake's thread).
class produce_gate {
 public:
  explicit produce_gate(fake_broker::handler serve) : serve_(std::move(serve)) {}

  [[nodiscard]] fake_broker::handler handler() {
    return [this](fake_broker& f, request& r) {
      if (r.type() == wire::Body::ProduceRequest && !release) {
        held_.push_back(std::move(r));
        return;
      }
      serve_(f, r);
    };
  }
  [[nodiscard]] fake_broker::tick tick() {
    return [this](fake_broker& f) {
      if (!release) return;
      for (auto& r : held_) serve_(f, r);
      held_.clear();
    };
  }

  std::atomic<bool> release{false};

 private:
  fake_broker::handler serve_;
  std::vector<request> held_;  // the fake's thread only
};

}  // namespace ferry::client::testing
