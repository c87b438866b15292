// Unit tests of code extraction: fences, languages, several blocks, think-tags, no code.
#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

TEST(Extract, SingleCudaBlock) {
  auto r = extract_code("Here it is:\n```cuda\n__global__ void k() {}\n```\nDone.");
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.code, "__global__ void k() {}\n");
  EXPECT_EQ(r.language, "cuda");
  EXPECT_EQ(r.blocks, 1);
  EXPECT_FALSE(r.unterminated);
}

TEST(Extract, LanguageTagsAccepted) {
  for (std::string tag : {"", "cpp", "c++", "cu", "CUDA", "cuda title=kernel.cu"}) {
    auto r = extract_code("```" + tag + "\nint x;\n```\n");
    ASSERT_TRUE(r.found) << "tag '" << tag << "'";
    EXPECT_EQ(r.code, "int x;\n") << tag;
  }
}

TEST(Extract, NonCodeLanguagesIgnored) {
  auto r = extract_code("```python\nimport torch\n```\n```bash\nnvcc x.cu\n```\n");
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.reason, "no code block");
  EXPECT_EQ(r.blocks, 0);
}

TEST(Extract, PrefersLastBlockDefiningKbForward) {
  const std::string answer =
      "First try:\n```cuda\nextern \"C\" int kb_forward() { return 1; }\n```\n"
      "A helper that is long but not the entry point:\n```cuda\n"
      "__device__ float helper(float x) { return x * x + 1.0f; }\n"
      "__device__ float helper2(float x) { return x * x + 2.0f; }\n```\n"
      "Final:\n```cuda\nextern \"C\" int kb_forward() { return 0; }\n```\n"
      "Usage:\n```python\nprint(1)\n```\n";
  auto r = extract_code(answer);
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.code, "extern \"C\" int kb_forward() { return 0; }\n");
  EXPECT_EQ(r.blocks, 3);
}

TEST(Extract, LongestWhenNoneDefinesKbForward) {
  auto r = extract_code("```cpp\nshort;\n```\n```cpp\nmuch longer block;\n```\n```\nmid one;\n```");
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.code, "much longer block;\n");
}

TEST(Extract, UnterminatedFenceTakesTheRest) {
  auto r = extract_code("Sure.\n```cuda\n__global__ void k() {}\nextern \"C\" int kb_forward();\n");
  ASSERT_TRUE(r.found);
  EXPECT_TRUE(r.unterminated);
  EXPECT_EQ(r.code, "__global__ void k() {}\nextern \"C\" int kb_forward();\n\n");
}

TEST(Extract, NoBlockAtAll) {
  auto r = extract_code("I would tile the matrix in shared memory.");
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.reason, "no code block");
  auto e = extract_code("  \n ");
  EXPECT_FALSE(e.found);
  EXPECT_EQ(e.reason, "empty answer");
}

TEST(Extract, ThinkTagsStrippedFirst) {
  const std::string answer = "<think>maybe ```cuda\nint wrong_kb_forward;\n``` no</think>\n"
                             "```cuda\nint right;\n```";
  auto r = extract_code(answer);
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.code, "int right;\n");
}

TEST(Extract, UnclosedThinkDropsTheRest) {
  auto r = extract_code("<think>```cuda\nint draft;\n```");
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.reason, "empty answer");
}

TEST(Extract, LoneClosingThinkDropsReasoningBefore) {
  EXPECT_EQ(strip_think("reasoning ```cuda\nx\n```</think>answer"), "answer");
  EXPECT_EQ(strip_think("a<think>b</think>c<think>d</think>e"), "ace");
  EXPECT_EQ(strip_think("no tags"), "no tags");
}

TEST(Extract, TildeFencesAndLongerFences) {
  auto r = extract_code("~~~cuda\nint a;\n~~~\n");
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.code, "int a;\n");
  // A four-backtick fence may contain a three-backtick line.
  auto q = extract_code("````cuda\n// ```\nint b;\n````\n");
  ASSERT_TRUE(q.found);
  EXPECT_EQ(q.code, "// ```\nint b;\n");
}

TEST(Extract, CrLfLineEndings) {
  auto r = extract_code("```cuda\r\nint a;\r\n```\r\n");
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.code, "int a;\n");
}

} // namespace
} // namespace kb::llm
