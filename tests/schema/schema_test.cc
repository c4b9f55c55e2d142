// Unit tests for ferry::schema: compiling, checking binary schemas,
// verifying and rendering payloads, reader conflicts, modes and format().
#include "ferry/schema/schema.h"

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;
namespace sc = ferry::schema;

namespace {

constexpr const char* kOrderV1 = R"(
namespace shop;
enum Currency : ubyte { USD, EUR }
table Order {
  id:ulong;
  customer:string;
  total_cents:int;
  currency:Currency;
}
root_type Order;
file_identifier "ORDR";
)";

// v1 plus a field at the end and an enum value: BACKWARD compatible.
constexpr const char* kOrderV2 = R"(
namespace shop;
enum Currency : ubyte { USD, EUR, CNY }
table Order {
  id:ulong;
  customer:string;
  total_cents:int;
  currency:Currency;
  note:string;
}
root_type Order;
file_identifier "ORDR";
)";

// v1 with customer required.
constexpr const char* kOrderRequired = R"(
namespace shop;
enum Currency : ubyte { USD, EUR }
table Order {
  id:ulong;
  customer:string (required);
  total_cents:int;
  currency:Currency;
}
root_type Order;
file_identifier "ORDR";
)";

// v1 with total_cents widened: incompatible either way.
constexpr const char* kOrderWide = R"(
namespace shop;
enum Currency : ubyte { USD, EUR }
table Order {
  id:ulong;
  customer:string;
  total_cents:long;
  currency:Currency;
}
root_type Order;
file_identifier "ORDR";
)";

std::string compile_or_die(const char* source) {
  std::string diag;
  auto r = sc::compile(source, "order.fbs", {}, &diag);
  EXPECT_TRUE(r) << diag;
  return r ? r.value().bfbs : std::string();
}

// A payload built the way flatc -b does: the Parser reads JSON against the schema.
std::vector<std::byte> payload_from_json(const char* schema, const std::string& json) {
  flatbuffers::Parser parser;
  EXPECT_TRUE(parser.Parse(schema)) << parser.error_;
  EXPECT_TRUE(parser.ParseJson(json.c_str())) << parser.error_;
  const auto* p = reinterpret_cast<const std::byte*>(parser.builder_.GetBufferPointer());
  return {p, p + parser.builder_.GetSize()};
}

struct temp_dir {
  fs::path path;
  explicit temp_dir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("ferry_schema_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  void write(const std::string& file, const std::string& text) const {
    fs::create_directories((path / file).parent_path());
    std::ofstream(path / file) << text;
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> rule_names(const std::vector<sc::finding>& findings) {
  std::set<std::string> out;
  for (const auto& f : findings) out.emplace(sc::to_string(f.what));
  return out;
}

// ---- compile -----------------------------------------------------------------

TEST(Compile, ParseErrorIsParseFailedWithFileAndLine) {
  std::string diag;
  auto r =
      sc::compile("namespace t;\ntable A { x:integer; }\nroot_type A;\n", "bad.fbs", {}, &diag);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), sc::errc::parse_failed);
  EXPECT_EQ(r.error().category().name(), std::string("ferry.schema"));
  EXPECT_NE(diag.find("bad.fbs:2"), std::string::npos) << diag;
}

TEST(Compile, MissingRootTypeIsNoRootType) {
  std::string diag;
  auto r = sc::compile("namespace t;\ntable A { x:int; }\n", "noroot.fbs", {}, &diag);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), sc::errc::no_root_type);
  EXPECT_NE(diag.find("noroot.fbs"), std::string::npos) << diag;
}

