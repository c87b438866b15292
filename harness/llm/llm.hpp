// kbench llm module: model configuration, chat providers over libcurl (OpenAI-compatible,
// Anthropic, replay), retries and rate limits, token accounting, cache keys, prompt
// templates, code extraction and secret redaction. The only public header of kb_llm.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core.hpp"

namespace kb::llm {

// ---------------------------------------------------------------------------------------------
// Model configuration
// ---------------------------------------------------------------------------------------------

// Wire protocol of a model.
//  openai:    POST {base_url}/chat/completions (OpenAI, vLLM, SGLang, llama.cpp server,
//             OpenRouter, Together, DeepSeek, Gemini's OpenAI-compatible endpoint)
//  anthropic: POST {base_url}/v1/messages with x-api-key and anthropic-version headers
//  replay:    no network; answers with kernel files from a directory (see ReplayProvider notes)
enum class ProviderKind { openai, anthropic, replay };

std::string_view provider_kind_name(ProviderKind k);
// Parses "openai" | "anthropic" | "replay"; nullopt otherwise.
std::optional<ProviderKind> parse_provider_kind(std::string_view name);

// Everything kbench needs to talk to one model. The API key itself is never stored here: only
// the name of the environment variable that holds it.
struct ModelConfig {
  std::string name; // the name runs and reports use ("gpt-4o", "kevin-32b")
  ProviderKind provider = ProviderKind::openai;
  std::string base_url;    // e.g. "https://api.openai.com/v1", "http://127.0.0.1:8000/v1"
  std::string model_id;    // the provider's model id ("cognition-ai/Kevin-32B")
  std::string api_key_env; // environment variable holding the key; empty = no authentication
  double temperature = 0.0;
  int max_output_tokens = 8192;
  // Merged into the request body last (top-level keys), e.g. {"top_p": 0.95} or
  // {"reasoning_effort": "high"}.
  nlohmann::json extra_body = nlohmann::json::object();
  // OpenAI reasoning models want "max_completion_tokens" and reject "temperature".
  std::string max_tokens_field = "max_tokens";
  bool send_temperature = true;
  std::string anthropic_version = "2023-06-01";
  double price_in_per_mtok = 0.0;   // USD per million input tokens
  double price_out_per_mtok = 0.0;  // USD per million output tokens
  double requests_per_minute = 0.0; // 0 = unlimited
  double tokens_per_minute = 0.0;   // input + output tokens; 0 = unlimited
  int concurrency = 8;              // requests in flight for this model (1..64)
  double connect_timeout_s = 10.0;
  // Abort an attempt when no byte moves for this long (checked about once per second).
  double read_timeout_s = 300.0;
  double total_timeout_s = 1800.0;  // hard cap on one attempt
  int max_retries = 4;              // retries after the first attempt
  double retry_base_delay_s = 1.0;  // first backoff delay
  double retry_max_delay_s = 60.0;  // cap on one backoff delay
  double max_retry_after_s = 300.0; // a longer Retry-After ends the retries instead
  std::string replay_dir; // replay: directory of <problem stem>/*.cu (default "levels/examples")
  // Answers (text and reasoning each) longer than this are cut to it; the response keeps the
  // size as received in answer_bytes (docs/models.md).
  int max_answer_bytes = 1 << 20;
  std::string source; // "file:line" of the definition, or "built-in"
};

// Defaults for a well-known model name (gpt-*, o1/o3/o4-mini*, claude-*, gemini-*, deepseek-*,
// cognition-ai/Kevin-32B or kevin*, llama.cpp / local*, replay): provider, base URL, key variable,
// prices, limits. nullopt for a name that matches no known family.
std::optional<ModelConfig> known_model_defaults(std::string_view name);

// Loads a models file:
//   defaults: {concurrency: 16, ...}        # optional, applied to every model
//   models:
//     gpt-4o: {}                            # everything from the well-known defaults
//     kevin:  {provider: openai, base_url: http://127.0.0.1:8000/v1,
//              model: cognition-ai/Kevin-32B, price_in: 0, price_out: 0}
// Field names: provider, base_url, model, api_key_env, temperature, max_output_tokens, extra_body,
// max_tokens_field, send_temperature, anthropic_version, price_in, price_out,
// requests_per_minute, tokens_per_minute, concurrency, connect_timeout_s, read_timeout_s,
// total_timeout_s, max_retries, retry_base_delay_s, retry_max_delay_s, max_retry_after_s,
// replay_dir, max_answer_bytes. A model whose name matches no known family must give provider,
// base_url and model. Throws kb::InputError naming file, line and field for unreadable YAML,
// unknown fields, wrong types, out-of-range values and missing required fields. Order of the file
// is kept.
std::vector<ModelConfig> load_models(const std::string& path);
// Same, from YAML text; `origin` names the text in messages.
std::vector<ModelConfig> parse_models(std::string_view yaml_text, const std::string& origin);
// Looks a model up by name; throws kb::Error listing the known names when absent.
const ModelConfig& find_model(const std::vector<ModelConfig>& models, std::string_view name);

// USD cost of a call.
double cost_usd(const ModelConfig& m, int64_t tokens_in, int64_t tokens_out);

// ---------------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------------

struct ChatMessage {
  std::string role; // "system" | "user" | "assistant"
  std::string content;
  bool operator==(const ChatMessage&) const = default;
};

struct ChatRequest {
  std::vector<ChatMessage> messages;
  std::optional<double> temperature; // unset: the model's configured temperature
  std::optional<int> max_tokens;     // unset: the model's max_output_tokens
  std::optional<int64_t> seed;       // sent where the API has one (OpenAI-compatible)
  // Metadata: not sent to HTTP APIs. problem_id picks the replay directory; sample_index makes
  // otherwise identical requests distinct (cache key, replay file choice).
  std::string problem_id; // e.g. "l1/matmul_square_4096"
  int sample_index = 0;
};

// Class of a call's result. Failures are values: a provider never throws for I/O.
enum class ChatStatus {
  ok,
  http_error,   // a non-retryable HTTP status (4xx other than 429), or retries exhausted on 5xx
  timeout,      // connect, read (no bytes for read_timeout_s) or total timeout
  rate_limited, // 429 after the retries (or a Retry-After beyond max_retry_after_s)
  malformed,    // 2xx whose body is not the expected JSON
  network,      // connection refused/reset, truncated body, TLS, DNS
  budget,       // refused before sending: the token budget is spent
};
std::string_view chat_status_name(ChatStatus s);
std::optional<ChatStatus> parse_chat_status(std::string_view name);

// One attempt of a call (the first one and each retry).
struct AttemptRecord {
  ChatStatus status = ChatStatus::ok;
  int http_status = 0;
  std::string error_class; // e.g. "http_429", "curl_28_operation_timedout", "json_parse"
  double latency_s = 0.0;
  double wait_before_s = 0.0;          // backoff slept before this attempt
  std::optional<double> retry_after_s; // the server's Retry-After, seconds
};

struct ChatResponse {
  std::string text;      // the answer's text (Anthropic: text blocks joined)
  std::string reasoning; // separate reasoning text when the API returns one
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  bool tokens_estimated = false; // no usage fields: counts estimated from text length
  double cost_usd = 0.0;
  double latency_s = 0.0; // whole call, retries and waits included
  ChatStatus status = ChatStatus::ok;
  std::string error_class;   // finest class of the last failure; empty when ok
  std::string error_message; // redacted; empty when ok
  int http_status = 0;       // of the last attempt; 0 without HTTP
  int retries = 0;           // attempts after the first
  std::string finish_reason; // "stop", "length", "end_turn", ...
  std::string request_hash;  // cache key of the request
  std::string model;         // ModelConfig::name
  bool cached = false;       // served from the response cache
  // The answer's size as received when text was cut to ModelConfig::max_answer_bytes; 0 when
  // the text is whole.
  int64_t answer_bytes = 0;
  std::optional<int64_t> seed; // the request's seed when the API took one (OpenAI-compatible)
  std::vector<AttemptRecord> attempts;

