#!/usr/bin/env python3
"""bench/hot-text.py: rewrites bench/hot-text.ld, the linker script that places every function
a launch runs together, ahead of the rest of the code (build.rs passes it to the installed
build, `cargo release-static` to the static one).

    sudo bench/hot-text.py      # about 15 minutes with both builds

Why: the kernel maps a binary's code in the page cache's folios (128 KiB here), so a launch
that calls one function in each of 30 folios maps 30 of them. With the functions it runs in one
range, it maps that range and little else: fewer page faults, a smaller peak RSS.

How: both release builds (glibc and musl, static as installed) are made, and each runs the
benchmark's manifests once as root and `host.toml` rootless with a uprobe on every one of its
functions (tracefs), the C library's own included: the functions hit are the list, complete, not
a sample. A name is written without the hashes that change with the target, the compiler and the
lock file (`17h<hash>E` of legacy mangling, the crate disambiguators of v0), so one list serves
both builds and survives an upgrade of rustc. A generic function's instances share that name;
when placing all of them would take more than twice the room of those that ran, the ones that
ran are named exactly instead (in both builds), and other toolchains place them where they fall.
The C libraries are placed by their archives' members (object files), found in the archives'
index: glibc, not built with -ffunction-sections, has no section per function, and a musl file
is named after one of the names it defines, not each (libc.a, libm's; Rust's own musl). Names no
longer in the code are ignored by the linker: a stale list costs memory, never correctness. Run
it after changing what a launch runs.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRACING = Path("/sys/kernel/tracing")
GROUP = "sandbox_hot_text"
MANIFESTS = ["full", "nonet", "limits", "security", "seccomp", "host"]
LEGACY_HASH = re.compile(r"17h[0-9a-f]{16}E")
# v0: a crate's disambiguator (`Cs<base62>_` before its name's length) and the back references
# (`B<base62>_`), whose offsets move with the disambiguators' lengths.
V0_HASHES = re.compile(r"(?<=C)s[0-9A-Za-z]*_(?=\d)|(?<=B)[0-9A-Za-z]*_")
LLVM_SUFFIX = re.compile(r"\.llvm\.\d+$")


def run(*args, **kwargs):
    return subprocess.run(args, check=True, **kwargs)


def executable(command):
    """Builds with `command` and returns the binary's path from cargo's own messages, wherever
    the target (.cargo/config.toml's host-tuple, --target) and CARGO_TARGET_DIR put it."""
    out = run(*command, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            return Path(message["executable"])
    sys.exit(f"bench/hot-text.py: {' '.join(command)} built no executable")


def alias(name):
    """The words of a cargo alias of .cargo/config.toml, after `cargo`."""
    with open(REPO / ".cargo/config.toml", "rb") as config:
        words = tomllib.load(config)["alias"][name]
    assert words[0] == "rustc", f"alias {name} no longer starts with `rustc`"
    return words[1:]


def functions(binary):
    """(file offset, name, size) of each function in the binary's executable segments."""
    segments = []
    headers = run("readelf", "-lW", binary, capture_output=True, text=True).stdout
    for line in headers.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"] and "E" in fields[6:-1]:
            offset, vaddr, size = (int(fields[i], 16) for i in (1, 2, 4))
            segments.append((offset, vaddr, size))
    found = {}
    for line in run("nm", "-S", binary, capture_output=True, text=True).stdout.splitlines():
        # address [size] type name: assembly (musl's memcpy) may have no size
        fields = line.split()
        if len(fields) == 3:
            fields.insert(1, "0")
        if len(fields) == 4 and fields[2] in "tTwW":
            address = int(fields[0], 16)
            for offset, vaddr, size in segments:
                if vaddr <= address < vaddr + size:
                    found.setdefault(address - vaddr + offset, (fields[3], int(fields[1], 16)))
    return sorted((offset, name, size) for offset, (name, size) in found.items())


def probe_offset(binary, offset):
    """Where a function's uprobe goes: its first instruction, or the first one after an EVEX
    (AVX-512) prefix at its entry, on which a uprobe never returns here (glibc's
    __memset_avx512_unaligned_erms: the launch spun forever in its first memset). None when
    no such instruction comes before a branch."""
    with open(binary, "rb") as f:
        f.seek(offset)
        if f.read(1) != b"\x62":
            return offset
    listing = run("objdump", "-D", "-b", "binary", "-m", "i386:x86-64",
                  f"--start-address={offset:#x}", f"--stop-address={offset + 64:#x}", binary,
                  capture_output=True, text=True).stdout
    for line in listing.splitlines():
        # "  1f:\t62 e2 7d 48 7a c6 \tvpbroadcastb %esi,%zmm16"
        fields = line.split("\t")
        if len(fields) < 3 or not fields[2].strip():  # a heading, or a long one's bytes
            continue
        if fields[2].split()[0].startswith(("j", "call", "ret", "(bad)")):
            return None
        if not fields[1].startswith("62 "):
            return int(fields[0].strip()[:-1], 16)
    return None


def workload(binary, work):
    """Each benchmark manifest once as root, host.toml once as nobody. State records go in
    `work`: a benchmark running on the same machine holds the same sandbox names."""
    root_state = work / "state-root"
    root_state.mkdir(exist_ok=True)
    for manifest in MANIFESTS:
        run(binary, "up", "--trust", REPO / f"bench/manifests/{manifest}.toml",
            stdout=subprocess.DEVNULL, env={**os.environ, "SANDBOX_STATE_DIR": str(root_state)})
    state = work / "state"
    state.mkdir(exist_ok=True)
    os.chown(state, 65534, 65534)
    run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env",
        f"SANDBOX_STATE_DIR={state}", binary, "up", "--trust",
        REPO / "bench/manifests/host.toml")


def ran(binary, work):
    """The names of the binary's functions that the workload runs, and {name: size} of all."""
    probes = functions(binary)
    events = os.open(TRACING / "uprobe_events", os.O_WRONLY | os.O_APPEND)
    try:
        for i, (offset, _, _) in enumerate(probes):
            offset = probe_offset(binary, offset)
            if offset is None:
                continue
            try:
                os.write(events, f"p:{GROUP}/f{i} {binary}:{offset:#x}\n".encode())
            except OSError:
                pass  # not probeable (a few stubs): left out of the count
        (TRACING / f"events/{GROUP}/enable").write_text("1")
        workload(binary, work)
        (TRACING / f"events/{GROUP}/enable").write_text("0")
        hits = {}
        # "file event hits", the event without its group
        for line in (TRACING / "uprobe_profile").read_text().splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0] == str(binary) and fields[1].startswith("f"):
                hits[int(fields[1][1:])] = int(fields[2])
    finally:
        os.close(events)
        if (TRACING / f"events/{GROUP}").exists():
            (TRACING / f"events/{GROUP}/enable").write_text("0")
            events = os.open(TRACING / "uprobe_events", os.O_WRONLY | os.O_APPEND)
            for i in range(len(probes)):
                try:
                    os.write(events, f"-:{GROUP}/f{i}\n".encode())
                except OSError:
                    pass  # never added
            os.close(events)
    return {probes[i][1] for i, count in hits.items() if count}, {
        name: size for _, name, size in probes
    }


