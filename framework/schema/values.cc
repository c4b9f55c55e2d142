// check_values(): the semantic checks FlatBuffers' verifier does not make.
// The verifier proves a payload is safe to read (offsets, sizes, required
// fields); it does not look at what scalars hold, so an enum field written
// by a newer schema can carry a value the reader's enum does not declare.
#include <flatbuffers/reflection.h>

#include <memory>
#include <string>
#include <utility>

#include "bfbs.h"
#include "ferry/schema/schema.h"

namespace ferry::schema {

namespace {

constexpr int kMaxDepth = 64;

bool is_bit_flags(const reflection::Enum& e) {
  if (e.attributes() == nullptr) return false;
  for (const auto* kv : *e.attributes())
    if (kv->key() && kv->key()->string_view() == "bit_flags") return true;
  return false;
}

// Whether `v` is a value `e` declares (for bit_flags: a combination of them).
bool declared(const reflection::Enum& e, std::int64_t v) {
  if (is_bit_flags(e)) {
    std::uint64_t all = 0;
    for (const auto* ev : *e.values()) all |= static_cast<std::uint64_t>(ev->value());
    return (static_cast<std::uint64_t>(v) & ~all) == 0;
  }
  for (const auto* ev : *e.values())
    if (ev->value() == v) return true;
  return false;
}

bool is_integer(reflection::BaseType t) {
  return t >= reflection::Byte && t <= reflection::ULong;
}

class walker {
 public:
  walker(const reflection::Schema& s, std::string* why) : s_(s), why_(why) {}

  bool table(const reflection::Object& obj, const flatbuffers::Table& t, int depth,
             const std::string& path) {
    if (depth > kMaxDepth) return true;  // the verifier bounds depth; nothing more to prove
    for (const auto* f : *obj.fields()) {
      if (f->deprecated()) continue;
      const auto* type = f->type();
      const auto bt = type->base_type();
      const auto name = path + "." + f->name()->str();
      if (is_integer(bt) && type->index() >= 0) {
        if (!t.CheckField(f->offset())) continue;  // absent: the default, which is declared
        const auto v = flatbuffers::GetAnyFieldI(t, *f);
        const auto* e = s_.enums()->Get(static_cast<flatbuffers::uoffset_t>(type->index()));
        if (bt != reflection::UType && !declared(*e, v)) return fail(name, *e, v);
      } else if (bt == reflection::Obj) {
        const auto* sub = s_.objects()->Get(static_cast<flatbuffers::uoffset_t>(type->index()));
        if (sub->is_struct()) continue;
        const auto* child = flatbuffers::GetFieldT(t, *f);
        if (child && !table(*sub, *child, depth + 1, name)) return false;
      } else if (bt == reflection::Union) {
        const auto* child = flatbuffers::GetFieldT(t, *f);
        if (child == nullptr) continue;
        // The tag is the field before this one (id - 1), as flatc lays unions out.
        const auto* tag_field = obj.fields()->LookupByKey((f->name()->str() + "_type").c_str());
        if (tag_field == nullptr) continue;
        const auto tag = static_cast<std::uint8_t>(flatbuffers::GetAnyFieldI(t, *tag_field));
        const auto* member = details::union_member(s_, *f, tag);
        if (member != nullptr && !table(*member, *child, depth + 1, name)) return false;
      } else if (bt == reflection::Vector) {
        const auto et = type->element();
        const auto* vec = flatbuffers::GetFieldAnyV(t, *f);
        if (vec == nullptr) continue;
        if (is_integer(et) && type->index() >= 0) {
          const auto* e = s_.enums()->Get(static_cast<flatbuffers::uoffset_t>(type->index()));
          if (et == reflection::UType) continue;
          for (flatbuffers::uoffset_t i = 0; i < vec->size(); ++i) {
            const auto v = flatbuffers::GetAnyVectorElemI(vec, et, i);
            if (!declared(*e, v)) return fail(name + "[" + std::to_string(i) + "]", *e, v);
          }
        } else if (et == reflection::Obj) {
          const auto* sub = s_.objects()->Get(static_cast<flatbuffers::uoffset_t>(type->index()));
          if (sub->is_struct()) continue;
          const auto* tables =
              flatbuffers::GetFieldV<flatbuffers::Offset<flatbuffers::Table>>(t, *f);
          for (flatbuffers::uoffset_t i = 0; i < tables->size(); ++i)
            if (!table(*sub, *tables->Get(i), depth + 1, name + "[" + std::to_string(i) + "]"))
              return false;
        }
      }
    }
    return true;
  }

 private:
  bool fail(const std::string& where, const reflection::Enum& e, std::int64_t v) {
    if (why_)
      *why_ = where + " holds " + std::to_string(v) + ", which " + e.name()->str() +
              " does not declare (written with a newer schema?)";
    return false;
  }

  const reflection::Schema& s_;
  std::string* why_;
};

}  // namespace

result<value_checker> value_checker::make(std::string_view bfbs, std::string* why) {
  try {
    // A checked_schema may view the bytes it was loaded from: keep a copy
    // alive beside it (shared_ptr aliasing), so the caller's may go.
    auto owned = std::make_shared<const std::string>(bfbs);
    FERRY_TRY(auto s, details::checked_schema::load(*owned, why));
    auto both = std::make_shared<
        const std::pair<std::shared_ptr<const std::string>, details::checked_schema>>(
        std::move(owned), std::move(s));
    return value_checker(std::shared_ptr<const details::checked_schema>(both, &both->second));
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return errc::invalid_binary_schema;
  }
}

result<void> value_checker::check(std::span<const std::byte> payload, std::string* why) const {
  try {
    const aligned_bytes bytes(payload);
    FERRY_TRY(details::verify_loaded(*schema_, bytes, why));
    return check_verified(bytes.data(), why);
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return errc::invalid_payload;
  }
}

result<void> value_checker::check_verified(const std::uint8_t* payload, std::string* why) const {
  try {
    const auto& s = schema_->get();
    const auto& root = *s.root_table();
    walker w(s, why);
    if (!w.table(root, *flatbuffers::GetAnyRoot(payload), 0, root.name()->str()))
      return errc::invalid_payload;
    return success();
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return errc::invalid_payload;
  }
}

result<void> check_values(std::string_view bfbs, std::span<const std::byte> payload,
                          std::string* why) {
  FERRY_TRY(auto checker, value_checker::make(bfbs, why));
  return checker.check(payload, why);
}

}  // namespace ferry::schema
