// ferry schema register | list | show | mode | check | enforce
// (docs/schemas.md). A .fbs given on the command line is compiled here, by
// libflatbuffers' parser, into a binary schema; the broker stores both.
#include "ferry/schema/schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <iostream>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/errc.h"

namespace ferry::cli {

namespace {

bool is_default_word(std::string_view s) {
  constexpr std::string_view kDefault = "default";
  return s.size() == kDefault.size() &&
         std::equal(s.begin(), s.end(), kDefault.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

std::string mode_name(const std::optional<schema::mode>& m) {
  return m ? std::string(schema::to_string(*m)) : std::string("DEFAULT");
}

// Compiles FILE.fbs; prints the parser's diagnostics on failure.
std::optional<schema::compiled_schema> compile(const std::string& file,
                                               const std::vector<std::string>& includes) {
  std::vector<std::filesystem::path> dirs(includes.begin(), includes.end());
  std::string diagnostics;
  auto c = schema::compile_file(file, dirs, &diagnostics);
  if (!c) {
    std::cerr << fmt::format("error: cannot compile {}: {}\n", file,
                             diagnostics.empty() ? c.error().message() : diagnostics);
    if (c.error() == schema::errc::no_root_type)
      std::cerr << "A contract needs a root type: add `root_type YourTable;` to the schema.\n";
    return std::nullopt;
  }
  return std::move(c).value();
}

nlohmann::json finding_json(const client::schema_finding& f) {
  return {{"rule", f.rule},       {"type", f.type},       {"field", f.field},
          {"message", f.message}, {"warning", f.warning}, {"against_version", f.against_version}};
}

client::schema_finding from_local(const schema::finding& f) {
  return {std::string(schema::to_string(f.what)), f.type, f.field, f.message, 0, f.is_warning()};
}

// "  error  OrderPlaced.total_cents  type changed from int to long  [field_type_changed, v1]"
void print_findings(const std::vector<client::schema_finding>& fs) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : fs) {
    auto where = f.field.empty() ? f.type : f.type + "." + f.field;
    rows.push_back({f.warning ? "warning" : "error", where, f.message,
                    f.against_version > 0 ? fmt::format("v{}", f.against_version) : "-", f.rule});
  }
  print_table({"SEVERITY", "WHERE", "WHAT", "AGAINST", "RULE"}, rows);
}

}  // namespace

int schema_register(const globals& g, const schema_args& a) {
  auto c = compile(a.file, a.includes);
  if (!c) return kFailed;
  client::admin adm(g.client());
  std::vector<client::schema_finding> violations;
  auto r = adm.register_schema(a.subject, c->bfbs, c->source,
                               client::schema_action::register_schema, &violations);
  if (!r) {
    if (r.error() == client::errc::incompatible_schema) {
      if (g.json()) {
        auto arr = nlohmann::json::array();
        for (const auto& f : violations) arr.push_back(finding_json(f));
        print_json({{"subject", a.subject},
                    {"registered", false},
                    {"message", adm.last_error_message()},
                    {"violations", arr}});
      } else {
        std::cerr << fmt::format("error: {} refused: {}\n", a.file, adm.last_error_message());
        print_findings(violations);
        std::cerr << fmt::format(
            "Evolve the schema without these changes (docs/schemas.md), or change the subject's "
            "mode with: ferry schema mode {} MODE\n",
            a.subject);
      }
      return kRefused;
    }
    return report("cannot register " + a.file + " under " + a.subject, r.error(),
                  adm.last_error_message());
  }
  const auto& x = r.value();
  if (g.json()) {
    print_json({{"subject", a.subject},
                {"id", x.id},
                {"version", x.version},
                {"created", x.created},
                {"root_type", c->root_type},
                {"mode", schema::to_string(x.mode)}});
  } else if (x.created) {
    std::cout << fmt::format("registered {} version {} (schema id {}, {}; checked {})\n", a.subject,
                             x.version, x.id, c->root_type, schema::to_string(x.mode));
  } else {
    std::cout << fmt::format("already registered: {} version {} (schema id {})\n", a.subject,
                             x.version, x.id);
  }
  return kOk;
}

int schema_list(const globals& g) {
  client::admin adm(g.client());
  auto r = adm.list_subjects();
  if (!r) return report("cannot list schema subjects", r.error(), adm.last_error_message());
  const auto& l = r.value();
  if (g.json()) {
    auto arr = nlohmann::json::array();
    for (const auto& s : l.subjects) {
      auto vs = nlohmann::json::array();
      for (const auto& v : s.versions)
        vs.push_back({{"version", v.version},
                      {"id", v.id},
                      {"root_type", v.root_type},
                      {"registered", format_iso8601(v.registered)}});
      arr.push_back({{"subject", s.subject},
                     {"mode", mode_name(s.mode)},
                     {"effective_mode", schema::to_string(s.mode.value_or(l.default_mode))},
                     {"versions", vs}});
    }
    print_json({{"default_mode", schema::to_string(l.default_mode)}, {"subjects", arr}});
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : l.subjects) {
    const auto* latest = s.versions.empty() ? nullptr : &s.versions.back();
    rows.push_back({s.subject,
                    s.mode ? std::string(schema::to_string(*s.mode))
                           : fmt::format("{} (default)", schema::to_string(l.default_mode)),
                    std::to_string(s.versions.size()),
                    latest ? std::to_string(latest->version) : "-",
                    latest ? std::to_string(latest->id) : "-", latest ? latest->root_type : "-"});
  }
  print_table({"SUBJECT", "MODE", "VERSIONS", "LATEST", "ID", "ROOT-TYPE"}, rows);
  return kOk;
}

int schema_show(const globals& g, const schema_args& a) {
  client::admin adm(g.client());
  auto r = a.id ? adm.get_schema(*a.id) : adm.get_schema(a.subject, a.version.value_or(-1));
  const auto what = a.id ? fmt::format("schema id {}", *a.id)
                         : fmt::format("{} version {}", a.subject,
                                       a.version ? std::to_string(*a.version) : "latest");
  if (!r) return report("cannot show " + what, r.error(), adm.last_error_message());
  const auto& s = r.value();
  if (g.json()) {
    print_json({{"subject", s.subject},
                {"version", s.version},
                {"id", s.id},
                {"root_type", s.root_type},
                {"file_identifier", schema::file_identifier(s.bfbs)},
                {"registered", format_iso8601(s.registered)},
                {"bfbs_bytes", s.bfbs.size()},
                {"source", s.source}});
    return kOk;
  }
  std::cout << fmt::format("subject {} version {}: schema id {}, root type {}, registered {}\n",
                           s.subject, s.version, s.id, s.root_type, format_iso8601(s.registered));
  std::cout << (s.source.empty() ? "(registered without source text)\n" : s.source);
  if (!s.source.empty() && s.source.back() != '\n') std::cout << "\n";
  return kOk;
}

int schema_mode(const globals& g, const schema_args& a) {
  client::admin adm(g.client());
  if (!a.mode) {
    auto r = adm.list_subjects();
    if (!r)
      return report("cannot read the mode of " + a.subject, r.error(), adm.last_error_message());
    std::optional<schema::mode> own;
    for (const auto& s : r.value().subjects)
      if (s.subject == a.subject) own = s.mode;
    const auto effective = own.value_or(r.value().default_mode);
    if (g.json())
      print_json({{"subject", a.subject},
                  {"mode", mode_name(own)},
                  {"effective_mode", schema::to_string(effective)}});
    else
      std::cout << fmt::format("{}: {}{}\n", a.subject, schema::to_string(effective),
                               own ? "" : " (the broker's default)");
    return kOk;
  }
  std::optional<schema::mode> m;
  if (!is_default_word(*a.mode)) {
    m = schema::parse_mode(*a.mode);
    if (!m) {
      std::cerr << fmt::format(
          "error: unknown mode {}: use NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, "
          "FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE or DEFAULT (the broker's)\n",
          *a.mode);
      return kUsage;
    }
  }
  if (auto r = adm.set_compatibility(a.subject, m); !r)
    return report("cannot set the mode of " + a.subject, r.error(), adm.last_error_message());
  if (g.json())
    print_json({{"subject", a.subject}, {"mode", mode_name(m)}});
  else
    std::cout << fmt::format("{}: compatibility {}\n", a.subject, mode_name(m));
  return kOk;
}

int schema_check(const globals& g, const schema_args& a) {
  auto c = compile(a.file, a.includes);
  if (!c) return kFailed;
  std::vector<client::schema_finding> findings;
  std::string against;
  std::string mode_text;
  bool compatible = true;
  if (a.against) {
    // Offline: two files, no broker.
    auto old = compile(*a.against, a.includes);
    if (!old) return kFailed;
    const auto m = a.mode ? schema::parse_mode(*a.mode) : schema::mode::backward;
    if (!m) {
      std::cerr << fmt::format("error: unknown mode {}\n", *a.mode);
      return kUsage;
    }
    auto found = schema::compare(old->bfbs, c->bfbs);
    if (!found) {
      std::cerr << fmt::format("error: comparing failed: {}\n", found.error().message());
      return kFailed;
    }
    auto bad = schema::violations(found.value(), *m);
    compatible = bad.empty();
    for (const auto& f : bad) findings.push_back(from_local(f));
    for (const auto& f : found.value())
      if (f.is_warning()) findings.push_back(from_local(f));
    against = *a.against;
    mode_text = std::string(schema::to_string(*m));
  } else {
    client::admin adm(g.client());
    std::vector<client::schema_finding> violations;
    auto r = adm.register_schema(a.subject, c->bfbs, c->source, client::schema_action::check,
                                 &violations);
    if (!r && r.error() != client::errc::incompatible_schema)
      return report("cannot check " + a.file + " against " + a.subject, r.error(),
                    adm.last_error_message());
    compatible = r.has_value();
    findings = compatible ? r.value().findings : violations;
    against = "subject " + a.subject;
    if (compatible) mode_text = std::string(schema::to_string(r.value().mode));
    if (!compatible) mode_text = adm.last_error_message();
  }
  std::size_t errors = 0, warnings = 0;
  for (const auto& f : findings) (f.warning ? warnings : errors)++;
  if (g.json()) {
    auto arr = nlohmann::json::array();
    for (const auto& f : findings) arr.push_back(finding_json(f));
    print_json({{"file", a.file},
                {"against", against},
                {"compatible", compatible},
                {"mode", mode_text},
                {"violations", errors},
                {"warnings", warnings},
                {"findings", arr}});
  } else {
    if (compatible)
      std::cout << fmt::format("{}: compatible with {} ({}){}\n", a.file, against, mode_text,
                               warnings ? fmt::format(", {} warning(s)", warnings) : "");
    else
      std::cout << (a.against
                        ? fmt::format("{}: NOT compatible with {}: {} violation(s) under {}\n",
                                      a.file, against, errors, mode_text)
                        : fmt::format("{}: NOT compatible: {}\n", a.file, mode_text));
    if (!findings.empty()) print_findings(findings);
  }
  return compatible ? kOk : kRefused;
}

int schema_enforce(const globals& g, const schema_args& a) {
  client::admin adm(g.client());
  if (auto r = adm.set_topic_schema(a.topic, a.subject, !a.off); !r)
    return report("cannot set schema validation of topic " + a.topic, r.error(),
                  adm.last_error_message());
  const auto subject = a.subject.empty() ? a.topic + "-value" : a.subject;
  if (g.json())
    print_json({{"topic", a.topic}, {"subject", subject}, {"validation", !a.off}});
  else if (a.off)
    std::cout << fmt::format("topic {}: schema validation off (subject {})\n", a.topic, subject);
  else
    std::cout << fmt::format(
        "topic {}: accepts only records whose {} header names a version of {}\n", a.topic,
        "ferry.schema-id", subject);
  return kOk;
}

}  // namespace ferry::cli
