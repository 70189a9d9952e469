#!/usr/bin/env python3
"""Fails if the modules of a crate's src/ import each other in a circle.

A module is a top-level file (`src/pool.rs` is `pool`) or folder (`src/state/*.rs` is `state`);
an import is a `use crate::x` statement or a `crate::x::` path in code (comments and
`#[cfg(test)] mod tests` blocks are not counted). Usage: import-cycles.py pool-core/src ...
"""
import os
import re
import sys


def module_deps(src):
    graph = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            module = rel.split(os.sep)[0].removesuffix(".rs")
            if module in ("lib", "main"):
                continue
            text = open(os.path.join(root, f)).read()
            text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
            code = "\n".join(l for l in text.splitlines() if not l.strip().startswith("//"))
            deps = set()
            for stmt in re.findall(r"^\s*(?:pub(?:\(crate\))?\s+)?use crate::([^;]*);", code, re.M):
                stmt = stmt.strip()
                if stmt.startswith("{"):
                    deps |= set(re.findall(r"(?:^|[{,]\s*)(\w+)", stmt[1:]))
                else:
                    deps.add(re.match(r"(\w+)", stmt).group(1))
            deps |= set(re.findall(r"crate::(\w+)::", code))
            graph.setdefault(module, set()).update(deps)
    for m in graph:
        graph[m] = {d for d in graph[m] if d in graph and d != m}
    return graph


def cycles(graph):
    found = set()

    def walk(start, node, path):
        for n in graph[node]:
            if n == start:
                found.add(" -> ".join(path + [start]))
            elif n not in path:
                walk(start, n, path + [n])

    for m in sorted(graph):
        walk(m, m, [m])
    # One line per circle, whichever module it is read from.
    seen, out = set(), []
    for c in sorted(found):
        key = frozenset(c.split(" -> "))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


bad = False
for src in sys.argv[1:]:
    for c in cycles(module_deps(src)):
        print(f"{src}: import circle: {c}")
        bad = True
sys.exit(1 if bad else 0)
