"""What the one-block-per-row CUDA kernels share: block reductions in float32, the element type, a build cache.

A row kernel (layer norm, softmax, cross-entropy) runs one thread block of ``THREADS`` threads per row: each
thread walks the row with stride ``THREADS``, keeps a float32 partial (sum or max), and ``tl_block_sum`` /
``tl_block_max`` combine the partials, first inside each warp with shuffles, then across the warps through
one shared-memory slot per warp. Every thread gets the result, so the row can be read again with it.

Each kernel's source is a plain CUDA translation unit with ``typedef <element type> T;`` on top
(``__half`` from cuda_fp16.h for float16): the string built here is exactly the one CuPy's RawKernel
compiles, and the one tests/test_gpu_static.py compiles with NVRTC without a GPU. Element values are
converted to float explicitly (``(float)x[j]``, ``(T)v``), so float16 arithmetic never mixes types.
"""
import numpy as np

THREADS = 256  # threads per row block: a multiple of the warp size (32), at most 32 warps

CTYPES = {"float16": "__half", "float32": "float"}  # the dtypes the row kernels take (statistics in float32)

_REDUCTIONS = r"""
#include <cuda_fp16.h>
typedef %(ctype)s T;
#define TL_NEG_INF __int_as_float((int)0xff800000u)  // -inf (NVRTC has no math.h, so no INFINITY)

// The sum of v over the block, returned to every thread. `shared` holds one float per warp.
__device__ float tl_block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // an earlier reduction may still be reading `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? shared[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The max of v over the block (-inf for an empty one), returned to every thread.
__device__ float tl_block_max(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? shared[lane] : TL_NEG_INF;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
"""


def row_source(body, dtype):
    """The translation unit of a row kernel: the reductions for element type `dtype`, then `body`."""
    return _REDUCTIONS % {"ctype": CTYPES[np.dtype(dtype).name]} + body


_built = {}


def build_once(key, make):
    """make() the first time `key` is asked for, the same kernel object after: every kernel module builds its
    kernels through this. Building compiles nothing; CuPy compiles at the first launch (and caches the
    binary on disk)."""
    kernel = _built.get(key)
    if kernel is None:
        kernel = _built[key] = make()
    return kernel


def build_raw(cupy, name, source_of, dtype):
    """cupy.RawKernel(source_of(dtype), name), built once per (name, dtype)."""
    return build_once((name, np.dtype(dtype).name),
                      lambda: cupy.RawKernel(source_of(dtype), name, options=("--std=c++14",)))


def launch_rows(kernel, rows, args):
    """One block of THREADS threads per row (rows > 0)."""
    kernel((int(rows),), (THREADS,), args)


def compute_dtype(dtype):
    """The dtype statistics are computed in: float32 for float16, the dtype itself otherwise."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)
