// Unit tests of the shared vocabulary: names, shapes, attributes, JSON round trips, hashing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core.hpp"

namespace kb {
namespace {

TEST(Core, DTypeNamesRoundTrip) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::b8})
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  EXPECT_EQ(parse_dtype("bool"), DType::b8);
  EXPECT_FALSE(parse_dtype("f8").has_value());
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
}

TEST(Core, ShapesAndStrides) {
  EXPECT_EQ(numel({}), 1);
  EXPECT_EQ(numel({2, 3, 4}), 24);
  EXPECT_EQ(contiguous_strides({2, 3, 4}), (Shape{12, 4, 1}));
  EXPECT_EQ(shape_str({16, 64}), "[16, 64]");
}

TEST(Core, AttributeAccessors) {
  Attrs a{{"stride", int64_t{4}},
          {"eps", 1e-5},
          {"dims", std::vector<int64_t>{1, 2}},
          {"approximate", std::string("tanh")},
          {"causal", true}};
  EXPECT_EQ(attr_int(a, "stride"), 4);
  EXPECT_DOUBLE_EQ(attr_double(a, "stride"), 4.0);
  EXPECT_EQ(attr_ints(a, "stride", 2, {}), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(attr_ints(a, "dims", 2, {}), (std::vector<int64_t>{1, 2}));
  EXPECT_THROW(attr_ints(a, "dims", 3, {}), Error);
  EXPECT_THROW(attr_int(a, "eps"), Error);
  EXPECT_THROW(attr_int(a, "missing"), Error);
  EXPECT_EQ(attr_int(a, "missing", 7), 7);
  EXPECT_TRUE(attr_bool(a, "causal", false));
  EXPECT_EQ(attr_string(a, "approximate", "none"), "tanh");
  EXPECT_EQ(attr_to_python(a.at("eps")), "1e-05");
  EXPECT_EQ(attr_to_python(AttrValue{2.0}), "2.0");
  EXPECT_EQ(attr_to_python(a.at("causal")), "True");
  EXPECT_EQ(attr_to_python(a.at("dims")), "[1, 2]");
}

TEST(Core, ProblemJsonRoundTrip) {
  Problem p;
  p.id = "l1/x";
  p.level = 1;
  p.inputs = {{"x", {4, 8}, DType::f32, {DistKind::ill_conditioned, 1000, 0.1}}};
  p.graph = {{"relu", {"x"}, "y", {{"alpha", 2.0}}, 7}};
  p.outputs = {"y"};
  p.values["y"] = {{4, 8}, DType::f32};
  p.tolerance = {1e-3, 1e-3, "why"};
  p.precision.allow_tf32 = true;
  nlohmann::json j = p;
  Problem q = j.get<Problem>();
  EXPECT_EQ(q.id, p.id);
  EXPECT_EQ(q.inputs[0].dist, p.inputs[0].dist);
  EXPECT_EQ(q.graph[0].line, 7);
  EXPECT_TRUE(std::holds_alternative<double>(q.graph[0].attrs.at("alpha")));
  EXPECT_EQ(q.values.at("y"), p.values.at("y"));
  EXPECT_TRUE(q.precision.allow_tf32);
  EXPECT_EQ(q.tolerance.reason, "why");
}

TEST(Core, EvalResultJsonRoundTrip) {
  EvalResult r;
  r.outcome = Outcome::mismatch;
  r.flags = flag_off_stream | flag_noisy;
  r.mismatch = MismatchInfo{"y", 2, "normal", 0.5, 0.25, 10, 3, 1, 0, "values"};
  r.candidate_time = TimingStats{1.0, 1.1, 0.01, 0.01, 0.9, 1.2, 50, "converged", {1.0, 1.1}};
  nlohmann::json j = r;
  EvalResult s = j.get<EvalResult>();
  EXPECT_EQ(s.outcome, Outcome::mismatch);
  EXPECT_EQ(s.flags, r.flags);
  ASSERT_TRUE(s.mismatch);
  EXPECT_EQ(s.mismatch->first_bad_index, 3);
  ASSERT_TRUE(s.candidate_time);
  EXPECT_EQ(s.candidate_time->samples_ms.size(), 2u);
  EXPECT_FALSE(s.baseline_time);
  EXPECT_EQ(j["flags"], nlohmann::json({"off_stream_work", "noisy_timing"}));
}

TEST(Core, ContentHashIsStableAndSensitive) {
  EXPECT_EQ(content_hash("abc"), content_hash("abc"));
  EXPECT_NE(content_hash("abc"), content_hash("abd"));
  EXPECT_EQ(content_hash("abc").size(), 16u);
}

TEST(Core, InputErrorWithoutALineOrFieldSaysNeither) {
  EXPECT_STREQ(InputError("command line", 0, "--strategy", "unknown strategy 'x'").what(),
               "command line: --strategy: unknown strategy 'x'");
  EXPECT_STREQ(InputError("bad.json", 0, "", "not valid JSON").what(), "bad.json: not valid JSON");
}

TEST(Core, InputErrorNamesFileLineField) {
  InputError e("levels/level1/x.yaml", 12, "graph[0].op", "unknown op 'foo'");
  EXPECT_STREQ(e.what(), "levels/level1/x.yaml:12: graph[0].op: unknown op 'foo'");
}

TEST(Core, CheckedArithmeticThrowsInsteadOfWrapping) {
  EXPECT_EQ(checked_mul(int64_t{1} << 31, int64_t{1} << 31), int64_t{1} << 62);
  EXPECT_THROW(checked_mul(int64_t{1} << 32, int64_t{1} << 31), Error);
  EXPECT_THROW(checked_add(INT64_MAX, 1), Error);
  EXPECT_EQ(checked_add(INT64_MIN, INT64_MAX), -1);
  EXPECT_EQ(numel({1000000, 1000000}), 1000000000000);
  try {
    (void)numel({1000000000000, 1000000000000, 1000000000000});
    ADD_FAILURE() << "no overflow reported";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "the element count of shape [1000000000000, 1000000000000, "
                           "1000000000000] overflows 64-bit integers");
  }
}