TEST(Compile, FillsRootTypeIdentifierAndSource) {
  auto r = sc::compile(kOrderV1, "order.fbs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().root_type, "shop.Order");
  EXPECT_EQ(r.value().file_identifier, "ORDR");
  EXPECT_EQ(r.value().source, kOrderV1);
  EXPECT_EQ(sc::root_type_name(r.value().bfbs), "shop.Order");
  EXPECT_EQ(sc::file_identifier(r.value().bfbs), "ORDR");
  EXPECT_TRUE(sc::validate_binary(r.value().bfbs));
}

TEST(Compile, NoFileIdentifierIsEmpty) {
  auto r = sc::compile("table A { x:int; }\nroot_type A;\n", "a.fbs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().file_identifier, "");
  EXPECT_EQ(sc::file_identifier(r.value().bfbs), "");
  EXPECT_EQ(r.value().root_type, "A");
}

TEST(Compile, IncludesAreFoundNextToTheFileAndInIncludeDirs) {
  temp_dir dir("includes");
  dir.write("common/money.fbs", "namespace shop;\nstruct Money { units:long; nanos:int; }\n");
  dir.write("main/order.fbs",
            "include \"money.fbs\";\nnamespace shop;\ntable Order { total:Money; }\n"
            "root_type Order;\n");
  dir.write("common/local.fbs",
            "include \"money.fbs\";\nnamespace shop;\ntable Local { total:Money; }\n"
            "root_type Local;\n");

  std::string diag;
  auto without = sc::compile_file(dir.path / "main/order.fbs", {}, &diag);
  ASSERT_FALSE(without);
  EXPECT_EQ(without.error(), sc::errc::parse_failed);
  EXPECT_NE(diag.find("money.fbs"), std::string::npos) << diag;

  auto with = sc::compile_file(dir.path / "main/order.fbs", {dir.path / "common"}, &diag);
  ASSERT_TRUE(with) << diag;
  EXPECT_EQ(with.value().root_type, "shop.Order");

  auto local = sc::compile_file(dir.path / "common/local.fbs", {}, &diag);
  ASSERT_TRUE(local) << diag;
  EXPECT_EQ(local.value().root_type, "shop.Local");
}

TEST(Compile, MissingFileIsAnErrorNamingIt) {
  std::string diag;
  auto r = sc::compile_file("/nonexistent/ferry/order.fbs", {}, &diag);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
  EXPECT_NE(diag.find("/nonexistent/ferry/order.fbs"), std::string::npos);
}

// compile() is meant to equal what the build runs (tools/cmake/FerryHelpers.cmake):
// flatc --binary --schema --bfbs-comments --bfbs-builtins with an absolute
// path (flatc then records declaration files relative to the schema's
// directory; compile() always does, however the path was typed).
TEST(Compile, MatchesFlatcBinarySchemaByteForByte) {
  temp_dir dir("flatc");
  dir.write("order.fbs", std::string("/// An order.\n") + kOrderV1);
  const std::string cmd = "cd '" + dir.path.string() + "' && " + FERRY_FLATC +
                          " --binary --schema --bfbs-comments --bfbs-builtins '" +
                          (dir.path / "order.fbs").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto flatc_bfbs = read_file(dir.path / "order.bfbs");
  ASSERT_FALSE(flatc_bfbs.empty());

  // Same relative file name as flatc was given, from the same directory.
  const auto cwd = fs::current_path();
  fs::current_path(dir.path);
  auto ours = sc::compile_file("order.fbs");
  fs::current_path(cwd);
  ASSERT_TRUE(ours);
  EXPECT_EQ(ours.value().bfbs, flatc_bfbs);
}

// ---- validate_binary -----------------------------------------------------------

TEST(ValidateBinary, RejectsEmptyGarbageAndTruncated) {
  const auto bfbs = compile_or_die(kOrderV1);
  std::string why;
  EXPECT_EQ(sc::validate_binary("", &why).error(), sc::errc::invalid_binary_schema);
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(sc::validate_binary("not a schema at all, just bytes").error(),
            sc::errc::invalid_binary_schema);
  EXPECT_EQ(sc::validate_binary(std::string_view(bfbs).substr(0, bfbs.size() / 2)).error(),
            sc::errc::invalid_binary_schema);
  EXPECT_EQ(sc::root_type_name("garbage"), "");
  EXPECT_EQ(sc::file_identifier("garbage"), "");
}

TEST(ValidateBinary, RejectsAPayloadThatIsNotASchema) {
  const auto payload = payload_from_json(kOrderV1, R"({"id": 1, "customer": "ada"})");
  const std::string_view as_text(reinterpret_cast<const char*>(payload.data()), payload.size());
  EXPECT_EQ(sc::validate_binary(as_text).error(), sc::errc::invalid_binary_schema);
}

TEST(ValidateBinary, AcceptsAMisalignedCopy) {
  const auto bfbs = compile_or_die(kOrderV1);
  std::vector<char> shifted(bfbs.size() + 1);
  std::memcpy(shifted.data() + 1, bfbs.data(), bfbs.size());
  const std::string_view view(shifted.data() + 1, bfbs.size());
  EXPECT_TRUE(sc::validate_binary(view));
  EXPECT_EQ(sc::root_type_name(view), "shop.Order");
}

// A binary schema built by hand: one table whose field refers to object
// `index`; with or without a root table.
std::string handmade_schema(int32_t index, bool with_root) {
  flatbuffers::FlatBufferBuilder b;
  auto type = reflection::CreateType(b, reflection::Obj, reflection::None, index);
  auto field = reflection::CreateField(b, b.CreateString("x"), type, 0, 4);
  auto fields = b.CreateVectorOfSortedTables(std::vector{field}.data(), 1);
  auto object = reflection::CreateObject(b, b.CreateString("A"), fields, false, 1, 0);
  auto root = with_root ? object : flatbuffers::Offset<reflection::Object>();
  std::vector<flatbuffers::Offset<reflection::Object>> objects{object};
  std::vector<flatbuffers::Offset<reflection::Enum>> enums;
  auto schema = reflection::CreateSchema(b, b.CreateVectorOfSortedTables(&objects),
                                         b.CreateVectorOfSortedTables(&enums), 0, 0, root);
  b.Finish(schema, reflection::SchemaIdentifier());
  return {reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()};
}

TEST(ValidateBinary, ChecksTypeReferencesAndRootTable) {
  std::string why;
  EXPECT_TRUE(sc::validate_binary(handmade_schema(0, true), &why)) << why;
  // The reflection verifier accepts this; reading it would index out of range.
  EXPECT_EQ(sc::validate_binary(handmade_schema(7, true), &why).error(),
            sc::errc::invalid_binary_schema);
  EXPECT_NE(why.find("refers to"), std::string::npos) << why;
  EXPECT_EQ(sc::validate_binary(handmade_schema(0, false)).error(), sc::errc::no_root_type);
  EXPECT_EQ(sc::compare(handmade_schema(7, true), handmade_schema(0, true)).error(),
            sc::errc::invalid_binary_schema);
}

// ---- verify / to_json --------------------------------------------------------

TEST(Verify, AcceptsAPayloadBuiltFromJson) {
  const auto bfbs = compile_or_die(kOrderV1);
  const auto payload =
      payload_from_json(kOrderV1, R"({"id": 7, "customer": "ada", "total_cents": 1250})");
  std::string why;
  EXPECT_TRUE(sc::verify(bfbs, payload, &why)) << why;
}

TEST(Verify, AcceptsAMisalignedPayload) {
  const auto bfbs = compile_or_die(kOrderV1);
  const auto payload = payload_from_json(kOrderV1, R"({"id": 7, "customer": "ada"})");
  std::vector<std::byte> shifted(payload.size() + 3);
  std::memcpy(shifted.data() + 3, payload.data(), payload.size());
  EXPECT_TRUE(sc::verify(bfbs, std::span(shifted).subspan(3)));
}

TEST(Verify, RejectsEmptyShortTruncatedAndCorruptPayloads) {
  const auto bfbs = compile_or_die(kOrderV1);
  const auto payload = payload_from_json(kOrderV1, R"({"id": 7, "customer": "ada"})");
  std::string why;
  EXPECT_EQ(sc::verify(bfbs, {}, &why).error(), sc::errc::invalid_payload);
  EXPECT_NE(why.find("0 bytes"), std::string::npos) << why;
  EXPECT_EQ(sc::verify(bfbs, std::span(payload).first(3)).error(), sc::errc::invalid_payload);
  EXPECT_EQ(sc::verify(bfbs, std::span(payload).first(payload.size() - 8)).error(),
            sc::errc::invalid_payload);

  auto bad_root = payload;
  bad_root[0] = bad_root[1] = bad_root[2] = std::byte{0xff};
  bad_root[3] = std::byte{0x7f};
  EXPECT_EQ(sc::verify(bfbs, bad_root, &why).error(), sc::errc::invalid_payload);
  EXPECT_NE(why.find("root offset"), std::string::npos) << why;

  // The root table's vtable offset points outside the buffer.
  auto bad_vtable = payload;
  const auto root = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(payload.data());
  flatbuffers::WriteScalar<flatbuffers::soffset_t>(bad_vtable.data() + root, -100000);
  EXPECT_EQ(sc::verify(bfbs, bad_vtable).error(), sc::errc::invalid_payload);
}

TEST(Verify, RejectsAPayloadMissingARequiredField) {
  const auto required = compile_or_die(kOrderRequired);
  const auto with = payload_from_json(kOrderV1, R"({"id": 7, "customer": "ada"})");
  const auto without = payload_from_json(kOrderV1, R"({"id": 7})");
  EXPECT_TRUE(sc::verify(required, with));
  std::string why;
  EXPECT_EQ(sc::verify(required, without, &why).error(), sc::errc::invalid_payload);
  EXPECT_NE(why.find("shop.Order"), std::string::npos) << why;
}

// Required fields below the root: in a vector of tables and in a union member.
constexpr const char* kNestedOptional = R"(
namespace shop;
table Line { sku:string; }
table Card { last4:string; }
union Payment { Card }
table Order { lines:[Line]; payment:Payment; }
root_type Order;
)";
constexpr const char* kNestedRequired = R"(
namespace shop;
table Line { sku:string (required); }
table Card { last4:string (required); }
union Payment { Card }
table Order { lines:[Line]; payment:Payment; }
root_type Order;
)";

