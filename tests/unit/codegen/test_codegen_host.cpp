// The naive candidates on the host: each small problem's generated source is compiled as host
// C++ (host_cuda_shim.hpp runs every thread of every launch in turn) with AddressSanitizer and
// UndefinedBehaviorSanitizer, run on inputs drawn as the harness draws them for every check of
// the kbench protocol, and compared with the float64 CPU reference (run_graph_cpu) within the
// problem's tolerance, as the evaluator judges. Each run is repeated with the threads in reverse
// order: the outputs must be bit-identical (no thread depends on another's writes in a launch).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <fmt/format.h>

#include "codegen.hpp"
#include "codegen_test_util.hpp"
#include "core.hpp"
#include "op.hpp"
#include "process.hpp"
#include "protocol.hpp"
#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using kb::DType;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

const std::vector<std::string>& host_flags() {
  static const std::vector<std::string> flags = {"-std=c++17",
                                                 "-O1",
                                                 "-g",
                                                 "-fno-omit-frame-pointer",
                                                 "-fsanitize=address,undefined",
                                                 "-fno-sanitize-recover=all",
                                                 "-I" + std::string(KB_CODEGEN_TEST_DIR),
                                                 "-I" +
                                                     (fs::path(KB_SOURCE_DIR) / "include").string(),
                                                 "-I" + std::string(KB_CUDA_INCLUDE_DIR)};
  return flags;
}

// Runs a compiler command; on failure the test fails with its output.
bool compile(std::vector<std::string> argv, const std::string& what) {
  kb::ProcessSpec spec;
  spec.argv = std::move(argv);
  const kb::ProcessResult r = kb::run_process(spec, 300.0);
  if (!r.status.exited || r.status.exit_code != 0) {
    ADD_FAILURE() << what << " failed (" << r.status.describe() << "):\n"
                  << r.err.text << r.out.text;
    return false;
  }
  return true;
}

// Compiles into `path` through a temporary name, so concurrent test processes never see half a
// file; an existing `path` (same content hash) is reused.
bool cached_build(const fs::path& path, std::vector<std::string> argv, const std::string& what) {
  if (fs::exists(path))
    return true;
  fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + fmt::format(".tmp{}", ::getpid());
  argv.push_back("-o");
  argv.push_back(tmp.string());
  if (!compile(std::move(argv), what))
    return false;
  fs::rename(tmp, path);
  return true;
}

// The driver object, built once per content of the driver, the shim and the flags.
fs::path driver_object() {
  const fs::path dir(KB_CODEGEN_TEST_DIR);
  std::string key_text = slurp(dir / "host_driver.cpp") + slurp(dir / "host_cuda_shim.hpp");
  for (const auto& f : host_flags())
    key_text += f + "\n";
  const fs::path obj =
      fs::path(KB_CODEGEN_CACHE_DIR) / ("driver-" + kb::content_hash(key_text) + ".o");
  std::vector<std::string> argv = {KB_HOST_CXX};
  argv.insert(argv.end(), host_flags().begin(), host_flags().end());
  argv.push_back("-c");
  argv.push_back((dir / "host_driver.cpp").string());
  if (!cached_build(obj, argv, "compiling the host driver"))
    return {};
  return obj;
}

// The host runner of one generated source.
fs::path host_runner(const std::string& source) {
  const fs::path driver = driver_object();
  if (driver.empty())
    return {};
  const std::string key = kb::content_hash(source + driver.string());
  const fs::path dir = fs::path(KB_CODEGEN_CACHE_DIR) / key;
  const fs::path src = dir / "candidate.cu";
  if (!fs::exists(dir / "runner")) {
    fs::create_directories(dir);
    kb::write_file_atomic(src.string(), source);
  }
  std::vector<std::string> argv = {KB_HOST_CXX};
  argv.insert(argv.end(), host_flags().begin(), host_flags().end());
  for (const std::string s : {"-include", "host_cuda_shim.hpp", "-x", "c++"})
    argv.push_back(s);
  argv.push_back(src.string());
  argv.push_back("-x");
  argv.push_back("none");
  argv.push_back(driver.string());
  if (!cached_build(dir / "runner", argv, "compiling the candidate for the host"))
    return {};
  return dir / "runner";
}

