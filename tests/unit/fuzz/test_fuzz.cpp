// Mutation fuzzing of the readers of untrusted input, bounded in time: the problem YAML loader,
// the models file loader, code extraction from LLM answers and the worker's message decoder. Each
// target starts from real inputs (levels/, tests/data, config/models.yaml, example kernels,
// encoded messages), mutates them with a seeded generator and checks that nothing crashes and that
// the only exceptions are the documented ones, naming the file. KB_FUZZ_SECONDS sets the time per
// target (default 15), KB_FUZZ_SEED the seed (default fixed, so a run is repeatable up to its
// iteration count). A failing input is written to $TMPDIR/kb_fuzz_<target>_<seed>_<iteration>
// and becomes a regression test in tests/unit/catalog/test_hostile.cpp or here.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "llm.hpp"
#include "op.hpp"
#include "protocol.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

double fuzz_seconds() {
  const char* s = std::getenv("KB_FUZZ_SECONDS");
  return s && *s ? std::atof(s) : 15.0;
}
uint64_t fuzz_seed() {
  const char* s = std::getenv("KB_FUZZ_SEED");
  return s && *s ? std::strtoull(s, nullptr, 10) : 20250611;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file under `dir` whose name ends in one of `exts`.
std::vector<std::string> files_under(const fs::path& dir, std::initializer_list<std::string> exts) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    for (const auto& ext : exts)
      if (e.is_regular_file() && e.path().string().ends_with(ext))
        out.push_back(read(e.path()));
  return out;
}

// Byte-level and token-level mutations of a corpus of real inputs.
class Mutator {
public:
  Mutator(std::vector<std::string> corpus, std::vector<std::string> tokens, uint64_t seed)
      : m_corpus(std::move(corpus)), m_tokens(std::move(tokens)), m_rng(seed) {
    // Tokens every reader of text should survive: bytes that are not UTF-8, control characters,
    // extreme numbers, deep nesting, YAML aliases and tags, JSON escapes.
    for (const char* t : {"\xff",
                          "\xc0\xaf",
                          "\xed\xa0\x80",
                          "\xf4\x90\x80\x80",
                          "\xc3",
                          "\x00",
                          "\r",
                          "\n",
                          "\x1b[2J",
                          "\xc2\x85",
                          "\xe2\x80\xa8",
                          ".nan",
                          ".inf",
                          "-.inf",
                          "1e308",
                          "-1e308",
                          "4.9e-324",
                          "0",
                          "-1",
                          "9223372036854775807",
                          "-9223372036854775808",
                          "18446744073709551616",
                          "1000000000000",
                          "[[[[[[[[",
                          "]]]]",
                          "{{{{",
                          "}}}}",
                          "&a ",
                          "*a",
                          "!!binary ",
                          "!!str ",
                          "<<: *a",
                          "? ",
                          ": ",
                          "- ",
                          "---\n",
                          "...\n",
                          "\"",
                          "'",
                          "\\",
                          "\\u0000",
                          "\\ud800",
                          "\\xff",
                          "#",
                          "%YAML 1.2\n",
                          "|\n",
                          ">-\n",
                          "~",
                          "null"})
      m_tokens.emplace_back(t, t[0] == 0 ? 1 : std::char_traits<char>::length(t));
  }

  std::string next() {
    std::string s = pick(m_corpus);
    const int rounds = 1 + static_cast<int>(below(4));
    for (int r = 0; r < rounds; ++r)
      mutate(s);
    if (s.size() > 1 << 16)
      s.resize(1 << 16);
    return s;
  }

private:
  std::vector<std::string> m_corpus, m_tokens;
  std::mt19937_64 m_rng;

  std::size_t below(std::size_t n) { return n == 0 ? 0 : m_rng() % n; }
  const std::string& pick(const std::vector<std::string>& v) { return v[below(v.size())]; }

