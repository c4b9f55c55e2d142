// The real producer against an in-process broker through a proxy that drops
// produce acknowledgements (RELIABILITY.md #9): the producer resends, the
// broker stores each batch once. The same run without idempotence stores
// the dropped-ack batches twice, which shows the proxy really forces the
// retries. Also: a second producer with the same name fences the first.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "broker_fixture.h"
#include "ferry/broker/broker.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using ferry::testing::wire_client;

// ROUTER in front (clients connect here), DEALER to the broker. Forwards
// every request; drops the replies to the produce requests whose 1-based
// number is in `drop`. One client at a time.
class ack_dropping_proxy {
 public:
  ack_dropping_proxy(const std::string& broker, std::set<int> drop) : drop_(std::move(drop)) {
    front_.set(zmq::sockopt::linger, 0);
    back_.set(zmq::sockopt::linger, 0);
    front_.bind("tcp://127.0.0.1:*");
    back_.connect(broker);
    endpoint_ = front_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { run(); });
  }
  ~ack_dropping_proxy() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  int produce_requests() const { return produces_.load(); }
  int dropped() const { return dropped_.load(); }

 private:
  static wire::Body type_of(zmq::message_t& frame0) {
    protocol::ensure_aligned(frame0);
    return wire::GetEnvelope(frame0.data())->body_type();
  }
  void run() {
    zmq::message_t client;
    std::map<std::uint64_t, int> produce_no;  // request id -> produce number
    while (!stop_) {
      zmq::pollitem_t items[] = {{front_.handle(), 0, ZMQ_POLLIN, 0},
                                 {back_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(5));
      if (items[0].revents & ZMQ_POLLIN) {
        auto m = protocol::recv_message(front_, false);
        ASSERT_TRUE(m);
        auto& frames = m.value();
        if (frames.size() >= 2) {
          client.copy(frames[0]);
          if (type_of(frames[1]) == wire::Body::ProduceRequest) {
            const auto id = wire::GetEnvelope(frames[1].data())->request_id();
            produce_no[id] = ++produces_;
          }
          std::vector<zmq::message_t> out(std::make_move_iterator(frames.begin() + 1),
                                          std::make_move_iterator(frames.end()));
          ASSERT_TRUE(protocol::send_message(back_, out));
        }
      }
      if (items[1].revents & ZMQ_POLLIN) {
        auto m = protocol::recv_message(back_, false);
        ASSERT_TRUE(m);
        auto& frames = m.value();
        if (frames.empty()) continue;
        if (type_of(frames[0]) == wire::Body::ProduceResponse) {
          const auto id = wire::GetEnvelope(frames[0].data())->request_id();
          if (drop_.count(produce_no[id])) {
            ++dropped_;
            continue;  // the acknowledgement is lost on the way back
          }
        }
        std::vector<zmq::message_t> out;
        out.emplace_back(client.data(), client.size());
        for (auto& f : frames) out.push_back(std::move(f));
        (void)protocol::send_message(front_, out);
      }
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t front_{ctx_, zmq::socket_type::router};
  zmq::socket_t back_{ctx_, zmq::socket_type::dealer};
  std::string endpoint_;
  std::set<int> drop_;
  std::atomic<int> produces_{0}, dropped_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class IdempotentClient : public ferry::testing::InprocBrokerTest {
 protected:
  IdempotentClient() : InprocBrokerTest("ferry-idemc") {}
  void SetUp() override {
    InprocBrokerTest::SetUp();
    if (HasFatalFailure()) return;
    wire_client w(endpoint());
    ASSERT_EQ(w.create_topic("t", 1), wire::ErrorCode::None);
  }
  client::producer_options options(const std::string& endpoint) {
    client::producer_options o;
    o.broker = endpoint;
    o.request_timeout = 300ms;  // how long the producer waits for a dropped ack
    o.retry_backoff = 10ms;
    o.delivery_timeout = 20s;
    o.linger = 0ms;
    return o;
  }
  std::vector<std::string> stored() { return stored_values("t", 0); }
  // Sends v0..v{n-1} one batch each (waiting for every ack), through `proxy`.
  std::vector<std::int64_t> send_all(client::producer& p, int n) {
    std::vector<std::int64_t> offsets;
    for (int i = 0; i < n; ++i) {
      client::producer_record r;
      r.topic = "t";
      r.partition = partition_id(0);
      r.value = "v" + std::to_string(i);
      auto m = p.send(std::move(r)).get();
      EXPECT_TRUE(m) << m.error().message();
      offsets.push_back(m ? m.value().offset.value() : -1);
    }
    return offsets;
  }
};

TEST_F(IdempotentClient, DroppedAcknowledgementsDoNotStoreABatchTwice) {
  ack_dropping_proxy proxy(endpoint(), {1, 3, 4});
  client::producer p(options(proxy.endpoint()));
  const auto offsets = send_all(p, 4);
  EXPECT_EQ(offsets, (std::vector<std::int64_t>{0, 1, 2, 3}));
  // Requests: v0 1 (ack dropped), 2; v1 3 (dropped), 4 (the retry's ack
  // dropped too), 5; v2 6; v3 7.
  EXPECT_EQ(proxy.dropped(), 3);
  EXPECT_EQ(proxy.produce_requests(), 7);
  EXPECT_EQ(p.stats().duplicates, 2u);  // requests 2 and 5 (4 was a duplicate, its ack lost)
  EXPECT_EQ(stored(), (std::vector<std::string>{"v0", "v1", "v2", "v3"}));
}

TEST_F(IdempotentClient, WithoutIdempotenceTheSameFaultsStoreDuplicates) {
  // The control: proves the proxy forces retries of stored batches.
  ack_dropping_proxy proxy(endpoint(), {1, 3, 4});
  auto o = options(proxy.endpoint());
  o.enable_idempotence = false;
  client::producer p(o);
  (void)send_all(p, 4);
  EXPECT_EQ(proxy.dropped(), 3);
  EXPECT_EQ(stored().size(), 7u) << "at-least-once: every attempt of a dropped ack was stored";
}

TEST_F(IdempotentClient, ASecondProducerWithTheSameNameFencesTheFirst) {
  auto o = options(endpoint());
  o.producer_name = "orders-writer";
  client::producer zombie(o);
  client::producer_record r;
  r.topic = "t";
  r.partition = partition_id(0);
  r.value = "z0";
  auto m = zombie.send(r).get();
  ASSERT_TRUE(m) << m.error().message();
  client::producer successor(o);
  r.value = "s0";
  auto s = successor.send(r).get();  // its InitProducer came first: it holds the newer epoch
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(successor.stats().id, zombie.stats().id);
  EXPECT_EQ(successor.stats().epoch, zombie.stats().epoch + 1);
  r.value = "z1";
  auto z = zombie.send(r).get();
  ASSERT_FALSE(z) << "the zombie wrote after its successor started";
  EXPECT_EQ(z.error(), client::errc::producer_fenced);
  auto later = zombie.send(r, nullptr);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error(), client::errc::producer_fenced);
  EXPECT_EQ(stored(), (std::vector<std::string>{"z0", "s0"}));
}

}  // namespace
}  // namespace ferry::broker
