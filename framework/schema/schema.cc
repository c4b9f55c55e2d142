// Compiling, checking, verifying and rendering with libflatbuffers' parser
// and reflection. Every call into FlatBuffers that can throw (allocation,
// std::string) is wrapped here: errors leave this file as error codes.
#include "ferry/schema/schema.h"

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>

#include "bfbs.h"

namespace ferry::schema {
namespace {

class schema_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.schema"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "ok";
      case errc::parse_failed:
        return "schema source did not compile";
      case errc::invalid_binary_schema:
        return "not a valid binary schema";
      case errc::no_root_type:
        return "schema declares no root_type";
      case errc::invalid_payload:
        return "payload does not verify against its schema";
    }
    return "unknown ferry.schema error " + std::to_string(ev);
  }
};

void set(std::string* out, std::string text) {
  if (out != nullptr) *out = std::move(text);
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

bool is_scalar(reflection::BaseType t) {
  return t >= reflection::UType && t <= reflection::Double;
}

// Type.index must name an object or an enum of the right kind; reflection's
// verifier checks bytes, not these cross references.
bool type_ok(const reflection::Schema& s, const reflection::Type& t, std::string* why) {
  const auto objects = s.objects()->size();
  const auto enums = s.enums()->size();
  const auto index = t.index();
  auto in = [&](flatbuffers::uoffset_t n) {
    return index >= 0 && static_cast<flatbuffers::uoffset_t>(index) < n;
  };
  auto base = t.base_type();
  if (base == reflection::Vector || base == reflection::Array) base = t.element();
  bool ok = true;
  switch (base) {
    case reflection::Obj:
      ok = in(objects);
      break;
    case reflection::Union:
    case reflection::UType:
      ok = in(enums) && s.enums()->Get(static_cast<flatbuffers::uoffset_t>(index))->is_union();
      break;
    default:
      if (is_scalar(base) && index >= 0) {
        ok = in(enums) && !s.enums()->Get(static_cast<flatbuffers::uoffset_t>(index))->is_union();
      } else if (!is_scalar(base) && base != reflection::String && base != reflection::None) {
        ok = false;  // nested vectors or unknown base types
      }
      break;
  }
  if (!ok) set(why, "a type refers to an object or enum that is not in the schema");
  return ok;
}

result<void> check_references(const reflection::Schema& s, std::string* why) {
  for (const auto* object : *s.objects()) {
    for (const auto* field : *object->fields()) {
      if (!type_ok(s, *field->type(), why)) return errc::invalid_binary_schema;
    }
  }
  for (const auto* e : *s.enums()) {
    if (!is_scalar(e->underlying_type()->base_type())) {
      set(why, "enum " + e->name()->str() + " has a non-integer underlying type");
      return errc::invalid_binary_schema;
    }
    for (const auto* v : *e->values()) {
      if (!e->is_union() || v->value() == 0) continue;
      if (v->union_type() == nullptr || !type_ok(s, *v->union_type(), why)) {
        set(why,
            "union " + e->name()->str() + " member " + v->name()->str() + " has no valid type");
        return errc::invalid_binary_schema;
      }
    }
  }
  const auto* root = s.root_table();
  if (root == nullptr) {
    set(why, "the binary schema names no root table");
    return errc::no_root_type;
  }
  // Parser::Deserialize finds the root by name among the objects.
  for (const auto* object : *s.objects()) {
    if (object->name()->string_view() == root->name()->string_view()) {
      if (!object->is_struct()) return success();
      break;
    }
  }
  set(why, "the root type " + root->name()->str() + " is not a table of the schema");
  return errc::invalid_binary_schema;
}

}  // namespace

const std::error_category& schema_category() noexcept {
  static const schema_category_impl instance;
  return instance;
}

aligned_bytes::aligned_bytes(std::span<const std::byte> bytes) : size_(bytes.size()) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (reinterpret_cast<std::uintptr_t>(p) % alignof(std::uint64_t) == 0) {
    view_ = p;
    return;
  }
  copy_.resize((bytes.size() + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t));
  std::memcpy(copy_.data(), p, bytes.size());
}

namespace details {

result<checked_schema> checked_schema::load(std::string_view bfbs, std::string* why) {
  if (bfbs.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    set(why, "binary schema larger than a FlatBuffer can be");
    return errc::invalid_binary_schema;
  }
  aligned_bytes bytes(as_bytes(bfbs));
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!reflection::VerifySchemaBuffer(verifier)) {
    set(why, "bytes are not a binary schema (reflection.fbs, identifier BFBS)");
    return errc::invalid_binary_schema;
  }
  const auto* s = reflection::GetSchema(bytes.data());
  FERRY_TRY(check_references(*s, why));
  return checked_schema(std::move(bytes));
}

}  // namespace details

