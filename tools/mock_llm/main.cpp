// kbench-mock-llm: a scripted loopback chat server speaking the OpenAI and Anthropic dialects,
// with fault injection and request counters, for end-to-end tests and benchmarks.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <sys/socket.h>

namespace {

using nlohmann::json;

enum class Fault {
  none,
  delay,
  rate_limit,
  server_error,
  http_error,
  truncated,
  malformed,
  no_code,
  compile_error,
  wrong
};

const std::map<std::string, Fault> k_faults{
    {"none", Fault::none},
    {"delay", Fault::delay},
    {"rate_limit", Fault::rate_limit},
    {"server_error", Fault::server_error},
    {"http_error", Fault::http_error},
    {"truncated", Fault::truncated},
    {"malformed", Fault::malformed},
    {"no_code", Fault::no_code},
    {"compile_error", Fault::compile_error},
    {"wrong", Fault::wrong},
};

// A kernel that implements the ABI correctly for any single-input elementwise identity-shaped
// problem (it applies ReLU), used when an answer gives no text of its own.
constexpr const char* k_good_kernel = R"(#include <kbench/kb_abi.h>

__global__ void relu_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out,
                          void* workspace, cudaStream_t stream) {
  int64_t n = kb_numel(&out[0]);
  relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((const float*)in[0].data,
                                                                (float*)out[0].data, n);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
})";

// Does not compile: undeclared identifier and a missing semicolon.
constexpr const char* k_bad_kernel = R"(#include <kbench/kb_abi.h>

__global__ void broken(const float* x, float* y, int64_t n) {
  y[threadIdx.x] = x[threadIdx.x] * undeclared_scale
}

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out,
                          void* workspace, cudaStream_t stream) {
  broken<<<1, 32, 0, stream>>>((const float*)in[0].data, (float*)out[0].data, 32);
  return 0;
})";

// Compiles and runs but writes zeros instead of the answer.
constexpr const char* k_wrong_kernel = R"(#include <kbench/kb_abi.h>

__global__ void zero_kernel(float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out,
                          void* workspace, cudaStream_t stream) {
  int64_t n = kb_numel(&out[0]);
  zero_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((float*)out[0].data, n);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
})";

std::string fenced(const std::string& code) {
  return "Here is the kernel.\n\n```cuda\n" + code + "\n```\n";
}

struct Answer {
  Fault fault = Fault::none;
  std::string fault_name = "none";
  std::optional<std::string> text;
  int status = 0;
  std::string retry_after = "1";
  int delay_ms = 0;
  std::optional<int64_t> tokens_in, tokens_out;
  bool usage = true;
  std::string finish_reason;
  std::optional<std::string> error_message; // replaces the error text of injected HTTP errors
  std::optional<std::string> model;         // only for requests naming this model
  std::optional<std::string> match;         // only when the last user message contains this
  int repeat = 1;                           // uses; -1 = unlimited
  int used = 0;
};

Answer parse_answer(const json& j, const std::string& where) {
  if (!j.is_object())
    throw std::runtime_error(where + ": expected an object");
  Answer a;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "fault") {
      auto f = k_faults.find(v.get<std::string>());
      if (f == k_faults.end())
        throw std::runtime_error(where + ".fault: unknown fault '" + v.get<std::string>() + "'");
      a.fault = f->second;
      a.fault_name = f->first;
    } else if (k == "text") {
      a.text = v.get<std::string>();
    } else if (k == "code") {
      a.text = fenced(v.get<std::string>());
    } else if (k == "status") {
      a.status = v.get<int>();
    } else if (k == "retry_after") {
      a.retry_after = v.is_string() ? v.get<std::string>() : v.dump();
    } else if (k == "delay_ms") {
      a.delay_ms = v.get<int>();
    } else if (k == "tokens_in") {
      a.tokens_in = v.get<int64_t>();
    } else if (k == "tokens_out") {
      a.tokens_out = v.get<int64_t>();
    } else if (k == "usage") {
      a.usage = v.get<bool>();
    } else if (k == "error_message") {
      a.error_message = v.get<std::string>();
    } else if (k == "finish_reason") {
      a.finish_reason = v.get<std::string>();
    } else if (k == "model") {
      a.model = v.get<std::string>();
    } else if (k == "match") {
      a.match = v.get<std::string>();
    } else if (k == "repeat") {
      a.repeat = v.get<int>();
    } else {
      throw std::runtime_error(where + "." + k + ": unknown field");
    }
  }
  if (a.fault == Fault::http_error && a.status == 0)
    throw std::runtime_error(where + ".status: required for fault http_error");
  return a;
}

