#include "schema_registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/compatibility.h"
#include "ferry/schemas/registry_generated.h"
#include "ferry/storage/errc.h"

namespace ferry::broker {

namespace fs = std::filesystem;
using wire::Compatibility;
using wire::ErrorCode;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("schemas");
  return l;
}

storage::log_config registry_log_config() {
  storage::log_config lc;
  lc.name = "__schemas";
  lc.segment_bytes = 64ull << 20;
  lc.retention_time = std::chrono::milliseconds(-1);  // kept forever: ids are never reused
  lc.retention_bytes = -1;
  lc.max_batch_bytes = 4u << 20;  // a schema and its source, 1 MiB each at most
  lc.flush = storage::flush_mode::on_commit;
  return lc;
}

std::vector<std::byte> encode(registry::Kind kind, std::string_view subject, std::int32_t version,
                              std::int64_t id, std::string_view bfbs, std::string_view source,
                              Compatibility mode, std::int64_t ms) {
  flatbuffers::FlatBufferBuilder fbb(256 + bfbs.size() + source.size());
  auto s = fbb.CreateString(subject);
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> b = 0;
  if (!bfbs.empty())
    b = fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(bfbs.data()), bfbs.size());
  auto src = source.empty() ? 0 : fbb.CreateString(source);
  auto rec =
      registry::CreateRecord(fbb, kind, s, version, id, b, src, static_cast<std::int8_t>(mode), ms);
  registry::FinishRecordBuffer(fbb, rec);
  auto p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

std::string_view as_view(const flatbuffers::Vector<std::uint8_t>* v) {
  if (v == nullptr) return {};
  return {reinterpret_cast<const char*>(v->data()), v->size()};
}

}  // namespace

result<std::unique_ptr<schema_registry>> schema_registry::open(storage::env& env, fs::path dir,
                                                               clock& clk) {
  std::unique_ptr<schema_registry> r(new schema_registry(env, std::move(dir), clk));
  // <data>/schemas is created on the first start: sync its entry in <data>.
  FERRY_TRY(bool existed, env.exists(r->dir_));
  FERRY_TRY(env.create_dirs(r->dir_));
  if (!existed && r->dir_.has_parent_path()) {
    FERRY_TRY(env.sync_dir(r->dir_.parent_path()));
  }
  FERRY_TRY(r->log_, storage::partition_log::open(env, r->dir_, registry_log_config(), clk));
  FERRY_TRY(r->replay());
  return r;
}

result<void> schema_registry::replay() {
  offset at = log_->log_start_offset();
  const offset end = log_->high_watermark();
  std::size_t records = 0;
  while (at < end) {
    FERRY_TRY(auto r, log_->read(at, 8u << 20));
    if (r.batches == 0) break;
    std::span<const std::byte> data(r.data);
    std::string bad;
    while (!data.empty() && bad.empty()) {
      const auto h = format::batch_header::decode(data.data());
      auto one = data.first(static_cast<std::size_t>(h.size()));
      if (!format::validate_batch(one, format::validation::full, &bad)) break;
      format::for_each_record(one, [&](const format::record_view& rv) {
        if (!rv.value) {
          bad = "a record without a value";
          return false;
        }
        // The log's bytes are not 8-byte aligned: copy before reading in place.
        std::vector<std::uint8_t> buf(rv.value->size());
        std::memcpy(buf.data(), rv.value->data(), buf.size());
        flatbuffers::Verifier v(buf.data(), buf.size());
        if (!registry::VerifyRecordBuffer(v)) {
          bad = "a record that fails verification";
          return false;
        }
        const auto* rec = registry::GetRecord(buf.data());
        switch (rec->kind()) {
          case registry::Kind::SchemaVersion: {
            auto bytes = as_view(rec->schema());
            if (bytes.empty() && state_.by_id(rec->id()) == nullptr) {
              bad = fmt::format("version {} of {} names schema id {}, which no record introduced",
                                rec->version(), rec->subject()->string_view(), rec->id());
              return false;
            }
            state_.add_version(rec->subject()->string_view(), rec->version(), rec->id(), bytes,
                               rec->source() ? rec->source()->string_view() : std::string_view(),
                               rec->registered_ms());
            break;
          }
          case registry::Kind::SubjectMode: {
            auto mode = static_cast<Compatibility>(rec->mode());
            if (rec->mode() < static_cast<std::int8_t>(Compatibility::MIN) ||
                rec->mode() > static_cast<std::int8_t>(Compatibility::MAX)) {
              logger()->warn(
                  "schema registry: subject {} has mode {}, which this broker does not know; it "
                  "follows the broker's default",
                  rec->subject()->string_view(), rec->mode());
              mode = Compatibility::Default;
            }
            state_.set_mode(rec->subject()->string_view(), protocol::to_mode(mode));
            break;
          }
          default:
            // A kind a newer broker wrote: skipped, like the offsets log does.
            logger()->warn("schema registry: skipping a record of unknown kind {}",
                           static_cast<int>(rec->kind()));
            break;
        }
        ++records;
        return true;
      });
      if (!bad.empty()) break;
      data = data.subspan(static_cast<std::size_t>(h.size()));
    }
    if (!bad.empty()) {
      logger()->error("schema registry log at {}: {} near offset {}; refusing to start",
                      dir_.string(), bad, at.value());
      return ferry::errc::corrupt_data;
    }
    at = r.next_offset;
  }
  if (records > 0)
    logger()->info("schema registry: {} subjects, {} schemas", state_.subjects().size(),
                   state_.schema_count());
  return success();
}

