#!/usr/bin/env python3
"""Turns the guide at the top of a public header (its leading `//` comment block) into a
Doxygen Markdown page, so the guide is written once, in the header, and still gets a page in
the API documentation (tools/docs.sh).

  header_guide.py HEADER ANCHOR TITLE OUT.md

`@code`/`@endcode` become fences, and so does a run of indented lines that follows a blank
line or a line ending in ':' (the headers' pseudo-code and examples).
"""
import sys


def guide_lines(path):
    lines = open(path).read().splitlines()
    out, started = [], False
    for line in lines:
        if line.startswith("#pragma"):
            continue
        if line.startswith("//"):
            started = True
            text = line[2:]
            out.append(text[1:] if text.startswith(" ") else text)
        elif started:
            break
    return out


def to_markdown(lines):
    md, code, auto, previous = [], False, False, ""
    for line in lines:
        stripped = line.strip()
        if stripped == "@code":
            md.append("```cpp")
            code = True
            continue
        if stripped == "@endcode":
            md.append("```")
            code, previous = False, ""
            continue
        if code:
            md.append(line)
            continue
        indented = line.startswith("  ") and not stripped.startswith("|")
        if auto and not indented:
            md.append("```")
            auto = False
        elif not auto and indented and (previous == "" or previous.endswith(":")):
            md.append("```")
            auto = True
        md.append(line)
        if stripped:
            previous = stripped
        elif not auto:
            previous = ""
    if code or auto:
        md.append("```")
    return "\n".join(md) + "\n"


def main():
    header, anchor, title, out = sys.argv[1:5]
    lines = guide_lines(header)
    if not lines:
        sys.exit(f"header_guide: {header} has no leading comment")
    body = to_markdown(lines)
    with open(out, "w") as f:
        f.write(f"# {title} {{#{anchor}}}\n\n")
        f.write(f"From the header `<{header.split('include/', 1)[-1]}>`.\n\n")
        f.write(body)


if __name__ == "__main__":
    main()
