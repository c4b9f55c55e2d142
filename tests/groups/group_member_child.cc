// A group member for the churn test: consumes, records every record and
// every assignment in a file (unbuffered, so a SIGKILL loses nothing
// written), and commits after each batch. SIGTERM: close() and exit.
//
//   group_member_child ENDPOINT GROUP TOPIC OUTFILE [INSTANCE_ID|- [SESSION_MS]]
//
// Lines: "A <generation> <member> <p,p,...>" on each assignment,
//        "R <generation> <partition> <offset> <value>" per record,
//        "C <generation> <partition> <next>" per successful commit,
//        "F <message>" when fenced (static membership; then exit 4).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>

#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"

namespace {

std::atomic<bool> stop{false};

void on_term(int) {
  stop = true;
}

int out_fd = -1;

void put(const std::string& line) {
  const std::string l = line + "\n";
  if (::write(out_fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 7) {
    std::fprintf(stderr, "usage: %s ENDPOINT GROUP TOPIC OUTFILE [INSTANCE_ID|- [SESSION_MS]]\n",
                 argv[0]);
    return 2;
  }
  out_fd = ::open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out_fd < 0) return 2;
  std::signal(SIGTERM, on_term);
  using namespace std::chrono_literals;
  ferry::client::consumer_options o;
  o.broker = argv[1];
  o.group_id = argv[2];
  o.client_id = "churn";
  o.session_timeout = 1000ms;
  if (argc >= 6 && std::string(argv[5]) != "-") o.group_instance_id = argv[5];
  if (argc >= 7) o.session_timeout = std::chrono::milliseconds(std::stol(argv[6]));
  o.heartbeat_interval = 100ms;
  o.fetch_max_wait = 100ms;
  o.request_timeout = 5s;
  o.retry_backoff = 20ms;
  ferry::client::consumer c(o);
  std::map<ferry::client::topic_partition, std::int64_t> done;  // next offset per partition
  struct listener : ferry::client::rebalance_listener {
    std::map<ferry::client::topic_partition, std::int64_t>* done;
    void on_assigned(ferry::client::consumer& c,
                     const std::vector<ferry::client::topic_partition>& parts) override {
      std::string ps;
      for (const auto& tp : parts)
        ps += (ps.empty() ? "" : ",") + std::to_string(tp.partition.value());
      put("A " + std::to_string(c.generation()) + " " + c.member_id() + " " +
          (ps.empty() ? "-" : ps));
    }
    void on_revoked(ferry::client::consumer& c,
                    const std::vector<ferry::client::topic_partition>&) override {
      done->clear();  // everything processed was committed after its batch
      (void)c;
    }
  } l;
  l.done = &done;
  if (!c.subscribe({argv[3]}, &l)) return 3;
  while (!stop) {
    auto recs = c.poll(100ms);
    if (!recs) {
      std::fprintf(stderr, "poll: %s %s\n", recs.error().message().c_str(),
                   c.last_error_message().c_str());
      if (recs.error() == ferry::client::errc::fenced_instance_id) {
        put("F " + c.last_error_message());
        return 4;
      }
      continue;
    }
    if (recs.value().empty()) continue;
    const auto gen = std::to_string(c.generation());
    for (const auto& r : recs.value()) {
      put("R " + gen + " " + std::to_string(r.partition.value()) + " " +
          std::to_string(r.offset.value()) + " " + r.value.value_or(""));
      done[{r.topic, r.partition}] = r.offset.value() + 1;
    }
    std::vector<ferry::client::offset_commit> commits;
    for (const auto& [tp, next] : done) commits.push_back({tp, ferry::offset(next), {}, {}});
    if (auto cr = c.commit(commits)) {
      for (const auto& oc : commits)
        put("C " + gen + " " + std::to_string(oc.tp.partition.value()) + " " +
            std::to_string(oc.next.value()));
    }
    done.clear();
  }
  (void)c.close();
  ::close(out_fd);
  return 0;
}
