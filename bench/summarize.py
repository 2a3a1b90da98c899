#!/usr/bin/env python3
"""Turn bench/run.sh's raw results into the table.

    summarize.py RESULTS_DIR      # summary.md, latency.dat, floor.txt; the table in
                                  # docs/performance.md (between the bench markers)
    summarize.py --profile DIR    # medians of each `sandbox up -v` step, of start-up alone
                                  # and its peak RSS (DIR/summary.txt)
"""

import json
import os
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
    ("floor-musl", "floor program built static against musl: no libc start-up"),
    ("sandbox-a", "(a) sandbox, full isolation"),
    ("sandbox-b-nonet", "(b) sandbox, host network"),
    ("sandbox-c-limits", "(c) sandbox, + memory and pids limits"),
    ("sandbox-d-seccomp-landlock", "(d) sandbox, + default seccomp and landlock"),
    ("sandbox-a-rootfs-host", "sandbox, (a) with `rootfs.host` (tmpfs root)"),
    ("sandbox-a-seccomp", "(a) + the default seccomp profile (`cargo release-static`)"),
    ("sandbox-installed-a-seccomp", "the same, as `cargo install` builds it (static glibc, `cargo build --release`)"),
    ("bwrap", "bwrap --unshare-all"),
    ("bwrap-nonet", "bwrap --unshare-all --share-net"),
    ("unshare", "unshare: namespaces only, no mounts"),
    ("sandbox-rootless", "sandbox rootless (nobody, via setpriv): `rootfs.host`, as (a) otherwise"),
    ("bwrap-rootless", "bwrap rootless (nobody, via setpriv): the same root"),
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
        # Rows compare with bwrap and the floor run the same way (no rootless floor: its id map
        # needs root).
        suffix = next((s for s in ("-nonet", "-rootless") if name.endswith(s)), "")
        bwrap_name = "bwrap" + suffix
        bwrap = median(bwrap_name)
        floor = median("floor" + suffix)
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
        dat.append(
            f'"{name}" {r["median"] * 1e3:.4f} {p25 * 1e3:.4f} {p75 * 1e3:.4f} '
            f"{p10(r['times']) * 1e3:.4f}"
        )
    lines += [
        "",
        "× bwrap and × floor compare rows without a network namespace with `bwrap --share-net` "
        "and `floor --share-net`, rootless rows with bwrap rootless (both through setpriv, whose "
        "own start is in both; no rootless floor, and no RSS: time(1) may report setpriv's), "
        "the others with the full-isolation runs. p10: the fastest "
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
        failed = f" ({failures[name + '-x50'].strip()})" if name + "-x50" in failures else ""
        lines.append(
            f"| {name}{failed} | {seconds(serial)} | {ratio(serial, batch_median('bwrap', 1))} "
            f"| {seconds(parallel)} | {ratio(parallel, batch_median('bwrap', 8))} |"
        )

    enforced = (out / "enforced.txt").read_text()
    limits_void = (
        ""
        if "limits.toml: in force" in enforced
        else "no verdict: sandbox applied no limits, crun did"
    )
    lines += ["", "Targets of issues 11 and 24 (this run):", ""]
    a, bw = median("sandbox-a"), median("bwrap")
    c, cl = median("sandbox-c-limits"), median("crun-limits")
    s, floor = median("sandbox-a-seccomp"), median("floor")
    installed = median("sandbox-installed-a-seccomp")
    p8, bw8 = batch_median("sandbox-a", 8), batch_median("bwrap", 8)
    a_rss = rss.get("sandbox-a")
    installed_rss = rss.get("sandbox-installed-a-seccomp")

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

    def quotient(x, y):
        return x / y if x and y else None

    lines += [
        target("(a) ÷ bwrap", quotient(a, bw), 0.6, also=p10_ratio("sandbox-a", "bwrap")),
        target(
            "(a) with the default seccomp profile ÷ floor",
            quotient(s, floor),
            1.4,
            also=p10_ratio("sandbox-a-seccomp", "floor"),
        ),
        target(
            "(c) ÷ crun with limits",
            quotient(c, cl),
            0.35,
            also=p10_ratio("sandbox-c-limits", "crun-limits"),
            void=limits_void,
        ),
        target(
            "the installed build ÷ `cargo release-static`, (a) with seccomp",
            quotient(installed, s),
            1.05,
            also=p10_ratio("sandbox-installed-a-seccomp", "sandbox-a-seccomp"),
        ),
        target("peak RSS of `sandbox up` (a)", a_rss / 1024 if a_rss else None, 2.5, " MiB"),
        target(
            "peak RSS of the installed build, (a) with seccomp",
            installed_rss / 1024 if installed_rss else None,
            2.5,
            " MiB",
        ),
        target("50 launches 8 at a time ÷ bwrap's", quotient(p8, bw8), 0.6),
        leftovers(out),
        "",
        "What cases (c), (d) and (a) with seccomp enforced:",
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


def leftovers(out):
    """The target line for the back-to-back launches of case (c): what they left, whether the
    launcher's peak RSS grew from the first launch to the last."""
    try:
        before, after = (
            dict(line.split() for line in (out / f"leftovers-{when}.txt").read_text().splitlines())
            for when in ("before", "after")
        )
        first, last = (
            int((out / f"leftovers-rss-{which}.txt").read_text().split()[-1])
            for which in ("first", "last")
        )
    except FileNotFoundError:
        return "- launches back to back leave nothing behind: not measured"
    runs = os.environ.get("LEFTOVER_RUNS", "1000")
    grown = {k: (before[k], after[k]) for k in before if int(after[k]) > int(before[k])}
    left = ", ".join(f"{k} {b} -> {a}" for k, (b, a) in grown.items()) or "nothing"
    counted = ", ".join(f"{k} {after[k]}" for k in after)
    verdict = "met" if not grown and last <= first else "NOT met"
    return (
        f"- {runs} launches of (c) back to back leave nothing behind, memory does not grow: "
        f"{verdict} (left: {left}; after: {counted}; peak RSS first {first / 1024:.2f} MiB, "
        f"last {last / 1024:.2f} MiB)"
    )


def step_medians(path):
    steps = {}
    for line in path.read_text().splitlines():
        m = re.match(r"sandbox: (.+?)\s+([0-9.]+) ms$", line)
        if m:
            steps.setdefault(m.group(1), []).append(float(m.group(2)))
    launches = max((len(v) for v in steps.values()), default=0)
    text = f"{'step':16} {'p10':>8} {'median':>8} {'p90':>8}  (ms, {launches} launches)\n"
    for step, v in steps.items():
        q = statistics.quantiles(v, n=10)
        text += f"{step:16} {q[0]:8.3f} {statistics.median(v):8.3f} {q[8]:8.3f}\n"
    return text


# Frames that say how a task slept, not why: skipped to find the call that slept.
HOW = (
    "schedule", "__schedule", "preempt", "exit_to_user", "irqentry", "asm_", "entry_SYSCALL",
    "do_syscall_64", "schedule_timeout", "schedule_hrtimeout", "rcu_sync", "__wait_",
    "wait_for_completion", "__synchronize", "synchronize", "percpu_down", "do_nanosleep",
    "__cond_resched", "__mutex_lock", "mutex_lock", "exp_funnel_lock", "poll_schedule",
)
SWITCH = re.compile(
    r"\s(\d+\.\d+):\s+sched:sched_switch:\s+prev_comm=(.*?) prev_pid=(\d+) "
    r"prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)"
)


def off_cpu(path, launches, comms=("sandbox", "true")):
    """Time the launcher's processes spent switched out, per launch, by where they slept."""
    asleep, spent = {}, {}
    for block in path.read_text().split("\n\n"):
        lines = block.strip().split("\n")
        m = SWITCH.search(lines[0]) if lines else None
        if not m:
            continue
        t = float(m.group(1))
        prev_comm, prev_pid, state, next_pid = m.group(2), int(m.group(3)), m.group(4), int(m.group(6))
        if next_pid in asleep:
            t0, key = asleep.pop(next_pid)
            spent.setdefault(key, []).append(t - t0)
        if prev_comm in comms:
            frames = [line.split()[1].split("+")[0] for line in lines[1:] if len(line.split()) > 1]
            why = " < ".join([f for f in frames if not f.startswith(HOW)][:3])
            key = f"{prev_comm}: runnable, waiting for a CPU" if state.startswith("R") else f"{prev_comm}: {why}"
            asleep[prev_pid] = (t, key)
    rows = sorted(spent.items(), key=lambda kv: -sum(kv[1]))
    text = f"{'ms/launch':>9} {'count':>6}  where the process slept ({launches} launches)\n"
    text += "".join(
        f"{sum(v) * 1e3 / launches:9.3f} {len(v):6}  {key}\n"
        for key, v in rows
        if sum(v) * 1e3 / launches >= 0.01
    )
    return text


def summarize_profile(profile):
    text = "case (a): sandbox up -v\n" + step_medians(profile / "up-v-a.txt")
    text += "\ncase (c): sandbox up -v\n" + step_medians(profile / "up-v-c.txt")
    startup = load_results(profile.glob("startup-*.json"))
    text += "\nstart-up and planning alone, no sandbox made (ms)\n"
    text += f"{'':26} {'p10':>8} {'median':>8}\n"
    text += "".join(
        f"{name:26} {p10(r['times']) * 1e3:8.3f} {r['median'] * 1e3:8.3f}\n"
        for name, r in startup.items()
    )
    text += "\npeak RSS without making a sandbox: median KiB\n"
    text += "".join(
        f"sandbox {path.name[4:]:18} {median_rss(path):8.0f}\n"
        for path in sorted(profile.glob("rss-*"))
    )
    text += "\ncase (a), off the CPU:\n" + off_cpu(profile / "sched-a.txt", 100)
    text += "\ncase (c), off the CPU:\n" + off_cpu(profile / "sched-c.txt", 50)
    (profile / "summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--profile"]:
        summarize_profile(Path(sys.argv[2]))
    else:
        summarize(Path(sys.argv[1]))
