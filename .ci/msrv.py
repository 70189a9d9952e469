#!/usr/bin/env python3
"""Checks that each published crate's `rust-version` is at least the highest `rust-version`
among its normal dependencies, direct and indirect, as the lockfile resolves them (all
features on, this host's target). Exits 1 naming the crate, what it declares, and the
dependency that needs more.

    python3 .ci/msrv.py            # check
    python3 .ci/msrv.py --verbose  # and print each crate's five most demanding dependencies
"""

import json
import subprocess
import sys

PUBLISHED = ["pool-core", "pool-postgres", "pool-compat", "pool-testkit"]


def version_key(v):
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def host_triple():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.split(": ", 1)[1]
    sys.exit("msrv: rustc -vV names no host")


def main():
    verbose = "--verbose" in sys.argv[1:]
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features",
             "--filter-platform", host_triple()],
            capture_output=True, text=True, check=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

    def normal_deps(node_id):
        for dep in nodes[node_id]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                yield dep["pkg"]

    failed = False
    by_name = {packages[i]["name"]: i for i in meta["workspace_members"]}
    for name in PUBLISHED:
        root = by_name.get(name)
        if root is None:
            sys.exit(f"msrv: {name} is not a workspace member")
        declared = packages[root].get("rust_version")
        if not declared:
            print(f"msrv: {name} declares no rust-version")
            failed = True
            continue
        seen, stack, needs = set(), [root], []
        while stack:
            for dep in normal_deps(stack.pop()):
                if dep in seen:
                    continue
                seen.add(dep)
                stack.append(dep)
                rv = packages[dep].get("rust_version")
                if rv:
                    needs.append((version_key(rv), rv, packages[dep]["name"], packages[dep]["version"]))
        needs.sort(reverse=True)
        top = needs[0] if needs else ((0, 0, 0), "none", "-", "-")
        ok = version_key(declared) >= top[0]
        status = "ok" if ok else "TOO LOW"
        print(f"msrv: {name} declares {declared}; its dependencies need {top[1]} "
              f"({top[2]} {top[3]}, of {len(seen)} normal dependencies): {status}")
        if verbose:
            for _, rv, dep, ver in needs[:5]:
                print(f"        {dep} {ver}: {rv}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
