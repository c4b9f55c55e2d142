#include "ferry/client/consumer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>

#include "fake_broker.h"
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;
using testing::fake_broker;
using testing::request;
using sclock = std::chrono::steady_clock;
using tp_key = std::pair<std::string, std::int32_t>;

// Serves stored batches like the broker: a fetch gets every batch from the
// one holding the requested offset (so the first batch may start before
// it), OffsetOutOfRange outside [log start, log end], and is held up to
// max_wait_ms when there is nothing to return (long poll).
struct fake_partitions {
  std::mutex mu;
  std::map<tp_key, std::vector<std::vector<std::byte>>> batches;
  std::map<tp_key, std::int64_t> log_start;             // default: the first batch's base offset
  std::vector<std::map<tp_key, std::int64_t>> fetches;  // offsets asked for, per FetchRequest
  std::vector<wire::OffsetSpec> lookups;
  std::vector<std::pair<sclock::time_point, request>> parked;  // empty fetches waiting out max_wait

  void add(const tp_key& k, std::vector<std::byte> b) { batches[k].push_back(std::move(b)); }

  std::int64_t start_of(const tp_key& k) {
    if (auto it = log_start.find(k); it != log_start.end()) return it->second;
    auto& bs = batches[k];
    return bs.empty() ? 0 : format::batch_header::decode(bs.front().data()).base_offset.value();
  }
  std::int64_t end_of(const tp_key& k) {
    auto& bs = batches[k];
    return bs.empty() ? start_of(k)
                      : format::batch_header::decode(bs.back().data()).next_offset().value();
  }

  void serve(fake_broker& f, request& r) {
    std::lock_guard lock(mu);
    if (r.type() == wire::Body::ListOffsetsRequest) {
      std::vector<fake_broker::offset_result> out;
      for (const auto* e : *r.envelope().body_as_ListOffsetsRequest()->entries()) {
        const tp_key k{e->topic()->str(), e->partition()};
        lookups.push_back(e->spec());
        std::int64_t off = -1;
        switch (e->spec()) {
          case wire::OffsetSpec::Earliest:
            off = start_of(k);
            break;
          case wire::OffsetSpec::Latest:
            off = end_of(k);
            break;
          case wire::OffsetSpec::Timestamp:
            for (const auto& b : batches[k]) {
              format::for_each_record(b, [&](const format::record_view& rv) {
                if (off < 0 && rv.timestamp.value() >= e->timestamp()) off = rv.off.value();
              });
            }
            break;
        }
        out.push_back({k.first, k.second, wire::ErrorCode::None, off});
      }
      f.reply_list_offsets(r, out);
      return;
    }
    ASSERT_EQ(r.type(), wire::Body::FetchRequest);
    const auto* req = r.envelope().body_as_FetchRequest();
    std::map<tp_key, std::int64_t> asked;
    std::vector<fake_broker::fetch_result> out;
    bool any_data = false;
    for (const auto* e : *req->entries()) {
      const tp_key k{e->topic()->str(), e->partition()};
      asked[k] = e->offset();
      fake_broker::fetch_result x{k.first,   k.second,    wire::ErrorCode::None,
                                  end_of(k), start_of(k), {}};
      if (e->offset() < start_of(k) || e->offset() > end_of(k)) {
        x.error = wire::ErrorCode::OffsetOutOfRange;
      } else {
        for (const auto& b : batches[k]) {
          if (format::batch_header::decode(b.data()).next_offset().value() > e->offset())
            x.data.insert(x.data.end(), b.begin(), b.end());
        }
      }
      any_data = any_data || !x.data.empty() || x.error != wire::ErrorCode::None;
      out.push_back(std::move(x));
    }
    fetches.push_back(asked);
    if (!any_data) {
      parked.emplace_back(sclock::now() + std::chrono::milliseconds(req->max_wait_ms()),
                          std::move(r));
      return;
    }
    f.reply_fetch(r, out);
  }

