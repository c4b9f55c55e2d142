// A worker process for the crash tests (worker_crash_test.cc): one
// subscription, driven by its arguments, killed with SIGKILL or by a crash
// point (FERRY_CRASH_AT, inherited from the environment) and started again.
//
//   worker_child ENDPOINT GROUP TOPIC MODE LOGFILE [name=value ...]
//
// MODE: in_order | key_ordered | delay_tiers. Options (defaults):
//   max_attempts=3   fail_times=1   backoff_ms=0   concurrency=2
//   commit_ms=50     session_ms=1000   sleep_ms=0 (per handler call)
//   tiers=100,300    (delay_tiers: delays in ms)
//   skip=1           (skip_processed_keys)   window_ms=0 (0: the default)
//   linger_ms=-1     (the dead-letter producer's linger; -1: the default)
//   error_bytes=0    (pad the retriable error's message to this length)
//
// What a record's value makes the handler do:
//   "poison..."  fails (retriable) every time: dead-lettered after max_attempts
//   "perm..."    fails with a permanent error: dead-lettered at once
//   "fail..."    fails (retriable) while its attempt <= fail_times, then succeeds
//   anything else succeeds
//
// Every handler call appends one line to LOGFILE (O_APPEND, one write(),
// no fsync: a SIGKILL loses nothing written) before the handler returns,
// so a line with verdict "ok" is the handler's side effect:
//   H <pid> <partition> <offset> <key|-> <value> <attempt> <ok|fail|perm> <start_ms> <idem|->
// (partition and offset of the record's origin, start_ms the wall clock
// when the call began). After each step whose worker_stats changed:
//   S <pid> <succeeded> <failed_attempts> <retries_scheduled> <tier_routed>
//     <dead_lettered> <duplicates_skipped> <recovered_routes> <commits>
// SIGTERM: the worker finishes, commits, leaves the group; exit 0.
// Exit 3: the worker reported an error it cannot get past; 2: usage.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>

#include "ferry/runtime/worker.h"

