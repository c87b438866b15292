// Stand-in for kbench-worker in the parent-side tests (no GPU): speaks the real protocol. The
// reference mode passes every judgement and times a "baseline" by sleeping KB_FAKE_BASE_MS per
// sample; the candidate mode sleeps KB_FAKE_CAND_MS per sample and behaves as KB_FAKE_BEHAVIOUR
// says: honest, or one of the ways a hostile candidate process can lie or break.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "protocol.hpp"

using namespace kb;
using Clock = std::chrono::steady_clock;

namespace {

int g_fd = 3;
uint64_t g_seq = 0;
std::string g_token;

void raw(const std::string& line) {
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(g_fd, line.data() + off, line.size() - off);
    if (n <= 0)
      return;
    off += static_cast<std::size_t>(n);
  }
}
template <class T> void reply(const T& m) {
  raw(eval::encode(m, g_seq, g_token));
}

bool next(eval::Envelope& e) {
  std::string line;
  if (!std::getline(std::cin, line))
    return false;
  auto d = eval::decode(line, nullptr);
  if (!d)
    std::exit(9);
  e = *d;
  g_seq = e.seq;
  return true;
}

// The GPU both modes report: compute capability from KB_FAKE_CC ("8.9"), else 9.0.
eval::DeviceInfo fake_device() {
  eval::DeviceInfo d{"Fake GPU", 1, 1 << 20, 9, 0};
  if (const char* cc = std::getenv("KB_FAKE_CC"))
    if (std::sscanf(cc, "%d.%d", &d.cc_major, &d.cc_minor) != 2)
      std::exit(8);
  return d;
}

double env_ms(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : fallback;
}