  void tick(fake_broker& f) {
    std::lock_guard lock(mu);
    for (auto it = parked.begin(); it != parked.end();) {
      if (it->first > sclock::now()) {
        ++it;
        continue;
      }
      std::vector<fake_broker::fetch_result> out;
      for (const auto* e : *it->second.envelope().body_as_FetchRequest()->entries())
        out.push_back({e->topic()->str(), e->partition(), wire::ErrorCode::None, -1, -1, {}});
      f.reply_fetch(it->second, out);
      it = parked.erase(it);
    }
  }
};

consumer_options fast(const fake_broker& fb) {
  auto o = testing::fast_options<consumer_options>(fb);
  o.fetch_max_wait = 20ms;
  return o;
}

std::vector<std::string> values(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back("v" + std::to_string(i));
  return v;
}

// Polls until `n` records arrived or an error or 2 s passed.
result<std::vector<consumer_record>> poll_n(consumer& c, std::size_t n) {
  std::vector<consumer_record> all;
  const auto until = sclock::now() + 2s;
  while (all.size() < n && sclock::now() < until) {
    FERRY_TRY(auto got, c.poll(100ms));
    all.insert(all.end(), got.begin(), got.end());
  }
  return all;
}

const topic_partition tp0{"t", partition_id(0)};
const topic_partition tp1{"t", partition_id(1)};

TEST(Consumer, SkipsRecordsBelowThePositionAndAdvancesPastReturnedOnes) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(0, values(0, 5)));
  log.add({"t", 0}, testing::make_batch(5, values(5, 10)));
  log.add({"t", 1}, testing::make_batch(0, values(100, 102)));
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0, tp1}));
  ASSERT_TRUE(c.seek(tp0, offset(3)));  // inside the first batch
  ASSERT_TRUE(c.seek(tp1, offset(0)));

  auto got = poll_n(c, 9);
  ASSERT_TRUE(got) << got.error().message() << " " << c.last_error_message();
  std::vector<std::int64_t> p0;
  std::vector<std::string> p1;
  for (const auto& r : got.value()) {
    if (r.partition == partition_id(0)) {
      p0.push_back(r.offset.value());
      EXPECT_EQ(r.value, "v" + std::to_string(r.offset.value()));
      EXPECT_EQ(r.key, "kv" + std::to_string(r.offset.value()));
      EXPECT_EQ(r.timestamp, timestamp_ms(1000 + (r.offset.value() % 5)));
    } else {
      p1.push_back(*r.value);
    }
    EXPECT_EQ(r.topic, "t");
  }
  EXPECT_EQ(p0, (std::vector<std::int64_t>{3, 4, 5, 6, 7, 8, 9}));  // nothing below the position
  EXPECT_EQ(p1, (std::vector<std::string>{"v100", "v101"}));
  EXPECT_EQ(c.position(tp0).value(), offset(10));
  EXPECT_EQ(c.position(tp1).value(), offset(2));

  // The next fetch asks from the new positions, for both partitions at once.
  auto more = c.poll(30ms);
  ASSERT_TRUE(more);
  EXPECT_TRUE(more.value().empty());
  std::lock_guard lock(log.mu);
  ASSERT_GE(log.fetches.size(), 2u);
  EXPECT_EQ(log.fetches[0].at({"t", 0}), 3);
  EXPECT_EQ(log.fetches.back().at({"t", 0}), 10);
  EXPECT_EQ(log.fetches.back().at({"t", 1}), 2);
}

TEST(Consumer, NewPartitionsStartAtTheEarliestOffset) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(20, values(20, 23)));
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  auto pos = c.position(tp0);
  ASSERT_TRUE(pos) << pos.error().message();
  EXPECT_EQ(pos.value(), offset(20));
  auto got = poll_n(c, 3);
  ASSERT_TRUE(got);
  ASSERT_EQ(got.value().size(), 3u);
  EXPECT_EQ(got.value()[0].offset, offset(20));
  std::lock_guard lock(log.mu);
  ASSERT_FALSE(log.lookups.empty());
  EXPECT_EQ(log.lookups[0], wire::OffsetSpec::Earliest);
}

