// check_values(): the semantic checks FlatBuffers' verifier does not make.
// The verifier proves a payload is safe to read (offsets, sizes, required
// fields); it does not look at what scalars hold, so an enum field written
// by a newer schema can carry a value the reader's enum does not declare.
#include <flatbuffers/reflection.h>

#include <string>

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

result<void> check_values(std::string_view bfbs, std::span<const std::byte> payload,
                          std::string* why) {
  try {
    FERRY_TRY(auto schema, details::checked_schema::load(bfbs, why));
    FERRY_TRY(verify(bfbs, payload, why));
    const details::aligned_bytes bytes(payload);
    const auto& root = *schema.get().root_table();
    const auto* t = flatbuffers::GetAnyRoot(bytes.data());
    walker w(schema.get(), why);
    if (!w.table(root, *t, 0, root.name()->str())) return errc::invalid_payload;
    return success();
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return errc::invalid_payload;
  }
}

}  // namespace ferry::schema
