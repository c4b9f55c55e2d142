// The compatibility checker: walks two reflection::Schema objects.
//
// Types are matched by fully qualified name (objects with objects, enums and
// unions with enums); table fields by id, and also by name to tell a moved
// field from a renamed one. Every rule has fixed directions (rule_directions):
// one table, so docs/schemas.md, compare() and reader_conflicts() cannot
// disagree. A type present in only one schema yields nothing by itself: a new
// type breaks no reader, and a removed one can no longer be referenced by any
// field of the newer schema (a field that referenced it changed type and is
// reported there).
//
// Findings come in this order: root type and file identifier, then objects,
// then enums and unions, each in the binary schema's order (sorted by name),
// fields in id order; then all errors are moved ahead of all warnings.
#include <flatbuffers/reflection.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <map>
#include <set>

#include "bfbs.h"
#include "ferry/schema/schema.h"

namespace ferry::schema {
namespace {

using reflection::BaseType;

struct directions {
  bool backward;
  bool forward;
  bool evolution;
};

constexpr directions rule_directions(rule r) noexcept {
  switch (r) {
    case rule::field_removed:
      return {false, false, true};
    case rule::field_made_required:
    case rule::enum_value_removed:
    case rule::union_member_removed:
      return {true, false, false};
    case rule::field_no_longer_required:
    case rule::enum_value_added:
    case rule::union_member_added:
      return {false, true, false};
    case rule::field_renamed:
    case rule::enum_value_renamed:
      return {false, false, false};
    case rule::root_type_changed:
    case rule::file_identifier_changed:
    case rule::field_type_changed:
    case rule::field_moved:
    case rule::field_id_reused:
    case rule::default_changed:
    case rule::enum_value_renumbered:
    case rule::enum_underlying_type_changed:
    case rule::union_member_reordered:
    case rule::struct_changed:
    case rule::type_kind_changed:
      return {true, true, false};
  }
  return {true, true, true};
}

std::string_view scalar_name(BaseType t) {
  switch (t) {
    case reflection::None:
      return "none";
    case reflection::UType:
      return "utype";
    case reflection::Bool:
      return "bool";
    case reflection::Byte:
      return "byte";
    case reflection::UByte:
      return "ubyte";
    case reflection::Short:
      return "short";
    case reflection::UShort:
      return "ushort";
    case reflection::Int:
      return "int";
    case reflection::UInt:
      return "uint";
    case reflection::Long:
      return "long";
    case reflection::ULong:
      return "ulong";
    case reflection::Float:
      return "float";
    case reflection::Double:
      return "double";
    case reflection::String:
      return "string";
    default:
      return "?";
  }
}

// One schema with name indexes. The bfbs sorts its vectors by name, but the
// maps do not rely on that: a hand-made schema that passed the verifier may not.
class view {
 public:
  explicit view(const reflection::Schema& s) : s_(s) {
    for (const auto* o : *s.objects()) objects_.emplace(o->name()->string_view(), o);
    for (const auto* e : *s.enums()) enums_.emplace(e->name()->string_view(), e);
  }
  const reflection::Schema& schema() const { return s_; }
  const reflection::Object* object(std::string_view name) const {
    auto it = objects_.find(name);
    return it == objects_.end() ? nullptr : it->second;
  }
  const reflection::Enum* enumeration(std::string_view name) const {
    auto it = enums_.find(name);
    return it == enums_.end() ? nullptr : it->second;
  }
  // Type indexes were range-checked by checked_schema::load.
  std::string object_name(std::int32_t index) const {
    return s_.objects()->Get(static_cast<flatbuffers::uoffset_t>(index))->name()->str();
  }
  std::string enum_name(std::int32_t index) const {
    return s_.enums()->Get(static_cast<flatbuffers::uoffset_t>(index))->name()->str();
  }

  // The type as a schema author writes it: int, ns.Color, [ns.Item], [float:3].
  std::string type_name(const reflection::Type& t) const {
    switch (t.base_type()) {
      case reflection::Vector:
        return "[" + element_name(t.element(), t.index()) + "]";
      case reflection::Array:
        return "[" + element_name(t.element(), t.index()) + ":" + std::to_string(t.fixed_length()) +
               "]";
      default:
        return element_name(t.base_type(), t.index());
    }
  }

