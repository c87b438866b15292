// Hostile problem files: sizes beyond 64-bit arithmetic, too many dimensions, bytes that are not
// text, control characters, ids that are not ids, NaN attributes, deep nesting, and text that
// tries to become code in the PyTorch rendering. Each case is one that was once accepted or ended
// in an internal error.
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

#include <fmt/format.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A levels folder of its own per test, removed afterwards.
class Hostile : public ::testing::Test {
protected:
  void SetUp() override {
    m_root = fs::temp_directory_path() /
             fmt::format("kb_hostile_{}_{}", ::getpid(),
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(m_root);
    fs::create_directories(m_root / "level1");
  }
  void TearDown() override { fs::remove_all(m_root); }

  std::string write(const std::string& stem, const std::string& text) {
    const fs::path p = m_root / "level1" / (stem + ".yaml");
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  kb::Problem load(const std::string& stem, const std::string& text) {
    return kb::load_problem(write(stem, text), m_root.string());
  }
  // Loads a file that must fail; returns the error.
  kb::InputError error(const std::string& text) {
    const std::string path = write("p", text);
    try {
      kb::load_problem(path, m_root.string());
    } catch (const kb::InputError& e) {
      EXPECT_EQ(e.file(), path);
      return e;
    }
    ADD_FAILURE() << "loaded without error:\n" << text;
    return kb::InputError("", 0, "", "");
  }

  fs::path m_root;
};

// A valid problem with one input of `shape` through `op` (with `attrs`), fields replaceable.
std::string problem(const std::string& shape = "[4, 8]", const std::string& node_extra = "",
                    const std::string& name = "p", const std::string& ref = "r",
                    const std::string& op = "relu") {
  return "name: \"" + name + "\"\n" +                                                    // line 1
         "description: d\n" +                                                            // line 2
         "provenance: {source: kbench, ref: \"" + ref + "\"}\n" +                        // line 3
         "inputs:\n" +                                                                   // line 4
         "  - {name: x, shape: " + shape +                                               // line 5
         ", dtype: f32, dist: {kind: uniform, low: 0, high: 1}}\n" + "graph:\n" +        // line 6
         "  - {out: y, op: " + op + ", in: [x]" + node_extra + "}\n" + "outputs: [y]\n"; // 7, 8
}

// ----- sizes ---------------------------------------------------------------------------------

TEST_F(Hostile, ShapeBeyondSixtyFourBitsIsRefusedNotNegative) {
  const auto e = error(problem("[1000000000000, 1000000000000, 1000000000000]"));
  EXPECT_EQ(e.line(), 5);
  EXPECT_EQ(e.field(), "inputs[0].shape");
  EXPECT_THAT(e.message(), HasSubstr("more than 68719476736 elements"));
}

TEST_F(Hostile, ShapeAtTheElementLimitLoadsWithPositiveCosts) {
  const kb::Problem p = load("p", problem("[65536, 1048576]")); // exactly 2^36
  EXPECT_EQ(kb::numel(p.inputs[0].shape), kb::k_max_elements);
  EXPECT_DOUBLE_EQ(p.flops, static_cast<double>(kb::k_max_elements));
  EXPECT_DOUBLE_EQ(p.min_bytes, 2.0 * 4.0 * static_cast<double>(kb::k_max_elements));
  EXPECT_GT(kb::floor_time_ms(p, kb::datasheet_ceilings_h100()), 0.0);
  const auto e = error(problem("[65537, 1048576]"));
  EXPECT_EQ(e.field(), "inputs[0].shape");
}

TEST_F(Hostile, FortyDimensionsAreRefusedNamingTheLimit) {
  std::string shape = "[1";
  for (int i = 1; i < 40; ++i)
    shape += ", 1";
  shape += "]";
  const auto e = error(problem(shape));
  EXPECT_EQ(e.line(), 5);
  EXPECT_EQ(e.field(), "inputs[0].shape");
  EXPECT_THAT(e.message(), HasSubstr("40 dimensions; a tensor has at most 8"));
  load("ok", problem("[1, 1, 1, 1, 1, 1, 1, 2]")); // eight is fine
}

TEST_F(Hostile, GraphValuesObeyTheSameLimits) {
  // A reshape to nine dimensions, and convolutions whose output size overflows.
  auto e = error(problem("[2, 256]", ", shape: [2, 2, 2, 2, 2, 2, 2, 2, 2]", "p", "r", "reshape"));
  EXPECT_EQ(e.field(), "graph[0]");
  EXPECT_THAT(e.message(), HasSubstr("9 dimensions; a tensor has at most 8"));
  e = error(problem("[2, 256]", ", shape: [4611686018427387904, 4, -1]", "p", "r", "reshape"));
  EXPECT_EQ(e.field(), "graph[0]");
  EXPECT_THAT(e.message(), HasSubstr("overflow"));
  const std::string conv =
      "name: c\ndescription: d\nprovenance: {source: kbench, ref: r}\n"
      "inputs:\n  - {name: x, shape: [1, 1, 65536], dtype: f32, dist: {kind: uniform, low: 0, "
      "high: 1}}\n"
      "params:\n  - {name: w, shape: [1, 1, 3], dtype: f32, dist: {kind: normal, mean: 0, std: "
      "1}}\n"
      "graph:\n  - {out: y, op: conv_transpose2d, in: [x, w], stride: STRIDE}\noutputs: [y]\n";
  for (const std::string stride : {"9223372036854775807", "4611686018427387904", "2097152"}) {
    std::string text = std::regex_replace(conv, std::regex("STRIDE"), stride);
    text = std::regex_replace(text, std::regex(R"(\[1, 1, 65536\])"), "[1, 1, 1, 65536]");
    text = std::regex_replace(text, std::regex(R"(\[1, 1, 3\])"), "[1, 1, 1, 3]");
    e = error(text);
    EXPECT_EQ(e.field(), "graph[0]") << stride;
    EXPECT_THAT(e.message(), ::testing::AnyOf(HasSubstr("overflow"), HasSubstr("elements")))
        << e.what();
  }
  e = error(problem("[1, 1, 64]",
                    ", kernel_size: 3, padding: 1, ceil_mode: true, stride: 9223372036854775807",
                    "p", "r", "max_pool1d"));
  EXPECT_EQ(e.field(), "graph[0]");
}

TEST_F(Hostile, AbiLimitMatchesTheHeader) {
  std::ifstream in(std::string(KB_SOURCE_DIR) + "/include/kbench/kb_abi.h");
  std::stringstream ss;
  ss << in.rdbuf();
  std::smatch m;
  const std::string text = ss.str();
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(#define KB_MAX_DIMS ([0-9]+))")));
  EXPECT_EQ(std::stoul(m[1].str()), kb::k_max_rank);
}

// ----- text ------------------------------------------------------------------------------------

TEST_F(Hostile, InvalidUtf8InANameIsAnErrorNamingTheField) {
  const auto e = error(problem("[4]", "",
                               "a\xff"
                               "b"));
  EXPECT_EQ(e.line(), 1);
  EXPECT_EQ(e.field(), "name");
  EXPECT_THAT(e.message(), HasSubstr("invalid UTF-8 (byte 0xFF at offset 1)"));
}

TEST_F(Hostile, InvalidUtf8ElsewhereIsAnErrorNamingItsPlace) {
  auto e = error(problem("[4]", ", approximate: \"t\xc0\xaf\"", "p", "r", "gelu"));
  EXPECT_EQ(e.line(), 7);
  EXPECT_EQ(e.field(), "graph[0].approximate");
  e = error(problem("[4]", "", "p", "r\xed\xa0\x80"));
  EXPECT_EQ(e.field(), "provenance.ref");
  e = error(problem() + "# a comment \xfe\n");
  EXPECT_EQ(e.line(), 9);
  EXPECT_EQ(e.field(), "(file)");
  e = error(problem() + "tolerance: {atol: 1e-3, \"\xf8\": 1}\n");
  EXPECT_EQ(e.field(), "tolerance.(key)");
  EXPECT_THAT(e.message(), HasSubstr("invalid UTF-8"));
  // Valid multi-byte text is text.
  const kb::Problem p = load("ok", problem("[4]", "", "Faltung \xc3\xa9\xe2\x9c\x93"));
  EXPECT_EQ(p.name, "Faltung \xc3\xa9\xe2\x9c\x93");
}

TEST_F(Hostile, EveryLoadedTextDumpsAsStrictJson) {
  const kb::Problem p = load("ok", problem("[4]", "", "caf\xc3\xa9"));
  EXPECT_NO_THROW((void)nlohmann::json(p).dump());
  const kb::Catalog c = kb::load_catalog(std::string(KB_SOURCE_DIR) + "/levels");
  for (const auto& q : c.problems)
    EXPECT_NO_THROW((void)nlohmann::json(q).dump()) << q.id;
}

TEST_F(Hostile, ControlCharactersAreRefusedInOneLineFields) {
  auto e = error(problem("[4]", "", "p\\e[2J"));
  EXPECT_EQ(e.field(), "name");
  EXPECT_THAT(e.message(), HasSubstr("control character U+001B"));
  e = error(problem("[4]", "", "p", "r\\nos.system(\\\"id\\\")"));
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.field(), "provenance.ref");
  EXPECT_THAT(e.message(), HasSubstr("U+000A"));
  e = error(problem("[4]", "", "p\\x85"));
  EXPECT_THAT(e.message(), HasSubstr("U+0085"));
  // The description may hold line feeds.
  std::string text = problem();
  text.replace(text.find("description: d"), 14, "description: \"one\\ntwo\\tthree\"");
  EXPECT_EQ(load("ok", text).description, "one\ntwo\tthree");
}

TEST_F(Hostile, ProblemIdsAreLevelAndIdentifier) {
  EXPECT_EQ(kb::problem_id_error("l1/softmax_4096x65536"), "");
  EXPECT_EQ(kb::problem_id_error("l12/kb-conv_1"), "");
  EXPECT_EQ(kb::problem_id_error("l3/1_matmul"), "");
  const std::vector<std::string> bad_ids = {
      "l1/a b", "l1/<script>", "l1/a\nb", "x/y", "l1/",
      "l1/-x",  "l1/a/b",      "l1/a.b",  "l/x", std::string("l1/a\0b", 6)};
  for (const std::string& bad : bad_ids)
    EXPECT_THAT(kb::problem_id_error(bad), HasSubstr("is not a problem id")) << bad;
  EXPECT_NE(kb::problem_id_error("l1/" + std::string(101, 'a')), "");
}

TEST_F(Hostile, FileNamesThatAreNotIdsAreLoadErrorsNotProblems) {
  write("good", problem());
  write("a b", problem());
  write("x\nimport os", problem());
  write("q<", problem());
  const kb::Catalog c = kb::load_catalog(m_root.string());
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_EQ(c.problems[0].id, "l1/good");
  ASSERT_EQ(c.errors.size(), 3u);
  for (const auto& e : c.errors) {
    EXPECT_EQ(e.field, "(path)");
    EXPECT_THAT(e.message, HasSubstr("is not a problem id"));
    EXPECT_THAT(e.message, Not(HasSubstr("\n"))); // the newline is shown escaped
  }
}

// ----- attributes and rendering ---------------------------------------------------------------

TEST_F(Hostile, NanAttributesAreRefusedInfinitiesRender) {
  auto e = error(problem("[4]", ", negative_slope: .nan", "p", "r", "leaky_relu"));
  EXPECT_EQ(e.line(), 7);
  EXPECT_EQ(e.field(), "graph[0].negative_slope");
  EXPECT_THAT(e.message(), HasSubstr("NaN"));
  e = error(problem("[4]", ", min: [0.5, .NaN]", "p", "r", "clamp"));
  EXPECT_EQ(e.field(), "graph[0].min[1]");
  const kb::Problem p = load("ok", problem("[4]", ", min: -.inf, max: .inf", "p", "r", "clamp"));
  const std::string py = kb::render_pytorch(p);
  EXPECT_THAT(py, HasSubstr("torch.clamp(x, min=float('-inf'), max=float('inf'))"));
}

TEST_F(Hostile, NonFiniteNumbersRenderAsPythonLiterals) {
  EXPECT_EQ(kb::attr_to_python(kb::AttrValue(std::nan(""))), "float('nan')");
  EXPECT_EQ(kb::attr_to_python(kb::AttrValue(-HUGE_VAL)), "float('-inf')");
  EXPECT_EQ(kb::attr_to_python(kb::AttrValue(std::vector<double>{HUGE_VAL, 1.0})),
            "[float('inf'), 1.0]");
}

TEST_F(Hostile, StringAttributesRenderAsOneLiteral) {
  EXPECT_EQ(kb::attr_to_python(kb::AttrValue(std::string("tanh"))), "'tanh'");
  EXPECT_EQ(kb::attr_to_python(kb::AttrValue(std::string("a')\nimport os  #\\"))),
            R"('a\')\x0aimport os  #\\')");
  EXPECT_EQ(kb::attr_to_python(kb::AttrValue(std::string("\xc3\xa9\xe2\x80\xa8"))),
            R"('\xe9\u2028')");
  EXPECT_THROW(kb::attr_to_python(kb::AttrValue(std::string("\xff"))), kb::Error);
}

// Every line of a rendered script that is not code of the renderer's own making is a comment.
void expect_no_live_text(const std::string& py, const std::string& payload) {
  std::istringstream in(py);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(payload) != std::string::npos) {
      EXPECT_TRUE(line.starts_with("#")) << "live line: " << line;
    }
  }
  EXPECT_EQ(py.find('\r'), std::string::npos);
}

