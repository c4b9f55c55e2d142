#include "ferry/runtime/typed.h"

#include <fmt/format.h>

#include <cstring>

#include "ferry/client/errc.h"
#include "ferry/protocol/codec.h"
#include "ferry/runtime/worker.h"
#include "ferry/schema/schema.h"

namespace ferry::runtime {

schema_gate::schema_gate(std::shared_ptr<client::schema_cache> cache) : cache_(std::move(cache)) {}

result<void> schema_gate::admit(std::int64_t writer_id, std::string_view reader_bfbs,
                                std::string_view reader_root) {
  std::pair<std::int64_t, std::string> key{writer_id,
                                           fmt::format("{}/{}/{}", reader_root, reader_bfbs.size(),
                                                       std::hash<std::string_view>{}(reader_bfbs))};
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
  verdicts_.emplace(std::move(key), verdict);
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

result<void> check_payload_values(std::string_view reader_bfbs,
                                  std::span<const std::byte> payload) {
  std::string why;
  if (auto r = schema::check_values(reader_bfbs, payload, &why); !r)
    return invalid_payload(why.empty() ? r.error().message() : why);
  return success();
}

aligned_payload::aligned_payload(std::string_view bytes) : size_(bytes.size()) {
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(std::uint64_t) == 0) {
    data_ = reinterpret_cast<const std::uint8_t*>(bytes.data());
    return;
  }
  copy_.resize((bytes.size() + 7) / 8);
  if (!bytes.empty()) std::memcpy(copy_.data(), bytes.data(), bytes.size());
  data_ = reinterpret_cast<const std::uint8_t*>(copy_.data());
}

}  // namespace detail

}  // namespace ferry::runtime
