// Runs a host-compiled naive candidate (linked with this driver) on tensors from files:
//   host_runner <dir>
// reads <dir>/spec.txt ("in|out <dtype> <ndim> <dims...> <file>" lines, inputs first) and each
// input file (raw little-endian elements), calls kb_forward twice (threads in forward, then in
// reverse order, with fresh garbage in the workspace and the outputs each time) and writes
// <file> and <file>.rev for every output. Every buffer is a separate heap block of exactly its
// size, so a sanitizer build reports any access outside one. Exit status 0 only when both calls
// returned 0.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "host_cuda_shim.hpp"
#include "kbench/kb_abi.h"

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream);
extern "C" size_t kb_workspace_bytes(const kb_tensor* in, int n_in, const kb_tensor* out,
                                     int n_out);

namespace {

std::size_t elem_size(int dtype) {
  switch (dtype) {
  case KB_F32:
  case KB_I32:
    return 4;
  case KB_F16:
  case KB_BF16:
    return 2;
  case KB_I64:
    return 8;
  case KB_BOOL:
    return 1;
  default:
    return 0;
  }
}

struct Buffer {
  kb_tensor t{};
  std::string file;
  std::unique_ptr<unsigned char[]> data;
  std::size_t bytes = 0;
};

bool read_file(const std::string& path, unsigned char* dst, std::size_t bytes) {
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(bytes));
  return f.gcount() == static_cast<std::streamsize>(bytes);
}

bool write_file(const std::string& path, const unsigned char* src, std::size_t bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(src), static_cast<std::streamsize>(bytes));
  return static_cast<bool>(f);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: host_runner <dir>\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::ifstream spec(dir + "/spec.txt");
  std::vector<Buffer> ins, outs;
  std::string line;
  while (std::getline(spec, line)) {
    std::istringstream f(line);
    std::string role;
    Buffer b;
    f >> role >> b.t.dtype >> b.t.ndim;
    std::size_t n = 1;
    for (int d = 0; d < b.t.ndim; ++d) {
      f >> b.t.shape[d];
      n *= static_cast<std::size_t>(b.t.shape[d]);
    }
    for (int d = b.t.ndim - 1, s = 1; d >= 0; --d) {
      b.t.strides[d] = s;
      s *= static_cast<int>(b.t.shape[d]);
    }
    f >> b.file;
    if (!f || elem_size(b.t.dtype) == 0) {
      std::cerr << "bad spec line: " << line << "\n";
      return 2;
    }
    b.bytes = n * elem_size(b.t.dtype);
    b.data.reset(new unsigned char[b.bytes > 0 ? b.bytes : 1]);
    b.t.data = b.data.get();
    if (role == "in") {
      if (!read_file(dir + "/" + b.file, b.data.get(), b.bytes)) {
        std::cerr << "cannot read " << b.file << "\n";
        return 2;
      }
      ins.push_back(std::move(b));
    } else {
      outs.push_back(std::move(b));
    }
  }
  std::vector<kb_tensor> in_t, out_t;
  for (auto& b : ins)
    in_t.push_back(b.t);
  for (auto& b : outs)
    out_t.push_back(b.t);
  const std::size_t ws_bytes = kb_workspace_bytes(in_t.data(), static_cast<int>(in_t.size()),
                                                  out_t.data(), static_cast<int>(out_t.size()));
  std::unique_ptr<unsigned char[]> ws(ws_bytes > 0 ? new unsigned char[ws_bytes] : nullptr);
  for (int pass = 0; pass < 2; ++pass) {
    kb_host::reverse_order = pass == 1;
    // Garbage that differs between the passes: NaN-like bytes in the outputs and workspace.
    if (ws)
      std::memset(ws.get(), pass == 0 ? 0xA5 : 0x5A, ws_bytes);
    for (auto& b : outs)
      std::memset(b.data.get(), pass == 0 ? 0xFF : 0x7F, b.bytes);
    const int rc = kb_forward(in_t.data(), static_cast<int>(in_t.size()), out_t.data(),
                              static_cast<int>(out_t.size()), ws.get(), nullptr);
    if (rc != 0) {
      std::cerr << "kb_forward returned " << rc << " (pass " << pass << ")\n";
      return 1;
    }
    for (auto& b : outs)
      if (!write_file(dir + "/" + b.file + (pass == 0 ? "" : ".rev"), b.data.get(), b.bytes)) {
        std::cerr << "cannot write " << b.file << "\n";
        return 2;
      }
  }
  std::printf("launches %lld workspace %zu\n", static_cast<long long>(kb_host::launches), ws_bytes);
  return 0;
}