result<compiled_schema> compile(std::string_view source, std::string_view file_name,
                                const std::vector<std::filesystem::path>& include_dirs,
                                std::string* diagnostics) {
  try {
    flatbuffers::IDLOptions opts;
    // As tools/cmake's `flatc --binary --schema --bfbs-comments --bfbs-builtins`:
    // keep doc comments and the builtin attributes (id, required, ...).
    opts.binary_schema_comments = true;
    opts.binary_schema_builtins = true;
    // What `flatc --cpp` accepts (struct and string union members are C++-only
    // "advanced" union features the parser refuses without a language).
    opts.lang_to_generate = flatbuffers::IDLOptions::kCpp;
    // Like flatc, which records each type's declaration file relative to
    // the first schema's directory ("//order_placed.fbs"): the same .fbs
    // compiled here, by flatc or into a generated contract gives the same
    // bytes, so the registry gives it one id.
    {
      std::error_code ec;
      const auto abs = std::filesystem::absolute(std::filesystem::path(file_name), ec);
      if (!ec) opts.project_root = abs.lexically_normal().parent_path().string();
    }
    flatbuffers::Parser parser(opts);

    // Like flatc: the given include directories, then the file's own.
    std::vector<std::string> dirs;
    for (const auto& d : include_dirs) dirs.push_back(d.string());
    dirs.push_back(std::filesystem::path(file_name).parent_path().string());
    std::vector<const char*> dir_ptrs;
    for (const auto& d : dirs) dir_ptrs.push_back(d.c_str());
    dir_ptrs.push_back(nullptr);

    const std::string text(source);  // Parse wants a NUL-terminated string
    const std::string name(file_name);
    if (!parser.Parse(text.c_str(), dir_ptrs.data(), name.c_str())) {
      set(diagnostics, parser.error_);
      return errc::parse_failed;
    }
    if (parser.root_struct_def_ == nullptr) {
      set(diagnostics, name + ": no root_type declared");
      return errc::no_root_type;
    }
    parser.Serialize();
    compiled_schema out;
    out.bfbs.assign(reinterpret_cast<const char*>(parser.builder_.GetBufferPointer()),
                    parser.builder_.GetSize());
    out.source = text;
    out.root_type = root_type_name(out.bfbs);
    out.file_identifier = parser.file_identifier_;
    return out;
  } catch (const std::exception& e) {
    set(diagnostics, std::string(file_name) + ": " + e.what());
    return errc::parse_failed;
  }
}

result<compiled_schema> compile_file(const std::filesystem::path& file,
                                     const std::vector<std::filesystem::path>& include_dirs,
                                     std::string* diagnostics) {
  std::string text;
  try {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      set(diagnostics, file.string() + ": cannot open");
      return std::make_error_code(std::errc::no_such_file_or_directory);
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
      set(diagnostics, file.string() + ": read failed");
      return std::make_error_code(std::errc::io_error);
    }
    text = std::move(buf).str();
  } catch (const std::exception& e) {
    set(diagnostics, file.string() + ": " + e.what());
    return std::make_error_code(std::errc::io_error);
  }
  return compile(text, file.string(), include_dirs, diagnostics);
}

result<void> validate_binary(std::string_view bfbs, std::string* why) {
  try {
    FERRY_TRY(details::checked_schema::load(bfbs, why));
    return success();
  } catch (const std::exception& e) {
    set(why, e.what());
    return errc::invalid_binary_schema;
  }
}

std::string root_type_name(std::string_view bfbs) {
  try {
    auto s = details::checked_schema::load(bfbs, nullptr);
    if (!s) return {};
    return s.value().get().root_table()->name()->str();
  } catch (const std::exception&) {
    return {};
  }
}

std::string file_identifier(std::string_view bfbs) {
  try {
    auto s = details::checked_schema::load(bfbs, nullptr);
    if (!s || s.value().get().file_ident() == nullptr) return {};
    return s.value().get().file_ident()->str();
  } catch (const std::exception&) {
    return {};
  }
}