TEST_F(Hostile, RenderedTextNeverBecomesCode) {
  // A Problem that did not come through the loader (JSON, a test) is rendered just as safely.
  kb::Problem p = load("ok", problem());
  p.name = "n\nos.system(\"name\")";
  p.provenance.ref = "r\nos.system(\"id\")";
  p.provenance.source = "s\ros.system(\"src\")";
  p.description = "line one\nos.system(\"desc\")\r\nos.system(\"cr\")\xc2\x85os.system(\"nel\")";
  p.id = "l1/x\nos.system(\"idx\")";
  const std::string py = kb::render_pytorch(p);
  expect_no_live_text(py, "os.system");
  EXPECT_THAT(py, HasSubstr("# Provenance: s\\x0dos.system(\"src\")  r\\x0aos.system(\"id\")"));
  // Value names become code: anything but an identifier is refused.
  p = load("ok", problem());
  p.outputs = {"y\nimport os"};
  EXPECT_THROW(kb::render_pytorch(p), kb::Error);
  p = load("ok", problem());
  p.inputs[0].name = "x=1;import os;x";
  EXPECT_THROW(kb::render_pytorch(p), kb::Error);
}

// ----- YAML messages -----------------------------------------------------------------------------

TEST_F(Hostile, DeepNestingSaysSo) {
  const std::string deep = "name: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  auto e = error(deep);
  EXPECT_EQ(e.field(), "(yaml)");
  EXPECT_THAT(e.message(), HasSubstr("nested more than"));
  EXPECT_THAT(e.message(), Not(HasSubstr("bad file")));
  std::string maps = "name: ";
  for (int i = 0; i < 3000; ++i)
    maps += "{a: ";
  maps += "1" + std::string(3000, '}') + "\n";
  e = error(maps);
  EXPECT_THAT(e.message(), HasSubstr("nested more than"));
}

TEST_F(Hostile, NonScalarKeysAreErrorsWithAPlace) {
  auto e = error(problem() + "precision: {[a, b]: 1}\n");
  EXPECT_EQ(e.line(), 9);
  EXPECT_EQ(e.field(), "precision.(key)") << e.what();
  EXPECT_THAT(e.message(), HasSubstr("keys must be plain names"));
}

} // namespace
