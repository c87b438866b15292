// Candidate compilation: nvcc to a shared object with a content-hash cache and a timeout, and
// symbol screening of the result against an allow-list. Subprocesses come from process.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core.hpp"
#include "process.hpp"

namespace kb {

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

struct CompileOptions {
  std::string nvcc; // empty: $KB_NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc
  // GPU architectures to compile for: one ("sm_89") or several ("sm_80,sm_90a", one -gencode
  // each). Empty: default_arch(). Callers that know the GPU name its architecture (gpu_arch).
  std::string arch;
  std::vector<std::string> extra_flags;
  std::string include_dir; // holds kbench/kb_abi.h; empty: $KB_INCLUDE_DIR, else as built
  std::string cache_dir;   // empty: $KB_CACHE_DIR, else $XDG_CACHE_HOME/kbench, ~/.cache/kbench
  bool use_cache = true;
  double timeout_s = 120.0;
  std::size_t log_limit_bytes = 64 * 1024;
  bool allow_library_calls = false; // links cuBLAS/cuBLASLt/cuDNN (and lets screening pass them)
  uint64_t memory_limit_bytes = 16ull << 30; // nvcc's address space
};

// The exact nvcc command line (without input/output paths) for these options; part of the key.
std::vector<std::string> nvcc_flags(const CompileOptions& opts);

struct CompileResult {
  bool ok = false;
  bool cached = false;
  bool timed_out = false;
  std::string so_path;  // the shared object (inside the cache dir, or a temp dir without cache)
  std::string log;      // nvcc's output, bounded by log_limit_bytes
  std::string message;  // one line: why it failed ("nvcc exited with status 2", "timed out ...")
  std::string key;      // cache key (16 hex digits)
  double seconds = 0.0; // wall time of this call
};

// Compiles one candidate source. Failures of the candidate are values (ok=false with message and
// log); throws kb::Error only for harness problems (nvcc missing, cache dir not writable).
CompileResult compile_candidate(std::string_view source, const CompileOptions& opts);

// Compiles many sources with up to `jobs` nvcc processes at once; results in input order.
std::vector<CompileResult> compile_many(const std::vector<std::string>& sources,
                                        const CompileOptions& opts, int jobs);

// `nvcc --version`'s last line ("Build cuda_13.0.r13.0/compiler...") and release ("13.0"), cached
// per nvcc path. Throws kb::Error when nvcc cannot be run.
struct NvccVersion {
  std::string release;
  std::string full;
};
NvccVersion nvcc_version(const std::string& nvcc);
// Resolves the nvcc to use from the options and the environment (see CompileOptions::nvcc).
std::string resolve_nvcc(const CompileOptions& opts);
// Resolves the cache directory (see CompileOptions::cache_dir).
std::string resolve_cache_dir(const CompileOptions& opts);
// Resolves the directory that holds kbench/kb_abi.h.
std::string resolve_include_dir(const CompileOptions& opts);
// The architectures this build of kbench runs its own kernels on (KB_CUDA_ARCHITECTURES, as
// "sm_90a" or "sm_80,sm_90a"): what a candidate compiles for when nobody named its GPU's. Empty
// when the build names none by number ("native", "all").
std::string default_arch();

// ---------------------------------------------------------------------------------------------
// Symbol screening
// ---------------------------------------------------------------------------------------------

struct ScreenPolicy {
  bool allow_library_calls = false; // cuBLAS/cuDNN imports pass (they are recorded either way)
};

// What a shared object imports and runs at load, read from its ELF headers.
struct ElfInfo {
  std::vector<std::string> undefined; // imported symbols (dynamic symbol table, undefined)
  std::vector<std::string> weak_undefined;
  std::vector<std::string> exported; // defined global functions and objects
  std::vector<std::string> needed;   // DT_NEEDED libraries
  int init_array_entries = 0;        // .init_array + .preinit_array function pointers
};

// Reads the ELF information of a 64-bit little-endian shared object. Throws kb::Error naming the
// file and the defect when it is not one.
ElfInfo read_elf(const std::string& path);

struct ScreenReport {
  bool ok = false;
  std::string reason;                     // first violation, one line, for the user
  std::vector<std::string> violations;    // "fork: creates processes", ...
  std::vector<std::string> library_calls; // cuBLAS/cuDNN/... imports (sorted)
  bool has_forward = false;               // kb_forward is exported
  ElfInfo elf;
};

// Judges an object against the allow-list (docs/evaluation.md lists it with reasons). ok=false
// for any import outside it, an unexpected library, or static constructors beyond the two nvcc
// emits (frame_dummy and the fatbin registration). Unreadable objects are violations too.
ScreenReport screen_object(const std::string& so_path, const ScreenPolicy& policy);

// Classifies one imported symbol: empty when allowed, else the reason it is refused.
// `library` is set when the symbol belongs to a vendor library (cuBLAS, cuDNN, ...).
std::string classify_symbol(std::string_view name, const ScreenPolicy& policy, bool* library);

// Maximum .init_array entries a plain nvcc-built object has.
inline constexpr int k_max_init_array_entries = 2;

} // namespace kb
