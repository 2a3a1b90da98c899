#!/usr/bin/env python3
"""Turn bench/run.sh's raw results into the table.

    summarize.py RESULTS_DIR      # summary.md, latency.dat, floor.txt; the table in
                                  # docs/performance.md (between the bench markers)
    summarize.py --profile DIR    # medians of each `sandbox up -v` step, of start-up alone
                                  # and its peak RSS (DIR/summary.txt)
"""

import json
import re
import statistics
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# Row order, and what each row does; the comparisons are made within one network setting.
ROWS = [
    ("floor", "floor program: the syscalls alone (bench/floor.c)"),
    ("floor-nonet", "floor program, host network"),
    ("sandbox-a", "(a) sandbox, full isolation"),
    ("sandbox-b-nonet", "(b) sandbox, host network"),
    ("sandbox-c-limits", "(c) sandbox, + memory and pids limits"),
    ("sandbox-d-seccomp-landlock", "(d) sandbox, + default seccomp and landlock"),
    ("sandbox-a-rootfs-host", "sandbox, (a) with `rootfs.host` (tmpfs root)"),
    ("bwrap", "bwrap --unshare-all"),
    ("bwrap-nonet", "bwrap --unshare-all --share-net"),
    ("unshare", "unshare: namespaces only, no mounts"),
    ("crun", "crun run"),
    ("crun-limits", "crun run, + memory and pids limits"),
    ("runc", "runc run"),
    ("runc-limits", "runc run, + memory and pids limits"),
]


def load_results(paths):
    """Each launcher's runs, merged over the rounds: {name: {"times": [...], "median": s}}."""
    times = {}
    for path in sorted(paths):
        for r in json.loads(path.read_text())["results"]:
            times.setdefault(r["command"], []).extend(r["times"])
    return {
        name: {"times": t, "median": statistics.median(t)} for name, t in times.items()
    }


def quartiles(times):
    q = statistics.quantiles(times, n=4)
    return q[0], q[2]


def p10(times):
    return statistics.quantiles(times, n=10)[0]


def median_rss(path):
    values = [int(line) for line in path.read_text().split() if line.strip().isdigit()]
    return statistics.median(values) if values else None


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def seconds(value):
    return f"{value:.3f}" if value is not None else "–"


