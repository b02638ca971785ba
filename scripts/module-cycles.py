#!/usr/bin/env python3
"""Finds import circles between the files of each crate (docs/architecture.md).

A file depends on another when it names one of that file's modules through `crate::`,
`super::` or `self::` (in `use` items or in paths). Circles (strongly connected groups of
two or more files) are printed, one per line; the exit code is 1 when there is any.
A parent module file (`mod.rs`, `lib.rs`) declaring its children is not an edge, and a
child naming an item its parent re-exports counts as depending on the parent.

    python3 scripts/module-cycles.py [CRATE_DIR ...]   # default: crates/* and examples/*
"""
import os
import re
import sys
from pathlib import Path


def module_files(src: Path):
    """Maps module path tuples to files for one crate's src/ (and its bin/ roots)."""
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        parts = list(rel.with_suffix("").parts)
        if parts and parts[0] == "bin":
            continue  # binaries are their own crates
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods


def strip(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    # `#[cfg(test)] mod tests { ... }` blocks are not part of the module's interface.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def paths_in(text: str):
    """Yields every path that starts with crate/super/self, with `use` groups expanded."""
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        tree = re.sub(r"\s+", "", m.group(1))
        # Only use-trees: prose that `strip` left over (a `//` inside a string starts a
        # "comment" there) is not one.
        if re.fullmatch(r"[\w:{},*]+", tree) and tree.count("{") == tree.count("}"):
            yield from expand(tree)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        yield m.group(1)


def expand(tree: str):
    depth = 0
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                prefix, inner = tree[:i], tree[i + 1 : tree.rindex("}")]
                for part in split_top(inner):
                    yield from expand(prefix + part)
                return
            depth += 1
    yield tree


def split_top(s: str):
    depth, cur = 0, ""
    for c in s:
        if c == "," and depth == 0:
            yield cur
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        cur += c
    if cur:
        yield cur


def resolve(path: str, here: tuple, mods: dict, is_dir_mod: bool):
    parts = [p for p in path.split("::") if p and not p.startswith("as")]
    parts = [p.split(" as ")[0] for p in parts]
    if not parts:
        return None
    base = list(here)
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] in ("super", "self"):
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                # In foo/bar.rs (module foo::bar), super is foo; in foo/mod.rs too.
                base = base[:-1]
            parts = parts[1:]
    else:
        return None
    # Longest module prefix that names a file.
    best = tuple(base) if tuple(base) in mods else None
    cur = list(base)
    for p in parts:
        cur.append(p)
        if tuple(cur) in mods:
            best = tuple(cur)
        else:
            break
    return best


def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def crate_cycles(crate: Path):
    src = crate / "src"
    if not src.is_dir():
        return []
    mods = module_files(src)
    graph = {}
    for mod, f in mods.items():
        text = strip(f.read_text())
        edges = set()
        for p in paths_in(text):
            t = resolve(p, mod, mods, f.name in ("mod.rs", "lib.rs", "main.rs"))
            if t is None or t == mod:
                continue
            # A parent naming its own descendants is structure, not a dependency.
            if t[: len(mod)] == mod:
                continue
            edges.add(t)
        graph[mod] = edges
    cycles = []
    for comp in sccs(graph):
        names = sorted(str(mods[m].relative_to(crate)) for m in comp)
        cycles.append(f"{crate.name}: " + " <-> ".join(names))
    return cycles


def main():
    root = Path(__file__).resolve().parent.parent
    dirs = [Path(a) for a in sys.argv[1:]] or sorted(
        p for g in ("crates/*", "examples/*") for p in root.glob(g) if (p / "Cargo.toml").exists()
    )
    found = []
    for d in dirs:
        found += crate_cycles(d)
    for c in found:
        print(c)
    if found:
        print(f"{len(found)} import circle(s); untie them (docs/architecture.md)", file=sys.stderr)
        return 1
    print("no import circles between files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