namespace {

using namespace std::chrono_literals;

std::atomic<bool> stop_flag{false};

void on_term(int) {
  stop_flag = true;
}

int log_fd = -1;

void put(const std::string& line) {
  const std::string l = line + "\n";
  if (::write(log_fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::abort();
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string stats_line(const ferry::runtime::worker_stats& s) {
  return "S " + std::to_string(::getpid()) + " " + std::to_string(s.succeeded) + " " +
         std::to_string(s.failed_attempts) + " " + std::to_string(s.retries_scheduled) + " " +
         std::to_string(s.tier_routed) + " " + std::to_string(s.dead_lettered) + " " +
         std::to_string(s.duplicates_skipped) + " " + std::to_string(s.recovered_routes) + " " +
         std::to_string(s.commits);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s ENDPOINT GROUP TOPIC MODE LOGFILE [name=value ...]\n", argv[0]);
    return 2;
  }
  std::map<std::string, std::string> opt{
      {"max_attempts", "3"}, {"fail_times", "1"},    {"backoff_ms", "0"}, {"concurrency", "2"},
      {"commit_ms", "50"},   {"session_ms", "1000"}, {"sleep_ms", "0"},   {"tiers", "100,300"},
      {"skip", "1"},         {"window_ms", "0"},     {"linger_ms", "-1"}, {"error_bytes", "0"}};
  for (int i = 6; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos || !opt.count(a.substr(0, eq))) {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
    opt[a.substr(0, eq)] = a.substr(eq + 1);
  }
  auto num = [&](const char* name) { return std::stoll(opt.at(name)); };
  log_fd = ::open(argv[5], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log_fd < 0) return 2;
  std::signal(SIGTERM, on_term);

  ferry::runtime::worker_options o;
  o.consumer.broker = argv[1];
  o.consumer.group_id = argv[2];
  o.consumer.client_id = "worker-child";
  o.consumer.request_timeout = 2s;
  o.consumer.api_timeout = 10s;
  o.consumer.retry_backoff = 20ms;
  o.consumer.session_timeout = std::chrono::milliseconds(num("session_ms"));
  o.consumer.heartbeat_interval = 100ms;
  o.consumer.fetch_max_wait = 50ms;
  o.producer.request_timeout = 2s;
  o.producer.retry_backoff = 20ms;
  if (num("linger_ms") >= 0) o.producer.linger = std::chrono::milliseconds(num("linger_ms"));
  o.concurrency = static_cast<int>(num("concurrency"));
  o.commit_interval = std::chrono::milliseconds(num("commit_ms"));

  ferry::runtime::subscription s;
  s.topics = {argv[3]};
  const std::string mode = argv[4];
  if (mode == "in_order") {
    s.order = ferry::runtime::ordering::in_order;
  } else if (mode == "key_ordered") {
    s.order = ferry::runtime::ordering::key_ordered;
  } else if (mode == "delay_tiers") {
    s.order = ferry::runtime::ordering::delay_tiers;
    std::string t = opt["tiers"];
    while (!t.empty()) {
      const auto comma = t.find(',');
      const auto d = std::chrono::milliseconds(std::stoll(t.substr(0, comma)));
      s.tiers.push_back({ferry::runtime::tier_name(d), d});
      t = comma == std::string::npos ? "" : t.substr(comma + 1);
    }
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  s.retry.max_attempts = static_cast<int>(num("max_attempts"));
  s.retry.backoff.type = ferry::runtime::backoff::kind::fixed;
  s.retry.backoff.initial = std::chrono::milliseconds(num("backoff_ms"));
  s.retry.backoff.max = s.retry.backoff.initial;
  s.retry.backoff.jitter = false;
  s.skip_processed_keys = num("skip") != 0;
  if (num("window_ms") > 0) s.idempotency_window = std::chrono::milliseconds(num("window_ms"));
  const int fail_times = static_cast<int>(num("fail_times"));
  const auto sleep = std::chrono::milliseconds(num("sleep_ms"));
  std::string error_text = "try again";
  error_text.resize(
      std::max<std::size_t>(error_text.size(), static_cast<std::size_t>(num("error_bytes"))), '.');
  s.handler = [&](const ferry::runtime::message& m) -> ferry::result<void> {
    const auto start = wall_ms();
    if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
    const std::string v = m.value().value_or("");
    const char* verdict = "ok";
    if (v.starts_with("poison") || (v.starts_with("fail") && m.attempt() <= fail_times))
      verdict = "fail";
    else if (v.starts_with("perm"))
      verdict = "perm";
    put("H " + std::to_string(::getpid()) + " " + std::to_string(m.origin().partition) + " " +
        std::to_string(m.origin().offset) + " " + m.key().value_or("-") + " " + v + " " +
        std::to_string(m.attempt()) + " " + verdict + " " + std::to_string(start) + " " +
        m.idempotency_key().value_or("-"));
    if (verdict[0] == 'f')
      return ferry::runtime::retriable(std::errc::resource_unavailable_try_again, error_text);
    if (verdict[0] == 'p')
      return ferry::runtime::permanent(std::errc::operation_not_permitted, "never");
    return ferry::success();
  };

  ferry::runtime::worker w(o);
  if (auto r = w.subscribe(std::move(s)); !r) {
    std::fprintf(stderr, "subscribe: %s\n", w.last_error().c_str());
    return 2;
  }
  std::string last;
  auto note_stats = [&] {
    auto line = stats_line(w.stats());
    if (line != last) put(line);
    last = std::move(line);
  };
  while (!stop_flag) {
    if (auto r = w.run_once(100ms); !r) {
      std::fprintf(stderr, "worker_child: %s: %s\n", r.error().message().c_str(),
                   w.last_error().c_str());
      return 3;
    }
    note_stats();
  }
  auto c = w.close();
  note_stats();
  if (!c) {
    std::fprintf(stderr, "worker_child: close: %s\n", c.error().message().c_str());
    return 3;
  }
  ::close(log_fd);
  return 0;
}