TEST(Core, Utf8IsCheckedByteByByte) {
  EXPECT_EQ(invalid_utf8_at(""), std::nullopt);
  EXPECT_EQ(invalid_utf8_at("plain \xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"), std::nullopt);
  EXPECT_EQ(invalid_utf8_at("a\xff"), 1u);            // never a UTF-8 byte
  EXPECT_EQ(invalid_utf8_at("ab\x80"), 2u);           // stray continuation
  EXPECT_EQ(invalid_utf8_at("\xc3"), 0u);             // truncated
  EXPECT_EQ(invalid_utf8_at("\xc0\xaf"), 0u);         // overlong '/'
  EXPECT_EQ(invalid_utf8_at("\xe0\x80\xaf"), 0u);     // overlong, three bytes
  EXPECT_EQ(invalid_utf8_at("x\xed\xa0\x80"), 1u);    // surrogate U+D800
  EXPECT_EQ(invalid_utf8_at("\xf4\x90\x80\x80"), 0u); // beyond U+10FFFF
  EXPECT_EQ(invalid_utf8_at(std::string_view("a\0b", 3)), std::nullopt);
  EXPECT_EQ(utf8_problem("ok"), "");
  EXPECT_EQ(utf8_problem("a\xff"), "invalid UTF-8 (byte 0xFF at offset 1)");
  EXPECT_EQ(sanitize_utf8("a\xff\xc3\xa9\xc3"), "a\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd");
}

TEST(Core, PythonStringLiteralsAreOneTokenOnOneLine) {
  EXPECT_EQ(python_string_literal("tanh"), "'tanh'");
  EXPECT_EQ(python_string_literal("it's \\ \"q\"\n\r\t\x7f"), R"('it\'s \\ "q"\x0a\x0d\x09\x7f')");
  EXPECT_EQ(python_string_literal("\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80"),
            R"('\xe9\u2028\U0001f600')");
  EXPECT_THROW(python_string_literal("\xff"), Error);
}

TEST(Core, JsonDumpReplacesBytesThatAreNotText) {
  const nlohmann::json j = {{"message", "compiler said \xff\xfe"}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::exception);
  EXPECT_EQ(dump_json(j), "{\"message\":\"compiler said \xef\xbf\xbd\xef\xbf\xbd\"}");
}

TEST(Core, JsonParseErrorsNameLineAndColumn) {
  try {
    (void)parse_json("{\n  \"a\": 1,\n  \"b\": ]\n}", "bad.json");
    ADD_FAILURE() << "parsed";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "bad.json");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.field(), "(json)");
    EXPECT_THAT(e.message(), ::testing::HasSubstr("not valid JSON at line 3, column 8"));
  }
  EXPECT_EQ(parse_json("[1, 2]", "x.json"), nlohmann::json({1, 2}));
  EXPECT_THROW((void)parse_json("", "empty.json"), InputError);
}

} // namespace
} // namespace kb
