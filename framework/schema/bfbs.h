// Private to ferry::schema: the one place untrusted binary-schema bytes are
// checked before anything reads them (schema.cc), and aligned copies of
// payloads for the reflection verifier.
#pragma once

#include <flatbuffers/reflection.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/result.h"

namespace ferry::schema::details {

/// Bytes at an 8-byte aligned address: a view of the input when it is
/// already aligned, otherwise a copy. FlatBuffers reads scalars in place, so
/// a misaligned buffer is undefined behaviour (UBSan reports it).
/// Not copyable: `data()` may point into this object's own storage.
class aligned_bytes {
 public:
  explicit aligned_bytes(std::span<const std::byte> bytes);
  aligned_bytes(const aligned_bytes&) = delete;
  aligned_bytes& operator=(const aligned_bytes&) = delete;
  aligned_bytes(aligned_bytes&&) noexcept = default;
  aligned_bytes& operator=(aligned_bytes&&) noexcept = default;

  const std::uint8_t* data() const noexcept {
    return copy_.empty() ? view_ : reinterpret_cast<const std::uint8_t*>(copy_.data());
  }
  std::size_t size() const noexcept { return size_; }

 private:
  const std::uint8_t* view_ = nullptr;
  std::vector<std::uint64_t> copy_;  // heap storage survives moves
  std::size_t size_ = 0;
};

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

}  // namespace ferry::schema::details
