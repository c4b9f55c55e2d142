// Retry policies and ordering modes (docs/runtime.md has the trade-offs).
//
// An attempt is one call of the handler for a record. max_attempts counts
// the first call: max_attempts = 3 means one call and two retries. After
// the last failed attempt the record is dead-lettered (reason
// attempts_exhausted); a permanent error or an invalid payload is
// dead-lettered at once.
//
// Backoff before retry n (n = attempts made so far, 1-based):
//   fixed:        initial
//   exponential:  min(max, initial * multiplier^(n-1))
// and with full jitter (the default, as AWS recommends) a uniform random
// value in [0, that]. Zero initial means retry at once.
//
// Ordering modes:
//   in_order     the partition waits while a record waits for its retry
//                (strict order; one poison record holds its partition up
//                to max_attempts backoffs)
//   key_ordered  only later records with the failing record's key wait;
//                other keys keep flowing (order per key, which is what
//                per-key ordering promised in the first place)
//   delay_tiers  the failed record is republished to a retry-tier topic
//                (<topic>.retry.<name>, e.g. orders.retry.5s) and its
//                origin offset committed; the worker consumes each tier
//                when its records are due. For backoffs of minutes or
//                hours without holding anything; order is not kept.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ferry/core/duration.h"
#include "ferry/core/result.h"
#include "ferry/runtime/failure_record.h"

namespace ferry::runtime {

struct backoff {
  enum class kind : std::uint8_t { fixed, exponential };
  kind type = kind::exponential;
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{30'000};
  double multiplier = 2.0;
  bool jitter = true;  ///< full jitter: uniform in [0, computed]

  /// The delay before the retry that follows `attempts` failed attempts.
  /// `random01` is a uniform number in [0, 1) (used only with jitter).
  [[nodiscard]] std::chrono::milliseconds delay(int attempts, double random01) const;
};

/// Different handling for some errors: matched by the error category's
/// name and, if set, the code (e.g. {"orders", 3} or {"ferry.runtime"}).
struct error_override {
  std::string category;
  std::optional<int> code;
  bool permanent = false;                 ///< never retried: dead-lettered at once
  std::optional<int> max_attempts;        ///< instead of the policy's
  std::optional<struct backoff> backoff;  ///< instead of the policy's

  [[nodiscard]] bool matches(const std::error_code& ec) const noexcept;

  /// Never retry these errors (e.g. validation failures).
  static error_override never_retry(std::string category, std::optional<int> code = {});
  /// At most `max_attempts` for these errors.
  static error_override attempts(std::string category, std::optional<int> code, int max_attempts);
};

struct retry_policy {
  int max_attempts = 3;
  struct backoff backoff;
  std::vector<error_override> overrides;  ///< first match wins

  /// The override for `ec`, if any.
  [[nodiscard]] const error_override* override_for(const std::error_code& ec) const noexcept;
};

enum class ordering : std::uint8_t { in_order, key_ordered, delay_tiers };
[[nodiscard]] std::string_view to_string(ordering o) noexcept;

struct retry_tier {
  std::string name;  ///< topic suffix: <topic>.retry.<name>
  std::chrono::milliseconds delay{0};
};
/// "5s", "1m", "2h", "1500ms" for a delay.
[[nodiscard]] std::string tier_name(std::chrono::milliseconds delay);
[[nodiscard]] std::string tier_topic(std::string_view topic, const retry_tier& t);

/// Everything about a subscription that can come from configuration.
struct subscription_config {
  std::vector<std::string> topics;
  retry_policy retry;
  ordering order = ordering::in_order;
  std::vector<retry_tier> tiers;  ///< delay_tiers only; attempt n uses tiers[min(n, size) - 1]
  /// Empty: "<topic>.dlq" per topic.
  std::string dead_letter_topic;
  /// Skip records whose idempotency key the group processed within this
  /// window (zero: the broker's whole ledger retention). Disabled: false.
  bool skip_processed_keys = true;
  std::chrono::milliseconds idempotency_window{std::chrono::hours(24 * 7)};
  /// key_ordered: how many records of one partition, of different keys, may
  /// run at once (key-level concurrency; per-key order is kept, and only
  /// the offset below which everything finished is committed). 0: up to the
  /// worker's concurrency while a record's handling takes 200 µs or more
  /// (lanes help handlers that wait); 1: one record at a time per partition.
  int partition_concurrency = 0;

