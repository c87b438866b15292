// Unit tests of model configuration: well-known defaults, YAML loading and its error messages.
#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

TEST(Config, KnownFamilies) {
  auto gpt = known_model_defaults("gpt-4o");
  ASSERT_TRUE(gpt);
  EXPECT_EQ(gpt->provider, ProviderKind::openai);
  EXPECT_EQ(gpt->base_url, "https://api.openai.com/v1");
  EXPECT_EQ(gpt->api_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(gpt->max_tokens_field, "max_tokens");
  EXPECT_DOUBLE_EQ(gpt->price_in_per_mtok, 2.5);

  auto o4 = known_model_defaults("o4-mini");
  ASSERT_TRUE(o4);
  EXPECT_EQ(o4->max_tokens_field, "max_completion_tokens");
  EXPECT_FALSE(o4->send_temperature);

  auto claude = known_model_defaults("claude-sonnet-4-20250514");
  ASSERT_TRUE(claude);
  EXPECT_EQ(claude->provider, ProviderKind::anthropic);
  EXPECT_EQ(claude->api_key_env, "ANTHROPIC_API_KEY");
  EXPECT_DOUBLE_EQ(claude->price_out_per_mtok, 15.0);

  auto gemini = known_model_defaults("gemini-2.5-pro");
  ASSERT_TRUE(gemini);
  EXPECT_EQ(gemini->provider, ProviderKind::openai);
  EXPECT_NE(gemini->base_url.find("generativelanguage.googleapis.com"), std::string::npos);

  auto kevin = known_model_defaults("cognition-ai/Kevin-32B");
  ASSERT_TRUE(kevin);
  EXPECT_EQ(kevin->base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(kevin->model_id, "cognition-ai/Kevin-32B");
  EXPECT_TRUE(kevin->api_key_env.empty());

  EXPECT_TRUE(known_model_defaults("deepseek-chat"));
  EXPECT_EQ(known_model_defaults("replay")->provider, ProviderKind::replay);
  EXPECT_FALSE(known_model_defaults("my-private-model"));
}

TEST(Config, LoadsShippedModelsFile) {
  auto models = load_models(std::string(KB_SOURCE_DIR) + "/config/models.yaml");
  ASSERT_GE(models.size(), 10u);
  const auto& kevin = find_model(models, "kevin-32b");
  EXPECT_EQ(kevin.model_id, "cognition-ai/Kevin-32B");
  EXPECT_EQ(kevin.concurrency, 32);
  EXPECT_DOUBLE_EQ(kevin.temperature, 0.6);
  EXPECT_NE(kevin.source.find("models.yaml:"), std::string::npos);
  const auto& sonnet = find_model(models, "claude-sonnet-4");
  EXPECT_EQ(sonnet.model_id, "claude-sonnet-4-20250514");
  EXPECT_EQ(sonnet.provider, ProviderKind::anthropic);
  EXPECT_EQ(find_model(models, "replay").provider, ProviderKind::replay);
  EXPECT_EQ(find_model(models, "gpt-4o").max_retries, 4); // from defaults:
  EXPECT_THROW(find_model(models, "nope"), Error);
}

TEST(Config, CustomModelAndOverrides) {
  auto models = parse_models(R"(
defaults:
  concurrency: 16
models:
  mine:
    provider: openai
    base_url: http://10.0.0.5:9000/v1/
    model: org/model-7b
    temperature: 0.2
    extra_body: {top_p: 0.9, chat_template_kwargs: {enable_thinking: false}, stop: ["</s>"]}
    price_in: 0.1
    price_out: 0.2
    requests_per_minute: 120
  gpt-4o:
    concurrency: 4
)",
                             "m.yaml");
  ASSERT_EQ(models.size(), 2u);
  const auto& m = models[0];
  EXPECT_EQ(m.name, "mine");
  EXPECT_EQ(m.base_url, "http://10.0.0.5:9000/v1"); // trailing slash dropped
  EXPECT_EQ(m.model_id, "org/model-7b");
  EXPECT_EQ(m.concurrency, 16);
  EXPECT_DOUBLE_EQ(m.extra_body["top_p"].get<double>(), 0.9);
  EXPECT_EQ(m.extra_body["chat_template_kwargs"]["enable_thinking"], false);
  EXPECT_EQ(m.extra_body["stop"][0], "</s>");
  EXPECT_DOUBLE_EQ(m.requests_per_minute, 120.0);
  EXPECT_EQ(m.source, "m.yaml:5");
  EXPECT_EQ(models[1].concurrency, 4);
  EXPECT_EQ(models[1].api_key_env, "OPENAI_API_KEY");
  EXPECT_NEAR(cost_usd(m, 1'000'000, 500'000), 0.1 + 0.1, 1e-12);
}

void expect_error(const std::string& yaml, int line, const std::string& field,
                  const std::string& message_part) {
  try {
    parse_models(yaml, "bad.yaml");
    FAIL() << "expected InputError for:\n" << yaml;
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "bad.yaml");
    EXPECT_EQ(e.line(), line) << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(e.message().find(message_part), std::string::npos) << e.what();
  }
}

TEST(Config, ErrorsNameFileLineAndField) {
  expect_error("models:\n  gpt-4o:\n    temprature: 0.5\n", 3, "models.gpt-4o.temprature",
               "unknown field");
  expect_error("models:\n  gpt-4o:\n    temperature: hot\n", 3, "models.gpt-4o.temperature",
               "expected a number");
  expect_error("models:\n  gpt-4o:\n    concurrency: 500\n", 3, "models.gpt-4o.concurrency",
               "out of range");
  expect_error("models:\n  x:\n    provider: grpc\n", 3, "models.x.provider", "unknown provider");
  expect_error("models:\n  x:\n    provider: openai\n    model: m\n", 2, "models.x.base_url",
               "required");
  expect_error("models:\n  gpt-4o:\n    api_key_env: sk-abc123\n", 3, "models.gpt-4o.api_key_env",
               "environment variable");
  expect_error("models:\n  gpt-4o:\n    base_url: ftp://x\n", 3, "models.gpt-4o.base_url",
               "http://");
  expect_error("models: [1, 2]\n", 1, "models", "mapping");
  expect_error("modles:\n  gpt-4o: {}\n", 1, "modles", "unknown section");
  expect_error("models:\n  gpt-4o: {\n", 3, "yaml", "");
}

TEST(Config, UnreadableFile) {
  try {
    load_models("/nonexistent/models.yaml");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/models.yaml");
  }
}

} // namespace
} // namespace kb::llm
