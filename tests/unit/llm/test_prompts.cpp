// Unit tests of prompt templates: rendering, errors with file and line, the shipped templates.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

TEST(Prompts, RendersPlaceholders) {
  PromptVars v{{"name", "matmul"}, {"n", "4"}};
  EXPECT_EQ(render_template("solve {{name}} in {{ n }} steps; {{name}}!", v, "t.md"),
            "solve matmul in 4 steps; matmul!");
  EXPECT_EQ(render_template("literal {{{{ braces", v, "t.md"), "literal {{ braces");
  EXPECT_EQ(render_template("no placeholders", v, "t.md"), "no placeholders");
}

TEST(Prompts, MissingValueNamesFileLineAndPlaceholder) {
  try {
    render_template("line one\nline two {{missing}}\n", {}, "prompts/x.md");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "prompts/x.md");
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.field(), "missing");
  }
}

TEST(Prompts, UnterminatedPlaceholderIsAnError) {
  EXPECT_THROW(render_template("a {{oops\n}}", {{"oops", "x"}}, "t.md"), InputError);
  EXPECT_THROW(render_template("a {{bad name}}", {{"bad name", "x"}}, "t.md"), InputError);
}

TEST(Prompts, PlaceholderListInOrder) {
  EXPECT_EQ(template_placeholders("{{b}} {{a}} {{b}}"), (std::vector<std::string>{"b", "a"}));
}

TEST(Prompts, TrimLogKeepsFirstLines) {
  EXPECT_EQ(trim_log("a\nb\nc\nd\n", 2), "a\nb\n... (2 more lines)\n");
  EXPECT_EQ(trim_log("a\nb", 5), "a\nb\n");
  EXPECT_EQ(trim_log("a\n\n\n", 5), "a\n");
}

TEST(Prompts, MismatchStatistics) {
  MismatchInfo m;
  m.output = "y";
  m.seed_index = 2;
  m.distribution = "normal";
  m.mismatch_count = 1234;
  m.max_abs_err = 0.5;
  m.max_rel_err = 0.25;
  m.first_bad_index = 7;
  m.nan_count = 3;
  const auto s = format_mismatch(m);
  EXPECT_NE(s.find("output y"), std::string::npos) << s;
  EXPECT_NE(s.find("1234 elements differ"), std::string::npos) << s;
  EXPECT_NE(s.find("max abs error 0.5"), std::string::npos) << s;
  EXPECT_NE(s.find("flat index 7"), std::string::npos) << s;
  EXPECT_NE(s.find("3 NaN"), std::string::npos) << s;
}

PromptContext sample_context() {
  PromptContext c;
  c.problem_id = "l1/matmul_square_4096";
  c.problem_pytorch = "def forward(a, b):\n    return a @ b";
  c.abi_header = "int kb_forward(...);";
  c.gpu.ceilings.gpu_name = "NVIDIA H100 80GB HBM3";
  c.gpu.ceilings.bandwidth_gbs = 3350;
  c.gpu.ceilings.fp32_tflops = 67;
  c.gpu.sm_count = 132;
  c.gpu.l2_bytes = 50ll << 20;
  c.gpu.compute_capability = "9.0";
  c.example_kernel = "// example";
  c.compile_log = "e1\ne2\ne3\ne4\n";
  c.max_log_lines = 2;
  c.speedup = 1.2345;
  c.roofline_pct = 41.06;
  c.candidate_ms = 1.5;
  c.baseline_ms = 1.85;
  return c;
}

TEST(Prompts, ContextValues) {
  auto v = prompt_vars(sample_context());
  EXPECT_EQ(v["gpu_sms"], "132");
  EXPECT_EQ(v["gpu_l2"], "50 MiB");
  EXPECT_EQ(v["gpu_bandwidth"], "3350 GB/s");
  EXPECT_EQ(v["speedup"], "1.234");
  EXPECT_EQ(v["roofline_pct"], "41.1");
  EXPECT_EQ(v["compile_log"], "e1\ne2\n... (2 more lines)\n");
  EXPECT_EQ(v["mismatch"], "(none)");
  EXPECT_NE(v["gpu_summary"].find("132 SMs"), std::string::npos);
}

TEST(Prompts, UnknownGpuSaysSo) {
  // Generate mode: no GPU, so neither name nor figures are claimed.
  PromptContext c;
  auto v = prompt_vars(c);
  EXPECT_EQ(v["gpu_name"], "unknown GPU");
  EXPECT_EQ(v["gpu_sms"], "unknown");
  EXPECT_EQ(v["gpu_bandwidth"], "unknown");
  EXPECT_EQ(v["gpu_ceilings"], "peak throughputs unknown");
  EXPECT_EQ(v["gpu_summary"].find("datasheet"), std::string::npos) << v["gpu_summary"];
}

TEST(Prompts, ShippedTemplatesRenderWithContextValues) {
  auto lib = PromptLibrary::load(std::string(KB_SOURCE_DIR) + "/prompts");
  const auto vars = prompt_vars(sample_context());
  for (auto name : k_prompt_names) {
    std::string out;
    ASSERT_NO_THROW(out = lib.render(name, vars)) << name;
    EXPECT_EQ(out.find("{{"), std::string::npos) << name;
    EXPECT_FALSE(out.empty()) << name;
  }
  const auto problem = lib.render("problem", vars);
  EXPECT_NE(problem.find("return a @ b"), std::string::npos);
  EXPECT_NE(problem.find("132 SMs"), std::string::npos);
  EXPECT_NE(problem.find("// example"), std::string::npos);
  const auto fb = lib.render("feedback_correct", vars);
  EXPECT_NE(fb.find("1.234x"), std::string::npos) << fb;
}

TEST(Prompts, UserEditedDirectoryAndMissingFile) {
  const auto dir = std::filesystem::temp_directory_path() / "kb_llm_prompts_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (auto name : k_prompt_names)
    std::ofstream(dir / (std::string(name) + ".md")) << "custom " << name << " {{problem_id}}";
  auto lib = PromptLibrary::load(dir.string());
  EXPECT_EQ(lib.render("system", {{"problem_id", "p"}}), "custom system p");
  std::filesystem::remove(dir / "feedback_timeout.md");
  try {
    PromptLibrary::load(dir.string());
    FAIL() << "expected an error for the missing template";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("feedback_timeout.md"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace kb::llm
