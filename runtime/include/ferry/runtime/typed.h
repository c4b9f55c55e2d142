// Typed handlers: FlatBuffers payloads verified before the handler sees them.
//
//   #include "ferry/schemas/orders/v1/order_placed_contract.h"
//   namespace orders = ferry::samples::orders;
//
//   ferry::runtime::subscription_config s;
//   s.topics = {"orders"};
//   (void)w.on<orders::OrderPlaced>(s, [](const orders::OrderPlaced& o,
//                                        const ferry::runtime::message& m) -> ferry::result<void> {
//     return charge(o.order_id()->string_view(), o.total_cents());
//   });
//
// Before the handler runs, each record passes, in order:
//  1. the writer's schema: a record with a ferry.schema-id header must name
//     a schema the registry knows (fetched once per id) that a reader with
//     this contract can read (ferry::schema::reader_conflicts: no violation
//     in the direction writer -> reader). A record without the header is
//     read with the contract's own schema (typed_options::require_schema_id
//     refuses it instead);
//  2. the FlatBuffers Verifier of the contract (offsets, sizes, nesting,
//     required fields, file identifier);
//  3. the semantic checks (ferry::schema::check_values: every enum field
//     holds a value the reader's enum declares).
// A record failing any of them is dead-lettered at once, without retries,
// with reason invalid_payload and the check's message in the failure
// record. Registry lookups that fail for a transient reason (broker
// unreachable) are retriable errors instead: the record is retried under
// the subscription's policy (and dead-lettered as attempts_exhausted only
// if the outage outlasts all its attempts; raise max_attempts or add an
// error_override for protocol::errc::timed_out to ride out long ones).
//
// The handler's own semantic checks return ferry::runtime::invalid_payload().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "ferry/client/schema_cache.h"
#include "ferry/core/result.h"
#include "ferry/runtime/errors.h"
#include "ferry/schema/contract.h"
#include "ferry/schema/schema.h"

namespace ferry::runtime {

class message;

struct typed_options {
  /// Refuse (dead-letter) records without a ferry.schema-id header instead
  /// of reading them with the contract's own schema.
  bool require_schema_id = false;
};

/// Decides whether payloads of a writer schema id are readable with a
/// reader schema; verdicts are cached per (writer id, reader). Thread-safe;
/// one per worker (worker::schemas()).
class schema_gate {
 public:
  explicit schema_gate(std::shared_ptr<client::schema_cache> cache);

  /// Success when readable; runtime invalid_payload (with the reason) when
  /// the id is unknown or its schema conflicts with the reader's; a
  /// retriable error when the registry could not be asked. The reader is
  /// known by the address of `reader_bfbs`: pass a contract's bfbs()
  /// (static storage), so a verdict is found without hashing the schema.
  [[nodiscard]] result<void> admit(std::int64_t writer_id, std::string_view reader_bfbs,
                                   std::string_view reader_root);

  [[nodiscard]] client::schema_cache& cache() noexcept { return *cache_; }

 private:
  std::shared_ptr<client::schema_cache> cache_;
  std::mutex mu_;
  // (writer id, reader's binary schema) -> "" readable, else the reason
  std::map<std::pair<std::int64_t, const char*>, std::string> verdicts_;
};

namespace detail {
/// Step 1 above for one payload; the invalid_payload / retriable error to
/// return.
result<void> admit_payload(schema_gate& gate, const message& m, std::string_view reader_bfbs,
                           std::string_view reader_root, const typed_options& o);
/// Step 3 for a payload the contract's Verifier passed (step 2).
result<void> check_payload_values(const schema::value_checker& checker,
                                  const std::uint8_t* verified_payload);
/// The value checker of a contract's schema, made once per handler.
result<std::shared_ptr<const schema::value_checker>> make_value_checker(std::string_view bfbs);
}  // namespace detail

/// Wraps a typed handler `fn(const T&, const message&) -> result<void>` into
/// a record handler that runs the checks above first.
template <typename T, typename Fn>
std::function<result<void>(const message&)> typed_handler(std::shared_ptr<schema_gate> gate, Fn fn,
                                                          typed_options o = {}) {
  using c = schema::contract<T>;
  // The contract's schema is checked once here, not per record.
  auto checker = detail::make_value_checker(c::bfbs());
  // `m` is generic so that this header needs only a declaration of message.
  return [gate = std::move(gate), fn = std::move(fn), o, checker](const auto& m) -> result<void> {
    if (!checker)  // a generated schema that does not load (contract_test rules it out)
      return retriable(checker.error(), "the contract's binary schema does not load");
    FERRY_TRY(detail::admit_payload(*gate, m, c::bfbs(), c::root_type, o));
    const schema::aligned_bytes p(*m.value());  // admit_payload refuses records without a value
    if (!c::verify(p.data(), p.size()))
      return invalid_payload(std::string("payload failed FlatBuffers verification as ") +
                             std::string(c::root_type) +
                             " (bad offsets or sizes, a required field missing, or another "
                             "file identifier)");
    FERRY_TRY(detail::check_payload_values(*checker.value(), p.data()));
    return fn(*c::root(p.data()), m);
  };
}

}  // namespace ferry::runtime