  void mutate(std::string& s) {
    const std::size_t at = below(s.size() + 1);
    switch (below(8)) {
    case 0: // flip a bit
      if (!s.empty())
        s[below(s.size())] ^= static_cast<char>(1u << below(8));
      break;
    case 1: // a random byte
      if (!s.empty())
        s[below(s.size())] = static_cast<char>(below(256));
      break;
    case 2: // insert a token
      s.insert(at, pick(m_tokens));
      break;
    case 3: // replace a run with a token
      s.replace(at, below(16), pick(m_tokens));
      break;
    case 4: // delete a run
      s.erase(at, below(32));
      break;
    case 5: { // duplicate a run
      const std::string run = s.substr(at, below(64));
      s.insert(below(s.size() + 1), run);
      break;
    }
    case 6: { // splice in a piece of another input
      const std::string& other = pick(m_corpus);
      const std::size_t from = below(other.size() + 1);
      s.insert(at, other.substr(from, below(256)));
      break;
    }
    default: { // swap a number for an extreme one
      const std::size_t d = s.find_first_of("0123456789", at);
      if (d != std::string::npos) {
        const std::size_t end = s.find_first_not_of("0123456789.e-", d);
        s.replace(d, (end == std::string::npos ? s.size() : end) - d,
                  pick({"0", "-1", "9223372036854775807", "1000000000000", "1e308", ".nan", "65536",
                        "2147483648"}));
      }
    }
    }
  }
  const char* pick(std::initializer_list<const char*> l) { return *(l.begin() + below(l.size())); }
};

// Runs `check` on mutated inputs until the time is up; an exception escaping `check` fails the
// test with the input saved for reproduction.
void fuzz(const std::string& target, std::vector<std::string> corpus,
          std::vector<std::string> tokens, const std::function<void(const std::string&)>& check) {
  ASSERT_FALSE(corpus.empty());
  const uint64_t seed = fuzz_seed();
  Mutator m(corpus, std::move(tokens), seed);
  // The unmutated inputs first: they must pass too.
  for (const auto& c : corpus)
    check(c);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(fuzz_seconds());
  int64_t n = 0;
  for (; std::chrono::steady_clock::now() < deadline; ++n) {
    const std::string input = m.next();
    try {
      check(input);
    } catch (const std::exception& e) {
      const fs::path saved =
          fs::temp_directory_path() / fmt::format("kb_fuzz_{}_{}_{}", target, seed, n);
      std::ofstream(saved, std::ios::binary) << input;
      FAIL() << target << ": unexpected exception " << e.what() << " on input saved to " << saved
             << " (seed " << seed << ", iteration " << n << ")";
    }
    if (::testing::Test::HasFailure()) {
      const fs::path saved =
          fs::temp_directory_path() / fmt::format("kb_fuzz_{}_{}_{}", target, seed, n);
      std::ofstream(saved, std::ios::binary) << input;
      FAIL() << target << ": property failed on input saved to " << saved;
    }
  }
  ::testing::Test::RecordProperty("iterations", std::to_string(n));
  std::printf("%s: %lld inputs in %.0f s (seed %llu)\n", target.c_str(), static_cast<long long>(n),
              fuzz_seconds(), static_cast<unsigned long long>(seed));
}

const std::string k_source = KB_SOURCE_DIR;

// ----- problem files
// ------------------------------------------------------------------------------

