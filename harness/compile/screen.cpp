// Symbol screening: a small ELF reader for shared objects and the allow-list that decides which
// imports a candidate may have before it is ever loaded.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <set>

#include <elf.h>

#include <fmt/format.h>

#include "compile.hpp"

namespace kb {

namespace {

template <class T> T load(const std::string& bytes, uint64_t offset, const std::string& path) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T))
    throw Error(fmt::format("{}: not a valid ELF object (truncated at offset {})", path, offset));
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

std::string load_string(const std::string& bytes, uint64_t table_off, uint64_t table_size,
                        uint64_t index, const std::string& path) {
  if (index >= table_size || table_off + table_size > bytes.size())
    throw Error(
        fmt::format("{}: not a valid ELF object (string index {} out of range)", path, index));
  const char* start = bytes.data() + table_off + index;
  const std::size_t max_len = table_size - index;
  return std::string(start, strnlen(start, max_len));
}

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view p) { return s.starts_with(p); });
}

// CUDA runtime calls a kernel launcher needs: launching, attributes, occupancy, errors, and
// copies/memsets that take a stream.
const std::set<std::string, std::less<>> k_cuda_allowed = {
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cudaLaunchCooperativeKernel",
    "cudaGetLastError",
    "cudaPeekAtLastError",
    "cudaGetErrorString",
    "cudaGetErrorName",
    "cudaFuncSetAttribute",
    "cudaFuncGetAttributes",
    "cudaFuncSetCacheConfig",
    "cudaFuncSetSharedMemConfig",
    "cudaOccupancyMaxActiveBlocksPerMultiprocessor",
    "cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags",
    "cudaOccupancyMaxPotentialBlockSize",
    "cudaOccupancyMaxPotentialBlockSizeVariableSMem",
    "cudaOccupancyAvailableDynamicSMemPerBlock",
    "cudaOccupancyMaxPotentialClusterSize",
    "cudaOccupancyMaxActiveClusters",
    "cudaGetDevice",
    "cudaGetDeviceCount",
    "cudaDeviceGetAttribute",
    "cudaGetDeviceProperties",
    "cudaGetDeviceProperties_v2",
    "cudaDriverGetVersion",
    "cudaRuntimeGetVersion",
    "cudaMemsetAsync",
    "cudaMemset2DAsync",
    "cudaMemset3DAsync",
    "cudaMemcpyAsync",
    "cudaMemcpy2DAsync",
    "cudaMemcpy3DAsync",
    "cudaMemcpyToSymbolAsync",
    "cudaMemcpyFromSymbolAsync",
    "cudaGetSymbolAddress",
    "cudaGetSymbolSize",
    "cudaGetFuncBySymbol",
    "cudaPointerGetAttributes",
    "cudaStreamGetPriority",
    "cudaStreamGetFlags",
    "cudaStreamGetDevice",
};

// libc and libm functions without side effects outside the process's own memory, plus output to
// the (bounded) standard streams.
const std::set<std::string, std::less<>> k_libc_allowed = {"memcpy",
                                                           "memmove",
                                                           "memset",
                                                           "memcmp",
                                                           "memchr",
                                                           "strlen",
                                                           "strnlen",
                                                           "strcmp",
                                                           "strncmp",
                                                           "strcpy",
                                                           "strncpy",
                                                           "strcat",
                                                           "strncat",
                                                           "strchr",
                                                           "strrchr",
                                                           "strstr",
                                                           "strtol",
                                                           "strtoll",
                                                           "strtoul",
                                                           "strtoull",
                                                           "strtod",
                                                           "strtof",
                                                           "atoi",
                                                           "atol",
                                                           "atof",
                                                           "snprintf",
                                                           "sprintf",
                                                           "vsnprintf",
                                                           "vsprintf",
                                                           "printf",
                                                           "vprintf",
                                                           "fprintf",
                                                           "vfprintf",
                                                           "puts",
                                                           "fputs",
                                                           "fputc",
                                                           "putc",
                                                           "putchar",
                                                           "fwrite",
                                                           "fflush",
                                                           "stdout",
                                                           "stderr",
                                                           "malloc",
                                                           "calloc",
                                                           "realloc",
                                                           "free",
                                                           "aligned_alloc",
                                                           "posix_memalign",
                                                           "memalign",
                                                           "qsort",
                                                           "bsearch",
                                                           "abs",
                                                           "labs",
                                                           "llabs",
                                                           "div",
                                                           "ldiv",
                                                           "__stack_chk_fail",
                                                           "__assert_fail",
                                                           "__errno_location",
                                                           "__tls_get_addr",
                                                           "__printf_chk",
                                                           "__fprintf_chk",
                                                           "__sprintf_chk",
                                                           "__snprintf_chk",
                                                           "__vsnprintf_chk",
                                                           "__vfprintf_chk",
                                                           "__memcpy_chk",
                                                           "__memmove_chk",
                                                           "__memset_chk",
                                                           "__strcpy_chk",
                                                           "__strcat_chk",
                                                           "__strncpy_chk",
                                                           "__fwrite_chk",
                                                           "__isoc23_strtol",
                                                           "__isoc23_strtoll",
                                                           "__isoc23_strtoul",
                                                           "__isoc23_strtoull",
                                                           "__cxa_finalize",
                                                           "__cxa_atexit",
                                                           "exit",
                                                           "__gmon_start__",
                                                           "_ITM_registerTMCloneTable",
                                                           "_ITM_deregisterTMCloneTable",
                                                           "__gxx_personality_v0",
                                                           "_Unwind_Resume",
                                                           "_Unwind_RaiseException",
                                                           "_Unwind_DeleteException",
                                                           "__popcountdi2",
                                                           "__udivti3",
                                                           "__divti3",
                                                           "__umodti3",
                                                           "__modti3",
                                                           "pthread_once",
                                                           "pthread_mutex_lock",
                                                           "pthread_mutex_unlock",
                                                           "__pthread_key_create",
                                                           "pthread_key_create",
                                                           "pthread_getspecific",
                                                           "pthread_setspecific",
                                                           "__dso_handle"};

