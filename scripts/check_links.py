#!/usr/bin/env python3
"""Fails on a broken relative link or anchor in the documentation.

Checks README.md and every Markdown file under docs/ (the mdBook in
docs/src and its SUMMARY.md). For each link or image outside code:

- an external URL (any scheme, or //host) is ignored;
- a relative path must name a file or directory inside the repository;
- an anchor (`#part`, `file.md#part`) must be a heading's id in that
  Markdown file, as GitHub makes it and, for pages of the book, as mdBook
  makes it too (a link must work in both), or an explicit `<a id=...>`;
- a page of the book may not link to a Markdown file outside docs/src
  (mdBook turns `.md` links into `.html` ones, which would not exist);
- every page in docs/src is in SUMMARY.md, and every page SUMMARY.md
  names exists.

Usage: scripts/check_links.py [FILE_OR_DIR ...]   (default: README.md docs)
       scripts/check_links.py --self-test         (shows it catches breakage)
Standard library only; runs in well under a second.
"""

import os
import re
import sys
import tempfile
import unicodedata
from urllib.parse import unquote

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BOOK_SRC = os.path.join("docs", "src")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# [text](target "title") and ![alt](target); the target may be <in brackets>.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
SUMMARY_ENTRY = re.compile(r"\]\(([^)\s]*)\)")


def rel(path):
    return os.path.relpath(path, ROOT)