TEST(Verify, ChecksRequiredFieldsInVectorsAndUnionMembers) {
  const auto required = compile_or_die(kNestedRequired);
  std::string why;
  const auto complete = payload_from_json(
      kNestedOptional,
      R"({"lines": [{"sku": "a"}, {"sku": "b"}], "payment_type": "Card", "payment": {"last4": "4242"}})");
  EXPECT_TRUE(sc::verify(required, complete, &why)) << why;

  const auto line_without_sku = payload_from_json(
      kNestedOptional,
      R"({"lines": [{"sku": "a"}, {}], "payment_type": "Card", "payment": {"last4": "4242"}})");
  EXPECT_EQ(sc::verify(required, line_without_sku, &why).error(), sc::errc::invalid_payload);
  EXPECT_NE(why.find("shop.Line.sku"), std::string::npos) << why;

  const auto card_without_last4 = payload_from_json(
      kNestedOptional, R"({"lines": [{"sku": "a"}], "payment_type": "Card", "payment": {}})");
  EXPECT_EQ(sc::verify(required, card_without_last4, &why).error(), sc::errc::invalid_payload);
  EXPECT_NE(why.find("shop.Card.last4"), std::string::npos) << why;
}

// A writer with a newer union member, a reader with the older schema: the tag
// is unknown to the reader's schema: refused, not read out of range.
TEST(Verify, RejectsAUnionTagTheSchemaDoesNotKnow) {
  constexpr const char* kNewer = R"(
namespace shop;
table Card { last4:string; }
table Invoice { number:string; }
table Voucher { code:string; }
union Payment { Card, Invoice, Voucher }
table Order { id:ulong; payment:Payment; }
root_type Order;
)";
  constexpr const char* kOlder = R"(