  bool ok() const { return status == ChatStatus::ok; }
};

void to_json(nlohmann::json& j, const ChatMessage& m);
void from_json(const nlohmann::json& j, ChatMessage& m);
void to_json(nlohmann::json& j, const AttemptRecord& a);
void from_json(const nlohmann::json& j, AttemptRecord& a);
void to_json(nlohmann::json& j, const ChatResponse& r);
void from_json(const nlohmann::json& j, ChatResponse& r);

// Rough token count of text for budgets and replay answers: ceil(bytes / 4).
int64_t estimate_tokens(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Response cache
// ---------------------------------------------------------------------------------------------

// Key of a request: xxh64 (16 hex digits) over a canonical JSON of provider, base URL, model id,
// messages, effective temperature, effective max tokens, extra body, sample index and the seed
// when set. Equal requests give equal keys on every host.
std::string cache_key(const ModelConfig& m, const ChatRequest& r);

// ---------------------------------------------------------------------------------------------
// Retries, rate limits and budgets
// ---------------------------------------------------------------------------------------------

struct RetryPolicy {
  int max_retries = 4;
  double base_delay_s = 1.0;
  double max_delay_s = 60.0;
  double jitter = 0.5;              // fraction of the delay removed at random: [d(1-j), d]
  double max_retry_after_s = 300.0; // a longer Retry-After is not waited for
};
RetryPolicy retry_policy_of(const ModelConfig& m);

// Whether an attempt with this status may be retried: 429, 5xx, timeouts and network errors;
// never other 4xx, malformed bodies or budget refusals.
bool is_retryable(ChatStatus status, int http_status);

// Backoff before retry number `retry` (0 = the first retry): d = min(max_delay, base * 2^retry),
// returned as d * (1 - jitter * u) for u in [0, 1).
double backoff_delay_s(const RetryPolicy& p, int retry, double u);

// Delay before the next attempt: the backoff, or the Retry-After when longer. nullopt when no
// retry should happen (not retryable, retries spent, or Retry-After above max_retry_after_s).
std::optional<double> next_retry_delay_s(const RetryPolicy& p, int retries_done, ChatStatus status,
                                         int http_status, std::optional<double> retry_after_s,
                                         double u);

// Parses a Retry-After header value: delta-seconds ("120", "1.5") or an HTTP date
// ("Wed, 21 Oct 2015 07:28:00 GMT", seconds from `now`, never negative). nullopt if unparsable.
std::optional<double> parse_retry_after(std::string_view value,
                                        std::chrono::system_clock::time_point now);

// Token-bucket limiter of requests per minute and tokens per minute for one model; thread-safe.
// A bucket holds one minute's allowance and refills continuously.
class RateLimiter {
public:
  RateLimiter(double requests_per_minute, double tokens_per_minute);
  // Takes one request and `tokens` from the buckets at time now_s (any monotonic seconds) and
  // returns how long the caller must wait before sending (0 when allowed now). The debt is
  // recorded, so concurrent callers queue up behind each other.
  double reserve(double now_s, double tokens);
  // Blocks until a request with `tokens` may be sent (uses the steady clock).
  void acquire(double tokens);

private:
  std::mutex m_mutex;
  double m_rpm, m_tpm;
  double m_requests, m_tokens; // bucket levels (may go negative = debt)
  double m_last_s;
  bool m_started = false;
};

// ---------------------------------------------------------------------------------------------
// Secret redaction
// ---------------------------------------------------------------------------------------------

// Replaces secrets in text: every registered secret value (and its URL-encoded form), the values
// of Authorization / x-api-key / api-key headers, and key-like URL query parameters (key=,
// api_key=, token=, ...) become "[REDACTED]". Thread-safe.
class Redactor {
public:
  void add_secret(std::string secret); // values shorter than 4 bytes are ignored
  std::string redact(std::string_view text) const;

private:
  mutable std::mutex m_mutex;
  std::vector<std::string> m_secrets;
};

// Pattern-only redaction (headers, query parameters), for text with no known secret.
std::string redact_patterns(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Providers and the client
// ---------------------------------------------------------------------------------------------

// One model's wire protocol. complete() performs exactly one attempt (no retries, cache or rate
// limit), is thread-safe, and never throws for I/O: failures come back in ChatResponse.
class Provider {
public:
  virtual ~Provider() = default;
  virtual const ModelConfig& config() const = 0;
  // The response's attempts holds exactly this one attempt (with the server's Retry-After).
  virtual ChatResponse complete(const ChatRequest& request) = 0;
};

// A kernel made for a problem without replay files (the caller's generator, which knows the
// problems): the source, or the reason there is none.
struct GeneratedKernel {
  std::optional<std::string> source;
  std::string label;  // what made it, for the answer ("generated naive kernel")
  std::string reason; // why there is no source
};
// Called with a request's problem_id from client worker threads: must be thread-safe.
using KernelGenerator = std::function<GeneratedKernel(const std::string& problem_id)>;

// Creates the provider of cfg.provider. HTTP providers read the key from the environment
// variable cfg.api_key_env now; throws kb::Error naming the variable (never its value) when it is
// set in the config but absent from the environment, and for an invalid config.
// Replay answers the request's problem (stem of problem_id) with file number
// sample_index mod n of <replay_dir>/<stem>/*.cu (sorted by name), wrapped in a ```cuda fence;
// tokens estimated from text length. A problem without files is answered by `generator` when
// given: with its source in a ```cuda fence, or, when it has none, with a one-line answer
// without code that gives its reason (the attempt is then no_code, not a provider failure).
// Without a generator a missing directory gives http_error "replay_not_found".
std::unique_ptr<Provider> make_provider(const ModelConfig& cfg, KernelGenerator generator = {});

// Counters of a client since construction.
struct ClientStats {
  int64_t calls = 0;    // chat() calls answered
  int64_t attempts = 0; // HTTP attempts made
  int64_t retries = 0;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0.0;
  std::map<std::string, int64_t> failures; // by ChatStatus name, final results only
};

struct ClientOptions {
  int max_in_flight = 0;                    // 0 = the model's concurrency; capped at 64
  uint64_t jitter_seed = 0x6b62656e6368ull; // seeds the backoff jitter
  // Receives one line per attempt failure and retry, already redacted. Called from worker
  // threads; must be thread-safe. Null = silent.
  std::function<void(const std::string&)> log;
  // Replaces the provider (tests); null = make_provider(cfg, replay_generator).
  std::unique_ptr<Provider> provider;
  // Replay models: answers problems without kernel files (see make_provider). Null: none.
  KernelGenerator replay_generator;
};

// A model's client: rate limits, retries with backoff, the answer cap, and a pool of worker
// threads (one connection each) running up to max_in_flight calls concurrently. Thread-safe.
class Client {
public:
  // Throws kb::Error for an invalid config or a missing key variable (see make_provider).
  explicit Client(ModelConfig cfg, ClientOptions options = {});
  ~Client(); // waits for calls in flight
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queues a call. Budgets, the response cache and resume are one layer above the client
  // (search::ModelGateway over the run's call journal): the client only sends.
  std::future<ChatResponse> submit(ChatRequest request);
  // Blocking forms.
  ChatResponse chat(ChatRequest request);
  std::vector<ChatResponse> chat_all(std::vector<ChatRequest> requests);

  const ModelConfig& config() const;
  // How many calls run at once (the worker threads).
  int max_in_flight() const;
  ClientStats stats() const;
  // Redacts text with this client's key registered (for callers that log errors themselves).
  std::string redact(std::string_view text) const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// ---------------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------------

// Template names, one file each: <dir>/<name>.md.
inline constexpr std::string_view k_prompt_names[] = {
    "system",
    "problem",
    "feedback_compile_error",
    "feedback_runtime_error",
    "feedback_mismatch",
    "feedback_timeout",
    "feedback_correct",
    "idea_generation",
    "idea_realisation",
};

using PromptVars = std::map<std::string, std::string, std::less<>>;

// Replaces {{name}} (spaces inside the braces allowed) with vars[name]. Throws kb::InputError
// naming `origin`, the line and the placeholder for a placeholder without a value and for an
// unterminated "{{". "{{{{" renders a literal "{{".
std::string render_template(std::string_view text, const PromptVars& vars,
                            const std::string& origin);
// Placeholder names used in a template, in order of first use.
std::vector<std::string> template_placeholders(std::string_view text);

// The prompt templates of one directory (default "prompts/" in the source tree).
class PromptLibrary {
public:
  // Loads every <name>.md of k_prompt_names from dir; throws kb::Error naming the missing file.
  static PromptLibrary load(const std::string& dir);
  // The directory kbench ships (KB_SOURCE_DIR/prompts unless KBENCH_PROMPTS is set).
  static std::string default_dir();
  const std::string& text(std::string_view name) const; // throws kb::Error for an unknown name
  std::string render(std::string_view name, const PromptVars& vars) const;
  const std::string& dir() const { return m_dir; }

private:
  std::string m_dir;
  std::map<std::string, std::string, std::less<>> m_texts;
};

// The target GPU as the prompts describe it.
struct TargetGpu {
  GpuCeilings ceilings; // name, bandwidth, peak throughputs
  int sm_count = 0;
  int64_t l2_bytes = 0;
  std::string compute_capability; // "9.0"
};

// What the templates can mention. Strings left empty render as "(none)".
struct PromptContext {
  std::string problem_id;
  std::string problem_pytorch; // the problem rendered as PyTorch-equivalent code
  std::string abi_header;      // text of include/kbench/kb_abi.h
  TargetGpu gpu;
  std::string example_kernel; // one worked example kernel
  std::string kernel;         // the candidate under discussion (feedback, realisation)
  std::string compile_log;
  int max_log_lines = 40;
  std::string error_message; // runtime error / timeout message
  std::optional<MismatchInfo> mismatch;
  double speedup = 0.0;
  double roofline_pct = 0.0;
  double candidate_ms = 0.0;
  double baseline_ms = 0.0;
  std::string idea;    // the idea to realise
  std::string history; // summary of earlier attempts (idea generation)
  int num_ideas = 4;
};

// Placeholder values of a context: problem_id, problem, abi_header, gpu_name, gpu_sms, gpu_l2,
// gpu_bandwidth, gpu_ceilings, gpu_summary, example_kernel, kernel, compile_log (trimmed),
// error_message, mismatch (statistics), speedup, roofline_pct, candidate_ms, baseline_ms, idea,
// history, num_ideas.
PromptVars prompt_vars(const PromptContext& ctx);

// Keeps the first max_lines lines of a log (the first errors matter most) and notes how many
// were cut: "... (N more lines)".
std::string trim_log(std::string_view log, int max_lines);
// "output y, seed 2 (normal): 1234 of the elements differ; max abs error 0.5, max rel error ...".
std::string format_mismatch(const MismatchInfo& m);

// ---------------------------------------------------------------------------------------------
// Code extraction
// ---------------------------------------------------------------------------------------------

struct ExtractedCode {
  bool found = false;
  std::string code;          // without the fences
  std::string language;      // the fence's tag ("cuda", "cpp", ""), lower case
  int blocks = 0;            // code blocks seen (after language filtering)
  bool unterminated = false; // the chosen block had no closing fence
  std::string reason;        // when !found: why ("no code block", "empty answer")
};

// Removes <think>...</think> (and an unclosed trailing <think>...; a lone </think> drops all
// text before it, as reasoning servers emit when the opening tag is in the prompt).
std::string strip_think(std::string_view text);

// Extracts the candidate source from an answer: think-tags stripped first; fenced blocks (``` or
// ~~~) with tag cuda/cu/cpp/c++/cxx/c or none are considered (blocks tagged python, bash, ... are
// not); among several, the last one defining kb_forward, else the longest; an unterminated fence
// takes the rest of the answer. found=false (-> Outcome::no_code) when nothing qualifies.
ExtractedCode extract_code(std::string_view answer);

} // namespace kb::llm