TEST(Consumer, KeepsNullsAndHeaders) {
  fake_partitions log;
  format::batch_builder b;
  const format::batch_builder::header_input hs[] = {{"trace", format::as_bytes("abc")},
                                                    {"empty", std::nullopt}};
  b.add(timestamp_ms(5), std::nullopt, std::nullopt, hs);
  log.add({"t", 0}, b.finish());
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  auto got = poll_n(c, 1);
  ASSERT_TRUE(got);
  ASSERT_EQ(got.value().size(), 1u);
  const auto& r = got.value()[0];
  EXPECT_FALSE(r.key.has_value());
  EXPECT_FALSE(r.value.has_value());
  EXPECT_EQ(r.headers, (std::vector<header>{{"trace", "abc"}, {"empty", std::nullopt}}));
}

TEST(Consumer, ACorruptBatchIsAnErrorNeverRecords) {
  fake_partitions log;
  auto bad = testing::make_batch(0, values(0, 3));
  bad[bad.size() - 2] ^= std::byte{0x01};  // a value byte: the CRC no longer matches
  log.add({"t", 0}, bad);
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto got = c.poll(500ms);
    ASSERT_FALSE(got) << "returned " << got.value().size() << " records from a corrupt batch";
    EXPECT_EQ(got.error(), errc::corrupt_data);
    EXPECT_NE(c.last_error_message().find("CRC"), std::string::npos) << c.last_error_message();
    EXPECT_EQ(c.position(tp0).value(), offset(0));
  }
}

TEST(Consumer, RecordsBeforeACorruptBatchComeFirstThenTheError) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(0, values(0, 3)));
  auto bad = testing::make_batch(3, values(3, 6));
  bad[format::kBatchHeaderSize + 3] ^= std::byte{0x40};
  log.add({"t", 0}, bad);
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  auto first = c.poll(500ms);
  ASSERT_TRUE(first) << c.last_error_message();
  ASSERT_EQ(first.value().size(), 3u);
  EXPECT_EQ(first.value().back().offset, offset(2));
  auto second = c.poll(500ms);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), errc::corrupt_data);
  EXPECT_EQ(c.position(tp0).value(), offset(3));  // stops before the bad batch
}

TEST(Consumer, TruncatedFetchDataIsCorrupt) {
  fake_partitions log;
  auto b = testing::make_batch(0, values(0, 3));
  b.resize(b.size() - 1);
  log.add({"t", 0}, b);
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  auto got = c.poll(500ms);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), errc::corrupt_data);
}

TEST(Consumer, OffsetOutOfRangeResetsToTheEarliestOffset) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(5, values(5, 8)));
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(100)));
  auto got = poll_n(c, 3);
  ASSERT_TRUE(got) << got.error().message();
  ASSERT_EQ(got.value().size(), 3u);
  EXPECT_EQ(got.value()[0].offset, offset(5));
  std::lock_guard lock(log.mu);
  EXPECT_EQ(log.fetches.front().at({"t", 0}), 100);
  ASSERT_FALSE(log.lookups.empty());
  EXPECT_EQ(log.lookups.back(), wire::OffsetSpec::Earliest);
}

TEST(Consumer, OffsetOutOfRangeWithResetNoneIsAnError) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(5, values(5, 8)));
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  auto o = fast(fb);
  o.auto_offset_reset = offset_reset::none;
  consumer c(o);
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(2)));
  auto got = c.poll(500ms);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), errc::offset_out_of_range);
  EXPECT_EQ(c.position(tp0).value(), offset(2));
}

TEST(Consumer, SeekToEndAndToTimestamp) {
  fake_partitions log;
  log.add({"t", 0},
          testing::make_batch(0, values(0, 10), timestamp_ms(1000)));  // record i at 1000 + i
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); },
                 [&](fake_broker& f) { log.tick(f); });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek_to_end());
  EXPECT_EQ(c.position(tp0).value(), offset(10));
  const topic_partition tps[] = {tp0};
  ASSERT_TRUE(c.seek_to_timestamp(tps, timestamp_ms(1007)));
  EXPECT_EQ(c.position(tp0).value(), offset(7));
  ASSERT_TRUE(c.seek_to_timestamp(tps, timestamp_ms(5000)));  // nothing that late: the end
  EXPECT_EQ(c.position(tp0).value(), offset(10));
  ASSERT_TRUE(c.seek_to_beginning(tps));
  EXPECT_EQ(c.position(tp0).value(), offset(0));
  EXPECT_EQ(c.seek(topic_partition{"other", partition_id(0)}, offset(1)).error(),
            ferry::errc::not_found);
}

