// Benchmarks of the llm module against a loopback kbench-mock-llm: sustained throughput at up to
// 64 requests in flight, and the per-call cost the harness adds on top of a bare HTTP exchange.
#include <memory>

#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include "llm.hpp"
#include "mock_process.hpp"
#include "wire.hpp"

namespace {

using namespace kb::llm;
using nlohmann::json;

// One server for the whole binary, answering instantly (or after `delay_ms`, per benchmark).
kb::test::MockLlmServer& server() {
  static kb::test::MockLlmServer s(KB_MOCK_LLM_BIN,
                                   json{{"fallback", json::object()}, {"answers", json::array()}},
                                   "both", 3600.0);
  return s;
}

kb::test::MockLlmServer& slow_server() {
  static kb::test::MockLlmServer s(
      KB_MOCK_LLM_BIN, json{{"fallback", {{"fault", "delay"}, {"delay_ms", 20}}}}, "both", 3600.0);
  return s;
}

ModelConfig model_for(const kb::test::MockLlmServer& s, int concurrency) {
  ModelConfig m;
  m.name = "bench";
  m.base_url = s.url() + "/v1";
  m.model_id = "bench-model";
  m.concurrency = concurrency;
  m.max_retries = 0;
  return m;
}

ChatRequest request(int i) {
  ChatRequest r;
  r.messages = {{"system", std::string(2000, 's')}, {"user", "problem " + std::to_string(i)}};
  r.sample_index = i;
  return r;
}

// Requests per second with `range(0)` calls in flight; each iteration sends 4 x in-flight calls.
void BM_Sustained(benchmark::State& state, kb::test::MockLlmServer& (*srv)()) {
  const int in_flight = static_cast<int>(state.range(0));
  Client c(model_for(srv(), in_flight));
  const int batch = 4 * in_flight;
  int64_t done = 0, failed = 0;
  for (auto _ : state) {
    std::vector<std::future<ChatResponse>> fs;
    fs.reserve(static_cast<size_t>(batch));
    for (int i = 0; i < batch; ++i)
      fs.push_back(c.submit(request(i)));
    for (auto& f : fs) {
      const auto r = f.get();
      done += 1;
      failed += r.ok() ? 0 : 1;
    }
  }
  state.counters["requests_per_s"] =
      benchmark::Counter(static_cast<double>(done), benchmark::Counter::kIsRate);
  state.counters["failed"] = static_cast<double>(failed);
}
BENCHMARK_CAPTURE(BM_Sustained, instant, server)->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
BENCHMARK_CAPTURE(BM_Sustained, delay_20ms, slow_server)->Arg(64)->UseRealTime();

// One call at a time through the whole client (queue, worker thread, cache key, rate limiter,
// body build, curl, parse, stats).
void BM_ClientCall(benchmark::State& state) {
  Client c(model_for(server(), 1));
  int i = 0;
  for (auto _ : state) {
    auto r = c.chat(request(i++));
    if (!r.ok())
      state.SkipWithError("call failed");
  }
}
BENCHMARK(BM_ClientCall)->UseRealTime();

// One attempt through the provider alone, on the calling thread (no queue, retries or cache).
void BM_ProviderCall(benchmark::State& state) {
  auto p = make_provider(model_for(server(), 1));
  int i = 0;
  for (auto _ : state) {
    auto r = p->complete(request(i++));
    if (!r.ok())
      state.SkipWithError("call failed");
  }
}
BENCHMARK(BM_ProviderCall)->UseRealTime();

size_t discard(char*, size_t s, size_t n, void*) {
  return s * n;
}

// The same exchange with a bare reused curl handle and a pre-built body: the floor the client's
// per-call overhead is measured against (BM_ClientCall minus this).
void BM_BareCurlCall(benchmark::State& state) {
  const auto m = model_for(server(), 1);
  CURL* h = curl_easy_init();
  const std::string url = m.base_url + "/chat/completions";
  json body{{"model", m.model_id}, {"messages", request(0).messages}, {"max_tokens", 8192}};
  const std::string payload = body.dump();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  for (auto _ : state) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(h) != CURLE_OK)
      state.SkipWithError("curl failed");
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
}
BENCHMARK(BM_BareCurlCall)->UseRealTime();

// CPU work per call without any I/O: cache key, request body, response parse, code extraction.
void BM_CpuPerCall(benchmark::State& state) {
  const auto m = model_for(server(), 1);
  const std::string reply =
      json{{"choices", json::array({{{"message",
                                      {{"content", "Kernel:\n```cuda\n" + std::string(3000, 'x') +
                                                       "\nkb_forward\n```\n"}}},
                                     {"finish_reason", "stop"}}})},
           {"usage", {{"prompt_tokens", 600}, {"completion_tokens", 800}}}}
          .dump();
  int i = 0;
  for (auto _ : state) {
    const auto req = request(i++);
    auto key = cache_key(m, req);
    auto body = wire::openai_body(m, req).dump();
    ChatResponse out;
    wire::parse_openai(reply, req, out);
    auto code = extract_code(out.text);
    benchmark::DoNotOptimize(key);
    benchmark::DoNotOptimize(body);
    benchmark::DoNotOptimize(code);
  }
}
BENCHMARK(BM_CpuPerCall);

} // namespace

BENCHMARK_MAIN();
