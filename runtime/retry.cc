#include "ferry/runtime/retry.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"

namespace ferry::runtime {

using std::chrono::milliseconds;

milliseconds backoff::delay(int attempts, double random01) const {
  if (attempts < 1) attempts = 1;
  double ms = static_cast<double>(initial.count());
  if (type == kind::exponential) ms *= std::pow(multiplier, attempts - 1);
  ms = std::min(ms, static_cast<double>(max.count()));
  if (!std::isfinite(ms) || ms < 0) ms = static_cast<double>(max.count());
  if (jitter) ms *= std::clamp(random01, 0.0, 1.0);
  return milliseconds(static_cast<std::int64_t>(ms));
}

failure_decision decide_after_failure(const subscription_config& s, error_class cls,
                                      const std::error_code& err, int attempts) {
  using action = failure_decision::action;
  failure_decision d;
  const auto* ov = s.retry.override_for(err);
  const int max = ov && ov->max_attempts ? *ov->max_attempts : s.retry.max_attempts;
  auto dead_letter = [&](dead_letter_reason why) {
    d.what = action::dead_letter;
    d.reason = why;
    return d;
  };
  if (cls == error_class::invalid_payload) return dead_letter(dead_letter_reason::invalid_payload);
  if (cls == error_class::permanent || (ov && ov->permanent))
    return dead_letter(dead_letter_reason::permanent_error);
  if (attempts >= max) return dead_letter(dead_letter_reason::attempts_exhausted);
  if (s.order == ordering::delay_tiers && !s.tiers.empty()) {
    d.what = action::tier;
    d.tier =
        std::min<std::size_t>(static_cast<std::size_t>(std::max(attempts, 1)), s.tiers.size()) - 1;
    return d;
  }
  const auto& b = ov && ov->backoff ? *ov->backoff : s.retry.backoff;
  d.what = b.initial.count() == 0 ? action::retry_now : action::retry_later;
  d.backoff = &b;
  return d;
}

bool error_override::matches(const std::error_code& ec) const noexcept {
  if (category != ec.category().name()) return false;
  return !code || *code == ec.value();
}

error_override error_override::never_retry(std::string category, std::optional<int> code) {
  error_override o;
  o.category = std::move(category);
  o.code = code;
  o.permanent = true;
  return o;
}

error_override error_override::attempts(std::string category, std::optional<int> code,
                                        int max_attempts) {
  error_override o;
  o.category = std::move(category);
  o.code = code;
  o.max_attempts = max_attempts;
  return o;
}

const error_override* retry_policy::override_for(const std::error_code& ec) const noexcept {
  for (const auto& o : overrides)
    if (o.matches(ec)) return &o;
  return nullptr;
}

std::string_view to_string(ordering o) noexcept {
  switch (o) {
    case ordering::in_order:
      return "in_order";
    case ordering::key_ordered:
      return "key_ordered";
    case ordering::delay_tiers:
      return "delay_tiers";
  }
  return "unknown";
}

std::string tier_name(milliseconds d) {
  const auto ms = d.count();
  if (ms % 86'400'000 == 0 && ms > 0) return fmt::format("{}d", ms / 86'400'000);
  if (ms % 3'600'000 == 0 && ms > 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0 && ms > 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1'000 == 0 && ms > 0) return fmt::format("{}s", ms / 1'000);
  return fmt::format("{}ms", ms);
}

std::string tier_topic(std::string_view topic, const retry_tier& t) {
  return fmt::format("{}.retry.{}", topic, t.name.empty() ? tier_name(t.delay) : t.name);
}

result<void> subscription_config::validate(std::string* why) const {
  auto bad = [&](std::string m) -> result<void> {
    if (why) *why = std::move(m);
    return ferry::errc::config_invalid;
  };
  if (topics.empty()) return bad("a subscription needs at least one topic");
  for (const auto& t : topics)
    if (!protocol::valid_topic_name(t))
      return bad(fmt::format("invalid topic name '{}' (use 1-249 of [A-Za-z0-9._-])", t));
  if (!dead_letter_topic.empty() && !protocol::valid_topic_name(dead_letter_topic))
    return bad(fmt::format("invalid dead_letter_topic '{}'", dead_letter_topic));
  if (retry.max_attempts < 1 || retry.max_attempts > 1000)
    return bad(fmt::format("retry.max_attempts must be 1..1000, not {}", retry.max_attempts));
  if (partition_concurrency < 0 || partition_concurrency > 4096)
    return bad(
        fmt::format("partition_concurrency must be 0..4096 (0: the worker's concurrency), "
                    "not {}",
                    partition_concurrency));
  auto check_backoff = [&](const backoff& b, const char* where) -> result<void> {
    if (b.initial.count() < 0 || b.max.count() < 0)
      return bad(fmt::format("{}: negative backoff", where));
    if (b.max < b.initial) return bad(fmt::format("{}: max is below initial", where));
    if (!(b.multiplier >= 1.0) || b.multiplier > 100)
      return bad(fmt::format("{}: multiplier must be 1..100", where));
    return success();
  };
  FERRY_TRY(check_backoff(retry.backoff, "retry"));
  for (const auto& o : retry.overrides) {
    if (o.category.empty()) return bad("retry.override: category is required");
    if (o.max_attempts && (*o.max_attempts < 1 || *o.max_attempts > 1000))
      return bad("retry.override: max_attempts must be 1..1000");
    if (o.backoff) {
      FERRY_TRY(check_backoff(*o.backoff, "retry.override"));
    }
  }
  if (order == ordering::delay_tiers && tiers.empty())
    return bad("ordering delay_tiers needs at least one tier (e.g. tiers = [\"5s\", \"1m\"])");
  if (order != ordering::delay_tiers && !tiers.empty())
    return bad("tiers are only used with ordering = \"delay_tiers\"");
  for (const auto& t : tiers) {
    if (t.delay.count() <= 0) return bad("a retry tier needs a positive delay");
    for (const auto& topic : topics)
      if (!protocol::valid_topic_name(tier_topic(topic, t)))
        return bad(
            fmt::format("retry tier topic '{}' is not a valid topic name", tier_topic(topic, t)));
  }
  if (idempotency_window.count() < 0) return bad("idempotency_window must not be negative");
  return success();
}

namespace {

struct toml_error {
  std::string message;
};

template <typename T>
T get_or(const toml::table& t, std::string_view key, T fallback, const std::string& where) {
  const auto* n = t.get(key);
  if (n == nullptr) return fallback;
  if constexpr (std::is_same_v<T, double>) {
    if (auto v = n->value<double>()) return *v;
  } else {
    if (auto v = n->value<T>()) return *v;
  }
  throw toml_error{fmt::format("{}.{}: wrong type", where, key)};
}

milliseconds get_duration(const toml::table& t, std::string_view key, milliseconds fallback,
                          const std::string& where) {
  const auto* n = t.get(key);
  if (n == nullptr) return fallback;
  const auto full = fmt::format("{}.{}", where, key);
  if (auto s = n->value<std::string>()) {
    if (auto d = parse_duration(*s)) return *d;
    throw toml_error{duration_error(full, *s)};
  }
  // A bare number never silently means milliseconds (core/duration.h).
  if (auto i = n->value<std::int64_t>()) throw toml_error{duration_error(full, std::to_string(*i))};
  if (auto f = n->value<double>()) throw toml_error{duration_error(full, fmt::format("{}", *f))};
  throw toml_error{
      fmt::format("{}: expected a duration such as \"500ms\", \"30s\", \"1h30m\", \"7d\"", full)};
}

void only_keys(const toml::table& t, std::initializer_list<std::string_view> allowed,
               const std::string& where) {
  for (const auto& [k, _] : t) {
    if (std::find(allowed.begin(), allowed.end(), k.str()) == allowed.end())
      throw toml_error{fmt::format("{}: unknown key '{}'", where, k.str())};
  }
}

backoff parse_backoff(const toml::table& t, backoff b, const std::string& where) {
  if (const auto* n = t.get("backoff")) {
    auto s = n->value<std::string>();
    if (s == "fixed")
      b.type = backoff::kind::fixed;
    else if (s == "exponential")
      b.type = backoff::kind::exponential;
    else
      throw toml_error{fmt::format("{}.backoff: \"fixed\" or \"exponential\"", where)};
  }
  b.initial = get_duration(t, "initial", b.initial, where);
  b.max = get_duration(t, "max", b.max, where);
  b.multiplier = get_or<double>(t, "multiplier", b.multiplier, where);
  b.jitter = get_or<bool>(t, "jitter", b.jitter, where);
  return b;
}

}  // namespace

result<std::vector<subscription_config>> parse_subscriptions(std::string_view text,
                                                             std::string* why) {
  FERRY_TRY(auto f, parse_worker_file(text, why));
  return std::move(f.subscriptions);
}

result<worker_file> parse_worker_file(std::string_view text, std::string* why) {
  auto fail = [&](std::string m) -> result<worker_file> {
    if (why) *why = std::move(m);
    return ferry::errc::config_invalid;
  };
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return fail(
        fmt::format("TOML syntax error at line {}: {}", e.source().begin.line, e.description()));
  }
  worker_file file;
  auto& out = file.subscriptions;
  try {
    only_keys(root, {"broker", "group_instance_id", "kafka", "subscription"}, "top level");
    file.broker = get_or<std::string>(root, "broker", "", "top level");
    file.group_instance_id = get_or<std::string>(root, "group_instance_id", "", "top level");
    if (root.contains("group_instance_id") && !protocol::valid_group_name(file.group_instance_id))
      throw toml_error{"group_instance_id: 1 to 249 of letters, digits, '.', '_' and '-'"};
    if (!file.broker.empty() && !file.broker.starts_with("tcp://") &&
        !file.broker.starts_with("ipc://") && !file.broker.starts_with("kafka://"))
      throw toml_error{"broker: tcp://HOST:PORT, ipc://PATH or kafka://HOST:PORT[,HOST:PORT...]"};
    if (const auto* k = root.get("kafka")) {
      const auto* t = k->as_table();
      if (t == nullptr) throw toml_error{"kafka: expected a table of librdkafka properties"};
      if (!file.broker.starts_with("kafka://"))
        throw toml_error{"kafka: librdkafka properties apply to a broker = \"kafka://...\" only"};
      for (const auto& [key, v] : *t) {
        const std::string name(key.str());
        if (auto str = v.value_exact<std::string>())
          file.kafka[name] = *str;
        else if (auto b = v.value_exact<bool>())
          file.kafka[name] = *b ? "true" : "false";
        else if (auto n = v.value_exact<std::int64_t>())
          file.kafka[name] = std::to_string(*n);
        else
          throw toml_error{"kafka." + name + ": expected a string, number or boolean"};
      }
    }
    const auto* subs = root.get_as<toml::array>("subscription");
    if (subs == nullptr) return fail("no [[subscription]] tables");
    std::size_t i = 0;
    for (const auto& node : *subs) {
      const std::string where = fmt::format("subscription[{}]", i++);
      const auto* t = node.as_table();
      if (t == nullptr) throw toml_error{where + ": expected a table"};
      only_keys(*t,
                {"topics", "ordering", "dead_letter_topic", "tiers", "idempotency_window",
                 "skip_processed_keys", "partition_concurrency", "retry"},
                where);
      subscription_config c;
      if (const auto* topics = t->get_as<toml::array>("topics")) {
        for (const auto& x : *topics) {
          auto s = x.value<std::string>();
          if (!s) throw toml_error{where + ".topics: expected strings"};
          c.topics.push_back(*s);
        }
      }
      const auto order = get_or<std::string>(*t, "ordering", "in_order", where);
      if (order == "in_order")
        c.order = ordering::in_order;
      else if (order == "key_ordered")
        c.order = ordering::key_ordered;
      else if (order == "delay_tiers")
        c.order = ordering::delay_tiers;
      else
        throw toml_error{where + ".ordering: in_order, key_ordered or delay_tiers"};
      c.dead_letter_topic = get_or<std::string>(*t, "dead_letter_topic", "", where);
      if (const auto* tiers = t->get_as<toml::array>("tiers")) {
        for (const auto& x : *tiers) {
          auto s = x.value<std::string>();
          auto d = s ? parse_duration(*s) : std::nullopt;
          if (!d) {
            std::string shown = s ? *s : "?";
            if (auto n = x.value<std::int64_t>()) shown = std::to_string(*n);
            throw toml_error{duration_error(where + ".tiers", shown)};
          }
          c.tiers.push_back({tier_name(*d), *d});
        }
      }
      c.idempotency_window = get_duration(*t, "idempotency_window", c.idempotency_window, where);
      c.skip_processed_keys = get_or<bool>(*t, "skip_processed_keys", true, where);
      c.partition_concurrency = static_cast<int>(
          get_or<std::int64_t>(*t, "partition_concurrency", c.partition_concurrency, where));
      if (const auto* r = t->get_as<toml::table>("retry")) {
        const std::string rw = where + ".retry";
        only_keys(*r,
                  {"max_attempts", "backoff", "initial", "max", "multiplier", "jitter", "override"},
                  rw);
        c.retry.max_attempts =
            static_cast<int>(get_or<std::int64_t>(*r, "max_attempts", c.retry.max_attempts, rw));
        c.retry.backoff = parse_backoff(*r, c.retry.backoff, rw);
        if (const auto* ovs = r->get_as<toml::array>("override")) {
          std::size_t j = 0;
          for (const auto& on : *ovs) {
            const std::string ow = fmt::format("{}.override[{}]", rw, j++);
            const auto* o = on.as_table();
            if (o == nullptr) throw toml_error{ow + ": expected a table"};
            only_keys(*o,
                      {"category", "code", "permanent", "max_attempts", "backoff", "initial", "max",
                       "multiplier", "jitter"},
                      ow);
            error_override eo;
            eo.category = get_or<std::string>(*o, "category", "", ow);
            if (o->get("code")) eo.code = static_cast<int>(get_or<std::int64_t>(*o, "code", 0, ow));
            eo.permanent = get_or<bool>(*o, "permanent", false, ow);
            if (o->get("max_attempts"))
              eo.max_attempts = static_cast<int>(get_or<std::int64_t>(*o, "max_attempts", 1, ow));
            if (o->get("backoff") || o->get("initial") || o->get("max") || o->get("multiplier") ||
                o->get("jitter"))
              eo.backoff = parse_backoff(*o, c.retry.backoff, ow);
            c.retry.overrides.push_back(std::move(eo));
          }
        }
      }
      std::string reason;
      if (!c.validate(&reason)) throw toml_error{where + ": " + reason};
      out.push_back(std::move(c));
    }
  } catch (const toml_error& e) {
    return fail(e.message);
  }
  return file;
}

result<std::vector<subscription_config>> load_subscriptions(const std::string& path,
                                                            std::string* why) {
  FERRY_TRY(auto f, load_worker_file(path, why));
  return std::move(f.subscriptions);
}

result<worker_file> load_worker_file(const std::string& path, std::string* why) {
  std::ifstream in(path);
  if (!in) {
    if (why) *why = fmt::format("cannot read {}", path);
    return ferry::errc::not_found;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = parse_worker_file(ss.str(), why);
  if (!r && why) *why = path + ": " + *why;
  return r;
}

}  // namespace ferry::runtime