 private:
  std::string element_name(BaseType base, std::int32_t index) const {
    if (base == reflection::Obj) return object_name(index);
    if (base == reflection::Union) return enum_name(index);
    if (base == reflection::UType) return enum_name(index) + " (type tag)";
    if (index >= 0) return enum_name(index);
    return std::string(scalar_name(base));
  }

  const reflection::Schema& s_;
  std::map<std::string_view, const reflection::Object*> objects_;
  std::map<std::string_view, const reflection::Enum*> enums_;
};

bool same_type(const view& a, const reflection::Type& ta, const view& b,
               const reflection::Type& tb) {
  return ta.base_type() == tb.base_type() && ta.element() == tb.element() &&
         ta.fixed_length() == tb.fixed_length() && a.type_name(ta) == b.type_name(tb);
}

bool is_real(BaseType t) {
  return t == reflection::Float || t == reflection::Double;
}
bool is_scalar(BaseType t) {
  return t >= reflection::UType && t <= reflection::Double;
}

std::string default_text(const reflection::Field& f) {
  if (f.optional()) return "null";
  if (is_real(f.type()->base_type())) {
    std::string s = std::to_string(f.default_real());
    // to_string gives six decimals; trim "5.500000" to "5.5".
    if (auto dot = s.find('.'); dot != std::string::npos) {
      s.erase(s.find_last_not_of('0') + 1);
      if (s.back() == '.') s.pop_back();
    }
    return s;
  }
  if (f.type()->base_type() == reflection::Bool) return f.default_integer() != 0 ? "true" : "false";
  return std::to_string(f.default_integer());
}

std::map<std::uint16_t, const reflection::Field*> by_id(const reflection::Object& o) {
  std::map<std::uint16_t, const reflection::Field*> out;
  for (const auto* f : *o.fields()) out.emplace(f->id(), f);
  return out;
}

std::map<std::string_view, const reflection::Field*> by_name(const reflection::Object& o) {
  std::map<std::string_view, const reflection::Field*> out;
  for (const auto* f : *o.fields()) out.emplace(f->name()->string_view(), f);
  return out;
}

class checker {
 public:
  checker(const reflection::Schema& older, const reflection::Schema& newer)
      : old_(older), new_(newer) {}

  std::vector<finding> run() {
    check_root();
    for (const auto* o : *old_.schema().objects()) check_object(*o);
    for (const auto* e : *old_.schema().enums()) check_enum(*e);
    std::stable_partition(out_.begin(), out_.end(),
                          [](const finding& f) { return !f.is_warning(); });
    return std::move(out_);
  }

 private:
  void add(rule r, std::string type, std::string field, std::string message) {
    const auto d = rule_directions(r);
    finding f;
    f.what = r;
    f.breaks_backward = d.backward;
    f.breaks_forward = d.forward;
    f.breaks_evolution = d.evolution;
    f.type = std::move(type);
    f.field = std::move(field);
    f.message = std::move(message);
    out_.push_back(std::move(f));
  }

  // "int to long"; when both print alike (an enum whose underlying type
  // changed), the base types are added: "shop.Currency (ubyte) to shop.Currency (short)".
  std::string type_change(const reflection::Type& from, const reflection::Type& to) const {
    auto a = old_.type_name(from);
    auto b = new_.type_name(to);
    if (a == b) {
      const auto base = [](const reflection::Type& t) {
        return t.base_type() == reflection::Vector || t.base_type() == reflection::Array
                   ? t.element()
                   : t.base_type();
      };
      a += " (" + std::string(scalar_name(base(from))) + ")";
      b += " (" + std::string(scalar_name(base(to))) + ")";
    }
    return a + " to " + b;
  }

  static std::string quoted_ident(const flatbuffers::String* s) {
    return s == nullptr || s->size() == 0 ? std::string("none") : "\"" + s->str() + "\"";
  }

  void check_root() {
    const auto old_root = old_.schema().root_table()->name()->str();
    const auto new_root = new_.schema().root_table()->name()->str();
    if (old_root != new_root) {
      add(rule::root_type_changed, old_root, "",
          "root type changed from " + old_root + " to " + new_root);
    }
    const auto old_id = quoted_ident(old_.schema().file_ident());
    const auto new_id = quoted_ident(new_.schema().file_ident());
    if (old_id != new_id) {
      add(rule::file_identifier_changed, old_root, "",
          "file_identifier changed from " + old_id + " to " + new_id);
    }
  }

