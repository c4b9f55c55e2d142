// `ferry top` against an in-process broker, run as a user would run it:
// totals, lag and dead letters of known records; rates on the second
// refresh; plain tables without escape codes when stdout is not a terminal;
// the live view on a pseudo-terminal (redrawn in place, cut to the width,
// cursor back on Ctrl-C); a broker that goes away and comes back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_run.h"
#include "ferry/client/admin.h"
#include "ferry/client/producer.h"
#include "inproc_broker.h"

extern char** environ;  // NOLINT

namespace {

using namespace std::chrono_literals;

using ferry::testing::now_ms;
using ferry::testing::run_command;
using ferry::testing::run_result;
using ferry::testing::table_row;

/// Complete lines of `s` (a last line without '\n' is still being written).
std::vector<std::string> complete_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (auto nl = s.find('\n'); nl != std::string::npos; nl = s.find('\n', start)) {
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

std::vector<nlohmann::json> json_lines(const std::string& s) {
  std::vector<nlohmann::json> out;
  for (const auto& l : complete_lines(s))
    if (!l.empty()) out.push_back(nlohmann::json::parse(l));
  return out;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

/// `ferry` started in the background, with its standard output (and, on a
/// pseudo-terminal, standard error) read as it comes.
class child {
 public:
  /// pty: on a terminal of `columns` x 40; otherwise stdout is a pipe and
  /// stderr goes to `err_file`.
  child(const std::string& broker, const std::vector<std::string>& args, bool pty,
        const std::filesystem::path& err_file, unsigned short columns = 200) {
    // Everything the child needs is made before fork(): it only execs.
    std::vector<std::string> argv{FERRY_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env{"FERRY_BROKER=" + broker};
    for (char** e = environ; *e != nullptr; ++e)
      if (std::strncmp(*e, "FERRY_BROKER=", 13) != 0) env.emplace_back(*e);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    if (pty) {
      winsize ws{};
      ws.ws_row = 40;
      ws.ws_col = columns;
      pid_ = ::forkpty(&fd_, nullptr, nullptr, &ws);
      if (pid_ == 0) {
        ::execve(cargv[0], cargv.data(), cenv.data());
        ::_exit(127);
      }
    } else {
      int p[2];
      if (::pipe(p) != 0) return;
      const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      pid_ = ::fork();
      if (pid_ == 0) {
        ::dup2(p[1], 1);
        ::dup2(err, 2);
        ::close(p[0]);
        ::execve(cargv[0], cargv.data(), cenv.data());
        ::_exit(127);
      }
      ::close(p[1]);
      ::close(err);
      fd_ = p[0];
    }
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  [[nodiscard]] bool started() const { return pid_ > 0 && fd_ >= 0; }
  [[nodiscard]] const std::string& out() const { return out_; }

  /// Reads until `done(out())` holds (true), the output ends or `timeout`
  /// passes (false, unless `done` holds then).
  bool read_until(const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!done(out_)) {
      if (eof_ || std::chrono::steady_clock::now() >= until) return done(out_);
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const auto n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) {  // a pseudo-terminal says EIO once the child is gone
        eof_ = true;
        continue;
      }
      out_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Reads the rest of the output and returns the exit code (-1: killed,
  /// or still running after `timeout`).
  int wait(std::chrono::milliseconds timeout) {
    read_until([this](const std::string&) { return eof_; }, timeout);
    const auto until = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= until) return -1;
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool eof_ = false;
  std::string out_;
};

class TopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-top");
    ASSERT_FALSE(dir_.empty());
    broker_.start(dir_);
    // Known records, 60 s old: orders 5 + 3, two dead letters, an empty
    // retry tier, payments 1; billing is 3 behind on orders-0 and caught up
    // on orders-1, audit 1 behind on payments.
    old_ = now_ms() - 60'000;
    create_topic("orders", 2);
    create_topic("orders.retry.5s", 1);
    create_topic("orders.dlq", 1);
    create_topic("payments", 1);
    produce("orders", 0, 5);
    produce("orders", 1, 3);
    produce("orders.dlq", 0, 2);
    produce("payments", 0, 1);
    commit("billing", "orders", 0, 2);
    commit("billing", "orders", 1, 3);
    commit("audit", "payments", 0, 0);
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }

  run_result ferry(const std::string& args, const std::string& broker = "") {
    return run_command("FERRY_BROKER=" + (broker.empty() ? broker_.endpoint() : broker) + " " +
                           FERRY_CLI + " " + args + " </dev/null",
                       dir_ / "stderr.txt");
  }

  [[nodiscard]] ferry::client::client_options client_options() const {
    return ferry::testing::cli_client_options(broker_.endpoint());
  }
  void create_topic(const std::string& name, int partitions) {
    ferry::client::topic_config cfg;
    cfg.partitions = partitions;
    cfg.retention_ms = -1;  // the 60 s old records stay
    ferry::client::admin a(client_options());
    auto r = a.create_topic(name, cfg);
    ASSERT_TRUE(r) << r.error().message() << ": " << a.last_error_message();
  }
  // `n` records with the timestamp old_.
  void produce(const std::string& topic, int partition, int n) {
    ferry::client::producer_options o;
    static_cast<ferry::client::client_options&>(o) = client_options();
    o.linger = 0ms;
    ferry::client::producer p(o);
    for (int i = 0; i < n; ++i) {
      ferry::client::producer_record rec;
      rec.topic = topic;
      rec.value = "value " + std::to_string(i);
      rec.partition = ferry::partition_id(partition);
      rec.timestamp = ferry::timestamp_ms(old_);
      auto m = p.send(std::move(rec)).get();
      ASSERT_TRUE(m) << m.error().message();
    }
  }
  void commit(const std::string& group, const std::string& topic, int partition,
              std::int64_t next) {
    ferry::testing::admin_commit(client_options(), group, topic, partition, next);
  }

  static const nlohmann::json* find(const nlohmann::json& arr, const std::string& key,
                                    const std::string& value) {
    for (const auto& x : arr)
      if (x.at(key) == value) return &x;
    return nullptr;
  }
  static std::vector<std::string> names(const nlohmann::json& arr, const std::string& key) {
    std::vector<std::string> out;
    for (const auto& x : arr) out.push_back(x.at(key).get<std::string>());
    return out;
  }

  std::filesystem::path dir_;
  ferry::testing::inproc_broker broker_;
  std::int64_t old_ = 0;
};

TEST_F(TopTest, OnceJsonShowsTotalsLagAndDeadLetters) {
  auto r = ferry("top --once --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  const auto& j = lines[0];
  EXPECT_EQ(j["broker"], broker_.endpoint());
  EXPECT_EQ(j["refresh"], 1);
  EXPECT_EQ(j["interval_ms"], 2000);
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_TRUE(j["seconds_since_previous"].is_null());
  EXPECT_NEAR(j["time"].get<double>(), static_cast<double>(now_ms()), 30'000);

  // Each topic next to its retry tiers and dead-letter topic, marked.
  EXPECT_EQ(names(j["topics"], "topic"),
            (std::vector<std::string>{"orders", "orders.retry.5s", "orders.dlq", "payments"}));
  const auto* orders = find(j["topics"], "topic", "orders");
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ((*orders)["kind"], "topic");
  EXPECT_TRUE((*orders)["origin"].is_null());
  EXPECT_EQ((*orders)["partitions"], 2);
  EXPECT_EQ((*orders)["records"], 8);
  EXPECT_GT((*orders)["size_bytes"].get<std::int64_t>(), 0);
  EXPECT_TRUE((*orders)["records_per_sec"].is_null()) << "no previous sample";
  EXPECT_EQ((*find(j["topics"], "topic", "orders.retry.5s"))["kind"], "retry");
  EXPECT_EQ((*find(j["topics"], "topic", "orders.retry.5s"))["origin"], "orders");
  EXPECT_EQ((*find(j["topics"], "topic", "orders.dlq"))["kind"], "dlq");
  EXPECT_EQ((*find(j["topics"], "topic", "payments"))["records"], 1);

  ASSERT_EQ(names(j["groups"], "group"), (std::vector<std::string>{"audit", "billing"}));
  const auto& billing = *find(j["groups"], "group", "billing");
  EXPECT_EQ(billing["state"], "Empty");
  EXPECT_EQ(billing["members"], 0);
  ASSERT_EQ(billing["topics"].size(), 1u);
  const auto& bo = billing["topics"][0];
  EXPECT_EQ(bo["topic"], "orders");
  EXPECT_EQ(bo["partitions"], 2);
  EXPECT_EQ(bo["lag"], 3);
  // The oldest unconsumed record (orders-0 at offset 2) is 60 s old.
  EXPECT_GE(bo["lag_seconds"].get<double>(), 59.0);
  EXPECT_LT(bo["lag_seconds"].get<double>(), 90.0);
  EXPECT_TRUE(bo["consumed_per_sec"].is_null());
  const auto& audit = *find(j["groups"], "group", "audit");
  EXPECT_EQ(audit["topics"][0]["topic"], "payments");
  EXPECT_EQ(audit["topics"][0]["lag"], 1);

  ASSERT_EQ(j["dead_letters"].size(), 1u);
  const auto& d = j["dead_letters"][0];
  EXPECT_EQ(d["topic"], "orders.dlq");
  EXPECT_EQ(d["origin"], "orders");
  EXPECT_EQ(d["records"], 2);
  EXPECT_EQ(d["new"], 0) << "the view started after they arrived";
  EXPECT_TRUE(d["new_per_sec"].is_null());

  // -o json is the same thing.
  auto o = ferry("-o json top --once");
  ASSERT_EQ(o.code, 0) << o.err;
  ASSERT_EQ(json_lines(o.out).size(), 1u);
  EXPECT_EQ(json_lines(o.out)[0]["dead_letters"][0]["records"], 2);
}

TEST_F(TopTest, SecondRefreshShowsRatesAndNewDeadLetters) {
  child c(broker_.endpoint(), {"top", "--json", "--iterations", "2", "--interval", "5s"}, false,
          dir_ / "top.err");
  ASSERT_TRUE(c.started());
  ASSERT_TRUE(c.read_until([](const std::string& s) { return complete_lines(s).size() >= 1; }, 20s))
      << c.out();
  // Between the refreshes (5 s apart, room for a loaded machine): 6 records
  // in, 3 dead letters, billing consumes 3.
  produce("orders", 1, 6);
  produce("orders.dlq", 0, 3);
  commit("billing", "orders", 0, 5);
  ASSERT_EQ(c.wait(20s), 0) << c.out();
  auto lines = json_lines(c.out());
  ASSERT_EQ(lines.size(), 2u) << c.out();
  EXPECT_TRUE(find(lines[0]["topics"], "topic", "orders")->at("records_per_sec").is_null());

  const auto& j = lines[1];
  EXPECT_EQ(j["refresh"], 2);
  const double secs = j["seconds_since_previous"].get<double>();
  EXPECT_GE(secs, 1.9);
  EXPECT_LT(secs, 10.0);
  // Rates are rounded to 0.1/s: times the seconds, within 0.05 * secs.
  const auto* orders = find(j["topics"], "topic", "orders");
  EXPECT_EQ(orders->at("records"), 14);
  EXPECT_NEAR(orders->at("records_per_sec").get<double>() * secs, 6.0, 0.06 * secs);
  EXPECT_EQ(find(j["topics"], "topic", "payments")->at("records_per_sec"), 0.0);

  const auto& bo = find(j["groups"], "group", "billing")->at("topics")[0];
  EXPECT_NEAR(bo["consumed_per_sec"].get<double>() * secs, 3.0, 0.06 * secs);
  EXPECT_EQ(bo["lag"], 6) << "orders-0 caught up (5 of 5), orders-1 at 3 of 9";
  EXPECT_EQ(find(j["groups"], "group", "audit")->at("topics")[0]["consumed_per_sec"], 0.0);

  const auto& d = j["dead_letters"][0];
  EXPECT_EQ(d["records"], 5);
  EXPECT_EQ(d["new"], 3);
  EXPECT_NEAR(d["new_per_sec"].get<double>() * secs, 3.0, 0.06 * secs);
}

TEST_F(TopTest, NotATerminalPrintsOneTablePerRefreshWithoutEscapeCodes) {
  auto r = ferry("top --iterations 2 --interval 100ms");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  const std::string header = "ferry top  " + broker_.endpoint() + "  every 100ms  20";
  ASSERT_EQ(count(r.out, header), 2u) << r.out;
  const auto second = r.out.rfind(header);
  const auto first = r.out.substr(0, second), last = r.out.substr(second);

  // TOPIC KIND PARTITIONS IN/S RECORDS SIZE
  auto o1 = table_row(first, {"orders", "topic"});
  ASSERT_GE(o1.size(), 5u) << first;
  EXPECT_EQ(o1[2], "2");
  EXPECT_EQ(o1[3], "-") << "no rate without a previous sample";
  EXPECT_EQ(o1[4], "8");
  auto o2 = table_row(last, {"orders", "topic"});
  ASSERT_GE(o2.size(), 5u) << last;
  EXPECT_EQ(o2[3], "0.0");
  EXPECT_EQ(table_row(first, {"orders.dlq", "dlq"}).size(), 7u) << first;  // size is "N B"

  // GROUP STATE MEMBERS TOPIC PARTITIONS CONSUMED/S LAG LAG-SECONDS
  auto b1 = table_row(first, {"billing", "Empty", "0", "orders"});
  ASSERT_EQ(b1.size(), 8u) << first;
  EXPECT_EQ(b1[4], "2");
  EXPECT_EQ(b1[5], "-");
  EXPECT_EQ(b1[6], "3");
  EXPECT_GE(std::stoi(b1[7]), 59);
  EXPECT_EQ(table_row(last, {"billing", "Empty", "0", "orders"})[5], "0.0");

  // DEAD-LETTER-TOPIC ORIGIN RECORDS NEW NEW/S
  EXPECT_EQ(table_row(first, {"orders.dlq", "orders"}),
            (std::vector<std::string>{"orders.dlq", "orders", "2", "0", "-"}))
      << first;
  EXPECT_EQ(table_row(last, {"orders.dlq", "orders"}),
            (std::vector<std::string>{"orders.dlq", "orders", "2", "0", "0.0"}))
      << last;
}

TEST_F(TopTest, NotATerminalUntilCtrlCStreamsPlainTablesAndErrorsToStderr) {
  child c(broker_.endpoint(), {"--timeout-ms", "500", "top", "--interval", "100ms"}, false,
          dir_ / "top.err");
  ASSERT_TRUE(c.started());
  const std::string header = "ferry top  " + broker_.endpoint() + "  every 100ms  20";
  ASSERT_TRUE(c.read_until([&](const std::string& s) { return count(s, header) >= 2; }, 20s))
      << c.out();
  auto err = [&] {
    std::ifstream f(dir_ / "top.err");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  broker_.stop();
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (count(err(), "retrying every 100ms") < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(50ms);
  EXPECT_NE(err().find("error: cannot list topics at " + broker_.endpoint()), std::string::npos)
      << err();
  broker_.restart();
  const auto before = count(c.out(), header);
  ASSERT_TRUE(c.read_until([&](const std::string& s) { return count(s, header) > before; }, 20s))
      << c.out();
  c.signal(SIGINT);
  EXPECT_EQ(c.wait(10s), 0) << c.out();
  EXPECT_EQ(c.out().find('\x1b'), std::string::npos) << c.out();
  EXPECT_EQ(c.out().find("error"), std::string::npos) << "errors go to stderr";
  EXPECT_EQ(c.out().find("Ctrl-C to quit"), std::string::npos) << "that is the live view's";
}

TEST_F(TopTest, FiltersNarrowTopicsAndGroups) {
  auto r = ferry("top --once --json --topic orders");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json_lines(r.out).at(0);
  EXPECT_EQ(names(j["topics"], "topic"),
            (std::vector<std::string>{"orders", "orders.retry.5s", "orders.dlq"}))
      << "a topic comes with its retry tiers and dead-letter topic";
  EXPECT_EQ(names(j["groups"], "group"), (std::vector<std::string>{"billing"}))
      << "audit reads only payments";

  r = ferry("top --once --json --topic payments --group billing --group audit");
  ASSERT_EQ(r.code, 0) << r.err;
  j = json_lines(r.out).at(0);
  EXPECT_EQ(names(j["topics"], "topic"), (std::vector<std::string>{"payments"}));
  EXPECT_EQ(names(j["groups"], "group"), (std::vector<std::string>{"audit"}));
  EXPECT_TRUE(j["dead_letters"].empty());

  r = ferry("top --once --json --group billing --group nope --topic nothing");
  ASSERT_EQ(r.code, 0) << r.err;
  j = json_lines(r.out).at(0);
  EXPECT_TRUE(j["topics"].empty());
  EXPECT_TRUE(j["groups"].empty());
  const std::set<std::string> warnings(j["warnings"].begin(), j["warnings"].end());
  EXPECT_EQ(warnings, (std::set<std::string>{"topic nothing does not exist",
                                             "group nope does not exist (yet)"}));

  r = ferry("top --once --group nope");  // tables: the warning on stderr
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: group nope does not exist"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("no groups"), std::string::npos) << r.out;
}

TEST_F(TopTest, UsageErrors) {
  EXPECT_EQ(ferry("top --once --iterations 2").code, 2);
  EXPECT_EQ(ferry("top --iterations 0").code, 2);
  auto r = ferry("top --once --interval fast");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--interval wants a duration"), std::string::npos) << r.err;
  EXPECT_EQ(ferry("top --once --interval 10ms").code, 2);
}

TEST_F(TopTest, WithoutABrokerOnceSaysWhereAndWhatToDo) {
  const auto endpoint = broker_.endpoint();
  broker_.stop();
  auto r = ferry("--timeout-ms 300 top --once", endpoint);
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find(endpoint), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ferryd"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--broker"), std::string::npos) << r.err;
}

TEST_F(TopTest, UntilStoppedABrokerThatGoesAwayIsAnErrorLineAndTheViewRecovers) {
  child c(broker_.endpoint(), {"--timeout-ms", "500", "top", "--json", "--interval", "100ms"},
          false, dir_ / "top.err");
  ASSERT_TRUE(c.started());
  auto last_is = [](bool error) {
    return [error](const std::string& s) {
      auto lines = json_lines(s);
      return !lines.empty() && lines.back()["error"].is_null() != error;
    };
  };
  ASSERT_TRUE(c.read_until(last_is(false), 20s)) << c.out();
  broker_.stop();
  ASSERT_TRUE(c.read_until(last_is(true), 20s)) << c.out();
  const auto error = json_lines(c.out()).back()["error"].get<std::string>();
  EXPECT_NE(error.find(broker_.endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find("retrying every 100ms"), std::string::npos) << error;
  broker_.restart();  // same port
  ASSERT_TRUE(c.read_until(last_is(false), 20s)) << c.out();
  EXPECT_EQ(find(json_lines(c.out()).back()["topics"], "topic", "orders")->at("records"), 8);
  c.signal(SIGINT);
  EXPECT_EQ(c.wait(10s), 0) << c.out();
}

TEST_F(TopTest, OnATerminalRedrawsInPlaceCutToTheWidthAndRestoresTheCursorOnCtrlC) {
  child c(broker_.endpoint(), {"top", "--interval", "100ms"}, true, {}, 60);
  ASSERT_TRUE(c.started());
  // The first clear, then a cursor-home per frame: three frames.
  ASSERT_TRUE(c.read_until(
      [](const std::string& s) { return count(s, "\x1b[H") >= 4 && count(s, "\x1b[J") >= 3; }, 20s))
      << c.out();
  c.signal(SIGINT);
  ASSERT_EQ(c.wait(10s), 0) << c.out();
  const auto& out = c.out();
  EXPECT_EQ(out.find("\x1b[?25l"), 0u) << "the cursor is hidden first";
  const auto shown = out.rfind("\x1b[?25h");
  ASSERT_NE(shown, std::string::npos) << "the cursor is shown again";
  EXPECT_GT(shown, out.rfind("\x1b[J")) << "after the last frame";
  EXPECT_EQ(count(out, "\x1b[2J"), 1u) << "the screen is cleared once, then redrawn in place";

  // Every line of every frame ends with clear-to-end-of-line and fits in
  // 60 columns (the header, with the broker's address, is longer).
  std::size_t lines = 0;
  for (auto line : complete_lines(out)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    for (const std::string esc : {"\x1b[?25l", "\x1b[?25h", "\x1b[2J", "\x1b[H", "\x1b[J"})
      for (auto p = line.find(esc); p != std::string::npos; p = line.find(esc))
        line.erase(p, esc.size());
    if (line.empty()) continue;
    ++lines;
    ASSERT_GE(line.size(), 3u) << line;
    EXPECT_EQ(line.substr(line.size() - 3), "\x1b[K") << line;
    EXPECT_LE(line.size() - 3, 60u) << line;
  }
  EXPECT_GT(lines, 10u);
  EXPECT_NE(out.find("ferry top  " + broker_.endpoint() + "  every 100ms  "), std::string::npos);
  EXPECT_NE(out.find("orders.retry.5s"), std::string::npos);
}

TEST_F(TopTest, OnATerminalAnUnreachableBrokerIsShownUnderTheHeaderAndRetried) {
  const auto endpoint = broker_.endpoint();
  broker_.stop();
  child c(endpoint, {"--timeout-ms", "300", "top", "--interval", "100ms"}, true, {});
  ASSERT_TRUE(c.started());
  ASSERT_TRUE(
      c.read_until([](const std::string& s) { return count(s, "retrying every 100ms") >= 2; }, 20s))
      << c.out();
  EXPECT_NE(c.out().find("error: cannot list topics at " + endpoint), std::string::npos) << c.out();
  c.signal(SIGINT);
  EXPECT_EQ(c.wait(10s), 0) << c.out();
  EXPECT_NE(c.out().rfind("\x1b[?25h"), std::string::npos);
}

}  // namespace
