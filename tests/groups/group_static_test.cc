// Static membership with real processes: a member (group_member_child) with
// a group_instance_id is killed with SIGKILL and started again under the
// same id. Its restart takes the same partitions back in the same
// generation - no rebalance, the other member never revoked - and every
// record is delivered. The negative control restarts a dynamic member the
// same way and sees the group rebalance.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "ferry/broker/broker.h"
#include "ferry/client/admin.h"
#include "ferry/client/producer.h"
#include "inproc_broker.h"

#ifndef FERRY_MEMBER_CHILD
#error "FERRY_MEMBER_CHILD must name the group_member_child executable"
#endif

namespace ferry {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int kPartitions = 4;

pid_t spawn(const std::string& endpoint, const fs::path& out, const std::string& instance,
            const std::string& session_ms) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(FERRY_MEMBER_CHILD, FERRY_MEMBER_CHILD, endpoint.c_str(), "g", "orders", out.c_str(),
            instance.c_str(), session_ms.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

int stop(pid_t pid, int sig) {
  ::kill(pid, sig);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The lines of a member's file that start with `kind`.
std::vector<std::string> lines(const fs::path& f, char kind) {
  std::ifstream in(f);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (!l.empty() && l[0] == kind) out.push_back(l);
  return out;
}

// The record values the members' files saw.
std::set<int> delivered(const std::vector<fs::path>& files) {
  std::set<int> seen;
  for (const auto& f : files)
    for (const auto& l : lines(f, 'R')) {
      std::istringstream ss(l);
      std::string r, gen, part, off, value;
      ss >> r >> gen >> part >> off >> value;
      if (!value.empty()) seen.insert(std::stoi(value));
    }
  return seen;
}

class GroupStatic : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("ferry-static");
    ASSERT_FALSE(dir_.empty());
    broker_.start(dir_);
    client::admin a(base());
    ASSERT_TRUE(a.create_topic("orders", {.partitions = kPartitions}));
  }
  void TearDown() override {
    broker_.stop();
    fs::remove_all(dir_);
  }
  client::client_options base() const { return testing::base_client_options(broker_.endpoint()); }

  void produce(int from, int n) {
    client::producer_options po;
    static_cast<client::client_options&>(po) = base();
    client::producer p(po);
    for (int i = from; i < from + n; ++i) {
      client::producer_record r;
      r.topic = "orders";
      r.value = std::to_string(i);
      r.partition = partition_id(i % kPartitions);
      ASSERT_TRUE(p.send(std::move(r), {}));
    }
    ASSERT_TRUE(p.flush(10s));
  }

  // The group once it is Stable with `members` members that share every
  // partition (up to 30 s); nothing if it never gets there.
  std::optional<client::group_description> settled(std::size_t members,
                                                   std::chrono::seconds limit = 30s) {
    client::admin a(base());
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      auto d = a.describe_group("g");
      if (d && d.value().state == "Stable" && d.value().members.size() == members) {
        std::size_t owned = 0;
        for (const auto& m : d.value().members) owned += m.assignment.size();
        if (owned == kPartitions) return d.value();
      }
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  }

  // Waits until every value in [0, n) was delivered to one of `files`.
  ::testing::AssertionResult all_delivered(const std::vector<fs::path>& files, int n) {
    const auto end = std::chrono::steady_clock::now() + 30s;
    std::set<int> seen;
    while (std::chrono::steady_clock::now() < end) {
      seen = delivered(files);
      if (seen.size() == static_cast<std::size_t>(n) && *seen.rbegin() == n - 1)
        return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(100ms);
    }
    return ::testing::AssertionFailure() << seen.size() << " of " << n << " records delivered";
  }

  fs::path dir_;
  testing::inproc_broker broker_;
};

const client::group_member_info* by_instance(const client::group_description& d,
                                             const std::string& instance) {
  for (const auto& m : d.members)
    if (m.instance_id == instance) return &m;
  return nullptr;
}

TEST_F(GroupStatic, KilledMemberRestartedUnderItsIdGetsItsPartitionsBackWithoutARebalance) {
  const auto fa = dir_ / "a.out", fa2 = dir_ / "a2.out", fb = dir_ / "b.out";
  // A session far longer than the test: the dead member is never expired,
  // so only static membership can hand its partitions over.
  const std::string session = "60000";
  pid_t a = spawn(broker_.endpoint(), fa, "member-a", session);
  pid_t b = spawn(broker_.endpoint(), fb, "member-b", session);
  auto before = settled(2);
  ASSERT_TRUE(before.has_value()) << "the two members never shared the partitions";
  produce(0, 200);
  ASSERT_TRUE(all_delivered({fa, fb}, 200));
  const auto* old_a = by_instance(*before, "member-a");
  const auto* old_b = by_instance(*before, "member-b");
  ASSERT_NE(old_a, nullptr);
  ASSERT_NE(old_b, nullptr);
  const auto b_assignments = lines(fb, 'A').size();

  ::kill(a, SIGKILL);
  ::waitpid(a, nullptr, 0);
  pid_t a2 = spawn(broker_.endpoint(), fa2, "member-a", session);
  // The restart shows up as a new member id under the same instance id.
  client::admin admin(base());
  std::optional<client::group_description> after;
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end) {
    auto d = admin.describe_group("g");
    const auto* m = d ? by_instance(d.value(), "member-a") : nullptr;
    if (m != nullptr && m->member_id != old_a->member_id && !lines(fa2, 'A').empty()) {
      after = d.value();
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(after.has_value()) << "the restarted member never took its place";
  EXPECT_EQ(after->generation, before->generation) << "no rebalance";
  EXPECT_EQ(after->state, "Stable");
  ASSERT_EQ(after->members.size(), 2u);
  EXPECT_EQ(by_instance(*after, "member-a")->assignment, old_a->assignment);
  EXPECT_EQ(by_instance(*after, "member-b")->member_id, old_b->member_id);
  EXPECT_EQ(by_instance(*after, "member-b")->assignment, old_b->assignment);

  produce(200, 200);
  EXPECT_TRUE(all_delivered({fa, fa2, fb}, 400));
  // b was never given a new assignment (it never revoked), and the restart
  // was handed the generation it had.
  EXPECT_EQ(lines(fb, 'A').size(), b_assignments);
  const auto a2_assigned = lines(fa2, 'A');
  ASSERT_EQ(a2_assigned.size(), 1u);
  EXPECT_EQ(a2_assigned.front().substr(0, 2 + std::to_string(before->generation).size()),
            "A " + std::to_string(before->generation));
  EXPECT_EQ(stop(a2, SIGTERM), 0);
  EXPECT_EQ(stop(b, SIGTERM), 0);
}

// The negative control: the same kill and restart without instance ids is
// a new member, and the group rebalances (once the dead member's session,
// 2 s here, runs out).
TEST_F(GroupStatic, KilledDynamicMemberRestartedRebalances) {
  const auto fa = dir_ / "a.out", fa2 = dir_ / "a2.out", fb = dir_ / "b.out";
  pid_t a = spawn(broker_.endpoint(), fa, "-", "2000");
  pid_t b = spawn(broker_.endpoint(), fb, "-", "2000");
  auto before = settled(2);
  ASSERT_TRUE(before.has_value());
  ::kill(a, SIGKILL);
  ::waitpid(a, nullptr, 0);
  pid_t a2 = spawn(broker_.endpoint(), fa2, "-", "2000");
  client::admin admin(base());
  bool rebalanced = false;
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!rebalanced && std::chrono::steady_clock::now() < end) {
    auto d = admin.describe_group("g");
    rebalanced = d && d.value().generation > before->generation;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(rebalanced);
  produce(0, 100);
  EXPECT_TRUE(all_delivered({fa, fa2, fb}, 100));
  EXPECT_EQ(stop(a2, SIGTERM), 0);
  EXPECT_EQ(stop(b, SIGTERM), 0);
}

}  // namespace
}  // namespace ferry
