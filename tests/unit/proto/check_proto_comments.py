#!/usr/bin/env python3
"""Checks that every service, rpc, message, enum and field in proto/ has a
comment (a `//` line directly above it, or a trailing `//` comment), and that
fields marked as personal data say so in words too.

Usage: check_proto_comments.py PROTO_ROOT
Exit 0 when every declaration is documented; otherwise lists each one missing.
"""
import pathlib
import re
import sys

DECL = re.compile(
    r"^\s*(service|rpc|message|enum|oneof)\s+\w+"          # declarations
    r"|^\s*(repeated\s+|optional\s+)?[\w.]+(<[\w., ]+>)?\s+\w+\s*=\s*\d+"  # fields
)
SKIP = re.compile(r"^\s*(syntax|package|import|option|reserved|extend|//|})")


def check(path: pathlib.Path) -> list[str]:
    problems = []
    lines = path.read_text(encoding="utf-8").splitlines()
    in_enum = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if re.match(r"^enum\s+\w+", stripped):
            in_enum += 1
        if not stripped or SKIP.match(line) or not DECL.match(line):
            continue
        # Enum values (NAME = n;) are self-describing unless they need more;
        # the check covers services, rpcs, messages, enums and fields.
        if re.match(r"^\s*[A-Z0-9_]+\s*=\s*\d+", line):
            continue
        previous = lines[number - 2].strip() if number > 1 else ""
        if "//" in line or previous.startswith("//"):
            continue
        problems.append(f"{path}:{number}: undocumented: {stripped}")
    text = "\n".join(lines)
    for match in re.finditer(r"((?://[^\n]*\n\s*)*)[^\n]*\(casebridge\.options\.v1\.personal_data\) = true", text):
        if "Personal data" not in match.group(0):
            line_no = text[: match.start()].count("\n") + 1
            problems.append(f"{path}:{line_no}: personal_data field without 'Personal data.' in its comment")
    return problems


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    problems = []
    files = sorted(root.rglob("*.proto"))
    for path in files:
        problems += check(path)
    for p in problems:
        print(p)
    print(f"checked {len(files)} proto files: {len(problems)} undocumented declarations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
