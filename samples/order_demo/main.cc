// order_demo: Ferry's main job. A local broker, the order producer and the
// three workers, end to end, with a report a person can read.
//
//   order_demo [--orders N] [--data-dir DIR] [--clean] [--no-crash] [--json] [--timeout-s S]
//
//  1. starts ferryd on DIR/data (DIR: --data-dir, else a new /tmp/ferry-demo-*);
//  2. creates the topics, registers OrderPlaced v1 with `ferry schema
//     register` and turns on produce-time schema checks (`ferry schema
//     enforce orders`), as an operator would;
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
    "           [--timeout-s S]\n"
    "  --orders N     orders to produce (default 2000)\n"
    "  --data-dir DIR where the broker's data, logs and stats go (default: a new "
    "/tmp/ferry-demo-*);\n"
    "                 must be empty or absent unless --clean, which first deletes an earlier\n"
    "                 order_demo's directory (and nothing else)\n"
    "  --no-crash     do not kill -9 the payment worker a third of the way through\n"
    "  --json         print the report as JSON on stdout (progress stays on stderr)\n"
    "  --timeout-s S  give up if the pipeline has not caught up after S seconds (default 120)";

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

}  // namespace

int main(int argc, char** argv) {
  if (!std::getenv("FERRY_LOG_LEVEL")) ferry::log::set_level("error");  // NOLINT
  sample::flags f(argc, argv, kUsage);
  const long orders = f.number("--orders", 2000);
  std::string dir = f.text("--data-dir");
  const bool clean = f.set("--clean");
  const bool as_json = f.set("--json");
  const bool crash = !f.set("--no-crash");
  const long timeout_s = f.number("--timeout-s", 120);
  const std::string ferryd = f.text("--ferryd", FERRY_FERRYD);
  const std::string ferry = f.text("--ferry", FERRY_CLI);
  const std::string bin = f.text("--samples", FERRY_SAMPLES_DIR);
  const std::string v1_schema = f.text("--v1-schema", FERRY_ORDERS_V1_FBS);
  f.done();
  if (orders < 1) f.fail("--orders must be at least 1");

  std::error_code ec;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ferry-demo-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) f.fail("cannot create a directory in /tmp; pass --data-dir");
    dir = tmpl;
  } else if (fs::exists(dir) && !fs::is_empty(dir)) {
    // --clean deletes only what an earlier order_demo made (it leaves a
    // marker), never a directory a broker is using.
    if (!clean)
      f.fail(dir + " is not empty: pass --clean to delete it first, or another --data-dir");
    if (!fs::exists(fs::path(dir) / kMarker))
      f.fail(dir + " was not made by order_demo (no " + std::string(kMarker) +
             "): --clean will not delete it; pick another --data-dir");
    const int lock = ::open((fs::path(dir) / "data" / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
    const bool busy = lock >= 0 && ::flock(lock, LOCK_EX | LOCK_NB) != 0;
    if (lock >= 0) ::close(lock);
    if (busy) f.fail("a ferryd is running on " + dir + "/data: stop it first");
    fs::remove_all(dir, ec);
    if (ec) f.fail("cannot delete " + dir + ": " + ec.message());
  }
  dir = fs::absolute(dir).string();
  const fs::path logs = fs::path(dir) / "logs", stats = fs::path(dir) / "stats";
  fs::create_directories(logs, ec);
  fs::create_directories(stats, ec);
  std::ofstream(fs::path(dir) / kMarker)
      << "made by order_demo; --clean may delete this directory\n";
  auto say = [&](const std::string& s) { std::fprintf(stderr, "order_demo: %s\n", s.c_str()); };
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "order_demo: error: %s\n  logs: %s\n", why.c_str(), logs.c_str());
    return 1;
  };

  // 1. The broker, on a port the kernel picks; its first stdout line names it.
  say("starting ferryd on " + dir + "/data");
  child broker(
      {ferryd, "--data-dir", dir + "/data", "--listen", "tcp://127.0.0.1:*", "--log-level", "warn"},
      logs / "ferryd.log");
  std::string endpoint;
  for (auto until = steady::now() + std::chrono::seconds(20);
       endpoint.empty() && steady::now() < until && broker.running();) {
    auto text = read_file(logs / "ferryd.log");
    if (auto at = text.find("listening on tcp://"); at != std::string::npos) {
      auto end = text.find('\n', at);
      if (end != std::string::npos) endpoint = text.substr(at + 13, end - at - 13);
    }
    if (endpoint.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (endpoint.empty()) return fail("ferryd did not start (" + ferryd + ")");

  // 2. Topics and schemas: the operator's part.
  fc::client_options copts;
  copts.broker = endpoint;
  copts.request_timeout = std::chrono::milliseconds(5000);
  fc::admin admin(copts);
  for (const char* t : {"orders", "payments", "shipments"}) {
    fc::topic_config tc;
    tc.partitions = 3;
    if (auto r = admin.create_topic(t, tc); !r)
      return fail(std::string("cannot create topic ") + t + ": " + admin.last_error_message());
  }
  const fs::path cli_log = logs / "ferry-cli.log";
  if (!run_cli({ferry, "--broker", endpoint, "schema", "register", "orders-value", v1_schema},
               cli_log) ||
      !run_cli({ferry, "--broker", endpoint, "schema", "enforce", "orders"}, cli_log))
    return fail("ferry schema register/enforce failed (" + cli_log.string() + ")");
  say("topics orders, payments, shipments; OrderPlaced v1 registered; orders enforces schema ids");

  // 3. Workers first (they join their groups), then the producer.
  const fs::path gateway_ledger = fs::path(dir) / "gateway-ledger.txt";
  auto start_worker = [&](const std::string& g, const std::string& stats_name) {
    const std::string name = g + "_worker";
    std::vector<std::string> args{bin + "/" + name, "--broker", endpoint, "--stats-file",
                                  (stats / stats_name).string()};
    if (g == "payment") {  // the payment provider's memory of idempotency keys
      args.push_back("--gateway-ledger");
      args.push_back(gateway_ledger.string());
    }
    return child(args, logs / (name + ".log"));
  };
  std::map<std::string, child> workers;
  for (const char* g : kGroups) workers.emplace(g, start_worker(g, std::string(g) + ".json"));
  say("workers started: payment (delay tiers), inventory (key-ordered), shipping (in order)");
  const auto t0 = steady::now();
  child producer({bin + "/order_producer", "--broker", endpoint, "--orders", std::to_string(orders),
                  "--stats-file", (stats / "producer.json").string()},
                 logs / "order_producer.log");

  // Progress until every group has caught up three checks in a row.
  const bool tty = ::isatty(2);
  int caught_up_checks = 0;
  bool crashed = false;
  std::int64_t paid_at_crash = 0;
  bool producer_done = false, producer_ok = false;
  std::map<std::string, group_lag> lags;
  auto last_line = steady::now() - std::chrono::seconds(10);
  for (;;) {
    if (!producer_done && !producer.running()) {
      producer_done = true;
      producer_ok = producer.wait(std::chrono::seconds(0));
    }
    for (auto& [g, w] : workers)
      if (!w.running())
        return fail(g + "_worker exited early (" + (logs / (g + "_worker.log")).string() + ")");
    if (crash && !crashed && records_in(admin, "payments") >= orders / 3) {
      // The crash: no goodbye, no commit. What the killed worker handled
      // after its last commit is handled again by its successor.
      paid_at_crash = records_in(admin, "payments");
      workers["payment"].kill_now();
      workers["payment"] = start_worker("payment", "payment-2.json");
      crashed = true;
      if (tty) std::fprintf(stderr, "\n");
      say("killed payment_worker (SIGKILL) after " + num(paid_at_crash) +
          " payments and started it again; its partitions move once the broker expires the "
          "dead member's session (10 s)");
    }
    lags["payment"] = lag_of(admin, "payment", {"orders"});
    lags["inventory"] = lag_of(admin, "inventory", {"orders"});
    lags["shipping"] = lag_of(admin, "shipping", {"payments"});
    std::int64_t dead = 0;
    for (const char* d : kDlqs) dead += records_in(admin, d);
    const auto elapsed = std::chrono::duration<double>(steady::now() - t0).count();
    char line[256];
    std::snprintf(line, sizeof line,
                  "%5.1fs  orders %s | lag: payment %s, inventory %s, shipping %s | shipped %s | "
                  "dead letters %s",
                  elapsed, num(records_in(admin, "orders")).c_str(),
                  num(lags["payment"].lag).c_str(), num(lags["inventory"].lag).c_str(),
                  num(lags["shipping"].lag).c_str(), num(records_in(admin, "shipments")).c_str(),
                  num(dead).c_str());
    if (tty)
      std::fprintf(stderr, "\r  %-110s", line);
    else if (steady::now() - last_line >= std::chrono::seconds(2)) {
      std::fprintf(stderr, "  %s\n", line);
      last_line = steady::now();
    }
    const bool all =
        lags["payment"].caught_up && lags["inventory"].caught_up && lags["shipping"].caught_up;
    caught_up_checks = producer_done && all ? caught_up_checks + 1 : 0;
    if (caught_up_checks >= 3) break;
    if (elapsed > static_cast<double>(timeout_s)) {
      if (tty) std::fprintf(stderr, "\n");
      return fail("the pipeline did not catch up within " + std::to_string(timeout_s) +
                  " s (see the lag above and the worker logs)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const double seconds = std::chrono::duration<double>(steady::now() - t0).count();
  if (tty) std::fprintf(stderr, "\n");
  {
    char took[32];
    std::snprintf(took, sizeof took, "%.1f", seconds);
    say(std::string("caught up after ") + took + " s; stopping the workers");
  }

  // 4. Graceful stop: each worker finishes, commits, leaves, writes its stats.
  std::map<std::string, bool> clean_exit;
  for (auto& [g, w] : workers) clean_exit[g] = w.stop(std::chrono::seconds(20));

  // 5. What happened, from the broker (not from what the programs claim).
  std::map<std::string, std::map<std::string, std::pair<std::int64_t, std::string>>> dead_by;
  std::set<std::string> payment_gave_up;  // order ids payment dead-lettered (not invalid ones)
  for (const char* d : kDlqs) {
    auto snap = ferry::runtime::dlq::read(copts, d);
    if (!snap) continue;  // never created: nothing was dead-lettered there
    for (const auto& l : snap.value().letters) {
      auto& slot = dead_by[d][l.reason()];
      if (slot.first++ == 0) slot.second = l.error_message();
      if (std::string_view(d) == "orders.payment.dlq" && l.reason() != "invalid_payload")
        payment_gave_up.insert(l.key.value_or(""));
    }
  }
  // The lag once the workers are gone: what they committed on the way out.
  for (const auto& [g, topic] : {std::pair<std::string, std::string>{"payment", "orders"},
                                 {"inventory", "orders"},
                                 {"shipping", "payments"}})
    lags[g] = lag_of(admin, g, {topic});
  auto paid = keys_in(copts, admin, "payments");
  auto shipped = keys_in(copts, admin, "shipments");
  const std::int64_t tier_records =
      records_in(admin, "orders.retry.250ms") + records_in(admin, "orders.retry.1s");
  const bool broker_ok = broker.stop(std::chrono::seconds(20));

  json produced = read_json(stats / "producer.json");
  std::map<std::string, json> ws;
  for (const char* g : kGroups) ws[g] = read_json(stats / (std::string(g) + ".json"));
  if (crashed) {  // the killed instance's last snapshot plus its successor's counters
    json second = read_json(stats / "payment-2.json");
    for (auto& [k, v] : second.items()) {
      if (v.is_number_unsigned()) {
        ws["payment"][k] = ws["payment"].value(k, std::uint64_t{0}) + v.get<std::uint64_t>();
      } else if (v.is_array()) {
        auto h = ws["payment"].value(k, json::array());
        for (std::size_t b = 0; b < v.size(); ++b) {
          if (b >= h.size()) h.push_back(0);
          h[b] = h[b].get<std::uint64_t>() + v[b].get<std::uint64_t>();
        }
        ws["payment"][k] = h;
      }
    }
  }
  // The payment provider's log: "charged KEY" per charge, "replayed KEY" per
  // repeat it answered from the key instead of charging.
  std::map<std::string, int> charges;
  std::int64_t replays = 0;
  {
    std::ifstream in(gateway_ledger);
    for (std::string what, key; in >> what >> key;) {
      if (what == "charged") ++charges[key];
      if (what == "replayed") ++replays;
    }
  }
  std::int64_t charged_twice = 0;
  for (const auto& [k, n] : charges) charged_twice += n > 1;
  auto get = [](const json& j, const char* k) -> std::int64_t {
    return j.value(k, std::int64_t{0});
  };

  // The checks: the promises the pipeline makes, from independent sources.
  std::vector<std::pair<std::string, bool>> checks;
  const std::int64_t invalid = get(produced, "invalid");
  std::int64_t paid_records = 0, shipped_twice = 0, shipped_unpaid = 0, paid_unshipped = 0;
  for (const auto& [k, n] : paid) {
    paid_records += n;
    if (!shipped.count(k)) ++paid_unshipped;
  }
  for (const auto& [k, n] : shipped) {
    shipped_twice += n > 1;
    if (!paid.count(k)) ++shipped_unpaid;
  }
  auto dead_count = [&](const char* d, const char* reason) -> std::int64_t {
    auto it = dead_by.find(d);
    if (it == dead_by.end()) return 0;
    auto r = it->second.find(reason);
    return r == it->second.end() ? 0 : r->second.first;
  };
  checks.push_back({"every record the producer sent was acknowledged",
                    producer_ok && get(produced, "failed") == 0 &&
                        get(produced, "acknowledged") == get(produced, "sent")});
  const std::int64_t resent = paid_records - static_cast<std::int64_t>(paid.size());
  // Every re-sent PaymentCaptured comes from a repeat the gateway answered
  // from its key (a repeat may also be the first PaymentCaptured, when the
  // killed worker charged but died before its event was stored).
  checks.push_back({"no order charged twice; every repeat answered from its idempotency key",
                    charged_twice == 0 && charges.size() == paid.size() && replays >= resent});
  checks.push_back(
      {crashed ? "PaymentCaptured re-sent after the crash skipped by shipping"
               : "one PaymentCaptured per paid order",
       get(ws["shipping"], "duplicates_skipped") == resent && (crashed || resent == 0)});
  checks.push_back({"every paid order shipped exactly once",
                    shipped_twice == 0 && paid_unshipped == 0 && shipped_unpaid == 0});
  std::int64_t unaccounted = 0, both = 0;
  for (long n = 1; n <= orders; ++n) {
    const std::string id = "ord-" + std::to_string(n);
    const bool was_paid = paid.count(id) > 0, gave_up = payment_gave_up.count(id) > 0;
    unaccounted += !was_paid && !gave_up;
    both += was_paid && gave_up;
  }
  checks.push_back(
      {"every order either paid or dead-lettered by payment, never both",
       unaccounted == 0 && both == 0 && static_cast<std::int64_t>(paid.size()) <= orders});
  checks.push_back(
      {"every order reserved by inventory", get(ws["inventory"], "succeeded") == orders});
  checks.push_back({"invalid payloads dead-lettered at once by both order workers",
                    dead_count("orders.payment.dlq", "invalid_payload") == invalid &&
                        dead_count("orders.inventory.dlq", "invalid_payload") == invalid});
  checks.push_back({"duplicates skipped, never handled twice",
                    get(ws["inventory"], "duplicates_skipped") == get(produced, "duplicates") &&
                        get(ws["payment"], "duplicates_skipped") > 0});
  checks.push_back({"consumer lag 0 at the end", lags["payment"].lag == 0 &&
                                                     lags["inventory"].lag == 0 &&
                                                     lags["shipping"].lag == 0});
  checks.push_back(
      {"workers and broker stopped cleanly (SIGTERM, exit 0)",
       broker_ok && clean_exit["payment"] && clean_exit["inventory"] && clean_exit["shipping"]});
  bool ok = true;
  for (const auto& [what, passed] : checks) ok = ok && passed;

  const std::string tools = fs::path(ferry).parent_path().string();
  if (as_json) {
    json j;
    j["ok"] = ok;
    j["orders"] = orders;
    j["seconds"] = seconds;
    j["data_dir"] = dir;
    j["producer"] = produced;
    j["workers"] = ws;
    j["payments_captured"] = paid.size();
    j["orders_shipped"] = shipped.size();
    j["retry_tier_records"] = tier_records;
    j["payment_worker_killed"] = crashed;
    j["payments_captured_resent"] = resent;
    j["charges"] = charges.size();
    j["gateway_replays"] = replays;
    for (const auto& [d, reasons] : dead_by)
      for (const auto& [reason, c] : reasons) j["dead_letters"][d][reason] = c.first;
    for (const auto& [what, passed] : checks)
      j["checks"].push_back({{"check", what}, {"passed", passed}});
    std::printf("%s\n", j.dump(2).c_str());
    return ok ? 0 : 1;
  }

  std::printf(
      "\nFerry order pipeline: %s orders through payment, inventory and shipping in %.1f s\n\n",
      num(orders).c_str(), seconds);
  std::printf("Produced (order_producer)\n");
  std::printf("  %-28s %8s  (%s written as v1 by a not-yet-upgraded instance, %s as v2)\n",
              "orders", num(orders).c_str(), num(get(produced, "v1")).c_str(),
              num(get(produced, "v2")).c_str());
  std::printf("  %-28s %8s  (the same idempotency key again, as after a checkout retry)\n",
              "duplicates", num(get(produced, "duplicates")).c_str());
  std::printf("  %-28s %8s  (not FlatBuffers, under a valid schema id)\n", "invalid payloads",
              num(invalid).c_str());
  std::printf("  %-28s %8s  of %s sent, %s failed\n\n", "acknowledged (fsynced)",
              num(get(produced, "acknowledged")).c_str(), num(get(produced, "sent")).c_str(),
              num(get(produced, "failed")).c_str());

  std::printf("Processed                     %10s %10s %10s\n", "payment", "inventory", "shipping");
  auto row = [&](const char* label, auto value) {
    std::printf("  %-28s", label);
    for (const char* g : kGroups) std::printf(" %10s", value(ws[g]).c_str());
    std::printf("\n");
  };
  if (crashed)
    std::printf(
        "  (payment: both instances; the killed one's counters as of its last snapshot, <= 50 ms "
        "before the kill)\n");
  row("handled successfully", [&](const json& j) { return num(get(j, "succeeded")); });
  row("duplicates skipped", [&](const json& j) { return num(get(j, "duplicates_skipped")); });
  row("failed attempts (retried)", [&](const json& j) { return num(get(j, "failed_attempts")); });
  row("dead-lettered", [&](const json& j) { return num(get(j, "dead_lettered")); });
  std::size_t buckets = 0;
  for (const char* g : kGroups)
    buckets = std::max(buckets, ws[g].value("attempts_histogram", json::array()).size());
  while (buckets > 1) {  // drop empty trailing buckets
    bool any = false;
    for (const char* g : kGroups) {
      auto h = ws[g].value("attempts_histogram", json::array());
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
  std::printf("  %-28s %10s %10s %10s\n\n", "lag at the end", num(lags["payment"].lag).c_str(),
              num(lags["inventory"].lag).c_str(), num(lags["shipping"].lag).c_str());

  std::printf("Dead letters (by topic and reason; first message)\n");
  for (const char* d : kDlqs) {
    auto it = dead_by.find(d);
    if (it == dead_by.end() || it->second.empty()) {
      std::printf("  %-24s %-20s %6s\n", d, "-", "0");
      continue;
    }
    bool first = true;
    for (const auto& [reason, c] : it->second) {
      std::printf("  %-24s %-20s %6s  %s\n", first ? d : "", reason.c_str(), num(c.first).c_str(),
                  c.second.c_str());
      first = false;
    }
  }
  std::printf(
      "\nEvents produced by the workers: %s orders paid, %s shipped; %s records passed "
      "through the retry tiers\n",
      num(static_cast<std::int64_t>(paid.size())).c_str(),
      num(static_cast<std::int64_t>(shipped.size())).c_str(), num(tier_records).c_str());
  if (crashed)
    std::printf(
        "Crash: payment_worker was killed (SIGKILL) after %s payments and restarted. Delivery is\n"
        "  at least once: what it had handled but not committed was handled again. The gateway\n"
        "  answered %s repeated charges from their idempotency keys (%s charges for %s paid\n"
        "  orders, none twice), and shipping skipped the %s PaymentCaptured sent a second time.\n",
        num(paid_at_crash).c_str(), num(replays).c_str(),
        num(static_cast<std::int64_t>(charges.size())).c_str(),
        num(static_cast<std::int64_t>(paid.size())).c_str(), num(resent).c_str());
  std::printf("\n");
  std::printf("Checks\n");
  for (const auto& [what, passed] : checks)
    std::printf("  %-6s %s\n", passed ? "ok" : "FAILED", what.c_str());
  std::printf("\nResult: %s. Nothing is left running.\n\n", ok ? "OK" : "FAILED");
  std::printf("Look closer (the data is kept in %s):\n", dir.c_str());
  std::printf("  %s/ferryd --data-dir %s/data --listen tcp://127.0.0.1:7400 &\n", tools.c_str(),
              dir.c_str());
  std::printf("  export PATH=%s:$PATH\n", tools.c_str());
  std::printf(
      "  ferry groups describe payment           # committed offsets and lag per partition\n");
  std::printf("  ferry dlq list orders.payment.dlq       # dead letters by reason and error\n");
  std::printf("  ferry dlq show orders.payment.dlq 0/0   # one of them, with every attempt\n");
  std::printf("  ferry consume shipments --from-beginning --decode -e\n");
  std::printf("  logs: %s\n", logs.c_str());
  return ok ? 0 : 1;
}
