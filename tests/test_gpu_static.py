"""Checks of the CUDA code that run without a GPU (`pytest -m gpu_static`; they need CuPy and NVRTC).

No GPU has run this project's CuPy paths yet, so what can be checked without one is checked here:
- every CuPy function and attribute the code names (`xp.f`, `cupy.cuda.X`, ...) exists in the installed
  CuPy, found by walking the source's syntax tree rather than by a hand-kept list, and every keyword argument
  passed to one is a parameter it takes;
- the same names and keywords exist in CuPy 13 too, when a second CuPy is at hand (TENSORLITE_EXTRA_CUPY=DIR,
  or .ci/cupy13, which .ci/run fills with `pip install --no-deps --target`): checked in a subprocess with
  that directory first on the path (cupy_api.py);
- every CUDA kernel compiles with NVRTC for compute_80 (A100) and compute_90 (H100/H200), in each dtype it
  takes (float32, float16, and float64 for AdamW; NVRTC compiles to PTX without a device): a RawKernel's own
  source string, exactly; an ElementwiseKernel's or ReductionKernel's operation inside a translation unit
  laid out as CuPy lays it out (CuPy's own float16 type from its headers, cupy/float16.cuh).
`xp` is the array module of the data (NumPy or CuPy) everywhere in the package; a use guarded by
`hasattr(xp, "name")` in the same function is exempt (the code has a fallback where CuPy lacks it).
"""
import ast
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install cupy-cuda12x)")
try:
    from cupy_backends.cuda.libs import nvrtc
    nvrtc.getVersion()
except Exception as exc:  # noqa: BLE001 - any failure to load the library means: skip
    pytest.skip(f"NVRTC is not available ({exc}); pip install nvidia-cuda-nvrtc-cu12", allow_module_level=True)

from cupy_api import keyword_problem, resolve  # noqa: E402 - needs cupy, imported above