int abi_dtype(DType t) {
  return static_cast<int>(t); // kb::DType and kb_dtype share their numbering (kb_abi.h)
}

double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v;
  if (exp == 0)
    v = std::ldexp(static_cast<double>(mant), -24);
  else if (exp == 31)
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    v = std::ldexp(static_cast<double>(mant + 1024), exp - 25);
  return sign ? -v : v;
}

std::vector<double> decode(const std::string& bytes, DType t, int64_t n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const char* p = bytes.data() + i * static_cast<int64_t>(kb::dtype_size(t));
    switch (t) {
    case DType::f32: {
      float f;
      std::memcpy(&f, p, 4);
      v[i] = f;
      break;
    }
    case DType::f16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      v[i] = half_to_double(h);
      break;
    }
    case DType::bf16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      v[i] = f;
      break;
    }
    case DType::i64: {
      int64_t x;
      std::memcpy(&x, p, 8);
      v[i] = static_cast<double>(x);
      break;
    }
    case DType::i32: {
      int32_t x;
      std::memcpy(&x, p, 4);
      v[i] = x;
      break;
    }
    case DType::b8:
      v[i] = *p != 0 ? 1.0 : 0.0;
      break;
    case DType::f64:
      std::memcpy(&v[i], p, 8);
      break;
    }
  }
  return v;
}

std::string spec_line(const char* role, DType t, const kb::Shape& shape, const std::string& file) {
  std::string s = fmt::format("{} {} {}", role, abi_dtype(t), shape.size());
  for (int64_t d : shape)
    s += fmt::format(" {}", d);
  return s + " " + file + "\n";
}

class NaiveOnHost : public ::testing::TestWithParam<std::string> {};