  void check_object(const reflection::Object& o) {
    const auto name = o.name()->str();
    const auto* n = new_.object(o.name()->string_view());
    if (n == nullptr) {
      if (new_.enumeration(o.name()->string_view()) != nullptr) {
        add(rule::type_kind_changed, name, "",
            std::string("changed from ") + (o.is_struct() ? "struct" : "table") + " to " +
                (new_.enumeration(o.name()->string_view())->is_union() ? "union" : "enum"));
      }
      return;
    }
    if (o.is_struct() != n->is_struct()) {
      add(rule::type_kind_changed, name, "",
          std::string("changed from ") + (o.is_struct() ? "struct to table" : "table to struct"));
      return;
    }
    if (o.is_struct()) {
      check_struct(o, *n);
    } else {
      const auto first = out_.size();
      check_table(o, *n);
      drop_union_tag_twins(o, first);
    }
  }

  void check_struct(const reflection::Object& o, const reflection::Object& n) {
    const auto type = o.name()->str();
    if (o.bytesize() != n.bytesize()) {
      add(rule::struct_changed, type, "",
          "size changed from " + std::to_string(o.bytesize()) + " to " +
              std::to_string(n.bytesize()) + " bytes");
    }
    if (o.minalign() != n.minalign()) {
      add(rule::struct_changed, type, "",
          "alignment changed from " + std::to_string(o.minalign()) + " to " +
              std::to_string(n.minalign()));
    }
    // Fields are matched by name first: a struct field that kept its name but
    // not its bytes changed meaning. A field at the same position with the same
    // type and bytes but a name the other struct lacks is a rename.
    const auto old_ids = by_id(o);
    const auto new_ids = by_id(n);
    const auto old_names = by_name(o);
    const auto new_names = by_name(n);
    auto renamed_to = [&](const reflection::Field& of) -> const reflection::Field* {
      auto it = new_ids.find(of.id());
      if (it == new_ids.end() || new_names.count(of.name()->string_view()) != 0 ||
          old_names.count(it->second->name()->string_view()) != 0) {
        return nullptr;
      }
      const auto* nf = it->second;
      return same_type(old_, *of.type(), new_, *nf->type()) && of.offset() == nf->offset()
                 ? nf
                 : nullptr;
    };
    for (const auto& [id, of] : old_ids) {
      const auto field = of->name()->str();
      if (auto it = new_names.find(of->name()->string_view()); it != new_names.end()) {
        const auto* nf = it->second;
        if (!same_type(old_, *of->type(), new_, *nf->type())) {
          add(rule::struct_changed, type, field,
              "type changed from " + type_change(*of->type(), *nf->type()));
        } else if (of->offset() != nf->offset()) {
          add(rule::struct_changed, type, field,
              "moved from byte " + std::to_string(of->offset()) + " to byte " +
                  std::to_string(nf->offset()));
        }
      } else if (const auto* nf = renamed_to(*of); nf != nullptr) {
        add(rule::field_renamed, type, field,
            "renamed to " + nf->name()->str() + ": wire-compatible, breaks JSON");
      } else {
        add(rule::struct_changed, type, field, "field removed from the struct");
      }
    }
    for (const auto& [id, nf] : new_ids) {
      if (old_names.count(nf->name()->string_view()) != 0) continue;
      if (auto it = old_ids.find(id); it != old_ids.end() && renamed_to(*it->second) == nf)
        continue;
      add(rule::struct_changed, type, nf->name()->str(), "field added to the struct");
    }
  }

  void check_table(const reflection::Object& o, const reflection::Object& n) {
    const auto type = o.name()->str();
    const auto new_ids = by_id(n);
    const auto new_names = by_name(n);
    const auto old_ids = by_id(o);
    const auto old_names = by_name(o);
    for (const auto& [id, of] : old_ids) {
      const auto field = of->name()->str();
      const auto same_name = new_names.find(of->name()->string_view());
      const bool moved = same_name != new_names.end() && same_name->second->id() != id;
      if (moved) {
        add(rule::field_moved, type, field,
            "moved from id " + std::to_string(id) + " to id " +
                std::to_string(same_name->second->id()));
        continue;  // whatever holds its old id now is reported on its own
      }
      auto it = new_ids.find(id);
      // Gone, or its id now holds another old field that moved there.
      if (it == new_ids.end() || (it->second->name()->string_view() != of->name()->string_view() &&
                                  old_names.count(it->second->name()->string_view()) != 0)) {
        add(rule::field_removed, type, field,
            "removed (id " + std::to_string(id) + " is now free for reuse); deprecate it instead");
        continue;
      }
      const auto* nf = it->second;
      const bool renamed = of->name()->string_view() != nf->name()->string_view();
      if (renamed && of->deprecated() && !nf->deprecated()) {
        add(rule::field_id_reused, type, nf->name()->str(),
            "id " + std::to_string(id) + " of deprecated field " + field + " (" +
                old_.type_name(*of->type()) + ") reused by " + nf->name()->str() + " (" +
                new_.type_name(*nf->type()) + ")");
        continue;
      }
      check_field(type, *of, *nf, renamed);
    }
    // New fields: harmless unless data written without them stops verifying.
    for (const auto& [id, nf] : new_ids) {
      if (old_ids.count(id) != 0 || !nf->required() || nf->deprecated()) continue;
      if (old_names.count(nf->name()->string_view()) != 0) continue;  // moved
      add(rule::field_made_required, type, nf->name()->str(),
          "added as required: data written with the old schema lacks it");
    }
  }

