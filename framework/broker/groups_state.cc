// Persisted group membership: the Stable groups as JSON, written by the
// broker core after a change (core.cc) and taken back at start, so that a
// broker restart does not send every member back through a join. The file
// is soft state: committed offsets are the durable part (offset_store.h).
// A member that died while the broker was down is removed when its session
// runs out, as it would have been.
//
//   {"v":1,"groups":[{"name":"payment","kind":"ferry","generation":7,
//     "strategy":0,"counts":{"orders":3},"members":[{"id":"...",
//     "instance":"payment-1","client":"ferry","host":"...","topics":[...],
//     "session_ms":10000,"rebalance_ms":30000,"assignment":[["orders",0]]}]}]}
//
// Kafka groups add protocol_type, protocol and leader, and per member its
// protocols (name, metadata) and assignment bytes, hex-encoded.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "ferry/core/logging.h"
#include "groups.h"

namespace ferry::broker {

using nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr int kVersion = 1;

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto ch = static_cast<unsigned char>(c);
    out.push_back(digits[ch >> 4]);
    out.push_back(digits[ch & 15]);
  }
  return out;
}

std::string unhex(const std::string& text) {
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    throw std::invalid_argument("not hex");
  };
  if (text.size() % 2 != 0) throw std::invalid_argument("odd hex length");
  std::string out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2)
    out.push_back(static_cast<char>(nibble(text[i]) << 4 | nibble(text[i + 1])));
  return out;
}

}  // namespace

std::string group_coordinator::snapshot() const {
  json groups = json::array();
  for (const auto& [name, g] : groups_) {
    if (g.state != group_state::stable || g.members.empty()) continue;
    json jg{{"name", name},
            {"kind", g.kind == group_protocol::kafka ? "kafka" : "ferry"},
            {"generation", g.generation},
            {"strategy", static_cast<int>(g.strategy)},
            {"counts", g.counts_used}};
    if (g.kind == group_protocol::kafka) {
      jg["protocol_type"] = g.protocol_type;
      jg["protocol"] = g.protocol;
      jg["leader"] = g.leader;
    }
    json members = json::array();
    for (const auto& [id, m] : g.members) {
      json jm{{"id", id},
              {"client", m.client_id},
              {"host", m.host},
              {"topics", m.topics},
              {"session_ms", m.session_timeout.count()},
              {"rebalance_ms", m.rebalance_timeout.count()}};
      if (m.instance_id) jm["instance"] = *m.instance_id;
      json asg = json::array();
      for (const auto& [topic, partition] : m.assignment) asg.push_back({topic, partition});
      jm["assignment"] = std::move(asg);
      if (g.kind == group_protocol::kafka) {
        json protocols = json::array();
        for (const auto& p : m.protocols) protocols.push_back({p.name, hex(p.metadata)});
        jm["protocols"] = std::move(protocols);
        jm["assignment_bytes"] = hex(m.assignment_bytes);
      }
      members.push_back(std::move(jm));
    }
    jg["members"] = std::move(members);
    groups.push_back(std::move(jg));
  }
  return json{{"v", kVersion}, {"groups", std::move(groups)}}.dump();
}

std::size_t group_coordinator::restore(std::string_view text, steady_tp now, std::string* why) {
  std::map<std::string, group_rec, std::less<>> restored;
  try {
    const auto doc = json::parse(text);
    if (doc.at("v").get<int>() != kVersion)
      throw std::invalid_argument(
          fmt::format("version {} (this broker reads {})", doc.at("v").get<int>(), kVersion));
    for (const auto& jg : doc.at("groups")) {
      group_rec g;
      g.name = jg.at("name").get<std::string>();
      g.kind = jg.at("kind").get<std::string>() == "kafka" ? group_protocol::kafka
                                                           : group_protocol::ferry;
      g.generation = jg.at("generation").get<std::int32_t>();
      const int strategy = jg.at("strategy").get<int>();
      if (strategy < 0 || strategy > 2) throw std::invalid_argument("unknown strategy");
      g.strategy = static_cast<assign_strategy>(strategy);
      for (const auto& [topic, n] : jg.at("counts").items()) g.counts_used[topic] = n.get<int>();
      if (g.kind == group_protocol::kafka) {
        g.protocol_type = jg.at("protocol_type").get<std::string>();
        g.protocol = jg.at("protocol").get<std::string>();
        g.leader = jg.at("leader").get<std::string>();
      }
      for (const auto& jm : jg.at("members")) {
        member_rec m;
        m.id = jm.at("id").get<std::string>();
        m.client_id = jm.at("client").get<std::string>();
        m.host = jm.at("host").get<std::string>();
        m.topics = jm.at("topics").get<std::vector<std::string>>();
        m.session_timeout = milliseconds(jm.at("session_ms").get<std::int64_t>());
        m.rebalance_timeout = milliseconds(jm.at("rebalance_ms").get<std::int64_t>());
        if (jm.contains("instance")) m.instance_id = jm.at("instance").get<std::string>();
        for (const auto& tp : jm.at("assignment")) {
          tp_key k{tp.at(0).get<std::string>(), tp.at(1).get<std::int32_t>()};
          m.assignment.push_back(k);
          if (!g.owners.emplace(k, m.id).second)
            throw std::invalid_argument(
                fmt::format("group {}: {}-{} assigned twice", g.name, k.first, k.second));
        }
        if (g.kind == group_protocol::kafka) {
          for (const auto& p : jm.at("protocols"))
            m.protocols.push_back({p.at(0).get<std::string>(), unhex(p.at(1).get<std::string>())});
          m.assignment_bytes = unhex(jm.at("assignment_bytes").get<std::string>());
        }
        m.last_seen = now;  // sessions start again with the broker
        m.restored_unseen = true;
        std::string id = m.id;
        g.members.emplace(std::move(id), std::move(m));
      }
      if (g.members.empty()) continue;
      g.state = group_state::stable;
      std::string name = g.name;
      restored.emplace(std::move(name), std::move(g));
    }
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return 0;
  }
  const auto n = restored.size();
  for (auto& [name, g] : restored) groups_.insert_or_assign(name, std::move(g));
  return n;
}

}  // namespace ferry::broker