namespace shop;
table Card { last4:string; }
union Payment { Card }
table Order { id:ulong; payment:Payment; }
root_type Order;
)";
  const auto older = compile_or_die(kOlder);
  const auto payload = payload_from_json(
      kNewer, R"({"id": 1, "payment_type": "Voucher", "payment": {"code": "X"}})");
  std::string why;
  // libflatbuffers' reflection verifier refuses a union tag the schema lacks.
  EXPECT_EQ(sc::verify(older, payload, &why).error(), sc::errc::invalid_payload);
  EXPECT_NE(why.find("union"), std::string::npos) << why;
  EXPECT_EQ(sc::to_json(older, payload).error(), sc::errc::invalid_payload);
  // And with the newer schema it is simply valid.
  EXPECT_TRUE(sc::verify(compile_or_die(kNewer), payload, &why)) << why;
}

TEST(Verify, BadSchemaIsReportedAsSuch) {
  const auto payload = payload_from_json(kOrderV1, R"({"id": 7})");
  EXPECT_EQ(sc::verify("nope", payload).error(), sc::errc::invalid_binary_schema);
}

TEST(ToJson, RendersOneLineStrictJsonThatRoundTrips) {
  const auto bfbs = compile_or_die(kOrderV1);
  const auto payload = payload_from_json(
      kOrderV1, R"({"id": 7, "customer": "ada", "total_cents": 1250, "currency": "EUR"})");
  std::string why;
  auto json = sc::to_json(bfbs, payload, &why);
  ASSERT_TRUE(json) << why;
  EXPECT_EQ(json.value().find('\n'), std::string::npos) << json.value();
  EXPECT_NE(json.value().find("\"customer\""), std::string::npos) << json.value();
  EXPECT_NE(json.value().find("\"EUR\""), std::string::npos) << json.value();
  EXPECT_NE(json.value().find("1250"), std::string::npos) << json.value();

  const auto again = payload_from_json(kOrderV1, json.value());
  auto json2 = sc::to_json(bfbs, again);
  ASSERT_TRUE(json2);
  EXPECT_EQ(json2.value(), json.value());
}