pytestmark = pytest.mark.gpu_static
ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("tensorlite", "models", "train", "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]


def cupy_names(tree):
    """The names that stand for CuPy in a module, each with the chain it stands for: `xp`, `cupy` (also a
    parameter name, as in kernels/), whatever `import cupy [as x]` binds, and what `from cupy... import y`
    binds (y stands for cupy....y: backend.nccl_communicator's `nccl` and `NCCLBackend`)."""
    names = {"xp": "xp", "cupy": "cupy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update({a.asname or a.name: a.asname or a.name for a in node.names if a.name in ("cupy", "cupyx")})
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("cupy", "cupyx"):
            names.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    return names


def chain_of(node, roots):
    """'cupy.cuda.Device' for the attribute chain cupy.cuda.Device whose root is in `roots` (a name ->
    the chain it stands for; a name imported from CuPy also by itself: NCCLBackend), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in roots and (parts or "." in roots[node.id]):
        return ".".join([roots[node.id], *reversed(parts)])
    return None


def guarded(func):
    """Attribute names that `func` checks with hasattr(<name>, "attr") before use."""
    return {n.args[1].value for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id == "hasattr" and len(n.args) == 2 and isinstance(n.args[1], ast.Constant)}


def uses():
    """{(chain, keyword or None): [file:line, ...]} for every CuPy name the code uses."""
    found = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots = cupy_names(tree)
        scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        exempt = {id(n) for f in scopes for n in ast.walk(f) if isinstance(n, ast.Attribute) and n.attr in guarded(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in exempt:
                chain = chain_of(node, roots)
                if chain:
                    found.setdefault((chain, None), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Name) and "." in roots.get(node.id, "") and isinstance(node.ctx, ast.Load):
                found.setdefault((roots[node.id], None), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Call) and id(node.func) not in exempt:
                chain = chain_of(node.func, roots)
                for kw in node.keywords if chain else ():
                    if kw.arg:
                        found.setdefault((chain, kw.arg), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


USES = uses()


def test_the_walk_finds_the_cupy_code():
    chains = {c for c, _ in USES}
    assert {"xp.matmul", "_cupy.asnumpy", "cupy.ElementwiseKernel"} <= chains and len(chains) > 40


@pytest.mark.parametrize("chain", sorted({c for c, k in USES if k is None}))
def test_every_cupy_name_the_code_uses_exists(chain):
    maximal = not any(c.startswith(chain + ".") for c, _ in USES)
    if not maximal:
        pytest.skip("checked through a longer chain")
    try:
        resolve(chain)
    except ImportError as exc:  # a module that loads its CUDA library when imported (cupy.cuda.curand)
        pytest.skip(f"{chain}: its module needs a CUDA library this machine lacks ({str(exc)[:120]})")
    except AttributeError as exc:
        pytest.fail(f"{chain} (used at {', '.join(USES[chain, None][:3])}) is not in CuPy {cupy.__version__}: {exc}")


@pytest.mark.parametrize("chain, keyword", sorted((c, k) for c, k in USES if k is not None))
def test_every_keyword_passed_to_cupy_is_a_parameter(chain, keyword):
    problem = keyword_problem(chain, keyword)
    assert problem is None, f"{problem} (used at {', '.join(USES[chain, keyword][:3])})"


def extra_cupy():
    """The directory of a second CuPy to check against (TENSORLITE_EXTRA_CUPY, else .ci/cupy13), or None."""
    extra = os.environ.get("TENSORLITE_EXTRA_CUPY")
    if extra:
        assert (Path(extra) / "cupy" / "__init__.py").is_file(), f"TENSORLITE_EXTRA_CUPY={extra} holds no cupy package"
        return extra
    ci = ROOT / ".ci" / "cupy13"
    return str(ci) if (ci / "cupy" / "__init__.py").is_file() else None


def check_in(extra, uses):
    """cupy_api.py's report on `uses` [(chain, keyword or None)], run with the CuPy in `extra` first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([extra] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    run = subprocess.run([sys.executable, str(Path(__file__).with_name("cupy_api.py"))], input=json.dumps(list(uses)),
                         capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300)
    assert run.returncode == 0, f"could not import the CuPy in {extra}:\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout)
    assert Path(report["file"]).resolve().is_relative_to(Path(extra).resolve()), f"imported {report['file']}"
    return report


def other_cupy():
    extra = extra_cupy()
    if extra is None:
        pytest.skip("no second CuPy to check against: set TENSORLITE_EXTRA_CUPY=DIR after "
                    "`pip install --no-deps --target DIR cupy-cuda12x==13.6.0 fastrlock` (.ci/run fills .ci/cupy13)")
    return extra


def test_every_cupy_name_and_keyword_exists_in_the_other_cupy():
    """The names and keywords the code uses, resolved in a subprocess that imports the other CuPy."""
    extra = other_cupy()
    report = check_in(extra, USES)
    names = sum(k is None for _, k in USES)
    print(f"CuPy {report['version']}: {names} names and {len(USES) - names} keywords checked, "
          f"{len(report['missing'])} missing")
    assert not report["missing"], f"missing in CuPy {report['version']} ({extra}):\n" + "\n".join(
        f"{why} (used at {', '.join(USES[chain, keyword][:3])})" for chain, keyword, why in report["missing"])


def test_the_other_cupy_check_reports_what_is_missing():
    report = check_in(other_cupy(), [("xp.not_a_cupy_function", None), ("xp.sum", "no_such_keyword"),
                                     ("cupy.ElementwiseKernel", "preamble"), ("xp.matmul", None)])
    assert [m[:2] for m in report["missing"]] == [["xp.not_a_cupy_function", None], ["xp.sum", "no_such_keyword"]]


def elementwise_kernels():
    """Every ElementwiseKernel and ReductionKernel the package builds, with the dtypes it takes (built, not
    compiled: that needs no GPU)."""
    from tensorlite.kernels import adamw, bias_act, cross_entropy, dropout, layer_norm
    half = ("float32", "float16")
    return {"adamw": (adamw.adamw_kernel(cupy), ("float32", "float64")),
            "layer_norm_dw": (layer_norm.column_kernel(cupy), half),
            "cross_entropy_grad": (cross_entropy.grad_kernel(cupy), half),
            "bias_act_fwd": (bias_act.forward_kernel(cupy), half),
            "bias_act_bwd": (bias_act.backward_kernel(cupy), half),
            "dropout": (dropout.dropout_kernel(cupy), half)}


def raw_kernels():
    """Every RawKernel: {name: (module's source function, its kernel name)}, each built per dtype by the
    package's own build_raw, so the test compiles exactly the string the kernel would."""
    from tensorlite.kernels import cross_entropy, layer_norm, softmax
    return {"layer_norm_fwd": (layer_norm.forward_source, "tensorlite_layer_norm_fwd"),
            "layer_norm_bwd": (layer_norm.backward_source, "tensorlite_layer_norm_bwd"),
            "causal_softmax_fwd": (softmax.forward_source, "tensorlite_causal_softmax_fwd"),
            "causal_softmax_bwd": (softmax.backward_source, "tensorlite_causal_softmax_bwd"),
            "cross_entropy_fwd": (cross_entropy.forward_source, "tensorlite_cross_entropy_fwd")}


def cuda_include():
    """A directory with cuda_fp16.h (CUDA's headers, which CuPy's float16 and our __half kernels include), or None."""
    site = [Path(p) for p in sys.path if p.endswith("site-packages")]
    candidates = [os.path.join(os.environ.get("CUDA_PATH", "/usr/local/cuda"), "include"), "/usr/local/cuda/include",
                  *sorted(glob.glob("/usr/local/cuda-*/include"), reverse=True),
                  *[str(p / "nvidia" / sub / "include") for p in site for sub in ("cuda_runtime", "cu13", "cu12")]]
    return next((c for c in candidates if os.path.isfile(os.path.join(c, "cuda_fp16.h"))), None)


CUPY_INCLUDE = str(Path(cupy.__file__).parent / "_core" / "include")
CTYPES = {"float32": "float", "float64": "double", "float16": "float16"}  # float16: CuPy's own type


def cuda_source(kernel, dtype):
    """A CUDA translation unit that runs the kernel's operation the way CuPy does: an ElementwiseKernel one
    element per thread, a ReductionKernel a loop folding map_expr with reduce_expr, then post_map_expr; inputs
    read-only values, outputs references; T the dtype (CuPy's float16 class for float16)."""
    def ctype(p):
        return "T" if p.dtype is None else p.ctype
    head = "#include <cupy/float16.cuh>\n" if dtype == "float16" else ""
    head += f"typedef {CTYPES[dtype]} T;\n{kernel.preamble or ''}\n"
    args = [f"const {ctype(p)}* {p.name}_" for p in kernel.in_params] + [f"{ctype(p)}* {p.name}_"
                                                                           for p in kernel.out_params]
    loads = "\n    ".join(f"const {ctype(p)} {p.name} = {p.name}_[i];" for p in kernel.in_params)
    outs = "\n  ".join(f"{ctype(p)}& {p.name} = {p.name}_[{'i' if hasattr(kernel, 'operation') else '0'}];"
                       for p in kernel.out_params)
    signature = f'extern "C" __global__ void {kernel.name}({", ".join(args)}, long long n) {{\n'
    if hasattr(kernel, "operation"):  # ElementwiseKernel
        return (head + signature + "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                "  if (i >= n) return;\n    " + loads + "\n  " + outs + f"\n  {kernel.operation}\n}}\n")
    reduce_type = kernel.reduce_type or ctype(kernel.out_params[0])
    return (head + f"typedef {reduce_type} _type_reduce;\n" + signature
            + f"  _type_reduce _s = _type_reduce({kernel.identity});\n"
            "  for (long long i = threadIdx.x; i < n; i += blockDim.x) {\n    " + loads
            + f"\n    _type_reduce a = _s, b = static_cast<_type_reduce>({kernel.map_expr});\n"
            f"    _s = ({kernel.reduce_expr});\n  }}\n  " + outs + f"\n  _type_reduce a = _s;\n  {kernel.post_map_expr};\n}}\n")