def portable(name):
    """The name with its hashes as wildcards, or None for a name that has none (C)."""
    bare = LLVM_SUFFIX.sub("", name)
    if LEGACY_HASH.search(bare):
        return LEGACY_HASH.sub("17h" + "?" * 16 + "E", bare)
    if bare.startswith("_R"):
        return V0_HASHES.sub(lambda m: ("s*_" if m.group(0).startswith("s") else "*_"), bare)
    return None


def section(name):
    """The input sections of a Rust function (a cold one's are `.text.unlikely.`), with the
    ThinLTO suffix (`.llvm.<n>`) a local one may get."""
    return f"*(.text.{name}* .text.unlikely.{name}*)"


def glibc_archives():
    """glibc's static archives, as the C compiler finds them."""
    archives = []
    for name in ("libc.a", "libm.a"):
        found = run("cc", f"-print-file-name={name}", capture_output=True, text=True).stdout
        path = Path(found.strip())
        text = path.read_bytes()
        if text.startswith(b"/* GNU ld script"):
            # Debian's libm.a: GROUP ( /usr/lib/x86_64-linux-gnu/libm-2.36.a ... )
            archives += [Path(a) for a in re.findall(r"/\S+\.a", text.decode())]
        else:
            archives.append(path)
    return archives


def musl_archives():
    """The musl that Rust links into the musl target (its own, "self-contained")."""
    found = run("rustc", "--print", "target-libdir", "--target", "x86_64-unknown-linux-musl",
                capture_output=True, text=True).stdout
    return [Path(found.strip()) / "self-contained" / "libc.a"]