TEST(ToJson, RefusesWhatDoesNotVerify) {
  const auto bfbs = compile_or_die(kOrderRequired);
  const auto without = payload_from_json(kOrderV1, R"({"id": 7})");
  EXPECT_EQ(sc::to_json(bfbs, without).error(), sc::errc::invalid_payload);
  EXPECT_EQ(sc::to_json(bfbs, {}).error(), sc::errc::invalid_payload);
}

// ---- reader_conflicts ----------------------------------------------------------

TEST(ReaderConflicts, CompatibleChangeReadsBothWaysExceptTheNewEnumValue) {
  const auto v1 = compile_or_die(kOrderV1);
  const auto v2 = compile_or_die(kOrderV2);
  // v2 reader, v1 data: everything is known.
  auto new_reads_old = sc::reader_conflicts(v1, v2);
  ASSERT_TRUE(new_reads_old);
  EXPECT_TRUE(new_reads_old.value().empty());
  // v1 reader, v2 data: the extra field is skipped, but CNY is unknown.
  auto old_reads_new = sc::reader_conflicts(v2, v1);
  ASSERT_TRUE(old_reads_new);
  EXPECT_EQ(rule_names(old_reads_new.value()), std::set<std::string>{"enum_value_removed"});
}

TEST(ReaderConflicts, AFieldOnlyTheWriterHasIsNoConflict) {
  const auto without_note = compile_or_die(R"(
namespace shop; table Order { id:ulong; } root_type Order;)");
  const auto with_note = compile_or_die(R"(
namespace shop; table Order { id:ulong; note:string; } root_type Order;)");
  auto r = sc::reader_conflicts(with_note, without_note);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r.value().empty());
  // compare() still reports the field as removed (evolution), so the filter matters.
  auto all = sc::compare(with_note, without_note);
  ASSERT_TRUE(all);
  EXPECT_EQ(rule_names(all.value()), std::set<std::string>{"field_removed"});
}

TEST(ReaderConflicts, RequiredFieldConflictsOnlyWhenTheReaderRequiresIt) {
  const auto v1 = compile_or_die(kOrderV1);
  const auto req = compile_or_die(kOrderRequired);
  auto reader_requires = sc::reader_conflicts(v1, req);
  ASSERT_TRUE(reader_requires);
  EXPECT_EQ(rule_names(reader_requires.value()), std::set<std::string>{"field_made_required"});
  auto writer_requires = sc::reader_conflicts(req, v1);
  ASSERT_TRUE(writer_requires);
  EXPECT_TRUE(writer_requires.value().empty());
}

TEST(ReaderConflicts, TypeChangeConflictsBothWays) {
  const auto v1 = compile_or_die(kOrderV1);
  const auto wide = compile_or_die(kOrderWide);
  for (auto [w, r] : {std::pair{v1, wide}, std::pair{wide, v1}}) {
    auto c = sc::reader_conflicts(w, r);
    ASSERT_TRUE(c);
    ASSERT_EQ(c.value().size(), 1u);
    EXPECT_EQ(c.value()[0].what, sc::rule::field_type_changed);
    EXPECT_EQ(c.value()[0].field, "total_cents");
  }
}

// ---- modes, violations, format ------------------------------------------------

TEST(Mode, NamesRoundTripAndParseIgnoresCaseAndDashes) {
  for (int i = 0; i <= 6; ++i) {
    const auto m = static_cast<sc::mode>(i);
    EXPECT_EQ(sc::parse_mode(sc::to_string(m)), m) << i;
  }
  EXPECT_EQ(sc::to_string(sc::mode::full_transitive), "FULL_TRANSITIVE");
  EXPECT_EQ(sc::parse_mode("backward"), sc::mode::backward);
  EXPECT_EQ(sc::parse_mode("Full-Transitive"), sc::mode::full_transitive);
  EXPECT_EQ(sc::parse_mode("forward_TRANSITIVE"), sc::mode::forward_transitive);
  EXPECT_EQ(sc::parse_mode("none"), sc::mode::none);
  EXPECT_EQ(sc::parse_mode(""), std::nullopt);
  EXPECT_EQ(sc::parse_mode("FULLY"), std::nullopt);
  EXPECT_EQ(sc::parse_mode(" FULL"), std::nullopt);
  EXPECT_EQ(sc::parse_mode("transitive"), std::nullopt);
}