TEST(Consumer, UnansweredFetchesAreResentAndReportedAfterApiTimeout) {
  fake_broker fb([](fake_broker&, request&) {});  // silent
  auto o = fast(fb);
  o.request_timeout = 30ms;
  o.fetch_max_wait = 10ms;
  o.api_timeout = 100ms;
  consumer c(o);
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  const auto start = sclock::now();
  auto got = c.poll(2s);
  const auto took = sclock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), protocol::errc::timed_out);
  EXPECT_TRUE(is_retriable(got.error()));
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 1s);
  EXPECT_GE(fb.requests(), 2);  // resent before giving up
}

TEST(Consumer, ALostFetchIsResentWithoutAnError) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(0, values(0, 3)));
  std::atomic<int> fetches{0};
  fake_broker fb(
      [&](fake_broker& f, request& r) {
        if (r.type() == wire::Body::FetchRequest && fetches++ == 0) return;  // lost
        log.serve(f, r);
      },
      [&](fake_broker& f) { log.tick(f); });
  auto o = fast(fb);
  o.request_timeout = 30ms;
  consumer c(o);
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  auto got = c.poll(2s);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got.value().size(), 3u);
  EXPECT_GE(fetches.load(), 2);
}

TEST(Consumer, ResumesAfterABrokerRestart) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(0, values(0, 3)));
  std::atomic<int> swallowed{0};
  auto first = std::make_unique<fake_broker>([&](fake_broker&, request& r) {
    if (r.type() == wire::Body::FetchRequest) ++swallowed;  // dies before answering
  });
  const std::string endpoint = first->endpoint();
  auto o = fast(*first);
  o.request_timeout = 10s;  // recovery must not wait for it
  consumer c(o);
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  auto none = c.poll(50ms);
  ASSERT_TRUE(none);
  ASSERT_EQ(swallowed.load(), 1);
  first.reset();
  fake_broker second([&](fake_broker& f, request& r) { log.serve(f, r); },
                     [&](fake_broker& f) { log.tick(f); }, endpoint);
  const auto start = sclock::now();
  auto got = poll_n(c, 3);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got.value().size(), 3u);
  EXPECT_LT(sclock::now() - start, 3s);
}

TEST(Consumer, DataFetchedForAnAbandonedPositionIsDiscarded) {
  fake_partitions log;
  log.add({"t", 0}, testing::make_batch(0, values(0, 10)));
  std::atomic<bool> release{false};
  std::optional<request> held;
  fake_broker fb(
      [&](fake_broker& f, request& r) {
        if (r.type() == wire::Body::FetchRequest && !held && !release) {
          held = std::move(r);  // the first fetch (from offset 0) waits
          return;
        }
        log.serve(f, r);
      },
      [&](fake_broker& f) {
        if (release && held) {
          log.serve(f, *held);  // answers with offsets 0..9, now stale
          held.reset();
        }
        log.tick(f);
      });
  consumer c(fast(fb));
  ASSERT_TRUE(c.assign({tp0}));
  ASSERT_TRUE(c.seek(tp0, offset(0)));
  auto empty = c.poll(20ms);  // the fetch stays in flight
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty.value().empty());
  ASSERT_TRUE(c.seek(tp0, offset(7)));
  release = true;
  auto got = poll_n(c, 3);
  ASSERT_TRUE(got) << got.error().message();
  ASSERT_EQ(got.value().size(), 3u);
  EXPECT_EQ(got.value()[0].offset, offset(7));
}

TEST(Consumer, AssignRejectsInvalidNames) {
  fake_broker fb([](fake_broker&, request&) {});
  consumer c(fast(fb));
  EXPECT_EQ(c.assign({{"bad name", partition_id(0)}}).error(), errc::invalid_topic_name);
  EXPECT_EQ(c.assign({{"t", partition_id(-1)}}).error(), ferry::errc::invalid_argument);
  ASSERT_TRUE(c.assign({tp0, tp1}));
  EXPECT_EQ(c.assignment(), (std::vector<topic_partition>{tp0, tp1}));
}

}  // namespace
}  // namespace ferry::client