  void check_field(const std::string& type, const reflection::Field& of,
                   const reflection::Field& nf, bool renamed) {
    const auto field = of.name()->str();
    if (!same_type(old_, *of.type(), new_, *nf.type())) {
      add(rule::field_type_changed, type, field,
          "type changed from " + type_change(*of.type(), *nf.type()) +
              (renamed ? " (and renamed to " + nf.name()->str() + ")" : ""));
      return;
    }
    if (renamed) {
      add(rule::field_renamed, type, field,
          "renamed to " + nf.name()->str() + " (same id " + std::to_string(of.id()) +
              " and type): wire-compatible, breaks JSON");
    }
    const bool old_required = of.required() && !of.deprecated();
    const bool new_required = nf.required() && !nf.deprecated();
    if (!old_required && new_required) {
      add(rule::field_made_required, type, field,
          "made required: data written without it no longer verifies");
    } else if (old_required && !new_required) {
      add(rule::field_no_longer_required, type, field,
          std::string(nf.required() ? "required field deprecated" : "no longer required") +
              ": readers with the old schema reject data without it");
    }
    if (is_scalar(of.type()->base_type()) &&
        (of.optional() != nf.optional() || of.default_integer() != nf.default_integer() ||
         of.default_real() != nf.default_real())) {
      add(rule::default_changed, type, field,
          "default changed from " + default_text(of) + " to " + default_text(nf));
    }
  }

  // A union field `u` comes with a hidden `u_type` field at the id before it;
  // a change to the union field shows up on both. Report it once, on `u`.
  void drop_union_tag_twins(const reflection::Object& o, std::size_t first) {
    const auto old_ids = by_id(o);
    std::set<std::pair<std::string, rule>> on_union;
    for (auto i = first; i < out_.size(); ++i) {
      for (const auto& [id, f] : old_ids) {
        auto base = f->type()->base_type();
        if (base == reflection::Vector) base = f->type()->element();
        if (base == reflection::Union && f->name()->str() == out_[i].field) {
          on_union.emplace(out_[i].field + "_type", out_[i].what);
        }
      }
    }
    auto twin = [&](const finding& f) { return on_union.count({f.field, f.what}) != 0; };
    out_.erase(std::remove_if(out_.begin() + static_cast<std::ptrdiff_t>(first), out_.end(), twin),
               out_.end());
  }