TEST(Fuzz, ProblemLoader) {
  std::vector<std::string> corpus = files_under(k_source + "/levels", {".yaml"});
  for (auto& f : files_under(k_source + "/tests/data/catalog", {".yaml"}))
    corpus.push_back(std::move(f));
  std::vector<std::string> tokens;
  for (const auto& op : kb::all_ops()) {
    tokens.push_back(op.name);
    for (const auto& a : op.attrs)
      tokens.push_back(a + ": ");
  }
  const fs::path root = fs::temp_directory_path() / fmt::format("kb_fuzz_levels_{}", ::getpid());
  fs::create_directories(root / "level1");
  const std::string path = (root / "level1" / "fuzzed.yaml").string();
  const kb::GpuCeilings ceilings = kb::datasheet_ceilings_h100();
  fuzz("problem", std::move(corpus), std::move(tokens), [&](const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    kb::Problem p;
    try {
      p = kb::load_problem(path, root.string());
    } catch (const kb::InputError& e) {
      ASSERT_EQ(e.file(), path) << e.what();
      ASSERT_EQ(kb::invalid_utf8_at(e.what()), std::nullopt) << "message is not text";
      return;
    }
    // What loads is consistent, printable and renders.
    ASSERT_TRUE(std::isfinite(p.flops) && p.flops >= 0.0) << p.flops;
    ASSERT_TRUE(std::isfinite(p.min_bytes) && p.min_bytes > 0.0) << p.min_bytes;
    const double floor = kb::floor_time_ms(p, ceilings);
    ASSERT_TRUE(std::isfinite(floor) && floor > 0.0) << floor;
    for (const auto& [name, v] : p.values) {
      ASSERT_LE(v.shape.size(), kb::k_max_rank) << name;
      ASSERT_LE(kb::numel(v.shape), kb::k_max_elements) << name;
    }
    (void)json(p).dump(); // strict: every text is UTF-8
    const std::string py = kb::render_pytorch(p);
    ASSERT_EQ(kb::invalid_utf8_at(py), std::nullopt);
    ASSERT_EQ(py.find('\r'), std::string::npos);
  });
  fs::remove_all(root);
}

// ----- models file ------------------------------------------------------------------------------

TEST(Fuzz, ModelsLoader) {
  std::vector<std::string> corpus = {read(k_source + "/config/models.yaml")};
  corpus.push_back("models:\n  mine:\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n"
                   "    model: m\n    extra_body: {a: [1, {b: c}], d: true}\n"
                   "defaults: {temperature: 0.5, max_retries: 2}\n");
  std::vector<std::string> tokens = {
      "provider: ",    "base_url: ",    "model: ",          "extra_body: ",
      "api_key_env: ", "temperature: ", "concurrency: ",    "replay",
      "anthropic",     "https://x/",    "defaults:\n",      "models:\n",
      "max_retries: ", "price_in: ",    "read_timeout_s: ", "max_output_tokens: "};
  fuzz("models", std::move(corpus), std::move(tokens), [](const std::string& text) {
    std::vector<kb::llm::ModelConfig> models;
    try {
      models = kb::llm::parse_models(text, "models.yaml");
    } catch (const kb::InputError& e) {
      ASSERT_EQ(e.file(), "models.yaml") << e.what();
      return;
    }
    for (const auto& m : models) {
      // Everything a model carries goes into JSON requests and the store: strict dumps.
      (void)json({m.name, m.model_id, m.base_url, m.api_key_env, m.source, m.replay_dir,
                  m.anthropic_version, m.max_tokens_field})
          .dump();
      (void)m.extra_body.dump();
    }
  });
}

// ----- code extraction --------------------------------------------------------------------------

TEST(Fuzz, CodeExtraction) {
  std::vector<std::string> corpus;
  for (const auto& code : files_under(k_source + "/levels/examples", {".cu"})) {
    corpus.push_back("Here is the kernel:\n```cuda\n" + code + "```\nDone.");
    corpus.push_back("<think>first ```cpp\nint x;\n``` then</think>\n~~~cu\n" + code + "\n~~~\n");
  }
  corpus.push_back("```python\nprint(1)\n```\n```\nextern \"C\" int kb_forward() {}\n");
  std::vector<std::string> tokens = {"```",         "~~~",     "```cuda\n",
                                     "```python\n", "<think>", "</think>",
                                     "kb_forward",  "\n```\n", "````"};
  fuzz("extract", std::move(corpus), std::move(tokens), [](const std::string& answer) {
    const kb::llm::ExtractedCode r = kb::llm::extract_code(answer);
    if (r.found) {
      ASSERT_GE(r.blocks, 1);
      ASSERT_NE(r.code.find_first_not_of(" \t\r\n\f\v"), std::string::npos);
    } else {
      ASSERT_FALSE(r.reason.empty());
    }
    // Stored as JSON text, the reply and the code never end in an exception.
    const std::string dumped = kb::dump_json(json{{"answer", answer}, {"code", r.code}});
    ASSERT_EQ(kb::invalid_utf8_at(dumped), std::nullopt);
  });
}

