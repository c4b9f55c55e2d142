// ferry::schema: FlatBuffers schemas as versioned message contracts.
//
// A schema travels as FlatBuffers' binary schema (.bfbs, the reflection.fbs
// form `flatc --binary --schema` writes) together with its source text. This
// library compiles .fbs source into that form, checks a binary schema that
// came from the network, compares two of them for compatibility, verifies
// payloads against one and renders payloads as JSON. It depends on nothing in
// Ferry but core, so `ferry schema check --against` and users' own tools can
// use it without a broker.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ferry/core/compat_mode.h"
#include "ferry/core/result.h"

namespace ferry::schema {

enum class errc : int {
  ok = 0,
  parse_failed = 1,           ///< .fbs source did not compile (diagnostics say where)
  invalid_binary_schema = 2,  ///< bytes are not a binary schema (failed reflection's verifier)
  no_root_type = 3,           ///< the schema declares no root_type
  invalid_payload = 4,        ///< a payload failed verification against its schema
};
const std::error_category& schema_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), schema_category()};
}

/// A schema ready to register: the binary form and the source it came from.
struct compiled_schema {
  std::string bfbs;             ///< binary schema (reflection.fbs, identifier "BFBS")
  std::string source;           ///< the .fbs text as given
  std::string root_type;        ///< fully qualified, e.g. "ferry.samples.orders.OrderPlaced"
  std::string file_identifier;  ///< "" when the schema declares none
};

/// Compiles .fbs source. `file_name` names it in diagnostics; includes are
/// searched in `include_dirs` (then next to `file_name`). On failure the
/// error is errc::parse_failed and `diagnostics` (if given) holds flatc's
/// message with file and line.
result<compiled_schema> compile(std::string_view source, std::string_view file_name,
                                const std::vector<std::filesystem::path>& include_dirs = {},
                                std::string* diagnostics = nullptr);
/// Reads and compiles a .fbs file (its directory is searched for includes).
result<compiled_schema> compile_file(const std::filesystem::path& file,
                                     const std::vector<std::filesystem::path>& include_dirs = {},
                                     std::string* diagnostics = nullptr);

/// Checks untrusted bytes: a binary schema that passes reflection's verifier
/// and names a root type.
result<void> validate_binary(std::string_view bfbs, std::string* why = nullptr);
/// The root type's fully qualified name and the file identifier of a valid
/// binary schema (call validate_binary first for untrusted bytes).
std::string root_type_name(std::string_view bfbs);
std::string file_identifier(std::string_view bfbs);

// ---- compatibility ---------------------------------------------------------

/// Compatibility modes (core/compat_mode.h: BACKWARD, FORWARD, FULL, their
/// transitive forms, NONE).
using mode = ferry::compat_mode;
/// "NONE", "BACKWARD", ..., "FULL_TRANSITIVE".
std::string_view to_string(mode m) noexcept;
/// Case-insensitive; accepts '-' for '_'. nullopt for an unknown word.
std::optional<mode> parse_mode(std::string_view text) noexcept;
bool checks_backward(mode m) noexcept;
bool checks_forward(mode m) noexcept;
bool is_transitive(mode m) noexcept;

/// What changed between two schemas. Stable names (to_string) are part of
/// `ferry schema check -o json` and docs/schemas.md.
enum class rule : std::uint8_t {
  root_type_changed,             ///< root_type names another type
  file_identifier_changed,       ///< file_identifier added, removed or changed
  field_removed,                 ///< a field gone instead of deprecated
  field_type_changed,            ///< same id, another type (incl. element / referenced type)
  field_moved,                   ///< same name, another id (reordered fields)
  field_id_reused,               ///< a deprecated or removed field's id given to a new field
  field_made_required,           ///< breaks reading old data
  field_no_longer_required,      ///< breaks old readers' verifiers
  default_changed,               ///< default value (or optional-ness) changed
  field_renamed,                 ///< same id and type, new name: wire-compatible, breaks JSON
  enum_value_removed,            ///< old data may hold it
  enum_value_renumbered,         ///< same name, other number
  enum_value_added,              ///< old readers do not know it (forward)
  enum_value_renamed,            ///< same number, new name: breaks JSON
  enum_underlying_type_changed,  ///< e.g. ubyte -> short
  union_member_removed,
  union_member_reordered,  ///< a member's type tag changed
  union_member_added,      ///< old readers do not know it (forward)
  struct_changed,          ///< any change to a struct's layout or fields
  type_kind_changed,       ///< table <-> struct, enum <-> union
};
std::string_view to_string(rule r) noexcept;

