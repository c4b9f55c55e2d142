// Generated contracts (<stem>_contract.h) against what the CLI compiles, and
// check_values() on unions whose members are not all tables.
#include <flatbuffers/idl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "ferry/schema/schema.h"
#include "ferry/schemas/orders/v1/order_placed_contract.h"
#include "ferry/schemas/orders/v1/order_shipped_contract.h"
#include "ferry/schemas/orders/v1/payment_captured_contract.h"

namespace ferry::schema {
namespace {

namespace orders = ferry::samples::orders;

template <typename T>
void expect_same_as_compiled(const std::string& stem) {
  const std::filesystem::path dir = FERRY_SAMPLE_SCHEMAS;
  std::string diagnostics;
  // Absolute and relative paths must compile to the same bytes too (the CLI
  // gets whatever the user typed).
  auto abs = compile_file(dir / (stem + ".fbs"), {}, &diagnostics);
  ASSERT_TRUE(abs) << diagnostics;
  EXPECT_EQ(contract<T>::bfbs(), abs.value().bfbs)
      << stem << ": the generated contract and `ferry schema register` would be two schemas";
  EXPECT_EQ(contract<T>::root_type, abs.value().root_type);
  EXPECT_EQ(contract<T>::file_identifier, abs.value().file_identifier);
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  auto rel = compile_file(stem + ".fbs", {}, &diagnostics);
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(rel) << diagnostics;
  EXPECT_EQ(rel.value().bfbs, abs.value().bfbs) << stem;
}

TEST(Contract, GeneratedBinarySchemaEqualsTheCompiledOne) {
  expect_same_as_compiled<orders::OrderPlaced>("order_placed");
  expect_same_as_compiled<orders::PaymentCaptured>("payment_captured");
  expect_same_as_compiled<orders::OrderShipped>("order_shipped");
}

TEST(Contract, SourceIsTheFileAndKeepsBuiltinAttributes) {
  EXPECT_NE(contract<orders::OrderPlaced>::source.find("table OrderPlaced"), std::string::npos);
  // `required` is a builtin attribute: without --bfbs-builtins the embedded
  // schema would lose it and the registry's checks would not see it.
  auto found =
      compare(contract<orders::OrderPlaced>::bfbs(), contract<orders::OrderPlaced>::bfbs());
  ASSERT_TRUE(found);
  EXPECT_TRUE(found.value().empty());
  EXPECT_NE(contract<orders::OrderPlaced>::bfbs().find("required"), std::string_view::npos);
}

// A union with struct and string members next to a table (C++ allows them):
// check_values must walk only the table member.
constexpr std::string_view kUnionSchema = R"(
namespace t;
enum Color : byte { Red = 0, Green = 1 }
struct Point { x: int; y: int; }
table Box { color: Color; }
union Shape { Box, Point, Label: string }
table Root { shape: Shape; }
root_type Root;
)";

std::string payload_from_json(const std::string& json) {
  flatbuffers::IDLOptions opts;
  opts.lang_to_generate = flatbuffers::IDLOptions::kCpp;
  flatbuffers::Parser parser(opts);
  EXPECT_TRUE(parser.Parse(std::string(kUnionSchema).c_str())) << parser.error_;
  EXPECT_TRUE(parser.ParseJson(json.c_str())) << parser.error_;
  return {reinterpret_cast<const char*>(parser.builder_.GetBufferPointer()),
          parser.builder_.GetSize()};
}

std::span<const std::byte> bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

TEST(CheckValues, UnionMembersThatAreNotTablesAreSkippedAndTablesAreChecked) {
  std::string diagnostics;
  auto s = compile(kUnionSchema, "union.fbs", {}, &diagnostics);
  ASSERT_TRUE(s) << diagnostics;
  const auto& bfbs = s.value().bfbs;
  std::string why;
  auto point = payload_from_json(R"({"shape_type": "Point", "shape": {"x": 1, "y": 2}})");
  EXPECT_TRUE(check_values(bfbs, bytes(point), &why)) << why;
  auto label = payload_from_json(R"({"shape_type": "Label", "shape": "hello"})");
  EXPECT_TRUE(check_values(bfbs, bytes(label), &why)) << why;
  auto green = payload_from_json(R"({"shape_type": "Box", "shape": {"color": "Green"}})");
  EXPECT_TRUE(check_values(bfbs, bytes(green), &why)) << why;
  auto unknown = payload_from_json(R"({"shape_type": "Box", "shape": {"color": 7}})");
  why.clear();
  EXPECT_FALSE(check_values(bfbs, bytes(unknown), &why));
  EXPECT_NE(why.find("color"), std::string::npos) << why;
}

TEST(ValueChecker, OwnsItsSchemaAndChecksLikeCheckValues) {
  std::string diagnostics;
  auto compiled = compile(kUnionSchema, "union.fbs", {}, &diagnostics);
  ASSERT_TRUE(compiled) << diagnostics;
  std::optional<value_checker> checker;
  {
    std::string temporary = compiled.value().bfbs;  // gone before the checker is used
    auto made = value_checker::make(temporary);
    ASSERT_TRUE(made);
    checker.emplace(std::move(made).value());
    temporary.assign(temporary.size(), '\0');
  }
  std::string why;
  auto green = payload_from_json(R"({"shape_type": "Box", "shape": {"color": "Green"}})");
  EXPECT_TRUE(checker->check(bytes(green), &why)) << why;
  const aligned_bytes verified(bytes(green));
  EXPECT_TRUE(checker->check_verified(verified.data(), &why)) << why;
  auto unknown = payload_from_json(R"({"shape_type": "Box", "shape": {"color": 7}})");
  why.clear();
  EXPECT_FALSE(checker->check(bytes(unknown), &why));
  EXPECT_NE(why.find("color"), std::string::npos) << why;
  const aligned_bytes unknown_aligned(bytes(unknown));
  EXPECT_FALSE(checker->check_verified(unknown_aligned.data(), &why));
  // check() verifies first: garbage is refused, not walked.
  const std::string garbage(40, '\x7f');
  EXPECT_EQ(checker->check(bytes(garbage), &why).error(), errc::invalid_payload);
  EXPECT_FALSE(value_checker::make("not a schema"));
}

}  // namespace
}  // namespace ferry::schema