struct Stats {
  int64_t requests = 0; // chat requests (both dialects)
  int64_t in_flight = 0;
  int64_t max_in_flight = 0;
  int64_t auth_ok = 0, auth_missing = 0, auth_wrong = 0;
  std::map<std::string, int64_t> by_path, by_model, by_fault, by_status;
};

class MockServer {
public:
  MockServer(json script, std::string dialect) : m_dialect(std::move(dialect)) {
    if (!script.is_object())
      throw std::runtime_error("script: expected a JSON object");
    for (auto it = script.begin(); it != script.end(); ++it)
      if (it.key() != "answers" && it.key() != "fallback" && it.key() != "require_key")
        throw std::runtime_error("script." + it.key() + ": unknown field");
    if (script.contains("answers")) {
      if (!script["answers"].is_array())
        throw std::runtime_error("script.answers: expected an array");
      for (std::size_t i = 0; i < script["answers"].size(); ++i)
        m_answers.push_back(
            parse_answer(script["answers"][i], "script.answers[" + std::to_string(i) + "]"));
    }
    if (script.contains("fallback"))
      m_fallback = parse_answer(script["fallback"], "script.fallback");
    if (script.contains("require_key"))
      m_require_key = script["require_key"].get<std::string>();
    m_initial = m_answers;
  }

  void install(httplib::Server& svr) {
    auto chat = [this](bool anthropic) {
      return [this, anthropic](const httplib::Request& req, httplib::Response& res) {
        handle_chat(req, res, anthropic);
      };
    };
    if (m_dialect != "anthropic") {
      svr.Post("/v1/chat/completions", chat(false));
      svr.Post("/chat/completions", chat(false));
    }
    if (m_dialect != "openai")
      svr.Post("/v1/messages", chat(true));
    svr.Get("/stats", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(stats_json().dump(2), "application/json");
    });
    svr.Get("/requests", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(m_mutex);
      res.set_content(m_requests.dump(), "application/json");
    });
    svr.Post("/reset", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(m_mutex);
      m_stats = Stats{};
      m_answers = m_initial;
      m_requests = json::array();
      res.set_content("{}", "application/json");
    });
    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"ok\":true}", "application/json");
    });
  }

  void stop() { m_stopping = true; }

