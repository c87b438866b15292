// The problem catalog: levels/levelN/*.yaml -> validated kb::Problem values. The only place that
// parses problem YAML.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core.hpp"

namespace kb {

// Limits of what a problem may declare; the catalog refuses a file beyond them, naming the field.
// At most this many dimensions per tensor: KB_MAX_DIMS of include/kbench/kb_abi.h, the most a
// candidate's kb_tensor carries (a test keeps the two equal).
inline constexpr std::size_t k_max_rank = 8;
// At most this many elements in any tensor (input, parameter or value the graph computes): more
// than any GPU holds, and small enough that every shape, byte and FLOP count stays well inside
// 64-bit arithmetic.
inline constexpr int64_t k_max_elements = int64_t{1} << 36;
// Problem ids are "l<level>/<stem>"; the stem (the file name without .yaml) is 1 to this many
// letters, digits, '_' and '-', starting with a letter, digit or '_'.
inline constexpr std::size_t k_max_stem_length = 100;

// Why `id` is not a problem id ("l1/softmax_4096x65536"); "" when it is one.
std::string problem_id_error(std::string_view id);

// One file that failed to load, with the precise place and reason.
struct LoadIssue {
  std::string file;
  int line = 0;
  std::string field;
  std::string message;
  std::string str() const; // "file:line: field: message"
};

struct Catalog {
  std::vector<Problem> problems; // sorted by level, then id
  std::vector<LoadIssue> errors; // files that failed; they never stop the others from loading
  // Finds a problem by id ("l1/softmax_4096x65536"); nullptr when absent.
  const Problem* find(std::string_view id) const;
};

// Loads and validates one problem file. `levels_dir` is the root holding level1/, level2/, ...;
// the id is "l<level>/<file stem>". Throws kb::InputError naming file, line and field.
Problem load_problem(const std::string& path, const std::string& levels_dir);

// Loads every levels_dir/level*/*.yaml. Never throws for a bad problem file (it lands in errors);
// throws kb::Error only when levels_dir itself cannot be read.
Catalog load_catalog(const std::string& levels_dir);

// The default levels directory: $KB_LEVELS_DIR, else <source dir>/levels as built.
std::string default_levels_dir();

// Problem as an equivalent, runnable PyTorch script: a Model(nn.Module) whose forward runs the
// graph, get_inputs()/get_init_inputs() in KernelBench's style, parameters as module buffers.
std::string render_pytorch(const Problem& p);

// Floor time in ms on this GPU: max(flops / peak for the problem's dtype and precision contract,
// min_bytes / bandwidth).
double floor_time_ms(const Problem& p, const GpuCeilings& c);

// Datasheet ceilings (vendor datasheet peaks: memory bandwidth, dense FP32/TF32/FP16/BF16) of
// the GPU model a CUDA device name (cudaGetDeviceProperties().name, e.g. "NVIDIA H100 80GB HBM3",
// "NVIDIA H100 PCIe", "NVIDIA H200", "NVIDIA A100-SXM4-40GB", "NVIDIA L40S") belongs to; nullopt
// for a name the table does not know or cannot place (a bare "NVIDIA H100": SXM or PCIe?). The
// gpu_name of the result names the model and says "datasheet". docs/ceilings.md has the table.
std::optional<GpuCeilings> datasheet_ceilings(std::string_view device_name);

// Datasheet ceilings of an H100 SXM (the figures of datasheet_ceilings("NVIDIA H100 80GB HBM3")).
// A documented default where no GPU is known (`kbench list`); never a stand-in for another GPU
// without saying so.
GpuCeilings datasheet_ceilings_h100();

// Screening of a problem's reference outputs for degenerate problems. `outputs_per_seed[s][o]`
// holds output o (flattened, as double) for seed s. Returns an empty string when the problem is
// fine, else the reason ("near-constant across seeds", "mostly within tolerance of zero",
// "identity on input x").
std::string screen_outputs(const Problem& p,
                           const std::vector<std::vector<std::vector<double>>>& outputs_per_seed,
                           const std::vector<std::vector<std::vector<double>>>& inputs_per_seed);

} // namespace kb
