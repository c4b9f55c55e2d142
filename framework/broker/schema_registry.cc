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
            auto& subj = subjects_[rec->subject()->str()];
            auto bytes = as_view(rec->schema());
            if (!bytes.empty() && !schemas_.count(rec->id())) {
              stored_schema s;
              s.id = rec->id();
              s.bfbs = std::string(bytes);
              s.source = rec->source() ? rec->source()->str() : std::string();
              s.root_type = schema::root_type_name(s.bfbs);
              s.subject = rec->subject()->str();
              s.version = rec->version();
              s.registered_ms = rec->registered_ms();
              auto& stored = schemas_[s.id] = std::move(s);
              by_bytes_[stored.bfbs] = stored.id;
            }
            if (!schemas_.count(rec->id())) {
              bad = fmt::format("version {} of {} names schema id {}, which no record introduced",
                                rec->version(), rec->subject()->string_view(), rec->id());
              return false;
            }
            subj.versions.push_back({rec->version(), rec->id(), rec->registered_ms()});
            subj.ids.insert(rec->id());
            next_id_ = std::max(next_id_, rec->id() + 1);
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
            subjects_[rec->subject()->str()].mode = mode;
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
    logger()->info("schema registry: {} subjects, {} schemas", subjects_.size(), schemas_.size());
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

registration schema_registry::register_schema(std::string_view subject_name, std::string_view bfbs,
                                              std::string_view source, wire::SchemaAction action,
                                              schema::mode default_mode) {
  registration out;
  std::string why;
  if (auto v = schema::validate_binary(bfbs, &why); !v) {
    out.error = ErrorCode::InvalidSchema;
    out.message = fmt::format(
        "not a FlatBuffers binary schema ({}); compile the .fbs with "
        "`flatc --binary --schema` or use `ferry schema register`",
        why);
    return out;
  }
  const auto* subj = subject(subject_name);
  const auto mode =
      protocol::to_mode(subj ? subj->mode : Compatibility::Default).value_or(default_mode);
  out.mode = protocol::to_wire(mode);

  // The same bytes already a version of this subject: that version.
  auto known = by_bytes_.find(bfbs);
  if (known != by_bytes_.end() && subj != nullptr && subj->ids.count(known->second)) {
    for (const auto& v : subj->versions)
      if (v.id == known->second) {
        out.id = v.id;
        out.version = v.version;
      }
    return out;
  }
  if (action == wire::SchemaAction::Check && (subj == nullptr || subj->versions.empty())) {
    // A dry run against nothing must not pass a CI gate with a misspelt subject.
    out.error = ErrorCode::UnknownSubject;
    out.message = fmt::format(
        "subject {} has no versions, so there is nothing to check against; register the first "
        "one with: ferry schema register {} FILE.fbs",
        subject_name, subject_name);
    return out;
  }
  if (action == wire::SchemaAction::Lookup) {
    out.error = subj ? ErrorCode::UnknownSchema : ErrorCode::UnknownSubject;
    out.message =
        subj ? fmt::format("subject {} has no version identical to this schema", subject_name)
             : fmt::format("unknown subject {}", subject_name);
    return out;
  }

  // Compatibility against the latest version, or all of them (transitive).
  if (subj != nullptr && !subj->versions.empty() && mode != schema::mode::none) {
    std::vector<const subject_version*> against;
    if (schema::is_transitive(mode)) {
      for (const auto& v : subj->versions) against.push_back(&v);
    } else {
      against.push_back(&subj->versions.back());
    }
    for (const auto* v : against) {
      const auto& older = schemas_.at(v->id).bfbs;
      auto found = schema::compare(older, bfbs);
      if (!found) {
        out.error = ErrorCode::Internal;
        out.message = fmt::format("comparing with version {} failed: {}", v->version,
                                  found.error().message());
        return out;
      }
      auto bad = schema::violations(found.value(), mode);
      for (auto& f : bad) out.findings.push_back({std::move(f), v->version});
      // A dry run also reports what does not count against the mode
      // (warnings such as renames), against the latest version only.
      if (action == wire::SchemaAction::Check && v == &subj->versions.back())
        for (auto& f : found.value())
          if (f.is_warning()) out.findings.push_back({std::move(f), v->version});
    }
    const bool refused = std::any_of(out.findings.begin(), out.findings.end(),
                                     [](const registry_finding& f) { return !f.f.is_warning(); });
    if (refused) {
      std::size_t n = 0;
      for (const auto& f : out.findings) n += f.f.is_warning() ? 0u : 1u;
      out.error = ErrorCode::IncompatibleSchema;
      out.message = fmt::format("schema is not {} compatible with subject {}: {} violation{}",
                                schema::to_string(mode), subject_name, n, n == 1 ? "" : "s");
      return out;
    }
  }
  if (action == wire::SchemaAction::Check) return out;

  if (failed()) {
    out.error = ErrorCode::PartitionFailed;
    out.message = "the schema registry log failed (a write or sync error); restart the broker";
    return out;
  }
  const std::int64_t id = known != by_bytes_.end() ? known->second : next_id_;
  const std::int32_t version =
      subj && !subj->versions.empty() ? subj->versions.back().version + 1 : 1;
  const std::int64_t now = clock_.wall_now().value();
  const bool new_id = known == by_bytes_.end();
  auto rec = encode(registry::Kind::SchemaVersion, subject_name, version, id,
                    new_id ? bfbs : std::string_view(), new_id ? source : std::string_view(),
                    Compatibility::Default, now);
  if (auto r = persist(rec); !r) {
    logger()->error("schema registry: storing version {} of {} failed: {}", version, subject_name,
                    r.error().message());
    out.error = to_wire(r.error());
    out.message = "storing the schema failed: " + r.error().message();
    return out;
  }
  if (new_id) {
    stored_schema s;
    s.id = id;
    s.bfbs = std::string(bfbs);
    s.source = std::string(source);
    s.root_type = schema::root_type_name(s.bfbs);
    s.subject = std::string(subject_name);
    s.version = version;
    s.registered_ms = now;
    auto& stored = schemas_[id] = std::move(s);
    by_bytes_[stored.bfbs] = id;
    next_id_ = id + 1;
  }
  auto it = subjects_.find(subject_name);
  if (it == subjects_.end())
    it = subjects_.emplace(std::string(subject_name), subject_state{}).first;
  it->second.versions.push_back({version, id, now});
  it->second.ids.insert(id);
  out.id = id;
  out.version = version;
  out.created = true;
  logger()->info("schema registry: {} version {} = schema id {} ({})", subject_name, version, id,
                 schemas_.at(id).root_type);
  return out;
}

