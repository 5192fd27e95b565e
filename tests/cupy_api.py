"""Whether CuPy has the names and keyword arguments the code uses, against whichever CuPy `import cupy` finds.

test_gpu_static.py imports it to check the installed CuPy, and runs it as a program with another CuPy first
on the path (PYTHONPATH=DIR python cupy_api.py < uses.json) to check the same names against CuPy 13: it
reads [[chain, keyword or null], ...] and prints {"version", "file", "missing": [[chain, keyword, why], ...]}
as JSON.
"""
import importlib
import inspect
import json
import re
import sys

import cupy

UFUNC_KEYWORDS = {"out", "dtype", "casting"}  # what a cupy.ufunc call takes (CuPy's ufunc documentation)


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


def parameters(fn):
    """The keyword names `fn` takes, or None when it takes any (**kwargs). Cython classes (ElementwiseKernel,
    RawKernel...) have no signature inspect can read: their docstring's first line, `Name(a, str b=1, **kw)`,
    is read instead."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        first = (inspect.getdoc(fn) or "").splitlines()[:1]
        found = re.match(r"^\s*[\w.]+\((.*)\)\s*$", first[0]) if first else None
        if found is None:
            raise
        names = set()
        for piece in found.group(1).split(","):
            piece = piece.strip()
            if piece.startswith("**"):
                return None
            if piece and piece not in ("*", "/"):
                names.add(piece.split("=")[0].split()[-1].lstrip("*"))
        return names
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def keyword_problem(chain, keyword):
    """None if `chain` takes `keyword=`, else why not."""
    fn = resolve(chain)
    if isinstance(fn, cupy.ufunc):
        return None if keyword in UFUNC_KEYWORDS else f"{chain} is a ufunc: it takes no {keyword}="
    names = parameters(fn)
    return None if names is None or keyword in names else f"{chain} takes no {keyword}="


def missing(uses):
    """[chain, keyword, why] for each name (keyword None) and keyword argument in `uses` this CuPy lacks."""
    problems = []
    for chain, keyword in uses:
        try:
            if keyword:
                problem = keyword_problem(chain, keyword)
            else:
                resolve(chain)
                problem = None
        except AttributeError as exc:
            problem = f"{chain}: {exc}"
        except ImportError:  # its module loads a CUDA library this machine lacks (cupy.cuda.curand): unchecked
            continue
        if problem:
            problems.append([chain, keyword, problem])
    return problems


def main():
    uses = json.load(sys.stdin)
    json.dump({"version": cupy.__version__, "file": cupy.__file__, "missing": missing(uses)}, sys.stdout)


if __name__ == "__main__":
    main()
