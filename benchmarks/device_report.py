"""device_check's summaries: one line per part as it finishes, and device_check.md, from the report
that device_check.json holds (so `markdown` can be run again on a JSON brought back from a GPU)."""
from . import common
from .device_parts import MODES

TARGET = 1.0  # issue 17: tensorlite's step no slower than PyTorch eager's, in each precision mode
TOP_FUNCTIONS = 10


def _gib(n):
    return "-" if n is None else f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _counts_text(counts):
    order = ("passed", "failures", "errors", "skipped", "failed", "error", "deselected")
    words = {"failures": "failed", "errors": "errors"}
    return ", ".join(f"{counts[k]} {words.get(k, k)}" for k in order if counts.get(k)) or "no test ran"


def one_line(record):
    """What a finished part printed as its progress line: its status and its main numbers."""
    status = record["status"] + (f": {record['reason']}" if record.get("reason") else "")
    r = record.get("result") or {}
    seconds = f" ({record['seconds']:.0f} s)" if "seconds" in record else ""
    if "counts" in r:
        first = r.get("failures") and f" (first: {r['failures'][0]['test']}: {r['failures'][0]['first_line']})"
        return f"{status}{seconds}: {_counts_text(r['counts'])}{first or ''}"
    if "ratio" in r and "tensorlite" in r and "median_s" in r["tensorlite"]:
        return (f"{status}{seconds}: tensorlite / PyTorch {r['ratio']:.2f} "
                f"({common.fmt_time(r['tensorlite']['median_s'])} / {common.fmt_time(r['torch']['median_s'])})")
    if "ratio" in r:
        peaks = [r.get(k, {}).get("peak_bytes") for k in ("tensorlite", "torch")]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        return f"{status}{seconds}: peak tensorlite / PyTorch {ratio} ({_gib(peaks[0])} / {_gib(peaks[1])})"
    if "tokens_per_s" in r:
        return f"{status}{seconds}: step {common.fmt_time(r['step']['median_s'])}, {r['tokens_per_s']:,.0f} tokens/s"
    if "gpu_best_gflops" in r:
        best = ", ".join(f"{d} {g:,.0f} GFLOP/s" for d, g in r["gpu_best_gflops"].items()) or "no GPU rows"
        return f"{status}{seconds}: GPU best {best}"
    return status + seconds


def _part(report, name):
    return next((p for p in report["parts"] if p["name"] == name), None)


def _status(p):
    if p is None:
        return "not in this run"
    return p["status"] + (f": {p['reason']}" if p.get("reason") else "")


def _target_rows(report):
    rows = []
    for mode, label in MODES:
        p = _part(report, f"compare_{mode}")
        r = (p or {}).get("result") or {}
        if "ratio" not in r:
            rows.append(f"| GPT, {label} | {_status(p)} | - | - | - | <= {TARGET:.1f} |")
            continue
        met = "met" if r["ratio"] <= TARGET else "**not met**"
        pr = r["pair_ratio"]
        rows.append(f"| {r['preset']} GPT ({r['parameters']:,} parameters), {label} | **{r['ratio']:.2f}** | "
                    f"{common.fmt_stats(r['tensorlite'])} | {common.fmt_stats(r['torch'])} | "
                    f"{pr['median_s']:.2f} [{pr['q1_s']:.2f}, {pr['q3_s']:.2f}] | <= {TARGET:.1f}: {met} |")
    p = _part(report, "memory")
    r = (p or {}).get("result") or {}
    if r.get("ratio") is not None:
        rows.append(f"| peak memory of one step, float32 | **{r['ratio']:.2f}** | "
                    f"{_gib(r['tensorlite']['peak_bytes'])} | {_gib(r['torch']['peak_bytes'])} | - | no target |")
    else:
        why = next((r[k].get("unavailable") or r[k].get("skipped") for k in ("tensorlite", "torch")
                    if isinstance(r.get(k), dict) and "peak_bytes" not in r[k]), None)
        rows.append(f"| peak memory of one step, float32 | {_status(p) if why is None else 'not compared: ' + why} "
                    f"| {_gib(r.get('tensorlite', {}).get('peak_bytes'))} | - | - | no target |")
    return rows


def _tests_section(report):
    lines = ["| run | status | passed | failed | errors | skipped | seconds |", "|---|---|---|---|---|---|---|"]
    failures = []
    for name in ("tests", "tests_fused"):
        p = _part(report, name)
        if p is None:
            continue
        c = ((p.get("result") or {}).get("counts")) or {}
        get = lambda *keys: next((str(c[k]) for k in keys if k in c), "-")  # noqa: E731 (XML or last line)
        lines.append(f"| `{p['title']}` | {_status(p)} | {get('passed')} | {get('failures', 'failed')} | "
                     f"{get('errors', 'error')} | {get('skipped')} | {p.get('seconds', 0):.0f} |")
        failures += [(p["title"], f) for f in (p.get("result") or {}).get("failures", [])]
    if failures:
        lines += ["", "Failures (name, first line of the message):", ""]
        lines += [f"- {run}: `{f['test']}`: {f['first_line']}" for run, f in failures]
    return lines