/// One difference between an older and a newer schema.
struct finding {
  rule what{};
  /// A reader with the newer schema cannot read data written with the older.
  bool breaks_backward = false;
  /// A reader with the older schema cannot read data written with the newer.
  bool breaks_forward = false;
  /// Unsafe evolution even where today's data still reads (a removed field
  /// frees its id for reuse): a violation in every mode but NONE.
  bool breaks_evolution = false;
  std::string type;     ///< fully qualified type name it concerns
  std::string field;    ///< field, enum value or union member; "" for the type itself
  std::string message;  ///< one readable sentence, e.g. "type changed from int to long"

  /// A warning breaks nothing on the wire (renames: JSON only).
  bool is_warning() const noexcept {
    return !breaks_backward && !breaks_forward && !breaks_evolution;
  }
};

/// Every difference from `older` to `newer` (both valid binary schemas),
/// errors first, then warnings, each in schema order. Either schema failing
/// validate_binary() is that error (errc::invalid_binary_schema or
/// errc::no_root_type). The rules and their directions: docs/schemas.md.
result<std::vector<finding>> compare(std::string_view older_bfbs, std::string_view newer_bfbs);

/// The findings that `m` refuses (warnings never are).
std::vector<finding> violations(const std::vector<finding>& findings, mode m);

/// Whether a reader compiled with `reader_bfbs` can read a payload written
/// with `writer_bfbs`: the findings that break that direction, whichever of
/// the two is newer. Empty means readable.
result<std::vector<finding>> reader_conflicts(std::string_view writer_bfbs,
                                              std::string_view reader_bfbs);

/// "error: ferry.samples.orders.OrderPlaced.total_cents: type changed from
/// int to long (breaks backward, forward) [field_type_changed]".
std::string format(const finding& f);

// ---- payloads ----------------------------------------------------------------

/// Verifies a payload against a binary schema's root type with FlatBuffers'
/// reflection verifier (bounds, offsets, nesting, union tags the schema
/// knows) plus required fields of every kind at any depth (libflatbuffers
/// 2.0.8 checks only required tables). The payload may sit at any address
/// (a misaligned one is copied). errc::invalid_payload with the reason in
/// `why`; a bad schema is errc::invalid_binary_schema.
result<void> verify(std::string_view bfbs, std::span<const std::byte> payload,
                    std::string* why = nullptr);

/// Bytes at an 8-byte aligned address: a view of the input when it is
/// already aligned, otherwise a copy. FlatBuffers reads scalars in place, so
/// a misaligned buffer is undefined behaviour (UBSan reports it).
/// Not copyable: `data()` may point into this object's own storage.
class aligned_bytes {
 public:
  explicit aligned_bytes(std::span<const std::byte> bytes);
  explicit aligned_bytes(std::string_view bytes) : aligned_bytes(std::as_bytes(std::span(bytes))) {}
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

namespace details {
class checked_schema;
}

/// check_values() for many payloads of one schema: the binary schema is
/// checked once, when the checker is made (typed handlers keep one per
/// contract). Thread-safe to share.
class value_checker {
 public:
  /// errc::invalid_binary_schema / no_root_type with the reason in `why`.
  static result<value_checker> make(std::string_view bfbs, std::string* why = nullptr);
  /// check_values(): verifies the payload, then checks its values.
  result<void> check(std::span<const std::byte> payload, std::string* why = nullptr) const;
  /// Only the value checks, for a payload at an aligned address that was
  /// already verified against this same schema (e.g. by the contract's
  /// generated Verifier): verifying it again would only repeat that work.
  result<void> check_verified(const std::uint8_t* payload, std::string* why = nullptr) const;

 private:
  explicit value_checker(std::shared_ptr<const details::checked_schema> s)
      : schema_(std::move(s)) {}
  std::shared_ptr<const details::checked_schema> schema_;
};

/// Verifies, then makes the semantic checks the verifier does not: every
/// enum field (in the root table, nested tables, vectors and unions) holds a
/// value its enum declares (for bit_flags enums, a combination of declared
/// bits). An unknown value usually means a writer with a newer schema.
/// errc::invalid_payload with the field's path and value in `why`.
result<void> check_values(std::string_view bfbs, std::span<const std::byte> payload,
                          std::string* why = nullptr);

/// Verifies, then renders the payload as one line of JSON (field names as in
/// the schema, defaults omitted as flatc does).
result<std::string> to_json(std::string_view bfbs, std::span<const std::byte> payload,
                            std::string* why = nullptr);

}  // namespace ferry::schema

template <>
struct std::is_error_code_enum<ferry::schema::errc> : std::true_type {};