const std::array<std::string_view, 48> k_math = {
    "sqrt",      "cbrt",      "exp",      "exp2",   "expm1",  "log",     "log2",   "log10",
    "log1p",     "pow",       "sin",      "cos",    "tan",    "asin",    "acos",   "atan",
    "atan2",     "sinh",      "cosh",     "tanh",   "asinh",  "acosh",   "atanh",  "erf",
    "erfc",      "fabs",      "floor",    "ceil",   "round",  "trunc",   "fmod",   "fmin",
    "fmax",      "ldexp",     "frexp",    "hypot",  "lround", "llround", "rint",   "lrint",
    "nearbyint", "remainder", "copysign", "tgamma", "lgamma", "modf",    "scalbn", "fma"};

bool is_math(std::string_view name) {
  std::string_view base = name;
  if (base.starts_with("__") && base.ends_with("_finite"))
    base = base.substr(2, base.size() - 2 - 7);
  for (auto m : k_math) {
    if (base == m)
      return true;
    if (base.size() == m.size() + 1 && base.starts_with(m) &&
        (base.back() == 'f' || base.back() == 'l'))
      return true;
  }
  return false;
}

struct Refusal {
  std::initializer_list<std::string_view> names;
  std::string_view why;
};

// Named refusals give a precise reason; anything else outside the allow-list is refused too.
const Refusal k_refusals[] = {
    {{"fork",  "vfork",  "clone",  "clone3",  "execve", "execv",  "execvp",      "execvpe",
      "execl", "execlp", "execle", "fexecve", "system", "popen",  "posix_spawn", "posix_spawnp",
      "kill",  "killpg", "setsid", "setpgid", "daemon", "ptrace", "prctl"},
     "creates or controls processes"},
    {{"pthread_create", "pthread_detach", "pthread_join", "thrd_create", "pthread_kill"},
     "creates threads (work must stay on the given stream)"},
    {{"dlopen", "dlsym", "dlvsym", "dlmopen", "dladdr", "dl_iterate_phdr", "dlinfo"},
     "loads code or looks up symbols at run time"},
    {{"clock_gettime", "gettimeofday", "time", "clock", "timer_create", "timer_settime",
      "setitimer", "alarm", "clock_settime", "nanosleep", "usleep", "sleep"},
     "reads or patches clocks and timers"},
    // exit itself cannot be refused: nvcc's host stubs of __device__ functions call it. A
    // candidate's exit(0) is caught at run time (status 0 without a result).
    {{"_exit", "_Exit", "abort", "quick_exit", "at_quick_exit", "atexit", "raise"},
     "ends the process"},
    {{"syscall",   "mprotect",  "mmap",    "mmap64",    "munmap",        "mremap", "signal",
      "sigaction", "setrlimit", "prlimit", "prlimit64", "open",          "open64", "openat",
      "openat64",  "fopen",     "fopen64", "creat",     "read",          "write",  "pread",
      "pwrite",    "socket",    "connect", "getenv",    "secure_getenv", "setenv", "putenv",
      "unsetenv",  "remove",    "unlink",  "rename",    "chdir",         "dup",    "dup2",
      "pipe",      "ioctl"},
     "touches the process, files, the environment or the network"},
    {{"cudaDeviceSynchronize",
      "cudaStreamSynchronize",
      "cudaDeviceReset",
      "cudaSetDevice",
      "cudaDeviceSetLimit",
      "cudaDeviceSetCacheConfig",
      "cudaSetDeviceFlags",
      "cudaThreadExit",
      "cudaThreadSynchronize",
      "cudaCtxResetPersistingL2Cache",
      "cudaLaunchHostFunc",
      "cudaStreamAddCallback",
      "cudaStreamWaitEvent",
      "cudaGetDriverEntryPoint",
      "cudaGetDriverEntryPointByVersion",
      "cudaProfilerStart",
      "cudaProfilerStop",
      "cudaMemcpy",
      "cudaMemcpy2D",
      "cudaMemcpy3D",
      "cudaMemset",
      "cudaMemcpyToSymbol",
      "cudaMemcpyFromSymbol",
      "cudaMemcpyPeer",
      "cudaMemcpyPeerAsync"},
     "synchronises, resets or reconfigures the device, or works off the given stream"},
};