def all_lines(text):
    """Each line of `text` with its number and whether it is fenced code
    (the fences included)."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                yield number, line, True
                continue
            yield number, line, False
        else:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and line.strip() == match.group(1):
                fence = None
            yield number, line, True


def prose_lines(text):
    """The lines of `text` outside fenced code, with their numbers."""
    for number, line, code in all_lines(text):
        if not code:
            yield number, line


def without_code_spans(line):
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def heading_text(raw):
    """A heading's text as rendered: code spans keep their content, links
    and images their text, emphasis and HTML tags go."""
    spans = []

    def hold(match):
        spans.append(match.group(2).strip())
        return f"\0{len(spans) - 1}\0"

    text = CODE_SPAN.sub(hold, raw)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w)", "", text)
    text = re.sub("\0([0-9]+)\0", lambda m: spans[int(m.group(1))], text)
    return text.strip()


def github_slug(text):
    """GitHub's anchor for a heading (github-slugger): lower case; letters,
    marks, numbers, `_` and `-` kept; each space a `-`; the rest dropped."""
    out = []
    for ch in text.lower():
        if ch == " ":
            out.append("-")
        elif ch == "-" or ch == "_" or unicodedata.category(ch)[0] in "LMN":
            out.append(ch)
    return "".join(out)


def mdbook_slug(text):
    """mdBook's anchor for a heading (0.5, id_from_content): lower case;
    alphanumerics, `_` and `-` kept; each whitespace a `-`; the rest
    dropped."""
    out = []
    for ch in text.strip().lower():
        if ch.isalnum() or ch in "_-":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def unique(slugs):
    """A repeated slug gets the first of -1, -2… not yet taken, as both
    GitHub and mdBook number them."""
    taken, out = set(), []
    for slug in slugs:
        candidate, count = slug, 0
        while candidate in taken:
            count += 1
            candidate = f"{slug}-{count}"
        taken.add(candidate)
        out.append(candidate)
    return out


class Page:
    """What one Markdown file offers (anchors) and asks for (links)."""

    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as f:
            text = f.read()
        headings, self.links, self.html_anchors = [], [], set()
        previous = None  # the line before, when it could start a setext heading
        for number, line, code in all_lines(text):
            if code:
                previous = None
                continue
            plain = without_code_spans(line)
            atx = ATX.match(line)
            if atx:
                headings.append(heading_text(atx.group(2) or ""))
            elif previous is not None and SETEXT.match(line):
                # A line of `=` or `-` under a paragraph's line makes that
                # line a heading (under a blank line, `---` is a rule).
                headings.append(heading_text(previous))
            for match in INLINE_LINK.finditer(plain):
                self.links.append((number, match.group(1)))
            match = REFERENCE_DEF.match(plain)
            if match:
                self.links.append((number, match.group(1)))
            for match in HTML_LINK.finditer(plain):
                self.links.append((number, match.group(1)))
            for match in HTML_ANCHOR.finditer(plain):
                self.html_anchors.add(match.group(1))
            paragraph = line.strip() and not atx and not line.startswith((" " * 4, "\t")) \
                and not re.match(r"^ {0,3}([-*+>|]|[0-9]+[.)])", line)
            previous = line if paragraph else None
        self.github = set(unique([github_slug(h) for h in headings])) | self.html_anchors
        self.mdbook = set(unique([mdbook_slug(h) for h in headings])) | self.html_anchors

    def in_book(self, root):
        return os.path.realpath(self.path).startswith(os.path.join(root, BOOK_SRC) + os.sep)


def markdown_files(root, args):
    found = []
    for arg in args:
        path = os.path.join(root, arg)
        if os.path.isdir(path):
            for base, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(base, f) for f in sorted(files) if f.endswith(".md")]
        elif os.path.exists(path):
            found.append(path)
        else:
            found.append(path)  # reported as missing below
    return found


def check(root, args):
    """Every problem in the files `args` (relative to `root`), as lines."""
    root = os.path.realpath(root)
    problems, pages = [], {}

    def page(path):
        path = os.path.realpath(path)
        if path not in pages:
            pages[path] = Page(path)
        return pages[path]

    for path in markdown_files(root, args):
        if not os.path.exists(path):
            problems.append(f"{os.path.relpath(path, root)}: no such file")
            continue
        source = page(path)
        where = os.path.relpath(path, root)
        for number, target in source.links:
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            file_part, _, anchor = target.partition("#")
            file_part = unquote(file_part.split("?", 1)[0])
            anchor = unquote(anchor)
            at = f"{where}:{number}: {target}"
            if file_part:
                if file_part.startswith("/"):
                    problems.append(f"{at}: an absolute path; use a relative one")
                    continue
                resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part))
                if resolved != root and not resolved.startswith(root + os.sep):
                    problems.append(f"{at}: leads outside the repository")
                    continue
                if not os.path.exists(resolved):
                    problems.append(f"{at}: {os.path.relpath(resolved, root)} does not exist")
                    continue
                book = os.path.join(root, BOOK_SRC) + os.sep
                if source.in_book(root) and resolved.endswith(".md") \
                        and not resolved.startswith(book):
                    problems.append(
                        f"{at}: a book page links to Markdown outside docs/src, which mdBook "
                        "turns into a missing .html; link its directory instead")
                    continue
            else:
                resolved = os.path.realpath(path)
            if not anchor:
                continue
            if os.path.isdir(resolved) or not resolved.endswith(".md"):
                continue  # e.g. a line of a source file on GitHub: not ours to check
            other = page(resolved)
            on_github = anchor in other.github
            in_book = anchor in other.mdbook
            if other.in_book(root) and source.in_book(root):
                ok = on_github and in_book
            else:
                ok = on_github
            if not ok:
                near = sorted(other.github)
                hint = [s for s in near if anchor.split("-")[0] in s][:5]
                problems.append(
                    f"{at}: no heading #{anchor} in {os.path.relpath(resolved, root)}"
                    + (f" (GitHub: {on_github}, mdBook: {in_book})" if on_github != in_book else "")
                    + (f"; similar: {', '.join(hint)}" if hint else ""))

    summary = os.path.join(root, BOOK_SRC, "SUMMARY.md")
    if any(p == summary or p.startswith(os.path.join(root, BOOK_SRC) + os.sep)
           for p in map(os.path.realpath, markdown_files(root, args))) and os.path.exists(summary):
        listed = set()
        for number, line in prose_lines(open(summary, encoding="utf-8").read()):
            for match in SUMMARY_ENTRY.finditer(without_code_spans(line)):
                if match.group(1) and not SCHEME.match(match.group(1)):
                    listed.add(os.path.realpath(
                        os.path.join(root, BOOK_SRC, unquote(match.group(1).split("#")[0]))))
        for base, _, files in os.walk(os.path.join(root, BOOK_SRC)):
            for name in sorted(files):
                full = os.path.realpath(os.path.join(base, name))
                if name.endswith(".md") and full != os.path.realpath(summary) \
                        and full not in listed:
                    problems.append(f"{os.path.relpath(full, root)}: not in SUMMARY.md, "
                                    "so mdBook does not build it")
    return problems


SELF_TEST_FILES = {
    "README.md": """# Project