result<void> schema_registry::set_mode(std::string_view subject_name, Compatibility mode) {
  if (failed()) return storage::errc::partition_failed;
  FERRY_TRY(persist(encode(registry::Kind::SubjectMode, subject_name, 0, 0, {}, {}, mode,
                           clock_.wall_now().value())));
  auto it = subjects_.find(subject_name);
  if (it == subjects_.end())
    it = subjects_.emplace(std::string(subject_name), subject_state{}).first;
  it->second.mode = mode;
  return success();
}

const stored_schema* schema_registry::by_id(std::int64_t id) const {
  auto it = schemas_.find(id);
  return it == schemas_.end() ? nullptr : &it->second;
}

const stored_schema* schema_registry::by_subject(std::string_view name, std::int32_t version,
                                                 std::int32_t* found_version) const {
  const auto* s = subject(name);
  if (s == nullptr || s->versions.empty()) return nullptr;
  const subject_version* v = nullptr;
  if (version < 0) {
    v = &s->versions.back();
  } else {
    for (const auto& x : s->versions)
      if (x.version == version) v = &x;
  }
  if (v == nullptr) return nullptr;
  if (found_version) *found_version = v->version;
  return by_id(v->id);
}

const subject_state* schema_registry::subject(std::string_view name) const {
  auto it = subjects_.find(name);
  return it == subjects_.end() ? nullptr : &it->second;
}

bool schema_registry::registered_under(std::string_view name, std::int64_t id) const {
  const auto* s = subject(name);
  return s != nullptr && s->ids.count(id) > 0;
}

}  // namespace ferry::broker