result<void> schema_registry::persist(const std::vector<std::byte>& value) {
  if (!log_) return storage::errc::partition_failed;
  format::batch_builder b;
  b.add(clock_.wall_now(), std::nullopt, std::span<const std::byte>(value));
  auto bytes = b.finish();
  FERRY_TRY(log_->append(bytes));
  FERRY_TRY(log_->sync());
  return success();
}

namespace {

ErrorCode to_error(schema::refusal r) {
  switch (r) {
    case schema::refusal::none:
      return ErrorCode::None;
    case schema::refusal::invalid_schema:
      return ErrorCode::InvalidSchema;
    case schema::refusal::unknown_subject:
      return ErrorCode::UnknownSubject;
    case schema::refusal::unknown_schema:
      return ErrorCode::UnknownSchema;
    case schema::refusal::incompatible:
      return ErrorCode::IncompatibleSchema;
    case schema::refusal::internal:
      break;
  }
  return ErrorCode::Internal;
}

schema::registry_action to_action(wire::SchemaAction a) {
  switch (a) {
    case wire::SchemaAction::Check:
      return schema::registry_action::check;
    case wire::SchemaAction::Lookup:
      return schema::registry_action::lookup;
    case wire::SchemaAction::Register:
      break;
  }
  return schema::registry_action::register_schema;
}

}  // namespace

registration schema_registry::register_schema(std::string_view subject_name, std::string_view bfbs,
                                              std::string_view source, wire::SchemaAction action,
                                              schema::mode default_mode) {
  auto d = state_.decide(subject_name, bfbs, to_action(action), default_mode);
  registration out;
  out.error = to_error(d.error);
  out.message = std::move(d.message);
  out.id = d.id;
  out.version = d.version;
  out.mode = protocol::to_wire(d.applied);
  out.findings = std::move(d.findings);
  if (out.error != ErrorCode::None || !d.create) return out;
  if (failed()) {
    out.error = ErrorCode::PartitionFailed;
    out.message = "the schema registry log failed (a write or sync error); restart the broker";
    out.id = -1;
    out.version = -1;
    return out;
  }
  const std::int64_t now = clock_.wall_now().value();
  auto rec = encode(registry::Kind::SchemaVersion, subject_name, d.version, d.id,
                    d.new_id ? bfbs : std::string_view(), d.new_id ? source : std::string_view(),
                    Compatibility::Default, now);
  if (auto r = persist(rec); !r) {
    logger()->error("schema registry: storing version {} of {} failed: {}", d.version, subject_name,
                    r.error().message());
    out.error = to_wire(r.error());
    out.message = "storing the schema failed: " + r.error().message();
    out.id = -1;
    out.version = -1;
    return out;
  }
  state_.add_version(subject_name, d.version, d.id, bfbs, source, now);
  out.created = true;
  logger()->info("schema registry: {} version {} = schema id {} ({})", subject_name, d.version,
                 d.id, state_.by_id(d.id)->root_type);
  return out;
}

result<void> schema_registry::set_mode(std::string_view subject_name, Compatibility mode) {
  if (failed()) return storage::errc::partition_failed;
  FERRY_TRY(persist(encode(registry::Kind::SubjectMode, subject_name, 0, 0, {}, {}, mode,
                           clock_.wall_now().value())));
  state_.set_mode(subject_name, protocol::to_mode(mode));
  return success();
}

}  // namespace ferry::broker