def members(archives, hot):
    """A function that gives the members of a C library's static archives (as
    `*/libc.a:malloc.o`) defining a C function; of several (local functions of the same name,
    musl's `dummy`s), those that define another function that ran, else all of them. Empty for
    C code the library does not have. By the archives' own index, not by the name: glibc is not
    built with a section per function, and a musl file is named after one of the names it
    defines, not each (memcpy.lo defines `__memcpy_fwd` too, the name the binary may give
    memcpy's address). `hot`: the names that ran."""
    defined = {}
    for archive in archives:
        # libm-2.36.a -> */libm-*.a: the pattern holds for other releases of glibc
        pattern = "*/" + re.sub(r"-[\d.]+$", "-*", archive.stem) + ".a"
        listing = run("nm", "-A", "--defined-only", archive, capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            # /usr/lib/x86_64-linux-gnu/libc.a:malloc.o:0000000000000000 T __libc_malloc
            location, kind, name = line.rsplit(None, 2)
            if kind in "tTwWi":
                member = location.split(":")[-2]
                defined.setdefault(name, set()).add(f"{pattern}:{member}")

    def of(name):
        # a local function's copy of a name: __realpath.part.0, get_common_cache_info.constprop.0
        return defined.get(name) or defined.get(name.split(".")[0], set())

    ran = set()
    for name in hot:
        if len(of(name)) == 1:
            ran |= of(name)
    return lambda name: sorted(of(name) & ran or of(name))


def patterns(builds):
    """Section patterns for the names that ran in each build (with a function that gives the
    C library's archive members defining a name), sorted for a readable diff."""
    out = set()
    for hot, sizes, members_of in builds:
        instances_of = {}
        for name in sizes:
            instances_of.setdefault(portable(name), []).append(name)
        for name in hot:
            wild = portable(name)
            if wild is None:
                # C: its own section (-ffunction-sections), or all of its object's
                out.add(f"*(.text.{name} .text.unlikely.{name})")
                out.update(f"{member}(.text .text.*)" for member in members_of(name))
                continue
            instances = instances_of[wild]
            ran_instances = [n for n in instances if n in hot]
            if sum(sizes[n] for n in instances) <= 2 * sum(sizes[n] for n in ran_instances):
                out.add(section(wild))
            else:
                out.update(section(LLVM_SUFFIX.sub("", n)) for n in ran_instances)
    return sorted(out)


HEADER = """\
/* Written by bench/hot-text.py: the functions `sandbox up` runs, placed ahead of the rest of
   the code (docs/performance.md, "The release build"). INSERT keeps the linker's own layout
   for everything else; a pattern that matches nothing is ignored. */
"""


def main():
    if os.geteuid() != 0:
        sys.exit("bench/hot-text.py: run it as root (uprobes, and the benchmark's manifests)")
    if not (TRACING / "uprobe_events").exists():
        run("mount", "-t", "tracefs", "nodev", TRACING)
    os.chdir(REPO)
    run("bench/prepare-root.sh", REPO / "bench/results/root")
    flags = ["--quiet", "--message-format=json-render-diagnostics"]
    builds = [
        # glibc, static as `cargo install` builds it (.cargo/config.toml)
        (["cargo", "build", "--release", "--locked", "--bin", "sandbox", *flags], glibc_archives),
        # .cargo/config.toml's alias, whose last words are rustc's: cargo's flags go first
        (["cargo", "rustc", *flags, *alias("release-static")], musl_archives),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        for i, (command, archives) in enumerate(builds):
            built = executable(command)
            binary = work / f"sandbox-{i}"
            shutil.copy(built, binary)
            hot, sizes = ran(binary, work)
            print(f"{built}: {len(hot)} of {len(sizes)} functions ran", file=sys.stderr)
            results.append((hot, sizes, members(archives(), hot)))
    lines = patterns(results)
    # Linker-made code every launch runs, at the end of the code otherwise, where it alone
    # maps a folio: glibc's _init and _fini (crti.o's and crtn.o's pieces, kept in order in
    # one pattern) and the PLT through which the static build calls glibc's ifuncs.
    body = "".join(f"    {line}\n" for line in ["*(.init)", "*(.fini)", "*(.iplt)", *lines])
    (REPO / "bench/hot-text.ld").write_text(
        f"{HEADER}SECTIONS\n{{\n  .text.hot :\n  {{\n{body}  }}\n}}\nINSERT BEFORE .text;\n"
    )
    print(f"bench/hot-text.ld: {len(lines)} patterns", file=sys.stderr)


if __name__ == "__main__":
    main()
