// Code extraction from model answers: think-tags, fenced blocks, choice among several blocks.
#include <algorithm>
#include <array>

#include "llm.hpp"

namespace kb::llm {

namespace {

constexpr std::string_view k_open_think = "<think>";
constexpr std::string_view k_close_think = "</think>";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool code_language(std::string_view lang) {
  static constexpr std::array<std::string_view, 10> k_ok{"",    "cuda", "cu",  "cpp", "c++",
                                                         "cxx", "c",    "cuh", "hpp", "h"};
  return std::find(k_ok.begin(), k_ok.end(), lang) != k_ok.end();
}

struct Fence {
  char ch = 0;
  std::size_t len = 0;
  std::string info; // text after the fence characters
};

// A fence line: optional indentation, then 3+ backticks or tildes.
std::optional<Fence> fence_of(std::string_view line) {
  std::string_view s = line;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  if (s.size() < 3 || (s[0] != '`' && s[0] != '~'))
    return std::nullopt;
  Fence f;
  f.ch = s[0];
  while (f.len < s.size() && s[f.len] == f.ch)
    ++f.len;
  if (f.len < 3)
    return std::nullopt;
  f.info = std::string(trim(s.substr(f.len)));
  return f;
}

struct Block {
  std::string language;
  std::string code;
  bool unterminated = false;
};

std::vector<Block> blocks_of(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      nl = text.size();
    std::string_view l = text.substr(pos, nl - pos);
    if (!l.empty() && l.back() == '\r')
      l.remove_suffix(1);
    lines.push_back(l);
    pos = nl + 1;
  }
  std::vector<Block> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto open = fence_of(lines[i]);
    if (!open)
      continue;
    Block b;
    // The language is the first word of the info string ("cuda title=x.cu" -> "cuda").
    const std::string info = lower(open->info);
    b.language = info.substr(0, info.find_first_of(" \t{"));
    if (!b.language.empty() && b.language.front() == '.')
      b.language.erase(0, 1);
    std::size_t j = i + 1;
    bool closed = false;
    for (; j < lines.size(); ++j) {
      auto close = fence_of(lines[j]);
      if (close && close->ch == open->ch && close->len >= open->len && close->info.empty()) {
        closed = true;
        break;
      }
      b.code += lines[j];
      b.code += '\n';
    }
    b.unterminated = !closed;
    out.push_back(std::move(b));
    i = j;
  }
  return out;
}

} // namespace

std::string strip_think(std::string_view text) {
  std::string s(text);
  const std::size_t first_open = s.find(k_open_think);
  const std::size_t first_close = s.find(k_close_think);
  // Servers that put "<think>" in the prompt template return only the closing tag.
  if (first_close != std::string::npos &&
      (first_open == std::string::npos || first_close < first_open))
    s.erase(0, first_close + k_close_think.size());
  for (;;) {
    const std::size_t open = s.find(k_open_think);
    if (open == std::string::npos)
      break;
    const std::size_t close = s.find(k_close_think, open + k_open_think.size());
    if (close == std::string::npos) {
      s.erase(open);
      break;
    }
    s.erase(open, close + k_close_think.size() - open);
  }
  return s;
}

ExtractedCode extract_code(std::string_view answer) {
  ExtractedCode r;
  const std::string text = strip_think(answer);
  if (trim(text).empty()) {
    r.reason = "empty answer";
    return r;
  }
  std::vector<Block> blocks;
  for (auto& b : blocks_of(text))
    if (code_language(b.language) && !trim(b.code).empty())
      blocks.push_back(std::move(b));
  r.blocks = static_cast<int>(blocks.size());
  if (blocks.empty()) {
    r.reason = "no code block";
    return r;
  }
  const Block* chosen = nullptr;
  for (auto it = blocks.rbegin(); it != blocks.rend() && !chosen; ++it)
    if (it->code.find("kb_forward") != std::string::npos)
      chosen = &*it;
  if (!chosen) {
    // Longest; on a tie the later block, as answers usually end with the final version.
    for (const auto& b : blocks)
      if (!chosen || b.code.size() >= chosen->code.size())
        chosen = &b;
  }
  r.found = true;
  r.code = chosen->code;
  r.language = chosen->language;
  r.unterminated = chosen->unterminated;
  return r;
}

} // namespace kb::llm