def _train_step_section(report):
    r = (_part(report, "train_step") or {}).get("result") or {}
    if "step" not in r:
        return []
    ph = r["phases_s"]
    lines = ["", "## tensorlite's training step, by Function", "",
             f"Step median {common.fmt_stats(r['step'])}, {r['tokens_per_s']:,.0f} tokens/s; forward / backward / "
             f"optimizer {' / '.join(common.fmt_time(ph[k]) for k in ('forward', 'backward', 'optimizer'))}; "
             f"profiled step (synchronised around each Function) {common.fmt_time(r['profiled_wall_s_per_step'])}.",
             "", "| Function | forward ms | backward ms | total ms |", "|---|---|---|---|"]
    for name, row in list(r["functions_per_step"].items())[:TOP_FUNCTIONS]:
        lines.append(f"| {name} | {row['forward_s'] * 1e3:.2f} | {row['backward_s'] * 1e3:.2f} | "
                     f"{row['total_s'] * 1e3:.2f} |")
    return lines


def _matmul_section(report):
    r = (_part(report, "matmul") or {}).get("result") or {}
    if "results" not in r:
        return []
    lines = ["", "## Matrix products on the GPU", ""]
    best = r["gpu_best_gflops"]
    lines.append("Best square/batched product rate: " + (", ".join(f"{d} {g:,.0f} GFLOP/s" for d, g in best.items())
                                                        or "no GPU rows (no GPU)") + ".")
    rows = [e for e in r["results"].get("model_shapes", []) if "median_s" in e.get("gpu", {})]
    if rows:
        lines += ["", "| product | GPU median | GFLOP/s | GPU / CPU speed-up |", "|---|---|---|---|"]
        lines += [f"| {e['case']} | {common.fmt_stats(e['gpu'])} | {e['flops'] / e['gpu']['median_s'] / 1e9:,.0f} | "
                  f"{e.get('speedup', 0):.1f}x |" for e in rows]
    return lines


def _nvidia_smi(machine):
    """nvidia-smi's answer (a CSV header and a row per GPU: name, driver, memory, clock, power) as one line."""
    text = machine.get("nvidia_smi") or ""
    rows = text.splitlines()
    return ["", "nvidia-smi: " + " | ".join(rows[1:])] if len(rows) >= 2 else []


def markdown(report):
    """device_check.md: the targets table first, then the tests, the breakdowns, and every part's status."""
    m = report["machine"]
    gpu = m.get("gpu", {})
    title = gpu.get("name") if gpu.get("available") else "no GPU (a dry run of the machinery on the CPU)"
    torch = m.get("torch_detail", {})
    done = "exit status {}".format(report["exit_status"]) if "exit_status" in report else "still running"
    lines = [f"# tensorlite device check: {title}", "",
             f"Started {report['started']} on `--device {report['args']['device']}`; "
             f"budget {report['budget_s']:.0f} s, used {report.get('elapsed_s', 0):.0f} s; {done}.", "",
             "Machine: " + common.describe_machine(m).replace("\n", " | ") +
             (f" | CUDA driver {gpu.get('cuda_driver')}, runtime {gpu.get('cuda_runtime')}" if gpu.get("available")
              else "") + (f" | torch CUDA {torch.get('cuda')}" if torch.get("cuda") else "") +
             (f" | commit {m['commit'][:12]}" if m.get("commit") else ""), *_nvidia_smi(m), "",
             "## tensorlite / PyTorch eager", "",
             "Median step times (forward, backward, AdamW) of one run that alternates the two libraries; PyTorch eager "
             "with a fused q/k/v projection and scaled_dot_product_attention, its float16 under torch.autocast with "
             "torch.amp.GradScaler. Lower is better for tensorlite.", "",
             "| model | tensorlite / PyTorch eager | tensorlite [q1, q3] | PyTorch [q1, q3] | per-pair ratio [q1, q3] "
             "| target |", "|---|---|---|---|---|---|", *_target_rows(report), "",
             "## Tests", "", *_tests_section(report), *_train_step_section(report), *_matmul_section(report), "",
             "## Parts", "", "| part | status | seconds | limit (s) |", "|---|---|---|---|"]
    for p in report["parts"]:
        limit = f"{p['limit_s']:.0f}" if "limit_s" in p else "-"
        lines.append(f"| {p['name']} | {_status(p)} | {p.get('seconds', 0):.0f} | {limit} |")
    for p in report["parts"]:
        if p["status"] in ("failed", "timed out") and p.get("tail"):
            lines += ["", f"### {p['name']}: the last lines of its output", "", "```", *p["tail"][-25:], "```"]
    return "\n".join(lines) + "\n"
