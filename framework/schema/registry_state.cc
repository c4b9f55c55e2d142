#include "ferry/schema/registry_state.h"

#include <fmt/format.h>

#include <algorithm>

namespace ferry::schema {

decision registry_state::decide(std::string_view subject_name, std::string_view bfbs,
                                registry_action action, mode default_mode) const {
  decision out;
  std::string why;
  if (auto v = validate_binary(bfbs, &why); !v) {
    out.error = refusal::invalid_schema;
    out.message = fmt::format(
        "not a FlatBuffers binary schema ({}); compile the .fbs with "
        "`flatc --binary --schema` or use `ferry schema register`",
        why);
    return out;
  }
  const auto* subj = subject(subject_name);
  const auto m = subj && subj->own_mode ? *subj->own_mode : default_mode;
  out.applied = m;

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
  if (action == registry_action::check && (subj == nullptr || subj->versions.empty())) {
    // A dry run against nothing must not pass a CI gate with a misspelt subject.
    out.error = refusal::unknown_subject;
    out.message = fmt::format(
        "subject {} has no versions, so there is nothing to check against; register the first "
        "one with: ferry schema register {} FILE.fbs",
        subject_name, subject_name);
    return out;
  }
  if (action == registry_action::lookup) {
    out.error = subj ? refusal::unknown_schema : refusal::unknown_subject;
    out.message =
        subj ? fmt::format("subject {} has no version identical to this schema", subject_name)
             : fmt::format("unknown subject {}", subject_name);
    return out;
  }

  // Compatibility against the latest version, or all of them (transitive).
  if (subj != nullptr && !subj->versions.empty() && m != mode::none) {
    std::vector<const subject_version*> against;
    if (is_transitive(m)) {
      for (const auto& v : subj->versions) against.push_back(&v);
    } else {
      against.push_back(&subj->versions.back());
    }
    for (const auto* v : against) {
      const auto& older = schemas_.at(v->id).bfbs;
      auto found = compare(older, bfbs);
      if (!found) {
        out.error = refusal::internal;
        out.message = fmt::format("comparing with version {} failed: {}", v->version,
                                  found.error().message());
        return out;
      }
      auto bad = violations(found.value(), m);
      for (auto& f : bad) out.findings.push_back({std::move(f), v->version});
      // A dry run also reports what does not count against the mode
      // (warnings such as renames), against the latest version only.
      if (action == registry_action::check && v == &subj->versions.back())
        for (auto& f : found.value())
          if (f.is_warning()) out.findings.push_back({std::move(f), v->version});
    }
    const bool refused = std::any_of(out.findings.begin(), out.findings.end(),
                                     [](const registry_finding& f) { return !f.f.is_warning(); });
    if (refused) {
      std::size_t n = 0;
      for (const auto& f : out.findings) n += f.f.is_warning() ? 0u : 1u;
      out.error = refusal::incompatible;
      out.message = fmt::format("schema is not {} compatible with subject {}: {} violation{}",
                                to_string(m), subject_name, n, n == 1 ? "" : "s");
      return out;
    }
  }
  if (action == registry_action::check) return out;
  out.create = true;
  out.new_id = known == by_bytes_.end();
  out.id = out.new_id ? next_id_ : known->second;
  out.version = subj && !subj->versions.empty() ? subj->versions.back().version + 1 : 1;
  return out;
}

void registry_state::add_version(std::string_view subject_name, std::int32_t version,
                                 std::int64_t id, std::string_view bfbs, std::string_view source,
                                 std::int64_t registered_ms) {
  if (!bfbs.empty() && !schemas_.count(id)) {
    stored_schema s;
    s.id = id;
    s.bfbs = std::string(bfbs);
    s.source = std::string(source);
    s.root_type = root_type_name(s.bfbs);
    s.subject = std::string(subject_name);
    s.version = version;
    s.registered_ms = registered_ms;
    auto& stored = schemas_[id] = std::move(s);
    by_bytes_[stored.bfbs] = id;
  }
  next_id_ = std::max(next_id_, id + 1);
  auto it = subjects_.find(subject_name);
  if (it == subjects_.end())
    it = subjects_.emplace(std::string(subject_name), subject_state{}).first;
  it->second.versions.push_back({version, id, registered_ms});
  it->second.ids.insert(id);
}

void registry_state::set_mode(std::string_view subject_name, std::optional<mode> m) {
  auto it = subjects_.find(subject_name);
  if (it == subjects_.end())
    it = subjects_.emplace(std::string(subject_name), subject_state{}).first;
  it->second.own_mode = m;
}

const stored_schema* registry_state::by_id(std::int64_t id) const {
  auto it = schemas_.find(id);
  return it == schemas_.end() ? nullptr : &it->second;
}

const stored_schema* registry_state::by_subject(std::string_view name, std::int32_t version,
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

const subject_state* registry_state::subject(std::string_view name) const {
  auto it = subjects_.find(name);
  return it == subjects_.end() ? nullptr : &it->second;
}

bool registry_state::registered_under(std::string_view name, std::int64_t id) const {
  const auto* s = subject(name);
  return s != nullptr && s->ids.count(id) > 0;
}

}  // namespace ferry::schema
