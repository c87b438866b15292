// Regression cases of the models file loader found by hand or by the fuzz targets: text that is
// not UTF-8, keys that are not names, deep nesting. Each ends in an error naming the place.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llm.hpp"

namespace {

using ::testing::HasSubstr;

kb::InputError models_error(const std::string& text) {
  try {
    kb::llm::parse_models(text, "models.yaml");
  } catch (const kb::InputError& e) {
    EXPECT_EQ(e.file(), "models.yaml");
    return e;
  }
  ADD_FAILURE() << "loaded without error:\n" << text;
  return kb::InputError("", 0, "", "");
}

const std::string k_model = "models:\n"
                            "  mine:\n"
                            "    provider: openai\n"
                            "    base_url: http://127.0.0.1:9/v1\n"
                            "    model: MODEL\n";

std::string with_model(const std::string& id) {
  std::string s = k_model;
  return s.replace(s.find("MODEL"), 5, id);
}

TEST(ModelsFile, ModelIdThatIsNotUtf8IsAnErrorNamingLineAndField) {
  const auto e = models_error(with_model("gpt-\xff"));
  EXPECT_EQ(e.line(), 5);
  EXPECT_EQ(e.field(), "models.mine.model");
  EXPECT_THAT(e.message(), HasSubstr("invalid UTF-8 (byte 0xFF at offset 4)"));
  EXPECT_EQ(kb::llm::parse_models(with_model("caf\xc3\xa9"), "models.yaml")[0].model_id,
            "caf\xc3\xa9");
}

TEST(ModelsFile, ModelNameThatIsNotUtf8IsAnError) {
  const auto e = models_error("models:\n  \"m\xfe\": {provider: replay}\n");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.field(), "models.(key)");
}

TEST(ModelsFile, ExtraBodyTextIsChecked) {
  const auto e = models_error(k_model + "    extra_body: {reasoning: {effort: \"hi\xc0\xaf\"}}\n");
  EXPECT_EQ(e.line(), 6);
  EXPECT_EQ(e.field(), "models.mine.extra_body.reasoning.effort");
}

TEST(ModelsFile, KeysMustBeNames) {
  const auto e = models_error(k_model + "    [a, b]: 1\n");
  EXPECT_EQ(e.field(), "models.mine.(key)");
  EXPECT_THAT(e.message(), HasSubstr("keys must be plain names"));
}

TEST(ModelsFile, DeepNestingSaysSo) {
  const auto e = models_error("models: " + std::string(3000, '[') + std::string(3000, ']'));
  EXPECT_THAT(e.message(), HasSubstr("nested more than"));
}

} // namespace
