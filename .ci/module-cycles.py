#!/usr/bin/env python3
"""Top-level module dependency graph of src/ (from `use crate::X` and `crate::X::` / `super::X`
at top level) and its cycles."""
import os, re, sys, itertools
src = sys.argv[1] if len(sys.argv) > 1 else "src"
mods = {}
for name in os.listdir(src):
    p = os.path.join(src, name)
    if name.endswith(".rs") and name not in ("main.rs", "lib.rs"):
        mods[name[:-3]] = [p]
    elif os.path.isdir(p):
        files = []
        for root, _, fs in os.walk(p):
            files += [os.path.join(root, f) for f in fs if f.endswith(".rs")]
        mods[name] = files
ref = re.compile(r"\bcrate::(\w+)")
group = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)
edges = {m: set() for m in mods}
for m, files in mods.items():
    for f in files:
        # Comments (doc links included) name modules without depending on them.
        text = re.sub(r"//.*", "", open(f).read())
        found = set(ref.findall(text))
        for g in group.findall(text):
            # top-level names inside `use crate::{a, b::c}`, skipping nested braces' contents
            depth, cur, names = 0, "", []
            for ch in g:
                if ch == "{": depth += 1
                elif ch == "}": depth -= 1
                elif ch == "," and depth == 0: names.append(cur); cur = ""; continue
                if depth == 0: cur += ch
            names.append(cur)
            found |= {n.strip().split("::")[0] for n in names if n.strip()}
        edges[m] |= {d for d in found if d in mods and d != m}
# strongly connected components (Tarjan)
index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in sorted(edges[v]):
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(edges):
    if v not in index: visit(v)
if "-v" in sys.argv:
    for m in sorted(edges): print(f"{m:14} -> {', '.join(sorted(edges[m]))}")
cycles = [c for c in sccs if len(c) > 1]
for c in cycles:
    print("cycle among:", ", ".join(c))
    for a, b in itertools.permutations(c, 2):
        if b in edges[a]: print(f"   {a} -> {b}")
print(f"{len(mods)} top-level modules, {sum(map(len, edges.values()))} edges, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
