// Unit tests of secret redaction.
#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

constexpr const char* k_key = "sk-test-Zq8vX1!k/y+z=";

TEST(Redact, RegisteredSecretEverywhere) {
  Redactor r;
  r.add_secret(k_key);
  const std::string text = std::string("key ") + k_key + " twice " + k_key + " end";
  const auto out = r.redact(text);
  EXPECT_EQ(out.find(k_key), std::string::npos) << out;
  EXPECT_EQ(out, "key [REDACTED] twice [REDACTED] end");
}

TEST(Redact, UrlEncodedSecret) {
  Redactor r;
  r.add_secret(k_key);
  const auto out = r.redact("GET /v1?x=sk-test-Zq8vX1%21k%2Fy%2Bz%3D&y=1");
  EXPECT_EQ(out.find("Zq8vX1"), std::string::npos) << out;
}

TEST(Redact, ShortSecretsIgnored) {
  Redactor r;
  r.add_secret("abc");
  EXPECT_EQ(r.redact("abcabc"), "abcabc");
}

TEST(Redact, HeaderPatterns) {
  EXPECT_EQ(redact_patterns("Authorization: Bearer abcdefghijkl"),
            "Authorization: Bearer [REDACTED]");
  EXPECT_EQ(redact_patterns("x-api-key: secretvalue123"), "x-api-key: [REDACTED]");
  EXPECT_EQ(redact_patterns("X-Goog-Api-Key: foo123456"), "X-Goog-Api-Key: [REDACTED]");
  const auto json = redact_patterns(R"({"authorization": "Bearer abcdefghijkl", "a": 1})");
  EXPECT_EQ(json.find("abcdefghijkl"), std::string::npos) << json;
}

TEST(Redact, UrlPatterns) {
  const auto q = redact_patterns("https://host/v1beta/models?key=AIzaSyA-1234567890&alt=sse");
  EXPECT_EQ(q, "https://host/v1beta/models?key=[REDACTED]&alt=sse");
  const auto u = redact_patterns("failed: http://user:pa55word@proxy:3128/x");
  EXPECT_EQ(u, "failed: http://[REDACTED]@proxy:3128/x");
}

TEST(Redact, KeyShapes) {
  const auto out = redact_patterns("error for sk-proj-abcdefghijklmnop1234 and "
                                   "AIzaSyD-abcdefghijklmnopqrstuvwxyz12345");
  EXPECT_EQ(out, "error for [REDACTED] and [REDACTED]");
}

TEST(Redact, OrdinaryTextUnchanged) {
  const std::string t = "HTTP 429: rate limited; retry in 2 s (authorization failed)";
  EXPECT_EQ(redact_patterns(t), t);
}

} // namespace
} // namespace kb::llm
