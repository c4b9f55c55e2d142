// Private to ferry::schema: the one place untrusted binary-schema bytes are
// checked before anything reads them (schema.cc).
#pragma once

#include <flatbuffers/reflection.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/result.h"
#include "ferry/schema/schema.h"

namespace ferry::schema::details {

using schema::aligned_bytes;

/// A binary schema that passed reflection's verifier, names a root table and
/// whose type indices are all in range (the verifier does not check those, and
/// reflection's payload verifier and Parser::Deserialize index with them).
class checked_schema {
 public:
  /// errc::invalid_binary_schema or errc::no_root_type, the reason in `why`.
  static result<checked_schema> load(std::string_view bfbs, std::string* why);

  const reflection::Schema& get() const noexcept { return *reflection::GetSchema(bytes_.data()); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }

 private:
  explicit checked_schema(aligned_bytes bytes) : bytes_(std::move(bytes)) {}
  aligned_bytes bytes_;
};

/// The table a union field's `tag` selects; nullptr for NONE, an unknown
/// tag, or a member that is not a table (a struct or a string).
inline const reflection::Object* union_member(const reflection::Schema& s,
                                              const reflection::Field& field, std::uint8_t tag) {
  if (tag == 0) return nullptr;
  const auto* e = s.enums()->Get(static_cast<flatbuffers::uoffset_t>(field.type()->index()));
  for (const auto* v : *e->values()) {
    if (v->value() != tag || v->union_type() == nullptr) continue;
    if (v->union_type()->base_type() != reflection::Obj) return nullptr;
    const auto* member =
        s.objects()->Get(static_cast<flatbuffers::uoffset_t>(v->union_type()->index()));
    return member->is_struct() ? nullptr : member;
  }
  return nullptr;
}

/// verify() on a loaded schema and an aligned payload (schema.cc).
result<void> verify_loaded(const checked_schema& schema, const aligned_bytes& payload,
                           std::string* why);

}  // namespace ferry::schema::details
