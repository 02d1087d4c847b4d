#!/usr/bin/env python3
"""Turns every documented C++ snippet into code that a test compiles and runs.

    extract.py OUT.cpp SOURCE...

Snippets are the ```cpp blocks of Markdown files and the `// @code` ... `// @endcode` blocks
(`//` or `///`) of headers. Each snippet is split into declarations (structs, enums,
III_DESCRIBE*, functions, templates; everything at brace depth 0 that is not a statement) and
statements. The declarations of one source file share a namespace (a later snippet may use what
an earlier one of the same file declared, as a reader would); each snippet's statements become
the body of a coroutine `asio::awaitable<void> (snippets::Env&)`, run by snippets_test against
the test engine. Inside it, `client` (a connected std::shared_ptr<iii::Client>) is in scope
unless the snippet declares its own, and the documented address "ws://localhost:49134" is the
test engine's.

A Markdown snippet that needs what the test engine in plain mode cannot give (certificates, a
TLS engine) is preceded by the line `<!-- snippet run by test/integration/NAME.cpp -->` (path
relative to the Markdown file): it is not run here, and the script fails unless that test file
contains the snippet's lines verbatim, in order, so the copy cannot drift from the document.

The g++ 12 rule is enforced here: a braced temporary inside the operand of `co_await` (e.g.
`co_await c->trigger({"f", {}})` or `co_await f(T{...})`) is refused, because g++ 12 destroys
such temporaries twice (or refuses them: "array used as initializer"). Documentation must name
them first. The script fails (exit 1) on such a snippet and on an unterminated block.
"""
import os
import re
import sys

DOC_URL = '"ws://localhost:49134"'


RUN_BY = re.compile(r"^<!-- snippet run by (\S+) -->$")


def blocks_markdown(path, text, source_dir="."):
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].strip() == "```cpp":
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                fail(f"{path}:{start}: unterminated ```cpp block")
            before = lines[start - 2].strip() if start >= 2 else ""
            run_by = RUN_BY.match(before)
            if run_by:
                check_copy(f"{path}:{start + 1}", body, os.path.join(source_dir, run_by.group(1)))
            else:
                out.append((start + 1, body))
        i += 1
    return out


def check_copy(where, body, test_path):
    try:
        with open(test_path, encoding="utf-8") as f:
            test_lines = [l.strip() for l in f.read().split("\n")]
    except OSError as e:
        fail(f"{where}: the snippet's test {test_path} cannot be read: {e}")
    wanted = [l.strip() for l in body if l.strip()]
    at = 0
    for line in wanted:
        while at < len(test_lines) and test_lines[at] != line:
            at += 1
        if at == len(test_lines):
            fail(f"{where}: {test_path} does not contain the snippet verbatim (missing: `{line}`)")
        at += 1


COMMENT = re.compile(r"^\s*///?(.*)$")


def blocks_header(path, text):
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = COMMENT.match(lines[i])
        if m and m.group(1).strip() == "@code":
            start, body = i + 1, []
            i += 1
            while True:
                if i == len(lines):
                    fail(f"{path}:{start}: @code without @endcode")
                m = COMMENT.match(lines[i])
                if not m:
                    fail(f"{path}:{i + 1}: @code block interrupted by a non-comment line")
                if m.group(1).strip() == "@endcode":
                    break
                body.append(m.group(1))
                i += 1
            out.append((start + 1, dedent(body)))
        i += 1
    return out


def dedent(lines):
    indents = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
    cut = min(indents) if indents else 0
    return [l[cut:] for l in lines]


def fail(message):
    print(f"extract.py: {message}", file=sys.stderr)
    sys.exit(1)


def strip_strings(line):
    """The line with string and character literals blanked (raw strings included)."""
    line = re.sub(r'R"\((.*?)\)"', lambda m: '""', line)
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return re.sub(r"//.*$", "", line)


DECL_START = re.compile(
    r"^(struct|class|enum|union|template|namespace|using|typedef|III_DESCRIBE\w*|#include|static_assert)\b")
# `Type name(` at depth 0 (a space-separated type before the name, nothing like `=` or `->`):
# a function definition when the item ends with its body's `}`, a variable when it ends in `;`.
FUNC_HEAD = re.compile(r"^(?!(return|co_return|co_await|auto|else|if|for|while|throw|delete)\b)"
                       r"[A-Za-z_][\w:<>,\s\*&]*[\s\*&][A-Za-z_]\w*\s*\(")


def split(lines):
    """(declarations, statements), each a list of lines, classified per top-level item."""
    decls, stmts, depth, current = [], [], 0, []

    def flush():
        codes = [strip_strings(l).strip() for l in current]
        first = next((c for c in codes if c), "")
        last = next((c for c in reversed(codes) if c), "")
        is_decl = bool(DECL_START.match(first)) or (bool(FUNC_HEAD.match(first)) and last.endswith("}"))
        (decls if is_decl else stmts).extend(current)
        current.clear()

    for line in lines:
        code = strip_strings(line).strip()
        if depth == 0 and not current and not code:
            stmts.append(line)
            continue
        current.append(line)
        depth += code.count("{") + code.count("(") - code.count("}") - code.count(")")
        if depth <= 0:
            depth = 0
            if code.endswith(";") or code.endswith("}") or code.startswith("#"):
                flush()
    if current:
        flush()
    return decls, stmts