  /// Checks the values; ferry::errc::config_invalid with a reason.
  [[nodiscard]] result<void> validate(std::string* why = nullptr) const;
};

/// What happens to a record after a failed attempt (DESIGN.md decision 6),
/// decided in one place for every path of the worker: the retry loop
/// inside a handler task and the polling thread's scheduling both ask
/// decide_after_failure().
///
///   invalid payload                      -> dead letter (invalid_payload)
///   permanent error, or an override
///   that says permanent                  -> dead letter (permanent_error)
///   attempts >= max (the override's max
///   if it has one)                       -> dead letter (attempts_exhausted)
///   delay_tiers                          -> tier min(attempts, tiers) - 1
///   zero backoff (initial = 0)           -> retry now
///   otherwise                            -> retry after the backoff's delay
struct failure_decision {
  enum class action : std::uint8_t { retry_now, retry_later, tier, dead_letter };
  action what = action::retry_later;
  /// retry_now / retry_later: the backoff that applies (the override's or
  /// the policy's; points into the subscription); its delay(attempts,
  /// random) is the wait - 0 for retry_now.
  const struct backoff* backoff = nullptr;
  std::size_t tier = 0;  ///< tier: index into subscription_config::tiers
  dead_letter_reason reason = dead_letter_reason::attempts_exhausted;  ///< dead_letter
};

/// `attempts`: the failed attempts so far, this one included. Pure: the
/// same inputs give the same decision (the jitter is drawn by the caller,
/// only for a retry).
[[nodiscard]] failure_decision decide_after_failure(const subscription_config& s, error_class cls,
                                                    const std::error_code& err, int attempts);

/// Parses subscriptions from TOML (docs/runtime.md, "Configuration"):
///
///   [[subscription]]
///   topics = ["orders"]
///   ordering = "key_ordered"          # in_order | key_ordered | delay_tiers
///   dead_letter_topic = "orders.dlq"  # default <topic>.dlq
///   tiers = ["5s", "1m", "10m"]       # delay_tiers
///   idempotency_window = "7d"         # or skip_processed_keys = false
///   partition_concurrency = 16        # key_ordered (0: the worker's concurrency)
///   [subscription.retry]
///   max_attempts = 5
///   backoff = "exponential"           # or "fixed"
///   initial = "200ms"
///   max = "30s"
///   multiplier = 2.0
///   jitter = true
///   [[subscription.retry.override]]
///   category = "orders"               # std::error_category::name()
///   code = 3                          # optional
///   permanent = true                  # or max_attempts / initial / max ...
///
/// Unknown keys are errors (a typo must not silently mean the default).
/// ferry::errc::config_invalid with `why` naming the key.
[[nodiscard]] result<std::vector<subscription_config>> parse_subscriptions(std::string_view toml,
                                                                           std::string* why);
[[nodiscard]] result<std::vector<subscription_config>> load_subscriptions(const std::string& path,
                                                                          std::string* why);

/// A worker's whole file: where the broker is, librdkafka properties for
/// kafka:// brokers, and the subscriptions (as above):
///
///   broker = "kafka://k1:9092,k2:9092"   # or tcp://HOST:PORT, ipc://PATH
///   group_instance_id = "payment-1"       # static membership (optional)
///   [kafka]                               # kafka:// only (docs/kafka.md)
///   "security.protocol" = "SASL_SSL"
///   "sasl.mechanism" = "SCRAM-SHA-512"
///   [[subscription]]
///   ...
///
/// The same validation: unknown keys are errors, and so is a [kafka] table
/// with a broker that is not kafka://, or a value that is not a string,
/// number or boolean.
struct worker_file {
  std::string broker;                        ///< empty: not set in the file
  std::string group_instance_id;             ///< empty: not set (a dynamic member)
  std::map<std::string, std::string> kafka;  ///< librdkafka properties
  std::vector<subscription_config> subscriptions;
};
[[nodiscard]] result<worker_file> parse_worker_file(std::string_view toml, std::string* why);
[[nodiscard]] result<worker_file> load_worker_file(const std::string& path, std::string* why);

/// "250ms", "5s", "1h30m", "7d" -> milliseconds: Ferry's one duration
/// grammar (core/duration.h); a number without a unit is refused.
using ferry::parse_duration;

}  // namespace ferry::runtime
