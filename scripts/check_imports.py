#!/usr/bin/env python3
"""Fails on an import circle between the modules of a crate.

Modules import downwards only: a module may name the modules it declares
and those beside or below it, but no chain of imports may lead back to
where it started, so each module can be read and changed knowing only what
is below it. Each file is a module; an edge goes from a module to every
module it names: `use` paths and paths in code (`crate::`, `super::`,
`self::`) and its `mod` declarations. A name a module only re-exports
(`pub use`) belongs to the module it comes from. Test modules
(`#[cfg(test)] mod tests { ... }`) are left out: tests may reach anything.

Usage: scripts/check_imports.py SRC_DIR ...
       scripts/check_imports.py --self-test   (shows it finds a circle)
Standard library only. `make test` runs it over the product's crates.
"""
import os, re, sys, tempfile

def modules(src):
    """file -> module path tuple"""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ('mod',):
                rel = rel[:-1]
            if rel in (['lib'], ['main']):
                rel = []
            out[path] = tuple(rel)
    return out

def strip(text):
    text = re.sub(r'//[^\n]*', '', text)
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    m = re.search(r'#\[cfg\(test\)\]\s*mod\s+\w+\s*\{', text)
    if m:
        # cut the test module: its braces balanced from the opening one
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {'{': 1, '}': -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        text = text[:m.start()] + text[i + 1:]
    return text

def expand(tree):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d']"""
    tree = re.sub(r'\s*(::|[{},])\s*', r'\1', re.sub(r'\s+', ' ', tree.strip()))
    i = tree.find('{')
    if i < 0:
        return [tree]
    prefix, depth, parts, cur = tree[:i], 0, [], ''
    for ch in tree[i + 1:tree.rfind('}')]:
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
            continue
        depth += (ch == '{') - (ch == '}')
        cur += ch
    parts.append(cur)
    return [p2 for p in parts if p.strip() for p2 in expand(prefix + p.strip())]

def reexports(files):
    """(module, name) -> the module a `pub use` there takes the name from"""
    out = {}
    for path, here in files.items():
        text = strip(open(path, encoding='utf-8').read())
        for use in re.findall(r'\bpub(?:\([^)]*\))?\s+use\s+([^;]+);', text):
            for p in expand(use):
                parts = p.split('::')
                original, _, alias = parts[-1].partition(' as ')
                out[(here, alias or original)] = '::'.join(parts[:-1] + [original])
    return out

def resolve(path, here, known, again=None):
    parts = [part.split(' as ')[0] for part in path.split('::')]
    if parts[0] == 'crate':
        base, parts = (), parts[1:]
    elif parts[0] in ('super', 'self'):
        base = here
        while parts and parts[0] in ('super', 'self'):
            if parts[0] == 'super':
                base = base[:-1]
            parts = parts[1:]
    else:
        return None
    full = base + tuple(parts)
    for n in range(len(full), -1, -1):
        if full[:n] in known:
            module = full[:n]
            # A name the module only re-exports belongs to where it is from.
            rest = full[n:]
            if again is not None and rest and (module, rest[0]) in again:
                source = again[(module, rest[0])]
                if not source.startswith(('crate', 'super', 'self')):
                    source = 'self::' + source
                found = resolve(source, module, known)
                if found is not None:
                    return found
            return module
    return None

def graph(src):
    files = modules(src)
    known = set(files.values())
    again = reexports(files)
    edges = {m: set() for m in known}
    global why
    why = {}
    for path, here in files.items():
        text = strip(open(path, encoding='utf-8').read())
        paths = []
        for use in re.findall(r'\buse\s+([^;]+);', text):
            paths += expand(use)
        paths += re.findall(r'\b(?:crate|super|self)(?:::\w+)+', text)
        for name in re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', text, re.M):
            paths.append('self::' + name)
        for p in paths:
            target = resolve(p, here, known, again)
            if target is not None and target != here:
                edges[here].add(target)
                why.setdefault((here, target), p)
    return edges

def circles(edges):
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1
        stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)
    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out

def name(module):
    return '::'.join(module) or 'crate'

def report(src, quiet=False):
    """Prints the circles in the crate at `src`; returns how many."""
    edges = graph(src)
    found = circles(edges)
    if quiet:
        return len(found)
    for comp in found:
        print(f'{src}: an import circle: ' + ', '.join(sorted(map(name, comp))))
        for m in sorted(comp):
            inside = sorted(f'{name(t)} ({why[(m, t)]})' for t in edges[m] if t in comp)
            print(f'  {name(m)} -> {", ".join(inside)}')
    if not found:
        print(f'{src}: {len(edges)} modules, no import circle')
    return len(found)

SELF_TEST = {
    # a -> b -> c -> a, through super:: and a use in code
    'circle/lib.rs': 'mod a;\nmod b;\nmod c;\npub use a::A;\n',
    'circle/a.rs': 'use crate::b::B;\npub struct A;\n',
    'circle/b.rs': 'pub struct B;\nfn f() { super::c::g() }\n',
    'circle/c.rs': 'pub fn g() { let _ = crate::a::A; }\n',
    # a re-export from the root and a test module do not make one
    'clean/lib.rs': 'mod a;\nmod b;\npub use b::B;\n',
    'clean/a.rs': 'use crate::B;\n',
    'clean/b.rs': 'pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n',
}

def self_test():
    with tempfile.TemporaryDirectory() as root:
        for path, text in SELF_TEST.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), 'w') as f:
                f.write(text)
        circle = report(os.path.join(root, 'circle'), quiet=True)
        clean = report(os.path.join(root, 'clean'), quiet=True)
    if (circle, clean) != (1, 0):
        print(f'check_imports self-test FAILED: {circle} circles where 1, {clean} where 0')
        return 1
    print('check_imports self-test: the circle found, the clean crate passed')
    return 0

def main(argv):
    if argv == ['--self-test']:
        return self_test()
    if not argv:
        print(__doc__)
        return 2
    return 1 if sum(report(src) for src in argv) else 0

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
