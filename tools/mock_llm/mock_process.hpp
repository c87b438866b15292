// Runs kbench-mock-llm as a child process on 127.0.0.1 with a JSON script and reads its counters
// over HTTP; used by the llm module's end-to-end tests and benchmarks (header-only).
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <curl/curl.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace kb::test {

class MockLlmServer {
public:
  // Starts `bin` (the kbench-mock-llm executable) with `script`; dialect "openai", "anthropic"
  // or "both". Throws std::runtime_error when it does not report its port within 10 s.
  MockLlmServer(const std::string& bin, const nlohmann::json& script,
                const std::string& dialect = "both", double max_seconds = 300.0) {
    static int counter = 0;
    m_script =
        std::filesystem::temp_directory_path() /
        ("kb_mock_llm_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".json");
    std::ofstream(m_script) << script.dump(2);
    int out[2];
    if (::pipe(out) != 0)
      throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    const std::string max_s = std::to_string(max_seconds);
    std::vector<std::string> args{bin,        "--port",          "0",
                                  "--script", m_script.string(), "--dialect",
                                  dialect,    "--max-seconds",   max_s};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&m_pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error("cannot start " + bin);
    }
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char buf[256];
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n <= 0)
          break;
        line.append(buf, static_cast<size_t>(n));
      }
    }
    m_stdout = out[0];
    const std::string prefix = "listening on 127.0.0.1:";
    if (line.rfind(prefix, 0) != 0) {
      stop();
      throw std::runtime_error("kbench-mock-llm did not report its port: '" + line + "'");
    }
    m_port = std::stoi(line.substr(prefix.size()));
  }

  ~MockLlmServer() {
    stop();
    std::error_code ec;
    std::filesystem::remove(m_script, ec);
  }

  MockLlmServer(const MockLlmServer&) = delete;
  MockLlmServer& operator=(const MockLlmServer&) = delete;

  int port() const { return m_port; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

  nlohmann::json stats() const { return nlohmann::json::parse(get("/stats")); }
  nlohmann::json requests() const { return nlohmann::json::parse(get("/requests")); }

  // Exit status after stop(), or -1 while running.
  int stop() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGTERM);
      int status = 0;
      ::waitpid(m_pid, &status, 0);
      m_exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      m_pid = -1;
    }
    if (m_stdout >= 0) {
      ::close(m_stdout);
      m_stdout = -1;
    }
    return m_exit;
  }

private:
  static size_t append(char* d, size_t s, size_t n, void* u) {
    static_cast<std::string*>(u)->append(d, s * n);
    return s * n;
  }

  std::string get(const std::string& path) const {
    CURL* h = curl_easy_init();
    std::string body;
    const std::string u = url() + path;
    curl_easy_setopt(h, CURLOPT_URL, u.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    const CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
      throw std::runtime_error("GET " + u + " failed: " + curl_easy_strerror(rc));
    return body;
  }

  std::filesystem::path m_script;
  pid_t m_pid = -1;
  int m_stdout = -1;
  int m_port = 0;
  int m_exit = -1;
};

} // namespace kb::test