  void check_enum(const reflection::Enum& e) {
    const auto type = e.name()->str();
    const auto* n = new_.enumeration(e.name()->string_view());
    if (n == nullptr) {
      if (const auto* o = new_.object(e.name()->string_view()); o != nullptr) {
        add(rule::type_kind_changed, type, "",
            std::string("changed from ") + (e.is_union() ? "union" : "enum") + " to " +
                (o->is_struct() ? "struct" : "table"));
      }
      return;
    }
    if (e.is_union() != n->is_union()) {
      add(rule::type_kind_changed, type, "",
          std::string("changed from ") + (e.is_union() ? "union to enum" : "enum to union"));
      return;
    }
    if (e.is_union()) {
      check_union(e, *n);
      return;
    }
    const auto old_base = e.underlying_type()->base_type();
    const auto new_base = n->underlying_type()->base_type();
    if (old_base != new_base) {
      add(rule::enum_underlying_type_changed, type, "",
          "underlying type changed from " + std::string(scalar_name(old_base)) + " to " +
              std::string(scalar_name(new_base)));
    }
    std::map<std::string_view, std::int64_t> new_by_name;
    std::map<std::int64_t, std::string_view> new_by_value;
    std::map<std::string_view, std::int64_t> old_by_name;
    std::map<std::int64_t, std::string_view> old_by_value;
    for (const auto* v : *n->values()) {
      new_by_name.emplace(v->name()->string_view(), v->value());
      new_by_value.emplace(v->value(), v->name()->string_view());
    }
    for (const auto* v : *e.values()) {
      old_by_name.emplace(v->name()->string_view(), v->value());
      old_by_value.emplace(v->value(), v->name()->string_view());
    }
    for (const auto* v : *e.values()) {
      const auto name = v->name()->str();
      const auto value = std::to_string(v->value());
      if (auto it = new_by_name.find(v->name()->string_view()); it != new_by_name.end()) {
        if (it->second != v->value()) {
          add(rule::enum_value_renumbered, type, name,
              "value " + name + " renumbered from " + value + " to " + std::to_string(it->second));
        }
      } else if (auto same = new_by_value.find(v->value());
                 same != new_by_value.end() && old_by_name.count(same->second) == 0) {
        add(rule::enum_value_renamed, type, name,
            "value " + value + " renamed from " + name + " to " + std::string(same->second) +
                ": wire-compatible, breaks JSON");
      } else {
        add(rule::enum_value_removed, type, name,
            "value " + name + " (" + value +
                ") removed: data written with the old schema may hold it");
      }
    }
    for (const auto* v : *n->values()) {
      if (old_by_name.count(v->name()->string_view()) != 0) continue;
      auto same = old_by_value.find(v->value());
      if (same != old_by_value.end() && new_by_name.count(same->second) == 0) continue;  // renamed
      add(rule::enum_value_added, type, v->name()->str(),
          "value " + v->name()->str() + " (" + std::to_string(v->value()) +
              ") added: readers with the old schema do not know it");
    }
  }

  // Union members are matched by the type they carry: tag -> type name.
  void check_union(const reflection::Enum& e, const reflection::Enum& n) {
    const auto type = e.name()->str();
    struct member {
      std::string name;
      std::string type;
    };
    auto members = [](const view& v, const reflection::Enum& u) {
      std::map<std::int64_t, member> out;
      for (const auto* m : *u.values()) {
        if (m->value() == 0) continue;  // NONE
        out.emplace(m->value(), member{m->name()->str(), v.type_name(*m->union_type())});
      }
      return out;
    };
    const auto olds = members(old_, e);
    const auto news = members(new_, n);
    auto tag_of = [](const std::map<std::int64_t, member>& ms, const std::string& t) {
      for (const auto& [tag, m] : ms) {
        if (m.type == t) return tag;
      }
      return std::int64_t{-1};
    };
    for (const auto& [tag, m] : olds) {
      if (auto it = news.find(tag); it != news.end()) {
        if (it->second.type != m.type) {
          add(rule::union_member_reordered, type, m.name,
              "tag " + std::to_string(tag) + " now carries " + it->second.type + " instead of " +
                  m.type);
        } else if (it->second.name != m.name) {
          add(rule::enum_value_renamed, type, m.name,
              "member " + std::to_string(tag) + " renamed from " + m.name + " to " +
                  it->second.name + ": wire-compatible, breaks JSON");
        }
      } else if (auto moved = tag_of(news, m.type); moved >= 0) {
        add(rule::union_member_reordered, type, m.name,
            "member " + m.type + " moved from tag " + std::to_string(tag) + " to tag " +
                std::to_string(moved));
      } else {
        add(rule::union_member_removed, type, m.name,
            "member " + m.type + " (" + std::to_string(tag) +
                ") removed: data written with the old schema may hold it");
      }
    }
    for (const auto& [tag, m] : news) {
      if (olds.count(tag) != 0 || tag_of(olds, m.type) >= 0) continue;
      add(rule::union_member_added, type, m.name,
          "member " + m.type + " (" + std::to_string(tag) +
              ") added: readers with the old schema do not know it");
    }
  }