std::string_view named_refusal(std::string_view name) {
  for (const auto& r : k_refusals)
    for (auto n : r.names)
      if (n == name)
        return r.why;
  if (name.starts_with("cudaStreamCreate") || name.starts_with("cudaStreamDestroy") ||
      name.starts_with("cudaStreamBeginCapture") || name.starts_with("cudaStreamEndCapture"))
    return "creates streams (work must stay on the given stream)";
  if (name.starts_with("cudaEvent"))
    return "uses events (timing is the harness's)";
  if (name.starts_with("cudaMalloc") || name.starts_with("cudaFree") ||
      name.starts_with("cudaHostAlloc") || name.starts_with("cudaHostRegister") ||
      name.starts_with("cudaMemPool"))
    return "allocates memory (the harness owns all memory; use the workspace)";
  if (name.starts_with("cudaIpc"))
    return "opens memory of other processes";
  if (name.starts_with("cudaGraph"))
    return "builds or launches CUDA graphs";
  if (name.starts_with("cu") && !name.starts_with("cuda") && name.size() > 2 &&
      std::isupper(static_cast<unsigned char>(name[2])))
    return "calls the CUDA driver API directly";
  // Mangled std::thread, std::this_thread (sleeps) and std::chrono clocks.
  if (starts_with_any(name, {
                                "_ZNSt6thread",
                                "_ZNSt10this_thread",
                                "_ZNSt6chrono",
                            }))
    return "creates threads or reads clocks";
  return {};
}

bool is_library_symbol(std::string_view name) {
  return starts_with_any(
      name, {"cublas", "cudnn", "cufft", "curand", "cusparse", "cusolver", "cutensor", "nccl"});
}

bool allowed_library_needed(std::string_view lib, bool allow_library) {
  if (starts_with_any(
          lib, {"libcudart.so", "libstdc++.so", "libgcc_s.so", "libc.so", "libm.so", "ld-linux"}))
    return true;
  if (allow_library && starts_with_any(lib, {"libcublas.so", "libcublasLt.so", "libcudnn.so"}))
    return true;
  return false;
}

} // namespace