def summarize(out):
    latency = load_results((out / "json").glob("latency-*.json"))
    batch = load_results((out / "json").glob("batch-*.json"))
    failures = dict(
        line.split("\t", 1)
        for line in (out / "failures.txt").read_text().splitlines()
        if "\t" in line
    )
    rss = {p.name: median_rss(p) for p in (out / "rss").iterdir()}

    def median(name):
        r = latency.get(name)
        return r["median"] if r else None

    lines = ["```"]
    lines += (out / "machine.txt").read_text().splitlines()
    lines += ["```", ""]
    lines += [
        "| launcher | runs | median ms | × bwrap | × floor | p25–p75 ms | p10 ms | p10 × bwrap "
        "| peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    dat = []
    for name, what in ROWS:
        nonet = name.endswith("-nonet")
        bwrap_name = "bwrap-nonet" if nonet else "bwrap"
        bwrap = median(bwrap_name)
        floor = median("floor-nonet" if nonet else "floor")
        if name in failures:
            error = failures[name].strip().replace("|", "\\|")
            lines.append(f"| {what} | – | failed: {error} | | | | | | |")
            continue
        r = latency.get(name)
        if not r:
            continue
        p25, p75 = quartiles(r["times"])
        bwrap_p10 = p10(latency[bwrap_name]["times"]) if bwrap_name in latency else None
        kib = rss.get(name)
        lines.append(
            f"| {what} | {len(r['times'])} | {r['median'] * 1e3:.2f} "
            f"| {ratio(r['median'], bwrap)} | {ratio(r['median'], floor)} "
            f"| {p25 * 1e3:.2f}–{p75 * 1e3:.2f} | {p10(r['times']) * 1e3:.2f} "
            f"| {ratio(p10(r['times']), bwrap_p10)} "
            f"| {f'{kib / 1024:.1f}' if kib else '–'} |"
        )
        dat.append(f'"{name}" {r["median"] * 1e3:.4f} {p25 * 1e3:.4f} {p75 * 1e3:.4f}')
    lines += [
        "",
        "× bwrap and × floor compare rows without a network namespace with `bwrap --share-net` "
        "and `floor --share-net`, the others with the full-isolation runs. p10: the fastest "
        "tenth of the runs, the least disturbed by the machine's other load.",
        "",
        "| 50 launches (median of the runs) | back to back, s | × bwrap | 8 at a time, s | × bwrap |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def batch_median(name, jobs):
        r = batch.get(f"{name}-x50-P{jobs}")
        return r["median"] if r else None

    for name in ["sandbox-a", "bwrap", "crun"]:
        serial, parallel = batch_median(name, 1), batch_median(name, 8)
        if serial is None and parallel is None:
            continue
        lines.append(
            f"| {name} | {seconds(serial)} | {ratio(serial, batch_median('bwrap', 1))} "
            f"| {seconds(parallel)} | {ratio(parallel, batch_median('bwrap', 8))} |"
        )

    enforced = (out / "enforced.txt").read_text()
    limits_void = (
        ""
        if "limits.toml: in force" in enforced
        else "no verdict: sandbox applied no limits, crun did"
    )
    lines += ["", "Targets of issue 11 (this run):", ""]
    a, bw = median("sandbox-a"), median("bwrap")
    c, cl = median("sandbox-c-limits"), median("crun-limits")
    p8, bw8 = batch_median("sandbox-a", 8), batch_median("bwrap", 8)
    a_rss = rss.get("sandbox-a")

    def target(label, value, limit, unit="", also="", void=""):
        if value is None:
            return f"- {label}: not measured"
        verdict = void or ("met" if value <= limit else "NOT met")
        return f"- {label}: {value:.2f}{unit} (target ≤ {limit}{unit}): {verdict}{also}"

    def p10_ratio(name, other):
        if name not in latency or other not in latency:
            return ""
        value = p10(latency[name]["times"]) / p10(latency[other]["times"])
        return f" (the fastest tenths: {value:.2f})"

    lines += [
        target("(a) ÷ bwrap", a / bw if a and bw else None, 0.6, also=p10_ratio("sandbox-a", "bwrap")),
        target(
            "(c) ÷ crun with limits",
            c / cl if c and cl else None,
            0.35,
            also=p10_ratio("sandbox-c-limits", "crun-limits"),
            void=limits_void,
        ),
        target("peak RSS of `sandbox up` (a)", a_rss / 1024 if a_rss else None, 2.5, " MiB"),
        target("50 launches 8 at a time ÷ bwrap's", p8 / bw8 if p8 and bw8 else None, 0.6),
        "- 1000 launches leave nothing behind, memory does not grow: not measured by bench/run.sh",
        "",
        "What cases (c) and (d) enforced:",
        "",
    ]
    lines += [f"- {line}" for line in enforced.splitlines()]
    if failures:
        lines += ["", "Launchers that failed their check run (not measured):", ""]
        lines += [f"- {name}: {error.strip()}" for name, error in failures.items()]
    summary = "\n".join(lines) + "\n"

    (out / "summary.md").write_text(summary)
    (out / "latency.dat").write_text("\n".join(dat) + "\n")
    (out / "floor.txt").write_text(f"{median('floor') * 1e3:.4f}\n")
    doc = DOC.read_text()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{summary}{END}{tail}")
    print(summary)


def summarize_profile(profile):
    steps = {}
    for line in (profile / "up-v-a.txt").read_text().splitlines():
        m = re.match(r"sandbox: (.+?)\s+([0-9.]+) ms$", line)
        if m:
            steps.setdefault(m.group(1), []).append(float(m.group(2)))
    launches = max((len(v) for v in steps.values()), default=0)
    text = f"step (sandbox up -v, case a): median ms over {launches} launches\n"
    text += "".join(f"{step:16} {statistics.median(v):8.3f}\n" for step, v in steps.items())
    startup = load_results([profile / "startup.json"])
    text += "\nstart-up and planning alone: median ms\n"
    text += "".join(f"{name:26} {r['median'] * 1e3:8.3f}\n" for name, r in startup.items())
    text += "\npeak RSS without making a sandbox: median KiB\n"
    text += "".join(
        f"sandbox {path.name[4:]:18} {median_rss(path):8.0f}\n"
        for path in sorted(profile.glob("rss-*"))
    )
    (profile / "summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--profile"]:
        summarize_profile(Path(sys.argv[2]))
    else:
        summarize(Path(sys.argv[1]))
