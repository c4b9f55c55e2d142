// Metadata: this broker as the one node, leader of every partition, and
// the topics asked for (all of them for a null list). Topics are not
// created by asking for them: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION
// (create it with CreateTopics or ferry topics create).
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "frontend.h"

namespace ferry::broker {

namespace {

constexpr std::int32_t kUnknownOperations = std::numeric_limits<std::int32_t>::min();

void write_topic(kafka::writer& w, const kafka_request& q, std::string_view name, const topic* t,
                 bool allowed = true) {
  const auto& node = q.frontend->node();
  // A topic the user may not describe is TOPIC_AUTHORIZATION_FAILED, known
  // or not (whether it exists is not told).
  if (!allowed) t = nullptr;
  w.i16(kafka::code(!allowed ? kafka::error::topic_authorization_failed
                    : t      ? kafka::error::none
                             : kafka::error::unknown_topic_or_partition));
  w.string(name);
  w.boolean(false);  // is_internal (v1+)
  if (t == nullptr) {
    w.array(0);
  } else {
    w.array(static_cast<std::int32_t>(t->partitions.size()));
    for (const auto& p : t->partitions) {
      w.i16(kafka::code(p->log->failed() ? kafka::error::kafka_storage_error : kafka::error::none));
      w.i32(p->id);
      w.i32(node.id);             // leader
      if (since(q, 7)) w.i32(0);  // leader epoch (the log stamps 0)
      w.array(1);                 // replicas
      w.i32(node.id);
      w.array(1);  // in-sync replicas
      w.i32(node.id);
      if (since(q, 5)) w.array(0);  // offline replicas
    }
  }
  if (since(q, 8)) w.i32(kUnknownOperations);  // topic authorized operations
}

}  // namespace

void kafka_metadata(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  std::optional<std::vector<std::string_view>> wanted;  // nullopt: every topic
  const auto n = in.array(2);
  if (n >= 0) {
    wanted.emplace();
    for (std::int32_t i = 0; i < n && in.ok(); ++i) wanted->push_back(in.string());
  }
  if (since(*q, 4)) (void)in.boolean();  // allow_auto_topic_creation: ferryd never auto-creates
  if (since(*q, 8)) {
    (void)in.boolean();  // include cluster authorized operations
    (void)in.boolean();  // include topic authorized operations
  }
  if (!in.ok()) return q->malformed("Metadata");
  const auto& node = q->frontend->node();
  auto w = q->response();
  if (since(*q, 3)) w.i32(0);  // throttle
  w.array(1);
  w.i32(node.id);
  w.string(node.host);
  w.i32(node.port);
  w.nullable_string(std::nullopt);  // rack
  if (since(*q, 2)) w.nullable_string(q->frontend->cluster_id());
  w.i32(node.id);  // controller
  if (!wanted) {
    // Every topic this user may describe.
    std::vector<std::pair<std::string_view, const topic*>> shown;
    for (const auto& [name, t] : c.topics.all())
      if (kafka_sees(c, *q, acl_resource::topic, name, acl_op::describe))
        shown.emplace_back(name, &t);
    w.array(static_cast<std::int32_t>(shown.size()));
    for (const auto& [name, t] : shown) write_topic(w, *q, name, t);
  } else {
    w.array(static_cast<std::int32_t>(wanted->size()));
    for (auto name : *wanted)
      write_topic(w, *q, name, c.topics.find(name),
                  kafka_may(c, *q, acl_resource::topic, name, acl_op::describe));
  }
  if (since(*q, 8)) w.i32(kUnknownOperations);  // cluster authorized operations
  q->respond(std::move(w));
}

}  // namespace ferry::broker