[book](docs/src/guide.md), [part](docs/src/guide.md#the-api-v1send),
[repeated](docs/src/guide.md#notes-1), [web](https://example.com/x.md),
[dir](tools/), ![image](docs/src/missing.png)
[gone](docs/src/gone.md)
[bad anchor](docs/src/guide.md#no-such-part)
[bad duplicate](docs/src/guide.md#notes-2)
[ref]: docs/src/guide.md#also-missing

```sh
[in code](not/checked.md)
```
and `[in a span](not/checked/either.md)`.
""",
    "tools/x.txt": "",
    "docs/src/SUMMARY.md": "# Summary\n\n- [Guide](guide.md)\n- [Lost](lost.md)\n",
    "docs/src/guide.md": """# Guide

## The API: `/v1/send`

## Notes

## Notes

## Grüße und Ölpreis\n\n## Non\u00a0breaking

[self](#notes), [self broken](#note), [up](../../README.md#project)
[outside](../../../elsewhere.md) [schema](../../tools/x.txt#L3)
[to the readme](../../README.md) [unicode](#grüße-und-ölpreis)\n[nbsp](#nonbreaking)
<a href="#the-api-v1send">html</a> <a href="guide.md#nope">html broken</a>
""",
    "docs/src/orphan.md": "# Orphan\n",
}

SELF_TEST_EXPECTED = [
    "README.md:5: docs/src/missing.png: docs/src/missing.png does not exist",
    "README.md:6: docs/src/gone.md: docs/src/gone.md does not exist",
    "README.md:7: docs/src/guide.md#no-such-part: no heading #no-such-part",
    "README.md:8: docs/src/guide.md#notes-2: no heading #notes-2",
    "README.md:9: docs/src/guide.md#also-missing: no heading #also-missing",
    # mdBook makes any whitespace a `-`, GitHub drops a no-break space:
    # this anchor works on GitHub alone.
    "docs/src/guide.md:16: #nonbreaking: no heading #nonbreaking in docs/src/guide.md "
    "(GitHub: True, mdBook: False)",
    "docs/src/guide.md:13: #note: no heading #note",
    "docs/src/guide.md:13: ../../README.md#project: a book page links to Markdown outside",
    "docs/src/guide.md:14: ../../../elsewhere.md: leads outside the repository",
    "docs/src/guide.md:15: ../../README.md: a book page links to Markdown outside",
    "docs/src/guide.md:17: guide.md#nope: no heading #nope",
    "docs/src/orphan.md: not in SUMMARY.md",
    "docs/src/SUMMARY.md:4: lost.md: docs/src/lost.md does not exist",
]


def self_test():
    """Builds a small tree with known breakage and checks that exactly the
    expected problems are reported (and that good links pass)."""
    with tempfile.TemporaryDirectory() as root:
        for name, text in SELF_TEST_FILES.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        found = check(root, ["README.md", "docs"])
    failures = []
    for expected in SELF_TEST_EXPECTED:
        if not any(p.startswith(expected) for p in found):
            failures.append(f"not caught: {expected}")
    for problem in found:
        if not any(problem.startswith(e) for e in SELF_TEST_EXPECTED):
            failures.append(f"reported wrongly: {problem}")
    slugs = {
        "The API: `/v1/send`": "the-api-v1send",
        "Hot standby: two connectors for one component":
            "hot-standby-two-connectors-for-one-component",
        "Check an install: `xmpp-lambda-connector check`":
            "check-an-install-xmpp-lambda-connector-check",
        "1×1 and 16×8 (one per session)": "11-and-168-one-per-session",
        "Cost per million messages": "cost-per-million-messages",
    }
    for heading, slug in slugs.items():
        for name, made in (("GitHub", github_slug(heading_text(heading))),
                           ("mdBook", mdbook_slug(heading_text(heading)))):
            if made != slug:
                failures.append(f"{name} slug of {heading!r}: {made!r}, expected {slug!r}")
    if failures:
        print("check_links self-test FAILED:", *failures, sep="\n  ")
        return 1
    print(f"check_links self-test: {len(SELF_TEST_EXPECTED)} kinds of broken link caught, "
          "good links passed")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    args = argv[1:] or ["README.md", "docs"]
    problems = check(ROOT, args)
    for problem in problems:
        print(problem)
    files = len(markdown_files(ROOT, args))
    if problems:
        print(f"check_links: {len(problems)} broken link(s) in {files} files")
        return 1
    print(f"check_links: {files} files, every relative link and anchor resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
