// Internal to kb_runner: what a run records to be one shard of a suite (its fingerprint) and
// where it ran (GPUs, the timing isolation between them, CUDA_VISIBLE_DEVICES and Slurm facts).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner.hpp"

namespace kb::runner::detail {

// The (problem, model) tasks of a suite: `problems` in their order, each with every model.
std::vector<TaskKey> task_keys(const std::vector<const Problem*>& problems,
                               const std::vector<llm::ModelConfig>& models);

// The suite fingerprint of SuitePlan (16 hex digits) from the resolved pieces of a run: `o`
// holds the suite's own (undivided) limits.
std::string suite_fingerprint(const RunOptions& o, const std::vector<const Problem*>& problems,
                              const std::vector<llm::ModelConfig>& models,
                              const std::string& prompts_hash);

// CUDA_VISIBLE_DEVICES and the Slurm job's facts (job and array ids, node, CPUs and GPUs
// granted), only those set in this process's environment.
nlohmann::json environment_record();

// How a run uses its GPUs: one evaluation worker per GPU, one candidate per GPU at a time
// (compiling, checking and timing a candidate never overlaps another candidate's on that GPU),
// and each GPU's index, name and the device its workers see (worker_visible_device).
nlohmann::json placement_record(const std::vector<int>& gpus, const DoctorReport& doctor);

// CPUs this process may use: its CPU affinity (which Slurm's task binding and cgroups
// narrow), at most SLURM_CPUS_PER_TASK when set; at least 1.
int available_cpus();

} // namespace kb::runner::detail