TEST_P(NaiveOnHost, MatchesTheCpuReferenceUnderSanitizers) {
  const kb::Problem* p = kb::test::codegen_problems().find(GetParam());
  ASSERT_NE(p, nullptr);
  const kb::NaiveCandidate cand = kb::naive_candidate(*p);
  const fs::path runner = host_runner(cand.source);
  ASSERT_FALSE(runner.empty());
  const kb::Tolerance tol = kb::eval::protocol_tolerance(*p, kb::Protocol::kbench);
  kb::test::TempDir dir("codegen-host");
  const auto checks = kb::eval::make_checks(*p, kb::Protocol::kbench, 1, 0x6e61697665ull);
  ASSERT_FALSE(checks.empty());
  for (const auto& check : checks) {
    SCOPED_TRACE(fmt::format("check {} ({}), seed {}", check.index, check.dist_name, check.seed));
    std::map<std::string, kb::HostTensor, std::less<>> feeds;
    std::map<std::string, DType, std::less<>> dtypes;
    std::string spec;
    std::size_t k = 0;
    for (const auto* list : {&p->inputs, &p->params})
      for (const kb::TensorSpec& t : *list) {
        std::vector<double> values = kb::draw_host(check.dists.at(k), t.dtype, kb::numel(t.shape),
                                                   check.seed, static_cast<uint64_t>(k));
        const auto bytes = kb::encode_dtype(values, t.dtype);
        const std::string file = fmt::format("in{}.bin", k);
        kb::write_file_atomic(
            dir.file(file), std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        spec += spec_line("in", t.dtype, t.shape, file);
        feeds[t.name] = kb::HostTensor(t.shape, std::move(values));
        dtypes[t.name] = t.dtype;
        ++k;
      }
    for (std::size_t j = 0; j < p->outputs.size(); ++j) {
      const kb::ValueSpec& o = p->output_spec(p->outputs[j]);
      spec += spec_line("out", o.dtype, o.shape, fmt::format("out{}.bin", j));
    }
    kb::write_file_atomic(dir.file("spec.txt"), spec);
    kb::ProcessSpec ps;
    ps.argv = {runner.string(), dir.dir()};
    const kb::ProcessResult r = kb::run_process(ps, 300.0);
    ASSERT_TRUE(r.status.exited && r.status.exit_code == 0)
        << p->id << ": the host run failed (" << r.status.describe() << "):\n"
        << r.err.text << r.out.text;
    const auto refs = kb::run_graph_cpu(p->graph, feeds, p->outputs, dtypes);
    for (std::size_t j = 0; j < p->outputs.size(); ++j) {
      const kb::ValueSpec& o = p->output_spec(p->outputs[j]);
      const std::string fwd = slurp(dir.file(fmt::format("out{}.bin", j)));
      const std::string rev = slurp(dir.file(fmt::format("out{}.bin.rev", j)));
      const int64_t n = kb::numel(o.shape);
      ASSERT_EQ(fwd.size(), static_cast<std::size_t>(n) * kb::dtype_size(o.dtype));
      EXPECT_TRUE(fwd == rev) << p->id << " output " << p->outputs[j]
                              << ": threads run in reverse order give different bits";
      const std::vector<double> got = decode(fwd, o.dtype, n);
      const kb::ErrorStats s = kb::compare_host(got, refs[j].data, tol.atol, tol.rtol);
      const std::string verdict = kb::judge_output(s, nullptr, false, 8.0, tol.atol);
      EXPECT_EQ(verdict, "") << p->id << " output " << p->outputs[j] << ": " << s.mismatch_count
                             << " of " << n << " elements differ (first at " << s.first_bad_index
                             << ": " << (s.first_bad_index >= 0 ? got[s.first_bad_index] : 0.0)
                             << " vs "
                             << (s.first_bad_index >= 0 ? refs[j].data[s.first_bad_index] : 0.0)
                             << "), max abs error " << s.max_abs_err << ", max rel error "
                             << s.max_rel_err << ", atol " << tol.atol << " rtol " << tol.rtol;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Problems, NaiveOnHost,
                         ::testing::ValuesIn(kb::test::codegen_problem_ids()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return kb::test::problem_test_name(info.param);
                         });

// The stores of a naive candidate round with cuda_fp16.h's and cuda_bf16.h's conversions (their
// host versions here): to nearest, ties to even, as the harness rounds its inputs and references.
TEST(NaiveOnHost, HalfAndBfloat16StoresRoundAsTheHarnessDoes) {
  std::vector<double> values = {0.0,
                                -0.0,
                                1.0,
                                1.0 + 1.0 / 2048,
                                1.0 + 3.0 / 2048,
                                65504.0,
                                65520.0,
                                1e-8,
                                -2.5e-5,
                                3.14159265358979,
                                1.0 / 3,
                                1.0 + 1.0 / 256,
                                1.0 + 3.0 / 256,
                                1e30,
                                -7.75e-39};
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 20000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const double mant = static_cast<double>(x >> 11) / 9007199254740992.0;
    values.push_back((x & 1 ? -1.0 : 1.0) * std::ldexp(1.0 + mant, static_cast<int>(x % 60) - 30));
  }
  for (double v : values) {
    const __half h = __double2half(v);
    const __nv_bfloat16 b = __double2bfloat16(v);
    EXPECT_EQ(static_cast<double>(__half2float(h)), kb::round_to_dtype(v, DType::f16)) << v;
    EXPECT_EQ(static_cast<double>(__bfloat162float(b)), kb::round_to_dtype(v, DType::bf16)) << v;
  }
}

TEST(NaiveOnHost, EverySmallProblemLoads) {
  for (const auto& e : kb::test::codegen_problems().errors)
    ADD_FAILURE() << e.str();
  EXPECT_GE(kb::test::codegen_problems().problems.size(), kb::all_ops().size());
}

// Every op of the registry is verified on the host by at least one small problem.
TEST(NaiveOnHost, EveryOpHasASmallProblem) {
  std::set<std::string> used;
  for (const auto& p : kb::test::codegen_problems().problems)
    for (const auto& n : p.graph)
      used.insert(n.op);
  for (const auto& op : kb::all_ops())
    EXPECT_TRUE(used.contains(op.name))
        << "op " << op.name << " has no small problem (tests/data/ops-torch/" << op.name
        << ".yaml) for the host check of its naive kernel";
}

} // namespace