// ----- the workers' messages
// -----------------------------------------------------------------------

// Decodes a body as T; json and kb errors are the documented ways of refusing it.
template <class T> void try_body(const json& body) {
  try {
    (void)body.get<T>();
  } catch (const json::exception&) {
  } catch (const kb::Error&) {
  }
}

TEST(Fuzz, WorkerMessages) {
  namespace ev = kb::eval;
  const kb::Catalog c = kb::load_catalog(k_source + "/levels");
  ASSERT_FALSE(c.problems.empty());
  ev::CandidateJob job;
  job.problem = c.problems.front();
  job.so_path = "/tmp/x.so";
  job.mailboxes = {"00ff"};
  ev::RoundDone round;
  round.stream_ms = {0.5, 0.6};
  round.wide_ms = {0.5, 0.7};
  round.host_ms = {0.6, 0.8};
  ev::Verdict verdict;
  verdict.outputs.resize(2);
  verdict.reason = "values";
  ev::Failure failure;
  failure.message = "illegal address";
  ev::Shipped shipped;
  shipped.input_checksums = {1, 2, 18446744073709551615ull};
  std::vector<std::string> corpus = {
      ev::encode(job, 1, "tok"),           ev::encode(ev::RefBegin{job.problem}, 2, "tok"),
      ev::encode(round, 3, "tok"),         ev::encode(verdict, 4, "tok"),
      ev::encode(failure, 5, "tok"),       ev::encode(shipped, 6, "tok"),
      ev::encode(ev::Ready{}, 7, "tok"),   ev::encode(ev::CheckDone{}, 8, "tok"),
      ev::encode(ev::TimeReady{}, 9, "t"), ev::encode(ev::Started{}, 0, ""),
      ev::encode(ev::Judge{}, 10, "tok"),  ev::encode(ev::TimePrepare{}, 11, "tok")};
  std::vector<std::string> tokens = {
      "\"type\":", "\"seq\":", "\"body\":", "\"token\":", "null",        "true",
      "[]",        "{}",       "-1",        "1.5",        "\"\\ud800\"", "1e999"};
  fuzz("protocol", std::move(corpus), std::move(tokens), [](const std::string& line) {
    std::string why;
    const auto env = ev::decode(line, &why);
    if (!env) {
      ASSERT_FALSE(why.empty());
      return;
    }
    const json& b = env->body;
    try_body<ev::CandidateJob>(b);
    try_body<ev::RunCheck>(b);
    try_body<ev::TimePrepare>(b);
    try_body<ev::TimeRound>(b);
    try_body<ev::ShipKept>(b);
    try_body<ev::RefBegin>(b);
    try_body<ev::Judge>(b);
    try_body<ev::Started>(b);
    try_body<ev::Ready>(b);
    try_body<ev::CheckDone>(b);
    try_body<ev::TimeReady>(b);
    try_body<ev::RoundDone>(b);
    try_body<ev::Shipped>(b);
    try_body<ev::RefBegun>(b);
    try_body<ev::Verdict>(b);
    try_body<ev::Failure>(b);
    // Whatever a worker sent can be stored and printed.
    const std::string dumped = kb::dump_json(b);
    ASSERT_EQ(kb::invalid_utf8_at(dumped), std::nullopt);
  });
}

} // namespace