private:
  json stats_json() {
    std::lock_guard lock(m_mutex);
    return json{{"requests", m_stats.requests},
                {"in_flight", m_stats.in_flight},
                {"max_in_flight", m_stats.max_in_flight},
                {"auth_ok", m_stats.auth_ok},
                {"auth_missing", m_stats.auth_missing},
                {"auth_wrong", m_stats.auth_wrong},
                {"by_path", m_stats.by_path},
                {"by_model", m_stats.by_model},
                {"by_fault", m_stats.by_fault},
                {"by_status", m_stats.by_status}};
  }

  static std::string last_user_message(const json& body) {
    if (!body.contains("messages") || !body["messages"].is_array())
      return {};
    for (auto it = body["messages"].rbegin(); it != body["messages"].rend(); ++it)
      if (it->is_object() && it->value("role", "") == "user" && (*it)["content"].is_string())
        return (*it)["content"].get<std::string>();
    return {};
  }

  static int64_t prompt_chars(const json& body) {
    int64_t n = 0;
    if (body.contains("system") && body["system"].is_string())
      n += static_cast<int64_t>(body["system"].get<std::string>().size());
    if (body.contains("messages") && body["messages"].is_array())
      for (const auto& m : body["messages"])
        if (m.is_object() && m.contains("content") && m["content"].is_string())
          n += static_cast<int64_t>(m["content"].get<std::string>().size());
    return n;
  }

  // Picks the first scripted answer with uses left that matches, else the fallback.
  std::optional<Answer> pick(const std::string& model, const std::string& user) {
    for (auto& a : m_answers) {
      if (a.repeat >= 0 && a.used >= a.repeat)
        continue;
      if (a.model && *a.model != model)
        continue;
      if (a.match && user.find(*a.match) == std::string::npos)
        continue;
      ++a.used;
      return a;
    }
    return m_fallback;
  }

  void sleep_ms(int ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!m_stopping && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  void error_body(httplib::Response& res, bool anthropic, int status, const std::string& type,
                  const std::string& message) {
    res.status = status;
    json j = anthropic ? json{{"type", "error"}, {"error", {{"type", type}, {"message", message}}}}
                       : json{{"error", {{"type", type}, {"message", message}}}};
    res.set_content(j.dump(), "application/json");
  }

  void handle_chat(const httplib::Request& req, httplib::Response& res, bool anthropic) {
    json body = json::parse(req.body, nullptr, false);
    const std::string model =
        (!body.is_discarded() && body.is_object()) ? body.value("model", "") : "";
    std::string auth;
    if (anthropic) {
      auth = req.get_header_value("x-api-key");
    } else {
      auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0)
        auth = auth.substr(7);
    }
    std::optional<Answer> answer;
    bool auth_failed = false;
    {
      std::lock_guard lock(m_mutex);
      ++m_stats.requests;
      ++m_stats.by_path[req.path];
      ++m_stats.by_model[model];
      m_stats.max_in_flight = std::max(m_stats.max_in_flight, ++m_stats.in_flight);
      if (auth.empty())
        ++m_stats.auth_missing;
      else if (m_require_key && auth != *m_require_key)
        ++m_stats.auth_wrong;
      else
        ++m_stats.auth_ok;
      auth_failed = m_require_key && auth != *m_require_key;
      // Recorded for tests that check what was sent; credentials are not recorded.
      m_requests.push_back(json{{"path", req.path},
                                {"body", body.is_discarded() ? json(req.body) : body},
                                {"has_anthropic_version", req.has_header("anthropic-version")}});
      if (!auth_failed && !body.is_discarded())
        answer = pick(model, last_user_message(body));
      if (answer)
        ++m_stats.by_fault[answer->fault_name];
    }
    respond(res, anthropic, body, model, auth_failed, answer);
    std::lock_guard lock(m_mutex);
    --m_stats.in_flight;
    ++m_stats.by_status[std::to_string(res.status)];
  }

  void respond(httplib::Response& res, bool anthropic, const json& body, const std::string& model,
               bool auth_failed, const std::optional<Answer>& answer) {
    if (auth_failed)
      return error_body(res, anthropic, 401, "authentication_error", "invalid api key");
    if (body.is_discarded() || !body.is_object())
      return error_body(res, anthropic, 400, "invalid_request_error", "body is not JSON");
    if (!answer)
      return error_body(res, anthropic, 410, "script_exhausted",
                        "the script has no answer left for this request");
    const Answer& a = *answer;
    if (a.delay_ms > 0)
      sleep_ms(a.delay_ms);
    switch (a.fault) {
    case Fault::rate_limit:
      res.set_header("Retry-After", a.retry_after);
      return error_body(res, anthropic, a.status ? a.status : 429, "rate_limit_error",
                        a.error_message.value_or("rate limited by the mock"));
    case Fault::server_error:
      return error_body(res, anthropic, a.status ? a.status : 500, "server_error",
                        a.error_message.value_or("injected server error"));
    case Fault::http_error:
      return error_body(res, anthropic, a.status, "injected_error",
                        a.error_message.value_or("injected HTTP error"));
    case Fault::malformed:
      res.status = 200;
      res.set_content("{\"choices\": [ {\"message\": this is not json", "application/json");
      return;
    default:
      break;
    }
    std::string text;
    switch (a.fault) {
    case Fault::no_code:
      text = a.text.value_or("I would fuse the elementwise operations and tile the reduction "
                             "through shared memory, but I have not written the code yet.");
      break;
    case Fault::compile_error:
      text = a.text.value_or(fenced(k_bad_kernel));
      break;
    case Fault::wrong:
      text = a.text.value_or(fenced(k_wrong_kernel));
      break;
    default:
      text = a.text.value_or(fenced(k_good_kernel));
      break;
    }
    const int64_t tin = a.tokens_in.value_or((prompt_chars(body) + 3) / 4);
    const int64_t tout = a.tokens_out.value_or((static_cast<int64_t>(text.size()) + 3) / 4);
    json j;
    if (anthropic) {
      j = json{{"id", "msg_mock"},
               {"type", "message"},
               {"role", "assistant"},
               {"model", model},
               {"content", json::array({json{{"type", "text"}, {"text", text}}})},
               {"stop_reason", a.finish_reason.empty() ? "end_turn" : a.finish_reason}};
      if (a.usage)
        j["usage"] = json{{"input_tokens", tin}, {"output_tokens", tout}};
    } else {
      j = json{
          {"id", "chatcmpl-mock"},
          {"object", "chat.completion"},
          {"created", 0},
          {"model", model},
          {"choices", json::array({json{{"index", 0},
                                        {"message", {{"role", "assistant"}, {"content", text}}},
                                        {"finish_reason",
                                         a.finish_reason.empty() ? "stop" : a.finish_reason}}})}};
      if (a.usage)
        j["usage"] =
            json{{"prompt_tokens", tin}, {"completion_tokens", tout}, {"total_tokens", tin + tout}};
    }
    std::string payload = j.dump();
    res.status = 200;
    if (a.fault == Fault::truncated) {
      // Announce the full length, send half, then drop the connection.
      const std::size_t half = payload.size() / 2;
      res.set_content_provider(
          payload.size(), "application/json",
          [payload, half](std::size_t offset, std::size_t, httplib::DataSink& sink) {
            if (offset < half)
              sink.write(payload.data() + offset, half - offset);
            return offset < half;
          });
      return;
    }
    res.set_content(payload, "application/json");
  }

  std::string m_dialect;
  std::mutex m_mutex;
  std::vector<Answer> m_answers, m_initial;
  std::optional<Answer> m_fallback;
  std::optional<std::string> m_require_key;
  Stats m_stats;
  json m_requests = json::array();
  std::atomic<bool> m_stopping{false};
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kbench-mock-llm: scripted loopback chat server (OpenAI and Anthropic dialects)"};
  int port = 0;
  std::string script_path;
  std::string dialect = "both";
  double max_seconds = 600.0;
  int threads = 128;
  app.add_option("--port", port, "TCP port on 127.0.0.1; 0 picks a free one")
      ->check(CLI::Range(0, 65535));
  app.add_option("--script", script_path, "JSON script of answers and faults")->required();
  app.add_option("--dialect", dialect, "endpoints to serve")
      ->check(CLI::IsMember({"openai", "anthropic", "both"}));
  app.add_option("--max-seconds", max_seconds, "exit after this many seconds")
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--threads", threads, "request handler threads")->check(CLI::Range(1, 1024));
  CLI11_PARSE(app, argc, argv);

  json script;
  try {
    std::ifstream in(script_path);
    if (!in)
      throw std::runtime_error("cannot read " + script_path);
    script = json::parse(in);
  } catch (const std::exception& e) {
    std::cerr << "kbench-mock-llm: " << script_path << ": " << e.what() << "\n";
    return 2;
  }

  // Signals are taken by a dedicated thread so shutdown goes through Server::stop().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<MockServer> mock;
  try {
    mock = std::make_unique<MockServer>(script, dialect);
  } catch (const std::exception& e) {
    std::cerr << "kbench-mock-llm: " << script_path << ": " << e.what() << "\n";
    return 2;
  }
  httplib::Server svr;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_keep_alive_max_count(100000);
  svr.set_keep_alive_timeout(30);
  mock->install(svr);
  // The library listens with a backlog of 5, so bursts of new connections would see dropped SYNs
  // and one-second retransmits; the listening socket is captured here and re-listened below with
  // a deeper backlog.
  int listen_fd = -1;
  svr.set_socket_options([&listen_fd](int sock) {
    httplib::default_socket_options(sock);
    // Accepted sockets inherit TCP_NODELAY; without it, the separate writes of headers and body
    // meet the client's delayed ACK and every answer costs 40 ms.
    int one = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    listen_fd = sock;
  });

  int bound = port;
  if (port == 0) {
    bound = svr.bind_to_any_port("127.0.0.1");
    if (bound < 0) {
      std::cerr << "kbench-mock-llm: cannot bind 127.0.0.1\n";
      return 1;
    }
  } else if (!svr.bind_to_port("127.0.0.1", port)) {
    std::cerr << "kbench-mock-llm: cannot bind 127.0.0.1:" << port << "\n";
    return 1;
  }
  if (listen_fd >= 0)
    ::listen(listen_fd, 4096);
  std::cout << "listening on 127.0.0.1:" << bound << std::endl;

  // A stop request can arrive before listen_after_bind() has started, when Server::stop() would
  // do nothing; so stopping repeats until the listen loop has returned.
  std::atomic<bool> listen_returned{false};
  auto stop_server = [&] {
    mock->stop();
    while (!listen_returned) {
      svr.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(done_mutex);
    if (!done_cv.wait_for(lock, std::chrono::duration<double>(max_seconds), [&] { return done; })) {
      lock.unlock();
      std::cerr << "kbench-mock-llm: --max-seconds reached, exiting\n";
      stop_server();
    }
  });
  std::thread signal_thread([&] {
    int sig = 0;
    if (sigwait(&signals, &sig) == 0)
      stop_server();
  });
  signal_thread.detach();

  const bool ok = svr.listen_after_bind();
  listen_returned = true;
  {
    std::lock_guard lock(done_mutex);
    done = true;
  }
  done_cv.notify_all();
  watchdog.join();
  return ok ? 0 : 1;
}
