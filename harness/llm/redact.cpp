// Secret redaction for every log line and error message the llm module produces.
#include <regex>

#include "llm.hpp"

namespace kb::llm {

namespace {

constexpr std::string_view k_mask = "[REDACTED]";

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void replace_all(std::string& text, std::string_view what) {
  if (what.empty())
    return;
  std::size_t pos = 0;
  while ((pos = text.find(what, pos)) != std::string::npos) {
    text.replace(pos, what.size(), k_mask);
    pos += k_mask.size();
  }
}

struct Patterns {
  // Header-style "name: value" / "name=value" for credential headers; the value runs to the end
  // of the token (quotes, commas and whitespace end it).
  std::regex header{
      R"(((?:proxy-)?authorization|x-api-key|api-key|x-goog-api-key)(["']?\s*[:=]\s*["']?)(?:(bearer|basic)\s+)?([^\s"',;]+))",
      std::regex::icase};
  std::regex bearer{R"((bearer\s+)([A-Za-z0-9._~+/=-]{8,}))", std::regex::icase};
  std::regex query{
      R"(([?&](?:key|api_key|apikey|api-key|access_token|token|sig|signature)=)[^&\s"'#]+)",
      std::regex::icase};
  std::regex userinfo{R"((https?://)[^/\s:@]+:[^/\s@]+@)", std::regex::icase};
  // Well-known key shapes (OpenAI/Anthropic/DeepSeek "sk-...", Google "AIza...").
  std::regex key_shapes{R"(\b(?:sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}))"};
};

const Patterns& patterns() {
  static const Patterns p;
  return p;
}

} // namespace

std::string redact_patterns(std::string_view text) {
  const auto& p = patterns();
  std::string s(text);
  s = std::regex_replace(s, p.header, "$1$2$3 [REDACTED]");
  s = std::regex_replace(s, p.bearer, "$1[REDACTED]");
  s = std::regex_replace(s, p.query, "$1[REDACTED]");
  s = std::regex_replace(s, p.userinfo, "$1[REDACTED]@");
  s = std::regex_replace(s, p.key_shapes, "[REDACTED]");
  // "$3 " leaves a stray space when there was no scheme word; normalise "= [" / ": [" forms.
  std::size_t pos = 0;
  while ((pos = s.find("  [REDACTED]", pos)) != std::string::npos)
    s.erase(pos, 1);
  return s;
}

void Redactor::add_secret(std::string secret) {
  if (secret.size() < 4)
    return;
  std::lock_guard lock(m_mutex);
  const std::string encoded = url_encode(secret);
  m_secrets.push_back(std::move(secret));
  if (encoded != m_secrets.back())
    m_secrets.push_back(encoded);
  // Longest first, so a secret that contains another is masked whole.
  std::sort(m_secrets.begin(), m_secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string Redactor::redact(std::string_view text) const {
  std::string s(text);
  {
    std::lock_guard lock(m_mutex);
    for (const auto& secret : m_secrets)
      replace_all(s, secret);
  }
  return redact_patterns(s);
}

} // namespace kb::llm
