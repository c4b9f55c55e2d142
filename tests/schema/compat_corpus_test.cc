// The compatibility corpus: tests/schema/corpus/NN_name/{old,new}.fbs and
// expect.txt. Each case is compiled with compile_file() and compared; the
// verdict of every mode, the rules found and (for the documented cases) the
// exact printed line must match expect.txt. Each case also goes through the
// real `flatc --conform old.fbs new.fbs`: whatever flatc rejects, our FULL
// mode must reject too, and expect.txt records flatc's answer so
// docs/schemas.md can list where we are stricter.
//
// expect.txt, one directive per line ('#' starts a comment):
//   NONE|BACKWARD|FORWARD|FULL ok|fail   verdict of that mode (all four needed;
//                                        the _TRANSITIVE modes must agree with
//                                        theirs for a single pair)
//   rules r1 r2 ...                      the error rules, as a multiset
//   warn r1 ...                          the warning rules, as a multiset
//   flatc accepts|rejects                flatc 2.0.8's --conform answer
//   line <text>                          format() prints exactly this for one finding
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ferry/schema/schema.h"

namespace fs = std::filesystem;
namespace sc = ferry::schema;

namespace {

const fs::path corpus_dir{FERRY_SCHEMA_CORPUS};

struct expectation {
  std::map<std::string, bool> ok;  // mode name -> accepted
  std::vector<std::string> rules;
  std::vector<std::string> warnings;
  std::optional<bool> flatc_rejects;
  std::vector<std::string> lines;
  std::vector<std::string> problems;  // malformed directives
};

std::vector<std::string> words(std::istringstream& in) {
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

expectation read_expectation(const fs::path& file) {
  expectation e;
  std::ifstream in(file);
  if (!in) e.problems.push_back("cannot open " + file.string());
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "NONE" || key == "BACKWARD" || key == "FORWARD" || key == "FULL") {
      std::string v;
      ls >> v;
      if (v != "ok" && v != "fail") e.problems.push_back("bad verdict: " + line);
      e.ok[key] = v == "ok";
    } else if (key == "rules") {
      auto w = words(ls);
      e.rules.insert(e.rules.end(), w.begin(), w.end());
    } else if (key == "warn") {
      auto w = words(ls);
      e.warnings.insert(e.warnings.end(), w.begin(), w.end());
    } else if (key == "flatc") {
      std::string v;
      ls >> v;
      if (v != "accepts" && v != "rejects") e.problems.push_back("bad flatc answer: " + line);
      e.flatc_rejects = v == "rejects";
    } else if (key == "line") {
      e.lines.push_back(line.substr(5));
    } else {
      e.problems.push_back("unknown directive: " + line);
    }
  }
  for (const char* m : {"NONE", "BACKWARD", "FORWARD", "FULL"}) {
    if (e.ok.count(m) == 0) e.problems.push_back(std::string("no verdict for ") + m);
  }
  if (!e.flatc_rejects) e.problems.push_back("no flatc line");
  return e;
}

