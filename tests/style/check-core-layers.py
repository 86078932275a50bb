#!/usr/bin/env python3
"""Calls between the files of src/core/ go one way.

A file "calls" another when it names a function or variable that the other
defines with external linkage.  Files that call each other, directly or
round a loop, form a cycle; the only cycles allowed are the rows of
docs/architecture.md that are one concern each (ALLOWED below).  Anything
else fails with the loop and the names that tie it, because such a loop is
how the core once grew one knot of fourteen files (docs/architecture.md,
"The pieces, file by file").

Read as text: comments and string literals are dropped first, and a
definition is a non-static function or object starting in column 0, which
the house style (.clang-format) guarantees.

Usage: check-core-layers.py SOURCE_DIR
"""
import os
import re
import sys

ALLOWED = [
    {"http.c", "http_listen.c", "http_routes.c", "http_stream.c"},
    {"timeutil.c", "tzfile.c"},
]

COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
STRING = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'')
FUNC_DEF = re.compile(r"^(?!static\b)(?!typedef\b)[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\([^;{]*\)\s*\{", re.M)
OBJ_DEF = re.compile(r"^(?!static\b)(?!typedef\b)(?!extern\b)(?:const\s+)?(?:struct\s+)?\w+[\s\*]+([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*=", re.M)


def read(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = COMMENT.sub(" ", text)
    return STRING.sub('""', text)


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    src = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "src", "core")
    files = sorted(f for f in os.listdir(src) if f.endswith(".c"))
    text = {f: read(os.path.join(src, f)) for f in files}
    owner = {}
    for f in files:
        for rx in (FUNC_DEF, OBJ_DEF):
            for m in rx.finditer(text[f]):
                owner.setdefault(m.group(1), f)
    if len(owner) < len(files):
        print("found too few definitions in %s: is this the right directory?" % src)
        return 2
    uses = {f: set(re.findall(r"\b[A-Za-z_]\w*\b", text[f])) for f in files}
    graph = {f: set() for f in files}
    ties = {}
    for f in files:
        for name in uses[f]:
            g = owner.get(name)
            if g and g != f:
                graph[f].add(g)
                ties.setdefault((f, g), set()).add(name)
    bad = [c for c in cycles(graph) if c not in ALLOWED]
    for c in bad:
        print("call cycle of %d files in src/core: %s" % (len(c), ", ".join(sorted(c))))
        for a in sorted(c):
            for b in sorted(graph[a] & c):
                print("  %s -> %s: %s" % (a, b, ", ".join(sorted(ties[(a, b)]))))
    if bad:
        print("Break it as docs/architecture.md describes: move what both sides need to a lower "
              "file, or let the lower file tell of changes through a handler.")
        return 1
    print("src/core: %d files, no call cycle outside %s" %
          (len(files), "; ".join(", ".join(sorted(a)) for a in ALLOWED)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