namespace {

using table_vector = flatbuffers::Vector<flatbuffers::Offset<flatbuffers::Table>>;

// The member table a union value holds, or nullptr (NONE, a struct or string
// member, an unknown tag). Its type tag is the hidden field one id before.

const reflection::Field* union_tag_field(const reflection::Object& obj,
                                         const reflection::Field& field) {
  for (const auto* f : *obj.fields()) {
    if (f->id() + 1 == field.id()) return f;
  }
  return nullptr;
}

// libflatbuffers 2.0.8's reflection Verify enforces `required` only on
// table-typed fields: a required string, vector, struct or union that is
// absent passes. This walk runs after Verify (every offset it follows has been
// checked, the depth bounded) and checks every required field it reaches.
bool required_present(const reflection::Schema& s, const reflection::Object& obj,
                      const flatbuffers::Table& t, std::string* missing) {
  for (const auto* f : *obj.fields()) {
    if (f->deprecated()) continue;
    const bool present = t.CheckField(f->offset());
    if (!present) {
      if (f->required()) {
        *missing = obj.name()->str() + "." + f->name()->str();
        return false;
      }
      continue;
    }
    const auto* type = f->type();
    const auto index = static_cast<flatbuffers::uoffset_t>(type->index());
    if (type->base_type() == reflection::Obj) {
      const auto* child = s.objects()->Get(index);
      const auto* sub = child->is_struct() ? nullptr : flatbuffers::GetFieldT(t, *f);
      if (sub != nullptr && !required_present(s, *child, *sub, missing)) return false;
    } else if (type->base_type() == reflection::Union) {
      const auto* tag_field = union_tag_field(obj, *f);
      if (tag_field == nullptr) continue;
      const auto tag = t.GetField<std::uint8_t>(tag_field->offset(), 0);
      const auto* member = details::union_member(s, *f, tag);
      const auto* sub = t.GetPointer<const flatbuffers::Table*>(f->offset());
      if (member != nullptr && sub != nullptr && !required_present(s, *member, *sub, missing)) {
        return false;
      }
    } else if (type->base_type() == reflection::Vector && type->element() == reflection::Obj) {
      const auto* child = s.objects()->Get(index);
      const auto* items =
          child->is_struct() ? nullptr : t.GetPointer<const table_vector*>(f->offset());
      if (items == nullptr) continue;
      for (const auto* item : *items) {
        if (!required_present(s, *child, *item, missing)) return false;
      }
    } else if (type->base_type() == reflection::Vector && type->element() == reflection::Union) {
      const auto* tag_field = union_tag_field(obj, *f);
      if (tag_field == nullptr) continue;
      const auto* tags =
          t.GetPointer<const flatbuffers::Vector<std::uint8_t>*>(tag_field->offset());
      const auto* items = t.GetPointer<const table_vector*>(f->offset());
      if (tags == nullptr || items == nullptr) continue;
      const auto n = std::min(tags->size(), items->size());
      for (flatbuffers::uoffset_t i = 0; i < n; ++i) {
        const auto* member = details::union_member(s, *f, tags->Get(i));
        if (member != nullptr && !required_present(s, *member, *items->Get(i), missing)) {
          return false;
        }
      }
    }
  }
  return true;
}

}  // namespace

namespace details {

result<void> verify_loaded(const checked_schema& schema, const aligned_bytes& payload,
                           std::string* why) {
  const auto& root = *schema.get().root_table();
  if (payload.size() < sizeof(flatbuffers::uoffset_t)) {
    set(why,
        "payload of " + std::to_string(payload.size()) + " bytes is too short to be a FlatBuffer");
    return errc::invalid_payload;
  }
  if (payload.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    set(why, "payload larger than a FlatBuffer can be");
    return errc::invalid_payload;
  }
  // reflection's Verify follows the root offset before checking it.
  const auto root_offset = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(payload.data());
  if (root_offset >= payload.size()) {
    set(why, "root offset " + std::to_string(root_offset) + " points past the payload's " +
                 std::to_string(payload.size()) + " bytes");
    return errc::invalid_payload;
  }
  if (!flatbuffers::Verify(schema.get(), root, payload.data(), payload.size())) {
    set(why, "payload is not a valid " + root.name()->str() +
                 " (bad offset or size, too deep, a union member the schema does not know, or a "
                 "required table missing)");
    return errc::invalid_payload;
  }
  std::string missing;
  const auto* table = flatbuffers::GetAnyRoot(payload.data());
  if (!required_present(schema.get(), root, *table, &missing)) {
    set(why, "payload is not a valid " + root.name()->str() + ": required field " + missing +
                 " is missing");
    return errc::invalid_payload;
  }
  return success();
}

}  // namespace details

result<void> verify(std::string_view bfbs, std::span<const std::byte> payload, std::string* why) {
  try {
    FERRY_TRY(auto schema, details::checked_schema::load(bfbs, why));
    const aligned_bytes bytes(payload);
    return details::verify_loaded(schema, bytes, why);
  } catch (const std::exception& e) {
    set(why, e.what());
    return errc::invalid_payload;
  }
}

result<std::string> to_json(std::string_view bfbs, std::span<const std::byte> payload,
                            std::string* why) {
  try {
    FERRY_TRY(auto schema, details::checked_schema::load(bfbs, why));
    const aligned_bytes bytes(payload);
    FERRY_TRY(details::verify_loaded(schema, bytes, why));
    flatbuffers::IDLOptions opts;
    opts.strict_json = true;  // quoted field names: JSON, not JSON5
    opts.indent_step = -1;    // one line
    flatbuffers::Parser parser(opts);
    if (!parser.Deserialize(schema.data(), schema.size())) {
      set(why, "binary schema could not be loaded: " + parser.error_);
      return errc::invalid_binary_schema;
    }
    std::string json;
    if (!flatbuffers::GenerateText(parser, bytes.data(), &json)) {
      set(why, "payload cannot be rendered as JSON (a string is not UTF-8)");
      return errc::invalid_payload;
    }
    return json;
  } catch (const std::exception& e) {
    set(why, e.what());
    return errc::invalid_payload;
  }
}

}  // namespace ferry::schema
