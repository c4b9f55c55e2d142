// order_demo: Ferry's main job. A local broker, the order producer and the
// three workers, end to end, with a report a person can read.
//
//   order_demo [--orders N] [--data-dir DIR] [--clean] [--no-crash] [--json] [--timeout-s S]
//              [--transport native|kafka]
//
//  1. starts ferryd on DIR/data (DIR: --data-dir, else a new /tmp/ferry-demo-*);
//     with --transport kafka also its Kafka listener, and every program
//     reaches it through kafka:// (librdkafka), as it would a Kafka cluster;
//  2. creates the topics, registers OrderPlaced v1 with `ferry schema
//     register` and turns on produce-time schema checks (`ferry schema
//     enforce orders`), as an operator would (over Kafka there is no
//     produce-time check: the typed workers check every schema id);
//  3. starts payment_worker, inventory_worker and shipping_worker, then runs
//     order_producer, showing progress (consumer lag per group) as it goes;
//     a third of the way through, kills payment_worker with SIGKILL and
//     starts it again (at least once delivery: what it had not committed is
//     handled again; idempotency keys keep that from charging or shipping
//     twice);
//  4. when every group has caught up (lag 0, nothing waiting for a retry),
//     stops the workers (SIGTERM: they finish, commit and leave) and ferryd;
//  5. reads the dead-letter topics and the events the workers produced, and
//     prints the report and the checks. Exit status 0 only if every check
//     passed. Nothing is left running; the data stays in DIR for a closer
//     look (the report says how).
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/sample.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/core/logging.h"
#include "ferry/runtime/dlq.h"

namespace fs = std::filesystem;
namespace fc = ferry::client;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::string_view kUsage =
    "order_demo [--orders N] [--data-dir DIR] [--clean] [--no-crash] [--json]\n"
    "           [--timeout-s S] [--transport native|kafka]\n"
    "  --orders N     orders to produce (default 2000)\n"
    "  --data-dir DIR where the broker's data, logs and stats go (default: a new "
    "/tmp/ferry-demo-*);\n"
    "                 must be empty or absent unless --clean, which first deletes an earlier\n"
    "                 order_demo's directory (and nothing else)\n"
    "  --no-crash     do not kill -9 the payment worker a third of the way through\n"
    "  --json         print the report as JSON on stdout (progress stays on stderr)\n"
    "  --timeout-s S  give up if the pipeline has not caught up after S seconds (default 120)\n"
    "  --transport T  native (default): ferryd's protocol; kafka: the same programs through\n"
    "                 ferryd's Kafka listener with kafka:// URLs, as on a Kafka cluster";

constexpr std::string_view kMarker = ".order_demo";
const char* const kGroups[] = {"payment", "inventory", "shipping"};
const char* const kDlqs[] = {"orders.payment.dlq", "orders.inventory.dlq", "payments.shipping.dlq"};

