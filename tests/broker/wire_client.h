// A raw protocol client for broker tests: builds envelopes by hand, so tests
// can send exactly the bytes they want (including bad ones).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "ferry/core/clock.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/socket.h"

namespace ferry::testing {

struct reply_msg {
  std::vector<zmq::message_t> frames;
  const wire::Envelope* env = nullptr;
};

class wire_client {
 public:
  explicit wire_client(const std::string& endpoint) : sock_(ctx_, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.connect(endpoint);
  }

  void send_raw(std::vector<std::vector<std::byte>> frames) {
    std::vector<zmq::message_t> msgs;
    for (auto& f : frames) msgs.emplace_back(f.data(), f.size());
    ASSERT_TRUE(protocol::send_message(sock_, msgs));
  }

  /// Waits for one reply; nullopt on timeout. The envelope is verified.
  std::optional<reply_msg> recv(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, timeout);
    if (!(items[0].revents & ZMQ_POLLIN)) return std::nullopt;
    auto m = protocol::recv_message(sock_, true);
    EXPECT_TRUE(m);
    reply_msg r;
    r.frames = std::move(m).value();
    protocol::ensure_aligned(r.frames[0]);
    std::string why;
    auto env = protocol::decode_envelope(protocol::bytes_of(r.frames[0]), r.frames.size(),
                                         protocol::direction::response, {}, &why);
    EXPECT_TRUE(env) << why;
    if (env) r.env = env.value();
    return r;
  }

  std::optional<reply_msg> call(
      flatbuffers::FlatBufferBuilder& fbb, wire::Body type, flatbuffers::Offset<void> body,
      std::vector<std::vector<std::byte>> data = {},
      std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    std::vector<std::vector<std::byte>> frames;
    frames.push_back(protocol::finish_envelope(fbb, ++next_id_, type, body));
    for (auto& d : data) frames.push_back(std::move(d));
    send_raw(std::move(frames));
    return recv(timeout);
  }

  wire::ErrorCode create_topic(const std::string& name, int partitions,
                               std::int32_t max_message_bytes = 0) {
    flatbuffers::FlatBufferBuilder fbb;
    auto conf = wire::CreateTopicConfig(fbb, partitions, -2, -2, max_message_bytes, 0);
    auto body = wire::CreateCreateTopicRequest(fbb, fbb.CreateString(name), conf);
    auto r = call(fbb, wire::Body::CreateTopicRequest, body.Union());
    if (!r || !r->env) return wire::ErrorCode::Internal;
    if (r->env->body_type() == wire::Body::ErrorResponse) {
      last_message_ = r->env->body_as_ErrorResponse()->message()
                          ? r->env->body_as_ErrorResponse()->message()->str()
                          : "";
      return r->env->body_as_ErrorResponse()->error();
    }
    last_message_ = r->env->body_as_CreateTopicResponse()->message()
                        ? r->env->body_as_CreateTopicResponse()->message()->str()
                        : "";
    return r->env->body_as_CreateTopicResponse()->error();
  }

  struct produce_out {
    wire::ErrorCode error = wire::ErrorCode::Internal;
    std::int64_t base = -1;
    std::string message;
  };

  /// Produces one batch per (topic, partition, batch) entry in one request.
  std::vector<produce_out> produce(
      const std::vector<std::tuple<std::string, int, std::vector<std::byte>>>& entries) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::ProduceEntry>> v;
    std::vector<std::vector<std::byte>> data;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      v.push_back(wire::CreateProduceEntry(fbb, fbb.CreateString(std::get<0>(entries[i])),
                                           std::get<1>(entries[i]),
                                           static_cast<std::uint32_t>(i + 1)));
      data.push_back(std::get<2>(entries[i]));
    }
    auto body = wire::CreateProduceRequest(fbb, fbb.CreateVector(v));
    auto r = call(fbb, wire::Body::ProduceRequest, body.Union(), std::move(data));
    std::vector<produce_out> out;
    if (!r || !r->env || r->env->body_type() != wire::Body::ProduceResponse) return out;
    for (auto* x : *r->env->body_as_ProduceResponse()->results())
      out.push_back({x->error(), x->base_offset(), x->message() ? x->message()->str() : ""});
    return out;
  }

  produce_out produce_one(const std::string& topic, int partition, std::vector<std::byte> batch) {
    auto v = produce({{topic, partition, std::move(batch)}});
    return v.empty() ? produce_out{} : v[0];
  }

  struct fetch_out {
    wire::ErrorCode error = wire::ErrorCode::Internal;
    std::int64_t high_watermark = -1;
    std::vector<std::byte> data;
    bool answered = false;
  };

  fetch_out fetch(const std::string& topic, int partition, std::int64_t offset, int max_wait_ms = 0,
                  int max_bytes = 1 << 20) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::FetchEntry>> v{
        wire::CreateFetchEntry(fbb, fbb.CreateString(topic), partition, offset, max_bytes)};
    auto body = wire::CreateFetchRequest(fbb, fbb.CreateVector(v), max_wait_ms);
    auto r = call(fbb, wire::Body::FetchRequest, body.Union(), {},
                  std::chrono::milliseconds(max_wait_ms + 10000));
    fetch_out out;
    if (!r || !r->env || r->env->body_type() != wire::Body::FetchResponse) return out;
    out.answered = true;
    auto* res = r->env->body_as_FetchResponse()->results()->Get(0);
    out.error = res->error();
    out.high_watermark = res->high_watermark();
    if (res->frame() != 0) {
      auto b = protocol::bytes_of(r->frames[res->frame()]);
      out.data.assign(b.begin(), b.end());
    }
    return out;
  }

  const std::string& last_message() const { return last_message_; }
  zmq::socket_t& socket() { return sock_; }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::uint64_t next_id_ = 0;
  std::string last_message_;
};

inline std::vector<std::byte> make_batch(int n, int first = 0, std::size_t value_size = 16) {
  format::batch_builder b;
  for (int i = 0; i < n; ++i) {
    std::string v = "v" + std::to_string(first + i);
    v.resize(std::max(v.size(), value_size), '.');
    b.add(system_clock::instance().wall_now(), "k" + std::to_string(first + i), v);
  }
  return b.finish();
}

/// Values of every record in a fetched byte range, from `from` on.
inline std::vector<std::string> values_in(std::span<const std::byte> data, std::int64_t from = 0) {
  std::vector<std::string> out;
  while (data.size() >= format::kBatchHeaderSize) {
    auto h = format::batch_header::decode(data.data());
    auto one = data.first(static_cast<std::size_t>(h.size()));
    EXPECT_TRUE(format::validate_batch(one, format::validation::full));
    format::for_each_record(one, [&](const format::record_view& r) {
      if (r.off.value() >= from) {
        auto v = std::string(r.value_str());
        out.push_back(v.substr(0, v.find('.')));
      }
    });
    data = data.subspan(static_cast<std::size_t>(h.size()));
  }
  return out;
}

}  // namespace ferry::testing
