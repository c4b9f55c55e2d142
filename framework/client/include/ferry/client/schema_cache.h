// Schema ids for producers and consumers, from the broker's registry.
//
//   ferry::client::schema_cache schemas({.broker = "tcp://127.0.0.1:7400"});
//   // Typed (a contract generated from the .fbs, see ferry/schema/contract.h):
//   FERRY_TRY(auto id, schemas.id_for<orders::OrderPlaced>("orders-value"));
//   ferry::client::producer_record r{.topic = "orders", .value = bytes};
//   ferry::client::set_schema_id(r, id);     // header ferry.schema-id
//
// Ids never change meaning (a registered schema is immutable), so every
// answer is kept for the life of the cache: one round trip per schema, not
// per record. Failed lookups are not cached. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "ferry/client/admin.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"
#include "ferry/schema/contract.h"

namespace ferry::client {

class schema_cache {
 public:
  explicit schema_cache(client_options options);
  ~schema_cache();
  schema_cache(const schema_cache&) = delete;
  schema_cache& operator=(const schema_cache&) = delete;

  /// The id of `bfbs` under `subject`: registered (auto_register, checked
  /// against the subject's compatibility mode) or looked up (errc::
  /// unknown_schema when the subject has no identical version,
  /// errc::unknown_subject when there is no such subject) once.
  [[nodiscard]] result<std::int64_t> id_for(std::string_view subject, std::string_view bfbs,
                                            std::string_view source = {},
                                            bool auto_register = true);
  /// The same for a generated contract (ferry/schema/contract.h).
  template <typename T>
  [[nodiscard]] result<std::int64_t> id_for(std::string_view subject, bool auto_register = true) {
    using c = schema::contract<T>;
    return id_for(subject, c::bfbs(), c::source, auto_register);
  }

  /// The schema with `id`. errc::unknown_schema when the broker has none.
  [[nodiscard]] result<std::shared_ptr<const registered_schema>> by_id(std::int64_t id);

  /// The broker's explanation of the last failure.
  [[nodiscard]] std::string last_error_message() const;

 private:
  mutable std::mutex mu_;  // the maps and last_error_
  std::mutex rpc_mu_;      // admin_: one round trip at a time
  admin admin_;
  // subject -> bfbs -> id; found by string_view, so a cached id_for()
  // allocates nothing.
  std::map<std::string, std::map<std::string, std::int64_t, std::less<>>, std::less<>> ids_;
  std::map<std::int64_t, std::shared_ptr<const registered_schema>> schemas_;
  std::string last_error_;
};

/// Sets the record's ferry.schema-id header (replacing any already there).
void set_schema_id(producer_record& r, std::int64_t schema_id);
/// The schema id a consumed record carries; nullopt when it has none or the
/// header is not a decimal number.
[[nodiscard]] std::optional<std::int64_t> schema_id_of(const consumer_record& r);

}  // namespace ferry::client
