#!/usr/bin/env python3
"""Checks the workspace's crate dependencies against docs/architecture.md.

The rules are the table under "## Allowed dependencies" in docs/architecture.md: one row
per workspace package, `| package | may depend on | dev may also use |`, each cell a
comma-separated list of workspace packages (or `-` for none). A normal or build
dependency on a workspace package that its row does not allow fails the check; so does a
package with no row, a row for a package that does not exist, and a dev-dependency on a
package that neither column allows. It also checks that the user binary's whole tree
(`herald-cli`, normal edges, default features) holds none of the packages listed under
"never in the user binary".

    python3 scripts/check-deps.py        # exit 0: every edge allowed; 1: list of violations
"""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        sys.exit(f"check-deps: {DOC} has no '## {title}' section")
    return m.group(1)


def names(cell: str):
    cell = cell.strip().replace("`", "")
    if cell in ("", "-", "—"):
        return set()
    return {c.strip() for c in cell.split(",") if c.strip()}


def rules():
    text = DOC.read_text()
    allowed, dev = {}, {}
    for line in section(text, "Allowed dependencies").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        pkg = cells[0].strip("`")
        allowed[pkg] = names(cells[1])
        dev[pkg] = names(cells[2])
    never = set()
    for line in section(text, "Never in the user binary").splitlines():
        never |= set(re.findall(r"^- `([^`]+)`", line.strip()))
    return allowed, dev, never


def main():
    allowed, dev, never = rules()
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT
        )
    )
    members = set(meta["workspace_members"])
    pkgs = {p["id"]: p for p in meta["packages"]}
    ours = {pkgs[i]["name"] for i in members}
    problems = []
    for name in sorted(ours - allowed.keys()):
        problems.append(f"{name}: no row in docs/architecture.md's dependency table")
    for name in sorted(allowed.keys() - ours):
        problems.append(f"{name}: a row in docs/architecture.md, but no such workspace package")
    for i in sorted(members, key=lambda i: pkgs[i]["name"]):
        p = pkgs[i]
        for d in p["dependencies"]:
            if d["name"] not in ours or d.get("path") is None or d["name"] == p["name"]:
                continue
            kind = d.get("kind") or "normal"
            ok = allowed.get(p["name"], set())
            if kind == "dev":
                ok = ok | dev.get(p["name"], set())
            if d["name"] not in ok:
                problems.append(f"{p['name']} -> {d['name']} ({kind}): not allowed by docs/architecture.md")
    # The user binary's tree as `cargo build -p herald-cli` resolves it: normal and build
    # edges, its own features (not the workspace's union).
    tree = subprocess.check_output(
        ["cargo", "tree", "--locked", "-p", "herald-cli", "-e", "normal,build", "--prefix", "none",
         "--format", "{p}"],
        cwd=ROOT, text=True,
    )
    in_binary = {line.split()[0] for line in tree.splitlines() if line.strip()}
    for bad in sorted(never & in_binary):
        problems.append(f"herald-cli's dependency tree holds {bad} (never in the user binary)")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} dependency rule violation(s); see docs/architecture.md", file=sys.stderr)
        return 1
    print(f"dependency rules hold: {len(ours)} packages; the user binary links {len(in_binary)} packages, none of {', '.join(sorted(never))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