// A child process whose stdout and stderr go to a log file. Killed (SIGKILL)
// if still running when destroyed, so no path out of main leaves one behind.
class child {
 public:
  child() = default;
  child(const std::vector<std::string>& argv, const fs::path& log) {
    // Everything the child needs is made before fork(): after it, only
    // async-signal-safe calls.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Dies with order_demo, however order_demo ends (even kill -9).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(args[0], args.data());
      static const char msg[] = "order_demo: cannot run the program\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    if (fd >= 0) ::close(fd);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  child(child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), status_(o.status_) {}
  child& operator=(child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(status_, o.status_);
    return *this;
  }
  ~child() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] bool running() {
    if (pid_ <= 0 || status_) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
    return !status_;
  }
  // SIGKILL, no questions asked: a crash.
  void kill_now() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    status_ = st;
  }
  // SIGTERM, then waits up to `grace`; SIGKILL after that. True if it exited 0.
  bool stop(std::chrono::seconds grace) {
    if (running()) ::kill(pid_, SIGTERM);
    return wait(grace);
  }
  bool wait(std::chrono::seconds limit) {
    auto until = steady::now() + limit;
    while (running() && steady::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (running()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      status_ = st;
      return false;
    }
    return status_ && WIFEXITED(*status_) && WEXITSTATUS(*status_) == 0;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return json::object();
  try {
    return json::parse(in);
  } catch (const std::exception&) {
    return json::object();
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the ferry CLI to completion, output appended to `log`.
bool run_cli(const std::vector<std::string>& args, const fs::path& log) {
  child c(args, log);
  return c.wait(std::chrono::seconds(30));
}

// 12345 -> "12,345"
std::string num(std::int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return n < 0 ? "-" + s : s;
}

struct group_lag {
  std::int64_t lag = 0;
  bool caught_up = false;  // every partition with records committed to its end
};

// The group's lag over every partition it consumes (its topics and retry
// tiers). A partition with records and no commit yet counts as behind.
group_lag lag_of(fc::admin& admin, const std::string& group,
                 const std::vector<std::string>& topics) {
  group_lag out;
  auto d = admin.describe_group(group);
  if (!d) return out;
  std::map<std::pair<std::string, int>, std::int64_t> committed_lag;
  for (const auto& p : d.value().partitions)
    committed_lag[{p.tp.topic, p.tp.partition.value()}] = p.lag().value_or(-1);
  out.caught_up = true;
  std::set<std::string> all(topics.begin(), topics.end());
  for (const auto& p : d.value().partitions) all.insert(p.tp.topic);
  for (const auto& topic : all) {
    auto t = admin.describe_topic(topic);
    if (!t) continue;
    for (const auto& p : t.value().partitions) {
      auto it = committed_lag.find({topic, p.partition.value()});
      std::int64_t records = p.high_watermark.value() - p.log_start.value();
      if (it == committed_lag.end() || it->second < 0) {
        if (records > 0) {
          out.caught_up = false;
          out.lag += records;
        }
      } else {
        out.lag += it->second;
        if (it->second > 0) out.caught_up = false;
      }
    }
  }
  return out;
}

std::int64_t records_in(fc::admin& admin, const std::string& topic) {
  auto t = admin.describe_topic(topic);
  if (!t) return 0;
  std::int64_t n = 0;
  for (const auto& p : t.value().partitions) n += p.high_watermark.value() - p.log_start.value();
  return n;
}

// Keys of every record in `topic` -> how many records had that key.
std::map<std::string, int> keys_in(const fc::client_options& copts, fc::admin& admin,
                                   const std::string& topic) {
  std::map<std::string, int> keys;
  auto t = admin.describe_topic(topic);
  if (!t) return keys;
  fc::consumer_options co;
  static_cast<fc::client_options&>(co) = copts;
  fc::consumer c(co);
  std::vector<fc::topic_partition> tps;
  std::int64_t want = 0;
  for (const auto& p : t.value().partitions) {
    tps.push_back({topic, p.partition});
    want += p.high_watermark.value() - p.log_start.value();
  }
  if (!c.assign(tps) || !c.seek_to_beginning(tps)) return keys;
  std::int64_t got = 0;
  auto until = steady::now() + std::chrono::seconds(30);
  while (got < want && steady::now() < until) {
    auto recs = c.poll(std::chrono::milliseconds(200));
    if (!recs) break;
    for (const auto& r : recs.value()) {
      ++got;
      ++keys[r.key.value_or("")];
    }
  }
  return keys;
}

void say(const std::string& s) {
  std::fprintf(stderr, "order_demo: %s\n", s.c_str());
}

// A program's counter from its stats file; 0 if it has none.
std::int64_t counter(const json& j, const char* k) {
  return j.value(k, std::int64_t{0});
}

// The flags. --ferryd, --ferry, --samples and --v1-schema are not in the
// usage: they default to this build's programs and schema.
struct options {
  long orders = 0;
  std::string data_dir;  // "": a new /tmp/ferry-demo-*
  bool clean = false;
  bool as_json = false;
  bool crash = true;  // kill -9 payment_worker a third of the way through
  long timeout_s = 0;
  bool kafka = false;  // --transport kafka
  std::string ferryd, ferry, samples_dir, v1_schema;
};

options read_options(sample::flags& f) {
  options o;
  o.orders = f.number("--orders", 2000);
  o.data_dir = f.text("--data-dir");
  o.clean = f.set("--clean");
  o.as_json = f.set("--json");
  o.crash = !f.set("--no-crash");
  o.timeout_s = f.number("--timeout-s", 120);
  const std::string transport = f.text("--transport", "native");
  o.ferryd = f.text("--ferryd", FERRY_FERRYD);
  o.ferry = f.text("--ferry", FERRY_CLI);
  o.samples_dir = f.text("--samples", FERRY_SAMPLES_DIR);
  o.v1_schema = f.text("--v1-schema", FERRY_ORDERS_V1_FBS);
  f.done();
  if (o.orders < 1) f.fail("--orders must be at least 1");
  if (transport != "native" && transport != "kafka") f.fail("--transport is native or kafka");
  o.kafka = transport == "kafka";
  return o;
}

// DIR: the broker's data (DIR/data), every program's output (DIR/logs), their
// counters (DIR/stats) and the payment gateway's ledger. Kept after the run.
struct demo_dir {
  std::string root;  // absolute
  fs::path logs, stats;

  // The payment provider's memory of idempotency keys: a file, so that it
  // outlives the payment worker killed in the middle of the run.
  [[nodiscard]] fs::path gateway_ledger() const { return fs::path(root) / "gateway-ledger.txt"; }

  // Says why the demo gives up and where the logs are; returns main's exit
  // status. The children are killed when main returns.
  [[nodiscard]] int fail(const std::string& why) const {
    std::fprintf(stderr, "order_demo: error: %s\n  logs: %s\n", why.c_str(), logs.c_str());
    return 1;
  }
};

// --clean deletes only what an earlier order_demo made (it leaves a
// marker), never a directory a broker is using.
void delete_earlier_demo(const std::string& dir, bool clean, const sample::flags& f) {
  if (!clean) f.fail(dir + " is not empty: pass --clean to delete it first, or another --data-dir");
  if (!fs::exists(fs::path(dir) / kMarker))
    f.fail(dir + " was not made by order_demo (no " + std::string(kMarker) +
           "): --clean will not delete it; pick another --data-dir");
  const int lock = ::open((fs::path(dir) / "data" / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  const bool busy = lock >= 0 && ::flock(lock, LOCK_EX | LOCK_NB) != 0;
  if (lock >= 0) ::close(lock);
  if (busy) f.fail("a ferryd is running on " + dir + "/data: stop it first");
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) f.fail("cannot delete " + dir + ": " + ec.message());
}

// --data-dir (empty, absent, or an earlier demo's with --clean), else a new
// /tmp/ferry-demo-*; with logs/, stats/ and the marker --clean looks for.
demo_dir prepare_demo_dir(const options& opt, const sample::flags& f) {
  std::string dir = opt.data_dir;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ferry-demo-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) f.fail("cannot create a directory in /tmp; pass --data-dir");
    dir = tmpl;
  } else if (fs::exists(dir) && !fs::is_empty(dir)) {
    delete_earlier_demo(dir, opt.clean, f);
  }
  dir = fs::absolute(dir).string();
  demo_dir d{dir, fs::path(dir) / "logs", fs::path(dir) / "stats"};
  std::error_code ec;
  fs::create_directories(d.logs, ec);
  fs::create_directories(d.stats, ec);
  std::ofstream(fs::path(dir) / kMarker)
      << "made by order_demo; --clean may delete this directory\n";
  return d;
}

// ferryd on DIR/data, on a port the kernel picks (see wait_for_endpoint).
child start_ferryd(const options& opt, const demo_dir& dir) {
  say("starting ferryd on " + dir.root + "/data");
  std::vector<std::string> args{opt.ferryd, "--data-dir",        dir.root + "/data",
                                "--listen", "tcp://127.0.0.1:*", "--log-level",
                                "warn"};
  if (opt.kafka) {
    args.push_back("--kafka-listen");
    args.push_back("127.0.0.1:0");
  }
  return child(args, dir.logs / "ferryd.log");
}

// The endpoint ferryd names in its stdout ("listening on tcp://...", or
// with --transport kafka "kafka listening on HOST:PORT" as kafka://...);
// "" if it has not within 20 s, or has exited.
std::string wait_for_endpoint(child& broker, const demo_dir& dir, bool kafka) {
  const std::string marker = kafka ? "kafka listening on " : "listening on tcp://";
  std::string endpoint;
  for (auto until = steady::now() + std::chrono::seconds(20);
       endpoint.empty() && steady::now() < until && broker.running();) {
    auto text = read_file(dir.logs / "ferryd.log");
    if (auto at = text.find(marker); at != std::string::npos) {
      auto end = text.find('\n', at);
      if (end != std::string::npos)
        endpoint = kafka ? "kafka://" + text.substr(at + marker.size(), end - at - marker.size())
                         : text.substr(at + 13, end - at - 13);
    }
    if (endpoint.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return endpoint;
}

fc::client_options client_options_for(const std::string& endpoint) {
  fc::client_options copts;
  copts.broker = endpoint;
  copts.request_timeout = std::chrono::milliseconds(5000);
  return copts;
}

// The operator's part: orders, payments and shipments (3 partitions each),
// OrderPlaced v1 registered, produce-time schema checks on orders. Why it
// failed, if it did.
std::optional<std::string> create_topics_and_schema(fc::admin& admin, const options& opt,
                                                    const demo_dir& dir,
                                                    const std::string& endpoint) {
  for (const char* t : {"orders", "payments", "shipments"}) {
    fc::topic_config tc;
    tc.partitions = 3;
    if (auto r = admin.create_topic(t, tc); !r)
      return std::string("cannot create topic ") + t + ": " + admin.last_error_message();
  }
  const fs::path cli_log = dir.logs / "ferry-cli.log";
  if (!run_cli(
          {opt.ferry, "--broker", endpoint, "schema", "register", "orders-value", opt.v1_schema},
          cli_log))
    return "ferry schema register failed (" + cli_log.string() + ")";
  if (opt.kafka) {
    // A Kafka broker does not look into records: the typed workers check
    // every schema id (and dead-letter what does not fit).
    say("topics orders, payments, shipments; OrderPlaced v1 registered in _ferry_schemas");
    return std::nullopt;
  }
  if (!run_cli({opt.ferry, "--broker", endpoint, "schema", "enforce", "orders"}, cli_log))
    return "ferry schema enforce failed (" + cli_log.string() + ")";
  say("topics orders, payments, shipments; OrderPlaced v1 registered; orders enforces schema ids");
  return std::nullopt;
}

// Each group's lag over what it consumes (and its retry tiers, see lag_of).
std::map<std::string, group_lag> lags_now(fc::admin& admin) {
  std::map<std::string, group_lag> lags;
  lags["payment"] = lag_of(admin, "payment", {"orders"});
  lags["inventory"] = lag_of(admin, "inventory", {"orders"});
  lags["shipping"] = lag_of(admin, "shipping", {"payments"});
  return lags;
}

// The progress line on stderr: rewritten in place on a terminal; otherwise
// (a log) a new line at most every 2 s.
class progress_line {
 public:
  void show(const std::string& line) {
    if (tty_)
      std::fprintf(stderr, "\r  %-110s", line.c_str());
    else if (steady::now() - last_line_ >= std::chrono::seconds(2)) {
      std::fprintf(stderr, "  %s\n", line.c_str());
      last_line_ = steady::now();
    }
  }
  // Ends the line being rewritten, so that a message can follow it.
  void end() const {
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  bool tty_ = ::isatty(2);
  steady::time_point last_line_ = steady::now() - std::chrono::seconds(10);
};

std::string progress_text(fc::admin& admin, double elapsed,
                          const std::map<std::string, group_lag>& lags, std::int64_t dead) {
  char line[256];
  std::snprintf(line, sizeof line,
                "%5.1fs  orders %s | lag: payment %s, inventory %s, shipping %s | shipped %s | "
                "dead letters %s",
                elapsed, num(records_in(admin, "orders")).c_str(),
                num(lags.at("payment").lag).c_str(), num(lags.at("inventory").lag).c_str(),
                num(lags.at("shipping").lag).c_str(), num(records_in(admin, "shipments")).c_str(),
                num(dead).c_str());
  return line;
}

// How the run went, as order_demo saw it.
struct run_facts {
  double seconds = 0;                      // from the producer's start until every group caught up
  bool producer_ok = false;                // order_producer exited 0
  bool crashed = false;                    // payment_worker was killed and started again
  std::int64_t paid_at_crash = 0;          // PaymentCaptured records when it was killed
  std::map<std::string, bool> clean_exit;  // group -> its worker exited 0 on SIGTERM
};

// The order samples as order_demo's children, each logging to
// DIR/logs/<program>.log and writing its counters to DIR/stats.
class pipeline {
 public:
  pipeline(const options& opt, const demo_dir& dir, std::string endpoint)
      : opt_(opt), dir_(dir), endpoint_(std::move(endpoint)) {}

  // The workers first (they join their groups), then the producer.
  void start() {
    for (const char* g : kGroups) workers_.emplace(g, start_worker(g, std::string(g) + ".json"));
    say("workers started: payment (delay tiers), inventory (key-ordered), shipping (in order)");
    t0_ = steady::now();
    producer_ = child(
        {opt_.samples_dir + "/order_producer", "--broker", endpoint_, "--orders",
         std::to_string(opt_.orders), "--stats-file", (dir_.stats / "producer.json").string()},
        dir_.logs / "order_producer.log");
  }

  // Shows progress every 500 ms until the producer is done and every group
  // has caught up (lag 0, nothing waiting for a retry) three checks in a
  // row; a third of the way through (unless --no-crash), the crash. Why it
  // gave up, if it did: a worker exited, or --timeout-s passed.
  std::optional<std::string> watch_until_caught_up(fc::admin& admin) {
    progress_line progress;
    int caught_up_checks = 0;
    bool producer_done = false;
    for (;;) {
      if (!producer_done && !producer_.running()) {
        producer_done = true;
        facts_.producer_ok = producer_.wait(std::chrono::seconds(0));
      }
      for (auto& [g, w] : workers_)
        if (!w.running())
          return g + "_worker exited early (" + (dir_.logs / (g + "_worker.log")).string() + ")";
      if (opt_.crash && !facts_.crashed && records_in(admin, "payments") >= opt_.orders / 3)
        crash_payment_worker(admin, progress);
      const auto lags = lags_now(admin);
      std::int64_t dead = 0;
      for (const char* d : kDlqs) dead += records_in(admin, d);
      const auto elapsed = std::chrono::duration<double>(steady::now() - t0_).count();
      progress.show(progress_text(admin, elapsed, lags, dead));
      const bool all = lags.at("payment").caught_up && lags.at("inventory").caught_up &&
                       lags.at("shipping").caught_up;
      caught_up_checks = producer_done && all ? caught_up_checks + 1 : 0;
      if (caught_up_checks >= 3) break;
      if (elapsed > static_cast<double>(opt_.timeout_s)) {
        progress.end();
        return "the pipeline did not catch up within " + std::to_string(opt_.timeout_s) +
               " s (see the lag above and the worker logs)";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    facts_.seconds = std::chrono::duration<double>(steady::now() - t0_).count();
    progress.end();
    char took[32];
    std::snprintf(took, sizeof took, "%.1f", facts_.seconds);
    say(std::string("caught up after ") + took + " s; stopping the workers");
    return std::nullopt;
  }

  // SIGTERM to each worker: it finishes the records in hand, commits, leaves
  // its group and writes its stats (SIGKILL if it takes over 20 s).
  void stop_workers() {
    for (auto& [g, w] : workers_) facts_.clean_exit[g] = w.stop(std::chrono::seconds(20));
  }

  [[nodiscard]] const run_facts& facts() const { return facts_; }

 private:
  // <group>_worker, its counters in DIR/stats/<stats_name>.
  child start_worker(const std::string& g, const std::string& stats_name) const {
    const std::string name = g + "_worker";
    // One instance per service, restarted under the same group_instance_id:
    // the restart takes its partitions back without a rebalance.
    std::vector<std::string> args{
        opt_.samples_dir + "/" + name,      "--broker",      endpoint_, "--stats-file",
        (dir_.stats / stats_name).string(), "--instance-id", g + "-1"};
    if (g == "payment") {  // the payment provider's memory of idempotency keys
      args.push_back("--gateway-ledger");
      args.push_back(dir_.gateway_ledger().string());
    }
    return child(args, dir_.logs / (name + ".log"));
  }

  // The crash: no goodbye, no commit. What the killed worker handled after
  // its last commit is handled again by its successor.
  void crash_payment_worker(fc::admin& admin, const progress_line& progress) {
    facts_.paid_at_crash = records_in(admin, "payments");
    workers_["payment"].kill_now();
    workers_["payment"] = start_worker("payment", "payment-2.json");
    facts_.crashed = true;
    progress.end();
    say("killed payment_worker (SIGKILL) after " + num(facts_.paid_at_crash) +
        " payments and started it again as instance payment-1: it takes the dead "
        "instance's partitions back at once (static membership, no rebalance)");
  }

  const options& opt_;
  const demo_dir& dir_;
  std::string endpoint_;
  std::map<std::string, child> workers_;  // by group
  child producer_;
  steady::time_point t0_;  // the producer's start
  run_facts facts_;
};

// The dead-letter topics' letters by topic and reason: how many, and the
// first one's error message.
struct dead_letters {
  struct tally {
    std::int64_t count = 0;
    std::string first_error;
  };
  std::map<std::string, std::map<std::string, tally>> by_topic;
  std::set<std::string> payment_gave_up;  // order ids payment dead-lettered (not invalid ones)

  [[nodiscard]] std::int64_t count(const char* topic, const char* reason) const {
    auto it = by_topic.find(topic);
    if (it == by_topic.end()) return 0;
    auto r = it->second.find(reason);
    return r == it->second.end() ? 0 : r->second.count;
  }
};

dead_letters read_dead_letters(const fc::client_options& copts) {
  dead_letters out;
  for (const char* d : kDlqs) {
    auto snap = ferry::runtime::dlq::read(copts, d);
    if (!snap) continue;  // never created: nothing was dead-lettered there
    for (const auto& l : snap.value().letters) {
      auto& slot = out.by_topic[d][l.reason()];
      if (slot.count++ == 0) slot.first_error = l.error_message();
      if (std::string_view(d) == "orders.payment.dlq" && l.reason() != "invalid_payload")
        out.payment_gave_up.insert(l.key.value_or(""));
    }
  }
  return out;
}

// What the broker holds once the workers are gone: what happened, not what
// the programs claim.
struct broker_view {
  dead_letters dead;
  std::map<std::string, group_lag> lags;     // what they committed on the way out
  std::map<std::string, int> paid, shipped;  // keys in payments, shipments -> records
  std::int64_t tier_records = 0;             // records that went through the retry tiers
};

broker_view read_broker(const fc::client_options& copts, fc::admin& admin) {
  broker_view b;
  b.dead = read_dead_letters(copts);
  b.lags = lags_now(admin);
  b.paid = keys_in(copts, admin, "payments");
  b.shipped = keys_in(copts, admin, "shipments");
  b.tier_records = records_in(admin, "orders.retry.250ms") + records_in(admin, "orders.retry.1s");
  return b;
}

// PaymentCaptured records beyond one per paid order: sent again after the crash.
std::int64_t payments_resent(const std::map<std::string, int>& paid) {
  std::int64_t paid_records = 0;
  for (const auto& [k, n] : paid) paid_records += n;
  return paid_records - static_cast<std::int64_t>(paid.size());
}

// Adds the counters (numbers and histograms) in `more` to those in `into`.
void add_counters(json& into, const json& more) {
  for (auto& [k, v] : more.items()) {
    if (v.is_number_unsigned()) {
      into[k] = into.value(k, std::uint64_t{0}) + v.get<std::uint64_t>();
    } else if (v.is_array()) {
      auto h = into.value(k, json::array());
      for (std::size_t b = 0; b < v.size(); ++b) {
        if (b >= h.size()) h.push_back(0);
        h[b] = h[b].get<std::uint64_t>() + v[b].get<std::uint64_t>();
      }
      into[k] = h;
    }
  }
}

// The programs' counters, from their stats files.
struct program_stats {
  json producer;
  std::map<std::string, json> workers;  // by group
};

program_stats read_stats_files(const fs::path& stats, bool crashed) {
  program_stats s;
  s.producer = read_json(stats / "producer.json");
  for (const char* g : kGroups) s.workers[g] = read_json(stats / (std::string(g) + ".json"));
  // The killed instance's last snapshot plus its successor's counters.
  if (crashed) add_counters(s.workers["payment"], read_json(stats / "payment-2.json"));
  return s;
}

// The payment provider's log: "charged KEY" per charge, "replayed KEY" per
// repeat it answered from the key instead of charging.
struct ledger {
  std::map<std::string, int> charges;  // key -> charges
  std::int64_t replays = 0;
};

ledger read_ledger(const fs::path& p) {
  ledger l;
  std::ifstream in(p);
  for (std::string what, key; in >> what >> key;) {
    if (what == "charged") ++l.charges[key];
    if (what == "replayed") ++l.replays;
  }
  return l;
}

// Everything the report and the checks use.
struct outcome {
  run_facts run;
  broker_view broker;
  bool broker_ok = false;  // ferryd exited 0 on SIGTERM
  program_stats stats;
  ledger gateway;
};

struct check {
  std::string what;
  bool passed = false;
};

// The checks: the promises the pipeline makes, from independent sources.
std::vector<check> compute_checks(long orders, const outcome& out) {
  const auto& paid = out.broker.paid;
  const auto& shipped = out.broker.shipped;
  const auto& charges = out.gateway.charges;
  const json& produced = out.stats.producer;
  const auto& ws = out.stats.workers;
  const bool crashed = out.run.crashed;
  std::vector<check> checks;
  const std::int64_t invalid = counter(produced, "invalid");
  std::int64_t shipped_twice = 0, shipped_unpaid = 0, paid_unshipped = 0;
  for (const auto& [k, n] : paid)
    if (!shipped.count(k)) ++paid_unshipped;
  for (const auto& [k, n] : shipped) {
    shipped_twice += n > 1;
    if (!paid.count(k)) ++shipped_unpaid;
  }
  std::int64_t charged_twice = 0;
  for (const auto& [k, n] : charges) charged_twice += n > 1;
  checks.push_back({"every record the producer sent was acknowledged",
                    out.run.producer_ok && counter(produced, "failed") == 0 &&
                        counter(produced, "acknowledged") == counter(produced, "sent")});
  const std::int64_t resent = payments_resent(paid);
  // Every re-sent PaymentCaptured comes from a repeat the gateway answered
  // from its key (a repeat may also be the first PaymentCaptured, when the
  // killed worker charged but died before its event was stored).
  checks.push_back(
      {"no order charged twice; every repeat answered from its idempotency key",
       charged_twice == 0 && charges.size() == paid.size() && out.gateway.replays >= resent});
  checks.push_back(
      {crashed ? "PaymentCaptured re-sent after the crash skipped by shipping"
               : "one PaymentCaptured per paid order",
       counter(ws.at("shipping"), "duplicates_skipped") == resent && (crashed || resent == 0)});
  checks.push_back({"every paid order shipped exactly once",
                    shipped_twice == 0 && paid_unshipped == 0 && shipped_unpaid == 0});
  std::int64_t unaccounted = 0, both = 0;
  for (long n = 1; n <= orders; ++n) {
    const std::string id = "ord-" + std::to_string(n);
    const bool was_paid = paid.count(id) > 0;
    const bool gave_up = out.broker.dead.payment_gave_up.count(id) > 0;
    unaccounted += !was_paid && !gave_up;
    both += was_paid && gave_up;
  }
  checks.push_back(
      {"every order either paid or dead-lettered by payment, never both",
       unaccounted == 0 && both == 0 && static_cast<std::int64_t>(paid.size()) <= orders});
  checks.push_back(
      {"every order reserved by inventory", counter(ws.at("inventory"), "succeeded") == orders});
  const dead_letters& dead = out.broker.dead;
  checks.push_back({"invalid payloads dead-lettered at once by both order workers",
                    dead.count("orders.payment.dlq", "invalid_payload") == invalid &&
                        dead.count("orders.inventory.dlq", "invalid_payload") == invalid});
  checks.push_back(
      {"duplicates skipped, never handled twice",
       counter(ws.at("inventory"), "duplicates_skipped") == counter(produced, "duplicates") &&
           counter(ws.at("payment"), "duplicates_skipped") > 0});
  const auto& lags = out.broker.lags;
  checks.push_back({"consumer lag 0 at the end", lags.at("payment").lag == 0 &&
                                                     lags.at("inventory").lag == 0 &&
                                                     lags.at("shipping").lag == 0});
  const auto& clean_exit = out.run.clean_exit;
  checks.push_back({"workers and broker stopped cleanly (SIGTERM, exit 0)",
                    out.broker_ok && clean_exit.at("payment") && clean_exit.at("inventory") &&
                        clean_exit.at("shipping")});
  return checks;
}

// The report as one JSON object (--json).
void print_json(const options& opt, const demo_dir& dir, const outcome& out,
                const std::vector<check>& checks, bool ok) {
  json j;
  j["ok"] = ok;
  j["orders"] = opt.orders;
  j["seconds"] = out.run.seconds;
  j["data_dir"] = dir.root;
  j["producer"] = out.stats.producer;
  j["workers"] = out.stats.workers;
  j["payments_captured"] = out.broker.paid.size();
  j["orders_shipped"] = out.broker.shipped.size();
  j["retry_tier_records"] = out.broker.tier_records;
  j["payment_worker_killed"] = out.run.crashed;
  j["payments_captured_resent"] = payments_resent(out.broker.paid);
  j["charges"] = out.gateway.charges.size();
  j["gateway_replays"] = out.gateway.replays;
  for (const auto& [d, reasons] : out.broker.dead.by_topic)
    for (const auto& [reason, c] : reasons) j["dead_letters"][d][reason] = c.count;
  for (const auto& c : checks) j["checks"].push_back({{"check", c.what}, {"passed", c.passed}});
  std::printf("%s\n", j.dump(2).c_str());
}

void print_produced(long orders, const json& produced) {
  std::printf("Produced (order_producer)\n");
  std::printf("  %-28s %8s  (%s written as v1 by a not-yet-upgraded instance, %s as v2)\n",
              "orders", num(orders).c_str(), num(counter(produced, "v1")).c_str(),
              num(counter(produced, "v2")).c_str());
  std::printf("  %-28s %8s  (the same idempotency key again, as after a checkout retry)\n",
              "duplicates", num(counter(produced, "duplicates")).c_str());
  std::printf("  %-28s %8s  (not FlatBuffers, under a valid schema id)\n", "invalid payloads",
              num(counter(produced, "invalid")).c_str());
  std::printf("  %-28s %8s  of %s sent, %s failed\n\n", "acknowledged (fsynced)",
              num(counter(produced, "acknowledged")).c_str(),
              num(counter(produced, "sent")).c_str(), num(counter(produced, "failed")).c_str());
}

// One column per worker: handled, skipped, retried, dead-lettered, the
// attempt each record finished on, and the lag at the end.
void print_processed(const outcome& out) {
  const auto& ws = out.stats.workers;
  std::printf("Processed                     %10s %10s %10s\n", "payment", "inventory", "shipping");
  auto row = [&](const char* label, auto value) {
    std::printf("  %-28s", label);
    for (const char* g : kGroups) std::printf(" %10s", value(ws.at(g)).c_str());
    std::printf("\n");
  };
  if (out.run.crashed)
    std::printf(
        "  (payment: both instances; the killed one's counters as of its last snapshot, <= 50 ms "
        "before the kill)\n");
  row("handled successfully", [&](const json& j) { return num(counter(j, "succeeded")); });
  row("duplicates skipped", [&](const json& j) { return num(counter(j, "duplicates_skipped")); });
  row("failed attempts (retried)",
      [&](const json& j) { return num(counter(j, "failed_attempts")); });
  row("dead-lettered", [&](const json& j) { return num(counter(j, "dead_lettered")); });
  std::size_t buckets = 0;
  for (const char* g : kGroups)
    buckets = std::max(buckets, ws.at(g).value("attempts_histogram", json::array()).size());
  while (buckets > 1) {  // drop empty trailing buckets
    bool any = false;
    for (const char* g : kGroups) {
      auto h = ws.at(g).value("attempts_histogram", json::array());
      if (h.size() >= buckets && h[buckets - 1].get<std::int64_t>() > 0) any = true;
    }
    if (any) break;
    --buckets;
  }
  for (std::size_t b = 0; b < buckets; ++b) {
    std::string label = "  finished on attempt " + std::to_string(b + 1);
    row(label.c_str() + 2, [&](const json& j) {
      auto h = j.value("attempts_histogram", json::array());
      return b < h.size() ? num(h[b].get<std::int64_t>()) : std::string("0");
    });
  }
  const auto& lags = out.broker.lags;
  std::printf("  %-28s %10s %10s %10s\n\n", "lag at the end", num(lags.at("payment").lag).c_str(),
              num(lags.at("inventory").lag).c_str(), num(lags.at("shipping").lag).c_str());
}

void print_dead_letters(const dead_letters& dead) {
  std::printf("Dead letters (by topic and reason; first message)\n");
  for (const char* d : kDlqs) {
    auto it = dead.by_topic.find(d);
    if (it == dead.by_topic.end() || it->second.empty()) {
      std::printf("  %-24s %-20s %6s\n", d, "-", "0");
      continue;
    }
    bool first = true;
    for (const auto& [reason, c] : it->second) {
      std::printf("  %-24s %-20s %6s  %s\n", first ? d : "", reason.c_str(), num(c.count).c_str(),
                  c.first_error.c_str());
      first = false;
    }
  }
}

// The events the workers produced, and what the crash repeated.
void print_events(const outcome& out) {
  const auto& paid = out.broker.paid;
  std::printf(
      "\nEvents produced by the workers: %s orders paid, %s shipped; %s records passed "
      "through the retry tiers\n",
      num(static_cast<std::int64_t>(paid.size())).c_str(),
      num(static_cast<std::int64_t>(out.broker.shipped.size())).c_str(),
      num(out.broker.tier_records).c_str());
  if (out.run.crashed)
    std::printf(
        "Crash: payment_worker was killed (SIGKILL) after %s payments and restarted. Delivery is\n"
        "  at least once: what it had handled but not committed was handled again. The gateway\n"
        "  answered %s repeated charges from their idempotency keys (%s charges for %s paid\n"
        "  orders, none twice), and shipping skipped the %s PaymentCaptured sent a second time.\n",
        num(out.run.paid_at_crash).c_str(), num(out.gateway.replays).c_str(),
        num(static_cast<std::int64_t>(out.gateway.charges.size())).c_str(),
        num(static_cast<std::int64_t>(paid.size())).c_str(), num(payments_resent(paid)).c_str());
  std::printf("\n");
}

void print_checks(const std::vector<check>& checks, bool ok) {
  std::printf("Checks\n");
  for (const auto& c : checks)
    std::printf("  %-6s %s\n", c.passed ? "ok" : "FAILED", c.what.c_str());
  std::printf("\nResult: %s. Nothing is left running.\n\n", ok ? "OK" : "FAILED");
}

// The report a person reads.
void print_report(const options& opt, const outcome& out, const std::vector<check>& checks,
                  bool ok) {
  std::printf(
      "\nFerry order pipeline: %s orders through payment, inventory and shipping in %.1f s\n\n",
      num(opt.orders).c_str(), out.run.seconds);
  print_produced(opt.orders, out.stats.producer);
  print_processed(out);
  print_dead_letters(out.broker.dead);
  print_events(out);
  print_checks(checks, ok);
}

// How to look at what the run left in DIR with Ferry's own tools.
void print_look_closer(const options& opt, const demo_dir& dir) {
  const std::string tools = fs::path(opt.ferry).parent_path().string();
  std::printf("Look closer (the data is kept in %s):\n", dir.root.c_str());
  if (opt.kafka) {
    std::printf(
        "  %s/ferryd --data-dir %s/data --listen tcp://127.0.0.1:7400 --kafka-listen "
        "127.0.0.1:9092 &\n",
        tools.c_str(), dir.root.c_str());
    std::printf("  export PATH=%s:$PATH FERRY_BROKER=kafka://127.0.0.1:9092\n", tools.c_str());
  } else {
    std::printf("  %s/ferryd --data-dir %s/data --listen tcp://127.0.0.1:7400 &\n", tools.c_str(),
                dir.root.c_str());
    std::printf("  export PATH=%s:$PATH\n", tools.c_str());
  }
  std::printf(
      "  ferry groups describe payment           # committed offsets and lag per partition\n");
  std::printf("  ferry dlq list orders.payment.dlq       # dead letters by reason and error\n");
  std::printf("  ferry dlq show orders.payment.dlq 0/0   # one of them, with every attempt\n");
  std::printf("  ferry consume shipments --from-beginning --decode -e\n");
  std::printf("  logs: %s\n", dir.logs.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (!std::getenv("FERRY_LOG_LEVEL")) ferry::log::set_level("error");  // NOLINT
  sample::flags f(argc, argv, kUsage);
  const options opt = read_options(f);
  const demo_dir dir = prepare_demo_dir(opt, f);

  // 1. The broker.
  child broker = start_ferryd(opt, dir);
  const std::string endpoint = wait_for_endpoint(broker, dir, opt.kafka);
  if (endpoint.empty()) return dir.fail("ferryd did not start (" + opt.ferryd + ")");

  // 2. Topics and schemas: the operator's part.
  const fc::client_options copts = client_options_for(endpoint);
  fc::admin admin(copts);
  if (auto error = create_topics_and_schema(admin, opt, dir, endpoint)) return dir.fail(*error);

  // 3. The workers and the producer, watched until every group has caught up
  //    (with the crash a third of the way through).
  pipeline run(opt, dir, endpoint);
  run.start();
  if (auto error = run.watch_until_caught_up(admin)) return dir.fail(*error);

  // 4. Graceful stop: each worker finishes, commits, leaves, writes its stats.
  run.stop_workers();

  // 5. What happened: from the broker (not from what the programs claim)
  //    before ferryd stops, then from the stats files and the gateway's ledger.
  outcome out;
  out.run = run.facts();
  out.broker = read_broker(copts, admin);
  out.broker_ok = broker.stop(std::chrono::seconds(20));
  out.stats = read_stats_files(dir.stats, out.run.crashed);
  out.gateway = read_ledger(dir.gateway_ledger());
  const std::vector<check> checks = compute_checks(opt.orders, out);
  const bool ok = std::ranges::all_of(checks, &check::passed);

  if (opt.as_json) {
    print_json(opt, dir, out, checks, ok);
  } else {
    print_report(opt, out, checks, ok);
    print_look_closer(opt, dir);
  }
  return ok ? 0 : 1;
}
