"""Checks of the CUDA code that run without a GPU (`pytest -m gpu_static`; they need CuPy and NVRTC).

No GPU has run this project's CuPy paths yet, so what can be checked without one is checked here:
- every CuPy function and attribute the code names (`xp.f`, `cupy.cuda.X`, ...) exists in the installed
  CuPy, found by walking the source's syntax tree rather than by a hand-kept list, and every keyword argument
  passed to one is a parameter it takes;
- every CUDA kernel source compiles with NVRTC for compute_80 (A100) and compute_90 (H100/H200), in float32
  and float64 (NVRTC compiles to PTX without a device).
`xp` is the array module of the data (NumPy or CuPy) everywhere in the package; a use guarded by
`hasattr(xp, "name")` in the same function is exempt (the code has a fallback where CuPy lacks it).
"""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install cupy-cuda12x)")
try:
    from cupy_backends.cuda.libs import nvrtc
    nvrtc.getVersion()
except Exception as exc:  # noqa: BLE001 - any failure to load the library means: skip
    pytest.skip(f"NVRTC is not available ({exc}); pip install nvidia-cuda-nvrtc-cu12", allow_module_level=True)

pytestmark = pytest.mark.gpu_static
ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("tensorlite", "models", "train", "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]
UFUNC_KEYWORDS = {"out", "dtype", "casting"}  # what a cupy.ufunc call takes (CuPy's ufunc documentation)


def cupy_names(tree):
    """The names that stand for CuPy in a module: `xp`, `cupy` (also a parameter name, as in kernels/), and
    whatever `import cupy [as x]` binds."""
    names = {"xp", "cupy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name in ("cupy", "cupyx")}
    return names


def chain_of(node, roots):
    """'cupy.cuda.Device' for the attribute chain cupy.cuda.Device whose root is in `roots`, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in roots and parts:
        return ".".join([node.id, *reversed(parts)])
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
            if isinstance(node, ast.Call) and id(node.func) not in exempt:
                chain = chain_of(node.func, roots)
                for kw in node.keywords if chain else ():
                    if kw.arg:
                        found.setdefault((chain, kw.arg), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def resolve(chain):
    """The CuPy object a chain names (submodules imported as needed); AttributeError if it does not exist."""
    parts = chain.split(".")
    obj = importlib.import_module("cupyx" if parts[0] == "cupyx" else "cupy")
    for part in parts[1:]:
        if not hasattr(obj, part) and inspect.ismodule(obj):
            try:
                importlib.import_module(f"{obj.__name__}.{part}")
            except ImportError:
                pass
        obj = getattr(obj, part)
    return obj


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
    except AttributeError as exc:
        pytest.fail(f"{chain} (used at {', '.join(USES[chain, None][:3])}) is not in CuPy {cupy.__version__}: {exc}")


@pytest.mark.parametrize("chain, keyword", sorted((c, k) for c, k in USES if k is not None))
def test_every_keyword_passed_to_cupy_is_a_parameter(chain, keyword):
    fn = resolve(chain)
    if isinstance(fn, cupy.ufunc):
        assert keyword in UFUNC_KEYWORDS, f"{chain}(..., {keyword}=) at {USES[chain, keyword][:3]}"
        return
    params = inspect.signature(fn).parameters.values()
    assert keyword in {p.name for p in params} or any(p.kind is p.VAR_KEYWORD for p in params), \
        f"{chain} takes no {keyword}= (used at {', '.join(USES[chain, keyword][:3])})"


def elementwise_kernels():
    """Every ElementwiseKernel the package builds (built, not compiled: that needs no GPU)."""
    from tensorlite.kernels.adamw import adamw_kernel
    return {"adamw": adamw_kernel(cupy)}


def cuda_source(kernel, ctype):
    """A CUDA translation unit that runs the kernel's operation the way ElementwiseKernel does: one element
    per thread, inputs read-only, outputs as references."""
    args, loads = [], []
    for p in kernel.in_params:
        args.append(f"const T* {p.name}_")
        loads.append(f"const T {p.name} = {p.name}_[i];")
    for p in kernel.out_params:
        args.append(f"T* {p.name}_")
        loads.append(f"T& {p.name} = {p.name}_[i];")
    return (f"typedef {ctype} T;\n{kernel.preamble or ''}\n"
            f'extern "C" __global__ void {kernel.name}({", ".join(args)}, long long n) {{\n'
            "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n  if (i >= n) return;\n  "
            + "\n  ".join(loads) + f"\n  {kernel.operation}\n}}\n")


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("name", sorted(elementwise_kernels()))
def test_every_kernel_compiles_for_a100_and_h100(name, ctype, arch):
    kernel = elementwise_kernels()[name]
    source = cuda_source(kernel, ctype)
    prog = nvrtc.createProgram(source, f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", "--std=c++14"])
    except nvrtc.NVRTCError as exc:
        pytest.fail(f"{name} ({ctype}, {arch}) does not compile: {exc}\n{nvrtc.getProgramLog(prog)}\n{source}")
    ptx = nvrtc.getPTX(prog)
    assert f".entry {kernel.name}" in (ptx.decode() if isinstance(ptx, bytes) else ptx)


def test_a_kernel_with_an_error_does_not_compile():
    """The compile check can fail: a misspelled variable is reported by NVRTC."""
    kernel = elementwise_kernels()["adamw"]
    source = cuda_source(kernel, "float").replace("sqrt(v)", "sqrt(vv)")
    prog = nvrtc.createProgram(source, "broken.cu", [], [])
    with pytest.raises(nvrtc.NVRTCError):
        nvrtc.compileProgram(prog, ["--gpu-architecture=compute_90"])


def test_a_name_cupy_lacks_is_caught():
    with pytest.raises(AttributeError):
        resolve("xp.not_a_cupy_function")
    with pytest.raises(AttributeError):
        resolve("cupy.cuda.NoSuchThing")
    assert resolve("cupy.cuda.runtime.getDeviceCount") is cupy.cuda.runtime.getDeviceCount
