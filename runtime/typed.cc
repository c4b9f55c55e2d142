#include "ferry/runtime/typed.h"

#include <fmt/format.h>

#include "ferry/client/errc.h"
#include "ferry/protocol/codec.h"
#include "ferry/runtime/worker.h"
#include "ferry/schema/schema.h"

namespace ferry::runtime {

schema_gate::schema_gate(std::shared_ptr<client::schema_cache> cache) : cache_(std::move(cache)) {}

result<void> schema_gate::admit(std::int64_t writer_id, std::string_view reader_bfbs,
                                std::string_view reader_root) {
  const std::pair<std::int64_t, const char*> key{writer_id, reader_bfbs.data()};
  {
    std::lock_guard lock(mu_);
    if (auto it = verdicts_.find(key); it != verdicts_.end()) {
      if (it->second.empty()) return success();
      return invalid_payload(it->second);
    }
  }
  auto writer = cache_->by_id(writer_id);
  if (!writer) {
    if (writer.error() == client::errc::unknown_schema) {
      // Not cached: the id may be registered later (a producer ahead of us).
      return invalid_payload(fmt::format(
          "schema id {} (header ferry.schema-id) is not registered with the broker", writer_id));
    }
    return retriable(writer.error(), fmt::format("cannot fetch schema id {} from the registry: {}",
                                                 writer_id, cache_->last_error_message()));
  }
  std::string verdict;
  auto conflicts = schema::reader_conflicts(writer.value()->bfbs, reader_bfbs);
  if (!conflicts) {
    verdict = fmt::format("schema id {} cannot be compared with the reader's {}: {}", writer_id,
                          reader_root, conflicts.error().message());
  } else if (!conflicts.value().empty()) {
    const auto& first = conflicts.value().front();
    verdict = fmt::format(
        "schema id {} ({} version {}) is not readable as {}: {}{}", writer_id,
        writer.value()->subject, writer.value()->version, reader_root, schema::format(first),
        conflicts.value().size() > 1
            ? fmt::format(" (and {} more; ferry schema check)", conflicts.value().size() - 1)
            : "");
  }
  std::lock_guard lock(mu_);
  verdicts_.emplace(key, verdict);
  if (verdict.empty()) return success();
  return invalid_payload(verdict);
}

namespace detail {

result<void> admit_payload(schema_gate& gate, const message& m, std::string_view reader_bfbs,
                           std::string_view reader_root, const typed_options& o) {
  if (!m.value())
    return invalid_payload(fmt::format("no payload (a {} was expected)", reader_root));
  auto id = client::schema_id_of(m.record());
  if (!id) {
    if (m.record().header_value(protocol::kSchemaIdHeader) != nullptr)
      return invalid_payload("the ferry.schema-id header is not a schema id");
    if (o.require_schema_id)
      return invalid_payload(fmt::format(
          "no ferry.schema-id header (this handler requires one; produce with a schema id)"));
    return success();  // read with the reader's own schema
  }
  return gate.admit(*id, reader_bfbs, reader_root);
}

result<void> check_payload_values(const schema::value_checker& checker,
                                  const std::uint8_t* verified_payload) {
  std::string why;
  if (auto r = checker.check_verified(verified_payload, &why); !r)
    return invalid_payload(why.empty() ? r.error().message() : why);
  return success();
}

result<std::shared_ptr<const schema::value_checker>> make_value_checker(std::string_view bfbs) {
  FERRY_TRY(auto c, schema::value_checker::make(bfbs));
  return std::make_shared<const schema::value_checker>(std::move(c));
}

}  // namespace detail

}  // namespace ferry::runtime
