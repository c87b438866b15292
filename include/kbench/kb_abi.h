/* kbench candidate ABI, version 1: what a candidate kernel file implements.
 *
 * A candidate is one CUDA C++ source file compiled by kbench into a shared object. It exports
 *   int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out,
 *                  void* workspace, cudaStream_t stream);
 * and may export
 *   size_t kb_workspace_bytes(const kb_tensor* in, int n_in, const kb_tensor* out, int n_out);
 *   int kb_setup(const kb_tensor* in, int n_in, const kb_tensor* out, int n_out);
 *   void kb_teardown(void);
 *
 * Contract:
 * - The harness owns all memory. `in` holds the problem's inputs then its parameters, in the
 *   order the problem declares them; `out` its outputs. All are device pointers, row-major and
 *   contiguous (strides are given in elements for completeness).
 * - kb_forward launches its work on `stream` only and returns 0 on success, non-zero on failure.
 *   It must not synchronise the device, create streams or events, or keep results between calls:
 *   inputs and their addresses change from call to call, outputs are poisoned before each call.
 * - `workspace` points to kb_workspace_bytes(...) bytes of device memory (NULL when the function
 *   is absent or returns 0). Its contents are garbage at every call.
 * - kb_setup runs once, untimed, before any call, with shapes only (data pointers are NULL):
 *   for choosing a configuration or setting kernel attributes. kb_teardown runs once at the end.
 * - Inputs must not be modified.
 */
#ifndef KBENCH_KB_ABI_H
#define KBENCH_KB_ABI_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#define KB_ABI_VERSION 1
#define KB_MAX_DIMS 8

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kb_dtype {
  KB_F32 = 0,
  KB_F16 = 1,
  KB_BF16 = 2,
  KB_I32 = 3,
  KB_I64 = 4,
  KB_BOOL = 5
} kb_dtype;

typedef struct kb_tensor {
  void* data;                     /* device pointer (NULL in kb_setup) */
  int32_t dtype;                  /* a kb_dtype */
  int32_t ndim;                   /* 0..KB_MAX_DIMS */
  int64_t shape[KB_MAX_DIMS];     /* extents */
  int64_t strides[KB_MAX_DIMS];   /* in elements, row-major contiguous */
  const char* name;               /* the problem's name for this tensor */
} kb_tensor;

typedef int (*kb_forward_fn)(const kb_tensor* in, int n_in, kb_tensor* out, int n_out,
                             void* workspace, cudaStream_t stream);
typedef size_t (*kb_workspace_bytes_fn)(const kb_tensor* in, int n_in, const kb_tensor* out,
                                        int n_out);
typedef int (*kb_setup_fn)(const kb_tensor* in, int n_in, const kb_tensor* out, int n_out);
typedef void (*kb_teardown_fn)(void);

/* Number of elements of a tensor. */
static inline int64_t kb_numel(const kb_tensor* t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i)
    n *= t->shape[i];
  return n;
}

#ifdef __cplusplus
}
#endif

#endif /* KBENCH_KB_ABI_H */