def compile_ptx(source, name, arch):
    """NVRTC's PTX for `source`, or a test failure with the compiler's log; skip float16 without CUDA headers."""
    include = cuda_include()
    if "fp16" in source and include is None:
        pytest.skip("float16 needs CUDA's cuda_fp16.h: set CUDA_PATH or pip install nvidia-cuda-runtime-cu12")
    options = [f"--gpu-architecture={arch}", "--std=c++14", f"-I{CUPY_INCLUDE}"] + ([f"-I{include}"] if include else [])
    prog = nvrtc.createProgram(source, f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, options)
    except nvrtc.NVRTCError as exc:
        pytest.fail(f"{name} ({arch}) does not compile: {exc}\n{nvrtc.getProgramLog(prog)}\n{source}")
    ptx = nvrtc.getPTX(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


ARCHS = ["compute_80", "compute_90"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name, dtype", [(n, d) for n, (_, ds) in sorted(elementwise_kernels().items()) for d in ds])
def test_every_elementwise_kernel_compiles_for_a100_and_h100(name, dtype, arch):
    kernel = elementwise_kernels()[name][0]
    assert f".entry {kernel.name}" in compile_ptx(cuda_source(kernel, dtype), name, arch)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", sorted(raw_kernels()))
def test_every_raw_kernel_compiles_for_a100_and_h100(name, dtype, arch):
    from tensorlite.kernels.rows import build_raw
    source_of, entry = raw_kernels()[name]
    kernel = build_raw(cupy, entry, source_of, dtype)
    assert kernel.code == source_of(dtype) and kernel.name == entry
    assert f".entry {entry}" in compile_ptx(kernel.code, name, arch)


def test_a_kernel_with_an_error_does_not_compile():
    """The compile check can fail: a misspelled variable is reported by NVRTC, in either kind of kernel."""
    from tensorlite.kernels.layer_norm import forward_source
    broken = [cuda_source(elementwise_kernels()["adamw"][0], "float32").replace("sqrt(v)", "sqrt(vv)"),
              forward_source("float32").replace("part += c * c", "part += cc * c")]
    for source in broken:
        prog = nvrtc.createProgram(source, "broken.cu", [], [])
        with pytest.raises(nvrtc.NVRTCError):
            nvrtc.compileProgram(prog, ["--gpu-architecture=compute_90", f"-I{CUPY_INCLUDE}"]
                                 + ([f"-I{cuda_include()}"] if cuda_include() else []))


def test_a_name_cupy_lacks_is_caught():
    with pytest.raises(AttributeError):
        resolve("xp.not_a_cupy_function")
    with pytest.raises(AttributeError):
        resolve("cupy.cuda.NoSuchThing")
    assert resolve("cupy.cuda.runtime.getDeviceCount") is cupy.cuda.runtime.getDeviceCount


# ---------------------------------------------------------------- NCCL (train/distributed.py)
# The communicator's methods are called on an instance, which the walk above cannot follow: these are the
# calls of MPIWorld, each argument by the name of the parameter it fills (all_reduce(array, array, "sum"),
# broadcast(array, root=0)), checked in this CuPy and in the other one.
NCCL_CALLS = [("cupyx.distributed.NCCLBackend.all_reduce", "in_array"),
              ("cupyx.distributed.NCCLBackend.all_reduce", "out_array"),
              ("cupyx.distributed.NCCLBackend.all_reduce", "op"),
              ("cupyx.distributed.NCCLBackend.broadcast", "in_out_array"),
              ("cupyx.distributed.NCCLBackend.broadcast", "root")]


def test_the_nccl_calls_are_written_as_checked():
    source = (ROOT / "train" / "distributed.py").read_text(encoding="utf-8")
    assert 'self.nccl.all_reduce(array, array, "sum")' in source and "self.nccl.broadcast(array, root=0)" in source
    assert ("cupyx.distributed.NCCLBackend", "use_mpi") in USES  # backend.nccl_communicator, found by the walk


@pytest.mark.parametrize("chain, keyword", NCCL_CALLS)
def test_the_nccl_methods_take_the_arguments_train_distributed_passes(chain, keyword):
    import inspect
    method = resolve(chain)
    assert keyword_problem(chain, keyword) is None
    names = list(inspect.signature(method).parameters)[1:]  # after self
    assert names.index(keyword) == {"in_array": 0, "out_array": 1, "op": 2, "in_out_array": 0}.get(keyword,
                                                                                                    names.index(keyword))


def test_the_nccl_methods_exist_in_the_other_cupy():
    report = check_in(other_cupy(), NCCL_CALLS + [("cupyx.distributed.NCCLBackend", "use_mpi"),
                                                  ("cupy.cuda.nccl.available", None)])
    assert not report["missing"], report["missing"]
