#include "ferry/runtime/failure_record.h"

#include <flatbuffers/flatbuffers.h>

#include <charconv>
#include <cstring>

#include "ferry/core/errc.h"
#include "ferry/schemas/failure_generated.h"

namespace ferry::runtime {

namespace fw = ferry::runtime::wire;

std::string_view to_string(error_class c) noexcept {
  switch (c) {
    case error_class::retriable:
      return "retriable";
    case error_class::permanent:
      return "permanent";
    case error_class::invalid_payload:
      return "invalid_payload";
  }
  return "unknown";
}

std::string_view to_string(dead_letter_reason r) noexcept {
  switch (r) {
    case dead_letter_reason::attempts_exhausted:
      return "attempts_exhausted";
    case dead_letter_reason::permanent_error:
      return "permanent_error";
    case dead_letter_reason::invalid_payload:
      return "invalid_payload";
  }
  return "unknown";
}

std::optional<dead_letter_reason> parse_reason(std::string_view s) noexcept {
  for (auto r : {dead_letter_reason::attempts_exhausted, dead_letter_reason::permanent_error,
                 dead_letter_reason::invalid_payload})
    if (s == to_string(r)) return r;
  return std::nullopt;
}

namespace {

std::string cut(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  // Do not split a UTF-8 sequence: back up to a lead byte.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

}  // namespace

void failure_record::add_attempt(attempt_record a) {
  a.message = cut(a.message, kMaxErrorMessageBytes);
  a.category = cut(a.category, 128);
  a.worker = cut(a.worker, 255);
  ++attempts_total;
  attempts.push_back(std::move(a));
  if (attempts.size() > kMaxKeptAttempts)
    attempts.erase(attempts.begin() + static_cast<std::ptrdiff_t>(kKeptFirstAttempts));
}

std::string encode_failure(const failure_record& f) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<fw::Attempt>> attempts;
  const std::size_t first = f.attempts.size() > kMaxKeptAttempts
                                ? f.attempts.size() - kMaxKeptAttempts
                                : 0;  // keep the newest if a caller overfilled it
  for (std::size_t i = first; i < f.attempts.size(); ++i) {
    const auto& a = f.attempts[i];
    attempts.push_back(fw::CreateAttempt(fbb, a.time_ms, static_cast<fw::ErrorClass>(a.cls),
                                         fbb.CreateString(cut(a.category, 128)), a.code,
                                         fbb.CreateString(cut(a.message, kMaxErrorMessageBytes)),
                                         fbb.CreateString(cut(a.worker, 255))));
  }
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> key;
  if (f.origin_key)
    key = fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(f.origin_key->data()),
                           std::min<std::size_t>(f.origin_key->size(), 4096));
  auto root = fw::CreateFailureRecord(
      fbb, fbb.CreateString(f.origin_topic), f.origin_partition, f.origin_offset, key,
      f.origin_timestamp_ms, fbb.CreateString(cut(f.group, 255)),
      fbb.CreateString(cut(f.worker, 255)), fbb.CreateVector(attempts), f.attempts_total,
      static_cast<fw::Reason>(f.reason), fbb.CreateString(cut(f.reason_message, 1024)),
      f.dead_lettered_ms);
  fw::FinishFailureRecordBuffer(fbb, root);
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

result<failure_record> decode_failure(std::string_view bytes) {
  if (bytes.size() < 8 || bytes.size() > (1u << 20)) return ferry::errc::corrupt_data;
  // FlatBuffers reads scalars through aligned loads: work on an aligned copy.
  std::vector<std::uint64_t> aligned((bytes.size() + 7) / 8);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  const auto* p = reinterpret_cast<const std::uint8_t*>(aligned.data());
  flatbuffers::Verifier::Options vo;
  vo.max_depth = 16;
  vo.max_tables = 1024;
  flatbuffers::Verifier v(p, bytes.size(), vo);
  if (!fw::VerifyFailureRecordBuffer(v)) return ferry::errc::corrupt_data;
  const auto* r = fw::GetFailureRecord(p);
  auto in_range = [](auto e, auto lo, auto hi) {
    return static_cast<int>(e) >= static_cast<int>(lo) &&
           static_cast<int>(e) <= static_cast<int>(hi);
  };
  if (!in_range(r->reason(), fw::Reason::MIN, fw::Reason::MAX)) return ferry::errc::corrupt_data;
  auto str = [](const flatbuffers::String* s) { return s ? s->str() : std::string(); };
  failure_record f;
  f.origin_topic = str(r->origin_topic());
  f.origin_partition = r->origin_partition();
  f.origin_offset = r->origin_offset();
  if (r->origin_key())
    f.origin_key = std::string(reinterpret_cast<const char*>(r->origin_key()->data()),
                               r->origin_key()->size());
  f.origin_timestamp_ms = r->origin_timestamp_ms();
  f.group = str(r->group());
  f.worker = str(r->worker());
  if (r->attempts())
    for (const auto* a : *r->attempts()) {
      if (!in_range(a->error_class(), fw::ErrorClass::MIN, fw::ErrorClass::MAX))
        return ferry::errc::corrupt_data;
      f.attempts.push_back({a->time_ms(), static_cast<error_class>(a->error_class()),
                            str(a->category()), a->code(), str(a->message()), str(a->worker())});
    }
  f.attempts_total = r->attempts_total();
  f.reason = static_cast<dead_letter_reason>(r->reason());
  f.reason_message = str(r->reason_message());
  f.dead_lettered_ms = r->dead_lettered_ms();
  return f;
}

namespace {

template <typename T>
bool parse_int(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string format_position(const record_position& p) {
  return p.topic + "/" + std::to_string(p.partition) + "/" + std::to_string(p.offset);
}

std::optional<record_position> parse_position(std::string_view s) {
  const auto b = s.rfind('/');
  if (b == std::string_view::npos || b == 0) return std::nullopt;
  const auto a = s.rfind('/', b - 1);
  if (a == std::string_view::npos || a == 0) return std::nullopt;
  record_position p;
  p.topic = std::string(s.substr(0, a));
  if (p.topic.find('/') != std::string::npos) return std::nullopt;
  if (!parse_int(s.substr(a + 1, b - a - 1), p.partition) || p.partition < 0) return std::nullopt;
  if (!parse_int(s.substr(b + 1), p.offset) || p.offset < 0) return std::nullopt;
  return p;
}

std::string format_route(const route_id& r) {
  return r.group + "/" + format_position(r.source);
}

std::optional<route_id> parse_route(std::string_view s) {
  // group names may not contain '/' (protocol::valid_group_name), topics
  // neither: the first '/' ends the group.
  const auto g = s.find('/');
  if (g == std::string_view::npos || g == 0) return std::nullopt;
  auto pos = parse_position(s.substr(g + 1));
  if (!pos) return std::nullopt;
  return route_id{std::string(s.substr(0, g)), std::move(*pos)};
}

void set_header(std::vector<client::header>& headers, std::string_view name, std::string value) {
  std::erase_if(headers, [&](const client::header& h) { return h.key == name; });
  headers.push_back({std::string(name), std::move(value)});
}

std::optional<std::string> get_header(const std::vector<client::header>& headers,
                                      std::string_view name) {
  for (const auto& h : headers)
    if (h.key == name) return h.value;
  return std::nullopt;
}

}  // namespace ferry::runtime