// Sleeps `ms` and returns the time that really passed.
double sleep_ms(double ms) {
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

constexpr double k_overhead_ms = 0.015; // host over events, as the empty calls show it

eval::TimeReady time_ready(const eval::TimePrepare& p) {
  eval::TimeReady r;
  r.sets = 2;
  r.kept_slots = p.kept_slots;
  for (int i = 0; i < p.timing.empty_calls; ++i) {
    r.empty_stream_ms.push_back(0.005);
    r.empty_wide_ms.push_back(0.0055);
    r.empty_host_ms.push_back(0.005 + k_overhead_ms);
  }
  return r;
}

// A round of `n` samples of `ms` each; `claim` scales what is reported, `off_stream` moves the
// work out of the events.
eval::RoundDone round(int n, double ms, double claim, bool off_stream) {
  eval::RoundDone d;
  for (int i = 0; i < n; ++i) {
    const double real = sleep_ms(ms);
    d.stream_ms.push_back(off_stream ? 0.005 : real * claim);
    d.wide_ms.push_back(real * claim);
    d.host_ms.push_back(real * claim + k_overhead_ms);
  }
  return d;
}

int reference() {
  const char* rb = std::getenv("KB_FAKE_REF_BEHAVIOUR");
  if (rb && std::string(rb) == "no_gpu") {
    eval::Failure f;
    f.message = "no usable CUDA GPU: cudaErrorNoDevice: no CUDA-capable device is detected";
    reply(f);
    return 1;
  }
  reply(eval::Started{fake_device()});
  eval::Envelope e;
  std::size_t outputs = 1;
  const double base_ms = env_ms("KB_FAKE_BASE_MS", 1.0);
  while (next(e)) {
    g_token = e.token;
    if (e.type == "begin") {
      outputs = e.body.at("problem").at("outputs").size();
      eval::RefBegun b;
      b.mailboxes.assign(outputs, "00");
      reply(b);
    } else if (e.type == "judge") {
      const auto j = e.body.get<eval::Judge>();
      eval::Verdict v;
      for (std::size_t o = 0; o < outputs; ++o) {
        eval::OutputVerdict ov;
        ov.cand_checksum = ov.ref_checksum = j.check.seed + o;
        v.outputs.push_back(ov);
      }
      reply(v);
    } else if (e.type == "time_prepare") {
      reply(time_ready(e.body.get<eval::TimePrepare>()));
    } else if (e.type == "time_round") {
      reply(round(e.body.get<eval::TimeRound>().samples, base_ms, 1.0, false));
    } else if (e.type == "finish") {
      reply(eval::Finished{});
    }
  }
  return 0;
}

int candidate() {
  const std::string b = std::getenv("KB_FAKE_BEHAVIOUR") ? std::getenv("KB_FAKE_BEHAVIOUR") : "";
  const double cand_ms = env_ms("KB_FAKE_CAND_MS", 1.0);
  if (b == "exit0")
    return 0;
  if (b == "crash") {
    std::fputs("about to crash\n", stderr);
    std::raise(SIGSEGV);
  }
  if (b == "fork") {
    if (::fork() == 0) // holds the channel open; stays in the worker's process group
      ::sleep(1000);
    return 0;
  }
  if (b == "flood") {
    std::string mb(1 << 20, 'x');
    for (int i = 0; i < 100; ++i)
      std::fwrite(mb.data(), 1, mb.size(), stdout);
    return 0;
  }
  if (b == "garbage") {
    raw("this is not json\n");
    ::sleep(1000);
  }
  reply(eval::Started{fake_device()});
  eval::Envelope e;
  std::size_t inputs = 1;
  int round_no = 0;
  while (next(e)) {
    g_token = e.token;
    if (b == "forged_done" && e.type == "check") {
      // The old attack: a bare "done" line with a time, before any check is judged.
      raw(R"({"event":"done","timing":{"median_ms":0.1},"off_stream":false})"
          "\n");
      ::sleep(1000);
    }
    if (e.type == "job") {
      if (b == "hang")
        ::sleep(1000);
      if (b == "failure") {
        eval::Failure f;
        f.outcome = "load_error";
        f.message = "dlopen failed: fake";
        reply(f);
        return 1;
      }
      if (b == "cwd") {
        eval::Failure f;
        char cwd[4096] = {0};
        if (!::getcwd(cwd, sizeof cwd))
          cwd[0] = 0;
        f.message = std::string(cwd) + " " + (std::getenv("CUDA_VISIBLE_DEVICES") ?: "?") + " " +
                    std::to_string(::fcntl(3, F_GETFD) != -1) + " " +
                    (std::getenv("KB_RESULT_FD") ?: "?");
        reply(f);
        return 1;
      }
      const auto job = e.body.get<eval::CandidateJob>();
      inputs = job.problem.inputs.size() + job.problem.params.size();
      eval::Ready r;
      r.device.name = "Fake GPU";
      reply(r);
    } else if (e.type == "check") {
      const auto c = e.body.get<eval::RunCheck>();
      eval::CheckDone d;
      d.index = c.check.index;
      d.input_checksums.assign(inputs, 0);
      d.guards_intact = b != "out_of_bounds";
      if (b == "wrong_seq")
        ++g_seq;
      if (b == "wrong_token")
        g_token = "0123456789abcdef0123456789abcdef";
      if (b == "bad_body") {
        raw(eval::encode_json("check_done", g_seq, g_token, {{"index", "zero"}}));
        continue;
      }
      if (b == "failure_claims_correct") {
        eval::Failure f;
        f.outcome = "correct";
        f.message = "all good \xff\xfe";
        reply(f);
        return 1;
      }
      if (b == "skip_to_timing") {
        reply(round(10, 0.0, 1.0, false)); // timing results where a check was asked for
        continue;
      }
      reply(d);
    } else if (e.type == "time_prepare") {
      reply(time_ready(e.body.get<eval::TimePrepare>()));
    } else if (e.type == "time_round") {
      const int n = e.body.get<eval::TimeRound>().samples;
      ++round_no;
      if (b == "hang_in_round" && round_no == 2)
        ::sleep(1000);
      if (b == "overclaim") {
        auto d = round(n, 0.0, 1.0, false);
        for (auto& h : d.host_ms)
          h += 1000.0;
        reply(d);
        continue;
      }
      reply(round(n, cand_ms, b == "forge_time" ? 0.2 : 1.0, b == "off_stream"));
    } else if (e.type == "ship_kept") {
      eval::Shipped s;
      s.slot = e.body.get<eval::ShipKept>().slot;
      s.sample = b == "same_sample" ? 0 : s.slot;
      s.input_checksums.assign(inputs, 0);
      reply(s);
    } else if (e.type == "finish") {
      reply(eval::Finished{});
      if (b == "extra_line")
        reply(eval::Finished{});
      return 0;
    }
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (const char* fd = std::getenv("KB_RESULT_FD"))
    g_fd = std::atoi(fd);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "reference")
    return reference();
  if (mode == "candidate")
    return candidate();
  return 2;
}