def check_co_await(where, lines):
    """Refuses a braced temporary in the operand of co_await (see the module docstring)."""
    text = "\n".join(strip_strings(l) for l in lines)
    for m in re.finditer(r"\bco_await\b", text):
        i = m.end()
        while i < len(text):
            while i < len(text) and text[i].isspace():
                i += 1
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] in "_:.*" or text.startswith("->", j)):
                j += 2 if text.startswith("->", j) else 1
            i = j
            if i < len(text) and text[i] in "<(":
                open_, close = text[i], ">" if text[i] == "<" else ")"
                depth, k = 0, i
                while k < len(text):
                    if text[k] == open_:
                        depth += 1
                    elif text[k] == close:
                        depth -= 1
                        if depth == 0:
                            break
                    elif text[k] == "{":
                        line = text[:k].count("\n")
                        fail(f"{where}+{line}: braced temporary inside co_await (g++ 12 destroys it "
                             f"twice or refuses it): name it in a variable first")
                    k += 1
                i = k + 1
                continue
            break


def registered_ids(text):
    ids = set(re.findall(r'with_id\(\s*"([^"]+)"', text))
    ids |= set(re.findall(r'RegisterFunction\(\s*"([^"]+)"', text))
    ids |= set(re.findall(r'\.id\s*=\s*"([^"]+)"', text))
    return ids


def called_ids(text):
    ids = set(re.findall(r'TriggerRequest\s*\w*\s*[({]\s*"([^"]+)"', text))
    ids |= set(re.findall(r'\btrigger(?:<[^>]*>)?\(\s*(?:\*?\w+\s*,\s*)?"([^"]+)"', text))
    return ids


def cpp_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    if len(sys.argv) < 3:
        fail("usage: extract.py OUT.cpp SOURCE...")
    out_path, sources = sys.argv[1], sys.argv[2:]
    out = ["// Generated by test/snippets/extract.py from the documentation: do not edit.",
           "#include \"snippet_env.hpp\"", ""]
    registrations, includes = [], []
    for source in sources:
        with open(source, encoding="utf-8") as f:
            text = f.read()
        name = os.path.basename(source)
        blocks = (blocks_markdown(name, text, os.path.dirname(source)) if source.endswith(".md")
                  else blocks_header(name, text))
        if not blocks:
            continue
        ns = "snippet_" + re.sub(r"\W", "_", name)
        decls_all, bodies, hoisted = [], [], []
        for number, (line, body) in enumerate(blocks):
            where = f"{name}:{line}"
            body = [l.replace(DOC_URL, "snippets::engine_url()") for l in body]
            check_co_await(where, body)
            decls, stmts = split(body)
            # Includes go to the top of the file, outside every namespace.
            includes.extend(l.strip() for l in decls if l.strip().startswith("#include"))
            decls = [l for l in decls if not l.strip().startswith("#include")]
            # An explicit specialization must live outside our namespace: it is hoisted, with
            # an alias so that its body still finds the snippet's type by its plain name.
            kept = []
            i = 0
            while i < len(decls):
                m = re.match(r"^template <> struct iii::json_traits<(\w+)> \{", decls[i])
                if m:
                    j, depth, chunk = i, 0, []
                    while j < len(decls):
                        chunk.append(decls[j])
                        depth += strip_strings(decls[j]).count("{") - strip_strings(decls[j]).count("}")
                        j += 1
                        if depth == 0:
                            break
                    t = m.group(1)
                    chunk[0] = f"template <> struct iii::json_traits<{ns}::{t}> {{ using {t} = {ns}::{t};"
                    hoisted.append((where, chunk))
                    i = j
                    continue
                kept.append(decls[i])
                i += 1
            decls_all.append((where, kept))
            joined = "\n".join(body)
            fn = f"run_{number}"
            bodies.append((where, fn, stmts))
            registrations.append((where, f"{ns}::{fn}", sorted(called_ids(joined) - registered_ids(joined)),
                                  sorted(registered_ids(joined))))
        out.append(f"namespace {ns} {{")
        out.append("using namespace std::chrono_literals;")
        for where, lines in decls_all:
            out.append(f"// ---- {where}")
            out.extend(lines)
        out.append(f"}}  // namespace {ns}")
        for where, chunk in hoisted:
            out.append(f"// ---- {where}")
            out.extend(chunk)
        out.append(f"namespace {ns} {{")
        for where, fn, stmts in bodies:
            out.append(f"// ---- {where}")
            out.append(f"asio::awaitable<void> {fn}(snippets::Env& env) {{")
            out.append("    std::shared_ptr<iii::Client> client = env.client;")
            out.append("    (void)client;")
            out.append("    {")
            out.extend("        " + l if l.strip() else "" for l in stmts)
            out.append("    }")
            out.append("    co_return;")
            out.append("}")
        out.append(f"}}  // namespace {ns}")
        out.append("")
    out.append("namespace snippets {")
    out.append("std::vector<Snippet> all() {")
    out.append("    return {")
    for where, fn, calls, regs in registrations:
        c = ", ".join(cpp_string(x) for x in calls)
        r = ", ".join(cpp_string(x) for x in regs)
        out.append(f"        {{{cpp_string(where)}, &{fn}, {{{c}}}, {{{r}}}}},")
    out.append("    };")
    out.append("}")
    out.append("}  // namespace snippets")
    out[2:2] = sorted(set(includes))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
