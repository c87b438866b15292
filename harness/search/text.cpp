// Text helpers of the strategies: idea lists, refine feedback and answer summaries.
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "search.hpp"

namespace kb::search {

namespace {

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
    ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
    --e;
  return std::string(s.substr(b, e - b));
}

// Markdown emphasis and headings around a list marker or an item's title.
std::string strip_emphasis(std::string s) {
  s = trim(s);
  while (s.starts_with("**") || s.starts_with("__"))
    s = trim(s.substr(2));
  return s;
}

} // namespace

std::vector<std::string> parse_ideas(std::string_view text_in) {
  const std::string text = llm::strip_think(text_in);
  // "1. x", "1) x", "1: x", "Idea 1: x", "**Idea 1.** x", "### 1. x", "- x", "* x"
  static const std::regex numbered(
      R"(^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:idea\s*)?\d{1,2}\s*(?:[.):]|\*\*|\s-)\s*(?:\*\*|__)?\s*(.*)$)",
      std::regex::icase);
  static const std::regex bullet(R"(^\s*[-*\u2022]\s+(.*)$)");
  std::vector<std::string> numbered_items, bullet_items;
  std::vector<std::string>* current = nullptr;
  std::istringstream in(text);
  std::string line;
  bool in_code = false;
  while (std::getline(in, line)) {
    if (trim(line).starts_with("```") || trim(line).starts_with("~~~")) {
      in_code = !in_code;
      continue;
    }
    if (in_code)
      continue;
    std::smatch m;
    if (std::regex_match(line, m, numbered)) {
      numbered_items.push_back(strip_emphasis(m[1].str()));
      current = &numbered_items;
    } else if (numbered_items.empty() && std::regex_match(line, m, bullet)) {
      bullet_items.push_back(strip_emphasis(m[1].str()));
      current = &bullet_items;
    } else if (current && !current->empty() && !trim(line).empty()) {
      // Continuation of the current item; a bullet under a numbered item stays in it.
      current->back() += (current->back().empty() ? "" : " ") + trim(line);
    } else if (trim(line).empty() && current == &bullet_items) {
      current = nullptr; // a blank line ends a bullet list item's continuation
    }
  }
  std::vector<std::string> items = !numbered_items.empty() ? numbered_items : bullet_items;
  std::vector<std::string> out;
  for (auto& s : items) {
    // Bold markers carry no meaning in an idea and would only vary its text.
    for (std::size_t pos; (pos = s.find("**")) != std::string::npos;)
      s.erase(pos, 2);
    s = trim(s);
    if (!s.empty())
      out.push_back(s);
  }
  if (out.empty()) {
    std::string whole = trim(text);
    if (!whole.empty())
      out.push_back(whole);
  }
  return out;
}

std::string summarize_answer(std::string_view answer, int max_chars) {
  const std::string text = llm::strip_think(answer);
  const llm::ExtractedCode code = llm::extract_code(text);
  std::size_t fence = std::min(text.find("```"), text.find("~~~"));
  std::string explanation = trim(std::string_view(text).substr(0, fence));
  if (max_chars >= 0 && explanation.size() > static_cast<std::size_t>(max_chars)) {
    explanation.resize(static_cast<std::size_t>(max_chars));
    explanation += " [...]";
  }
  if (!code.found)
    return explanation.empty() ? std::string("(no code in this answer)") : explanation;
  std::string out = explanation.empty() ? "" : explanation + "\n\n";
  out += "```cuda\n" + code.code;
  if (!out.ends_with('\n'))
    out += '\n';
  out += "```";
  return out;
}

std::string feedback_text(const llm::PromptLibrary& prompts, llm::PromptContext ctx,
                          const Verdict& v, const std::string& no_code_reason) {
  if (!v.eval)
    return "Your kernel was recorded but not evaluated. Return the complete .cu file in one "
           "```cuda block.";
  const EvalResult& r = *v.eval;
  ctx.compile_log = r.compile_log;
  ctx.error_message = r.message;
  ctx.mismatch = r.mismatch;
  ctx.speedup = r.speedup;
  ctx.roofline_pct = r.roofline_pct;
  ctx.candidate_ms = r.candidate_time ? r.candidate_time->median_ms : 0.0;
  ctx.baseline_ms = r.baseline_time ? r.baseline_time->median_ms : 0.0;
  switch (r.outcome) {
  case Outcome::no_code:
    return fmt::format("Your answer did not contain a usable code block ({}). Return the complete "
                       ".cu file in one ```cuda block.",
                       no_code_reason.empty() ? r.message : no_code_reason);
  case Outcome::compile_error:
    if (ctx.compile_log.empty())
      ctx.compile_log = r.message;
    return prompts.render("feedback_compile_error", llm::prompt_vars(ctx));
  case Outcome::rejected:
  case Outcome::load_error:
  case Outcome::runtime_error:
    ctx.error_message = fmt::format("{}: {}", outcome_name(r.outcome), r.message);
    return prompts.render("feedback_runtime_error", llm::prompt_vars(ctx));
  case Outcome::timeout:
    return prompts.render("feedback_timeout", llm::prompt_vars(ctx));
  case Outcome::mismatch: {
    llm::PromptVars vars = llm::prompt_vars(ctx);
    // Statistics are missing only for structural failures (shape, input mutation): then the
    // message says what went wrong.
    if (!ctx.mismatch)
      vars["mismatch"] = r.message;
    return prompts.render("feedback_mismatch", vars);
  }
  case Outcome::correct:
    return prompts.render("feedback_correct", llm::prompt_vars(ctx));
  }
  return r.message;
}

} // namespace kb::search