  view old_;
  view new_;
  std::vector<finding> out_;
};

constexpr std::array<std::string_view, 7> mode_names = {
    "NONE", "BACKWARD",       "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL", "FULL_TRANSITIVE"};

}  // namespace

std::string_view to_string(mode m) noexcept {
  const auto i = static_cast<std::size_t>(m);
  return i < mode_names.size() ? mode_names[i] : std::string_view("UNKNOWN");
}

std::optional<mode> parse_mode(std::string_view text) noexcept {
  for (std::size_t i = 0; i < mode_names.size(); ++i) {
    const auto name = mode_names[i];
    if (name.size() != text.size()) continue;
    bool equal = true;
    for (std::size_t j = 0; j < name.size() && equal; ++j) {
      const char c = text[j] == '-' ? '_' : text[j];
      equal = std::toupper(static_cast<unsigned char>(c)) == name[j];
    }
    if (equal) return static_cast<mode>(i);
  }
  return std::nullopt;
}

bool checks_backward(mode m) noexcept {
  return m == mode::backward || m == mode::backward_transitive || m == mode::full ||
         m == mode::full_transitive;
}

bool checks_forward(mode m) noexcept {
  return m == mode::forward || m == mode::forward_transitive || m == mode::full ||
         m == mode::full_transitive;
}

bool is_transitive(mode m) noexcept {
  return m == mode::backward_transitive || m == mode::forward_transitive ||
         m == mode::full_transitive;
}

std::string_view to_string(rule r) noexcept {
  switch (r) {
    case rule::root_type_changed:
      return "root_type_changed";
    case rule::file_identifier_changed:
      return "file_identifier_changed";
    case rule::field_removed:
      return "field_removed";
    case rule::field_type_changed:
      return "field_type_changed";
    case rule::field_moved:
      return "field_moved";
    case rule::field_id_reused:
      return "field_id_reused";
    case rule::field_made_required:
      return "field_made_required";
    case rule::field_no_longer_required:
      return "field_no_longer_required";
    case rule::default_changed:
      return "default_changed";
    case rule::field_renamed:
      return "field_renamed";
    case rule::enum_value_removed:
      return "enum_value_removed";
    case rule::enum_value_renumbered:
      return "enum_value_renumbered";
    case rule::enum_value_added:
      return "enum_value_added";
    case rule::enum_value_renamed:
      return "enum_value_renamed";
    case rule::enum_underlying_type_changed:
      return "enum_underlying_type_changed";
    case rule::union_member_removed:
      return "union_member_removed";
    case rule::union_member_reordered:
      return "union_member_reordered";
    case rule::union_member_added:
      return "union_member_added";
    case rule::struct_changed:
      return "struct_changed";
    case rule::type_kind_changed:
      return "type_kind_changed";
  }
  return "unknown";
}

result<std::vector<finding>> compare(std::string_view older_bfbs, std::string_view newer_bfbs) {
  try {
    FERRY_TRY(auto older, details::checked_schema::load(older_bfbs, nullptr));
    FERRY_TRY(auto newer, details::checked_schema::load(newer_bfbs, nullptr));
    return checker(older.get(), newer.get()).run();
  } catch (const std::exception&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::vector<finding> violations(const std::vector<finding>& findings, mode m) {
  std::vector<finding> out;
  if (m == mode::none) return out;
  for (const auto& f : findings) {
    if (f.breaks_evolution || (f.breaks_backward && checks_backward(m)) ||
        (f.breaks_forward && checks_forward(m))) {
      out.push_back(f);
    }
  }
  return out;
}

result<std::vector<finding>> reader_conflicts(std::string_view writer_bfbs,
                                              std::string_view reader_bfbs) {
  // compare(writer, reader) puts the reader in the "newer" seat whichever is
  // really newer: breaks_backward is exactly "the newer seat cannot read the
  // older seat's data", and every rule's direction is stated that way.
  FERRY_TRY(auto all, compare(writer_bfbs, reader_bfbs));
  std::vector<finding> out;
  for (auto& f : all) {
    if (f.breaks_backward) out.push_back(std::move(f));
  }
  return out;
}

std::string format(const finding& f) {
  std::string out = f.is_warning() ? "warning: " : "error: ";
  out += f.type;
  if (!f.field.empty()) out += "." + f.field;
  out += ": " + f.message;
  if (!f.is_warning()) {
    std::string what;
    auto add = [&](bool on, std::string_view word) {
      if (!on) return;
      if (!what.empty()) what += ", ";
      what += word;
    };
    add(f.breaks_backward, "backward");
    add(f.breaks_forward, "forward");
    add(f.breaks_evolution, "evolution");
    out += " (breaks " + what + ")";
  }
  out += " [" + std::string(to_string(f.what)) + "]";
  return out;
}

}  // namespace ferry::schema