ElfInfo read_elf(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw Error(fmt::format("cannot read the compiled object: {}", e.what()));
  }
  const auto eh = load<Elf64_Ehdr>(bytes, 0, path);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    throw Error(fmt::format("{}: not an ELF object", path));
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    throw Error(fmt::format("{}: not a 64-bit little-endian ELF object", path));
  if (eh.e_type != ET_DYN)
    throw Error(fmt::format("{}: not a shared object (ELF type {})", path, eh.e_type));
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0)
    throw Error(fmt::format("{}: ELF object without section headers", path));

  std::vector<Elf64_Shdr> sections;
  for (uint64_t i = 0; i < eh.e_shnum; ++i)
    sections.push_back(load<Elf64_Shdr>(bytes, eh.e_shoff + i * sizeof(Elf64_Shdr), path));

  ElfInfo info;
  bool saw_dynsym = false;
  std::set<std::string> undef, weak, exported;
  for (const auto& sh : sections) {
    if (sh.sh_type == SHT_DYNSYM) {
      saw_dynsym = true;
      if (sh.sh_link >= sections.size() || sh.sh_entsize != sizeof(Elf64_Sym))
        throw Error(fmt::format("{}: malformed dynamic symbol table", path));
      const auto& strtab = sections[sh.sh_link];
      const uint64_t count = sh.sh_size / sizeof(Elf64_Sym);
      for (uint64_t i = 1; i < count; ++i) {
        const auto sym = load<Elf64_Sym>(bytes, sh.sh_offset + i * sizeof(Elf64_Sym), path);
        if (sym.st_name == 0)
          continue;
        std::string name = load_string(bytes, strtab.sh_offset, strtab.sh_size, sym.st_name, path);
        const int bind = ELF64_ST_BIND(sym.st_info);
        const int type = ELF64_ST_TYPE(sym.st_info);
        if (sym.st_shndx == SHN_UNDEF) {
          (bind == STB_WEAK ? weak : undef).insert(std::move(name));
        } else if ((bind == STB_GLOBAL || bind == STB_WEAK) &&
                   (type == STT_FUNC || type == STT_OBJECT || type == STT_GNU_IFUNC)) {
          exported.insert(std::move(name));
        }
      }
    } else if (sh.sh_type == SHT_DYNAMIC) {
      if (sh.sh_link >= sections.size())
        throw Error(fmt::format("{}: malformed dynamic section", path));
      const auto& strtab = sections[sh.sh_link];
      const uint64_t count = sh.sh_size / sizeof(Elf64_Dyn);
      for (uint64_t i = 0; i < count; ++i) {
        const auto dyn = load<Elf64_Dyn>(bytes, sh.sh_offset + i * sizeof(Elf64_Dyn), path);
        if (dyn.d_tag == DT_NULL)
          break;
        if (dyn.d_tag == DT_NEEDED)
          info.needed.push_back(
              load_string(bytes, strtab.sh_offset, strtab.sh_size, dyn.d_un.d_val, path));
      }
    } else if (sh.sh_type == SHT_INIT_ARRAY || sh.sh_type == SHT_PREINIT_ARRAY) {
      info.init_array_entries += static_cast<int>(sh.sh_size / sizeof(uint64_t));
    }
  }
  if (!saw_dynsym)
    throw Error(fmt::format("{}: no dynamic symbol table", path));
  info.undefined.assign(undef.begin(), undef.end());
  info.weak_undefined.assign(weak.begin(), weak.end());
  info.exported.assign(exported.begin(), exported.end());
  return info;
}

std::string classify_symbol(std::string_view name, const ScreenPolicy& policy, bool* library) {
  if (library)
    *library = false;
  if (is_library_symbol(name)) {
    if (library)
      *library = true;
    return policy.allow_library_calls ? std::string()
                                      : "calls a vendor library (this run allows no library "
                                        "calls)";
  }
  if (auto why = named_refusal(name); !why.empty())
    return std::string(why);
  if (name.starts_with("__cuda")) // fatbin registration and launch configuration from nvcc
    return {};
  if (k_cuda_allowed.contains(name) || k_libc_allowed.contains(name) || is_math(name))
    return {};
  // C++ runtime: operator new/delete, exception support, std:: library code, RTTI and vtables.
  if (starts_with_any(name, {"_Znw", "_Zna", "_Zdl", "_Zda", "__cxa_", "_ZSt", "_ZNSt", "_ZNKSt",
                             "_ZTV", "_ZTI", "_ZTS", "_ZNSo", "_ZNKSo", "_ZNSi", "_ZNSs",
                             "_ZN9__gnu_cxx", "_ZN10__cxxabiv1"}))
    return {};
  return "is not on the allow-list of imports";
}

ScreenReport screen_object(const std::string& so_path, const ScreenPolicy& policy) {
  ScreenReport rep;
  try {
    rep.elf = read_elf(so_path);
  } catch (const Error& e) {
    rep.violations.push_back(e.what());
    rep.reason = e.what();
    return rep;
  }
  std::set<std::string> libs;
  auto judge = [&](const std::string& name) {
    bool library = false;
    const std::string why = classify_symbol(name, policy, &library);
    if (library)
      libs.insert(name);
    if (!why.empty())
      rep.violations.push_back(fmt::format("imports {}: {}", name, why));
  };
  for (const auto& s : rep.elf.undefined)
    judge(s);
  for (const auto& s : rep.elf.weak_undefined)
    judge(s);
  for (const auto& lib : rep.elf.needed)
    if (!allowed_library_needed(lib, policy.allow_library_calls))
      rep.violations.push_back(fmt::format("links {}: not an allowed library", lib));
  if (rep.elf.init_array_entries > k_max_init_array_entries)
    rep.violations.push_back(fmt::format(
        "has {} static constructors (.init_array entries; nvcc emits {}): code that runs at load "
        "time is not allowed",
        rep.elf.init_array_entries, k_max_init_array_entries));
  rep.has_forward = std::find(rep.elf.exported.begin(), rep.elf.exported.end(), "kb_forward") !=
                    rep.elf.exported.end();
  rep.library_calls.assign(libs.begin(), libs.end());
  rep.ok = rep.violations.empty();
  if (!rep.ok)
    rep.reason = rep.violations.front();
  return rep;
}

} // namespace kb