TEST(Mode, DirectionsAndTransitivity) {
  using sc::mode;
  const struct {
    mode m;
    bool backward, forward, transitive;
  } table[] = {
      {mode::none, false, false, false},
      {mode::backward, true, false, false},
      {mode::backward_transitive, true, false, true},
      {mode::forward, false, true, false},
      {mode::forward_transitive, false, true, true},
      {mode::full, true, true, false},
      {mode::full_transitive, true, true, true},
  };
  for (const auto& row : table) {
    EXPECT_EQ(sc::checks_backward(row.m), row.backward) << sc::to_string(row.m);
    EXPECT_EQ(sc::checks_forward(row.m), row.forward) << sc::to_string(row.m);
    EXPECT_EQ(sc::is_transitive(row.m), row.transitive) << sc::to_string(row.m);
  }
}

TEST(Rule, NamesAreDistinctAndKnown) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(sc::rule::type_kind_changed); ++i) {
    const auto name = sc::to_string(static_cast<sc::rule>(i));
    EXPECT_NE(name, "unknown") << i;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(sc::rule::type_kind_changed) + 1);
}

sc::finding make(sc::rule r, bool b, bool f, bool e) {
  sc::finding x;
  x.what = r;
  x.breaks_backward = b;
  x.breaks_forward = f;
  x.breaks_evolution = e;
  x.type = "shop.Order";
  x.field = "f";
  x.message = "m";
  return x;
}

TEST(Violations, EachModeRefusesItsDirectionsAndEvolution) {
  const std::vector<sc::finding> findings = {
      make(sc::rule::field_made_required, true, false, false),
      make(sc::rule::enum_value_added, false, true, false),
      make(sc::rule::field_removed, false, false, true),
      make(sc::rule::field_renamed, false, false, false),
  };
  auto rules = [&](sc::mode m) { return rule_names(sc::violations(findings, m)); };
  using S = std::set<std::string>;
  EXPECT_EQ(rules(sc::mode::none), S{});
  EXPECT_EQ(rules(sc::mode::backward), (S{"field_made_required", "field_removed"}));
  EXPECT_EQ(rules(sc::mode::forward_transitive), (S{"enum_value_added", "field_removed"}));
  EXPECT_EQ(rules(sc::mode::full), (S{"field_made_required", "enum_value_added", "field_removed"}));
}

TEST(Format, ErrorsNameTheirDirectionsWarningsDoNot) {
  auto e = make(sc::rule::field_type_changed, true, true, false);
  e.field = "total_cents";
  e.message = "type changed from int to long";
  EXPECT_EQ(sc::format(e),
            "error: shop.Order.total_cents: type changed from int to long (breaks backward, "
            "forward) [field_type_changed]");
  auto ev = make(sc::rule::field_removed, false, false, true);
  EXPECT_EQ(sc::format(ev), "error: shop.Order.f: m (breaks evolution) [field_removed]");
  auto w = make(sc::rule::field_renamed, false, false, false);
  w.field = "";
  EXPECT_EQ(sc::format(w), "warning: shop.Order: m [field_renamed]");
}

TEST(Compare, IdenticalSchemasHaveNoFindings) {
  const auto v1 = compile_or_die(kOrderV1);
  auto r = sc::compare(v1, v1);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r.value().empty());
}

TEST(Compare, ErrorsComeBeforeWarnings) {
  const auto older = compile_or_die(R"(
namespace t; table A { a:int; b:int; } root_type A;)");
  // a renamed (warning, id 0), b widened (error, id 1).
  const auto newer = compile_or_die(R"(
namespace t; table A { alpha:int; b:long; } root_type A;)");
  auto r = sc::compare(older, newer);
  ASSERT_TRUE(r);
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].what, sc::rule::field_type_changed);
  EXPECT_EQ(r.value()[1].what, sc::rule::field_renamed);
}

}  // namespace