std::vector<std::string> case_names() {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(corpus_dir)) {
    if (entry.is_directory()) out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct command_result {
  int status = -1;
  std::string output;
};

// Runs a shell command, stdout and stderr together.
command_result run(const std::string& command) {
  command_result r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.output += buf;
  const int raw = ::pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

bool flatc_is_2_0_8() {
  static const bool yes =
      run(std::string(FERRY_FLATC) + " --version").output.find("2.0.8") != std::string::npos;
  return yes;
}

// `flatc --conform old.fbs new.fbs` in a scratch directory (flatc writes no
// files without a generator flag, but the corpus stays untouched either way).
// nullopt when flatc failed for another reason than non-conformance.
std::optional<bool> flatc_rejects(const std::string& name, std::string* output) {
  const fs::path dir = fs::temp_directory_path() /
                       ("ferry_schema_conform_" + std::to_string(::getpid()) + "_" + name);
  fs::create_directories(dir);
  fs::copy_file(corpus_dir / name / "old.fbs", dir / "old.fbs",
                fs::copy_options::overwrite_existing);
  fs::copy_file(corpus_dir / name / "new.fbs", dir / "new.fbs",
                fs::copy_options::overwrite_existing);
  const auto r = run("cd '" + dir.string() + "' && " + FERRY_FLATC + " --conform old.fbs new.fbs");
  fs::remove_all(dir);
  *output = r.output;
  if (r.status == 0) return false;
  if (r.output.find("schemas don't conform") != std::string::npos) return true;
  return std::nullopt;
}

struct compared {
  std::vector<sc::finding> findings;
  std::string error;  // non-empty when a schema did not compile
};

compared compare_case(const std::string& name) {
  compared c;
  std::string diag;
  auto older = sc::compile_file(corpus_dir / name / "old.fbs", {}, &diag);
  if (!older) {
    c.error = "old.fbs: " + diag;
    return c;
  }
  auto newer = sc::compile_file(corpus_dir / name / "new.fbs", {}, &diag);
  if (!newer) {
    c.error = "new.fbs: " + diag;
    return c;
  }
  auto findings = sc::compare(older.value().bfbs, newer.value().bfbs);
  if (!findings) {
    c.error = "compare: " + findings.error().message();
    return c;
  }
  c.findings = std::move(findings).value();
  return c;
}

std::string describe(const std::vector<sc::finding>& findings) {
  std::string out;
  for (const auto& f : findings) out += "\n  " + sc::format(f);
  return out.empty() ? " (none)" : out;
}

class CompatCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(CompatCorpus, VerdictsRulesAndMessagesMatchExpectations) {
  const auto& name = GetParam();
  const auto e = read_expectation(corpus_dir / name / "expect.txt");
  for (const auto& p : e.problems) ADD_FAILURE() << "expect.txt: " << p;
  const auto c = compare_case(name);
  ASSERT_TRUE(c.error.empty()) << c.error;
  SCOPED_TRACE("findings:" + describe(c.findings));

  const std::pair<sc::mode, const char*> modes[] = {
      {sc::mode::none, "NONE"},
      {sc::mode::backward, "BACKWARD"},
      {sc::mode::backward_transitive, "BACKWARD"},
      {sc::mode::forward, "FORWARD"},
      {sc::mode::forward_transitive, "FORWARD"},
      {sc::mode::full, "FULL"},
      {sc::mode::full_transitive, "FULL"},
  };
  for (const auto& [m, expected_as] : modes) {
    const bool ok = sc::violations(c.findings, m).empty();
    EXPECT_EQ(ok, e.ok.at(expected_as)) << sc::to_string(m);
  }

  std::vector<std::string> errors;
  std::vector<std::string> warnings;
  bool warning_seen = false;
  for (const auto& f : c.findings) {
    (f.is_warning() ? warnings : errors).emplace_back(sc::to_string(f.what));
    EXPECT_FALSE(warning_seen && !f.is_warning()) << "an error after a warning";
    warning_seen = warning_seen || f.is_warning();
  }
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(errors), sorted(e.rules));
  EXPECT_EQ(sorted(warnings), sorted(e.warnings));

  for (const auto& line : e.lines) {
    const bool printed = std::any_of(c.findings.begin(), c.findings.end(),
                                     [&](const sc::finding& f) { return sc::format(f) == line; });
    EXPECT_TRUE(printed) << "no finding prints as:\n  " << line;
  }
}

TEST_P(CompatCorpus, RejectsWhateverFlatcConformRejects) {
  const auto& name = GetParam();
  const auto e = read_expectation(corpus_dir / name / "expect.txt");
  std::string output;
  const auto rejects = flatc_rejects(name, &output);
  ASSERT_TRUE(rejects.has_value()) << "flatc failed:\n" << output;
  const auto c = compare_case(name);
  ASSERT_TRUE(c.error.empty()) << c.error;
  const bool full_ok = sc::violations(c.findings, sc::mode::full).empty();
  if (*rejects) {
    EXPECT_FALSE(full_ok) << "flatc --conform rejects, FULL accepts:\n" << output;
  }
  RecordProperty("flatc_conform", *rejects ? "rejects" : "accepts");
  RecordProperty("ferry_full", full_ok ? "ok" : "fail");
  // expect.txt records flatc 2.0.8's answer (docs/schemas.md lists the cases
  // it accepts and we reject); another flatc may answer differently.
  if (flatc_is_2_0_8() && e.flatc_rejects) {
    EXPECT_EQ(*rejects, *e.flatc_rejects) << output;
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, CompatCorpus, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return "case" + param.param;
                         });

// Where we are stricter than flatc --conform, printed and compared with the
// list in docs/schemas.md (the known gaps of flatc 2.0.8, flatbuffers PRs 7530
// and 9215, and additions that are only forward-incompatible).
TEST(CompatCorpusSummary, StricterThanFlatcConformOnKnownGaps) {
  std::vector<std::string> stricter;
  std::vector<std::string> flatc_only;
  for (const auto& name : case_names()) {
    std::string output;
    const auto rejects = flatc_rejects(name, &output);
    ASSERT_TRUE(rejects.has_value()) << name << ": flatc failed:\n" << output;
    const auto c = compare_case(name);
    ASSERT_TRUE(c.error.empty()) << name << ": " << c.error;
    const bool full_ok = sc::violations(c.findings, sc::mode::full).empty();
    if (!*rejects && !full_ok) stricter.push_back(name);
    if (*rejects && full_ok) flatc_only.push_back(name);
  }
  std::string table;
  for (const auto& n : stricter) table += "\n  " + n;
  std::printf("flatc --conform accepts, FULL rejects:%s\n", table.c_str());
  EXPECT_TRUE(flatc_only.empty());
  // docs/schemas.md lists exactly these.
  if (flatc_is_2_0_8()) {
    const std::vector<std::string> documented = {
        "04_enum_value_added",
        "05_union_member_added",
        "07_field_removed_at_end",
        "13_field_id_reused",
        "14_field_made_required",
        "15_field_no_longer_required",
        "16_required_field_deprecated",
        "20_enum_value_removed",
        "24_union_member_removed",
        "26_union_tag_given_to_another_type",
        "28_struct_field_added",
        "31_root_type_changed",
        "32_file_identifier_changed",
        "34_enum_in_vector_value_added",
        "35_deprecated_field_deleted",
        "38_new_required_field",
        "40_enum_in_table_inside_vector_of_unions",
    };
    EXPECT_EQ(stricter, documented);
  }
}

}  // namespace
