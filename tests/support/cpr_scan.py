#!/usr/bin/env python3
"""Scans service logs for CPR numbers (issue 7: "the logs contain no CPR number").

Two checks, both on every line of every file given:

- **exact**: the CPR numbers a test used (--cpr, or every CPR-shaped string
  literal of a test's source file with --cpr-from), in both spellings
  (DDMMYY-SSSS and DDMMYYSSSS), anywhere in the line. This is the strong check:
  it finds the test's citizens even glued to other characters.
- **pattern**: anything shaped like a CPR number, DDMMYY-SSSS or DDMMYYSSSS with
  a plausible date part (day 01-31, month 01-12), standing on its own: not
  inside a longer run of letters or digits or a decimal number, so hex ids
  (subjects, event ids), 20-digit sequence numbers and Unix times with a
  fraction do not count.

Usage: cpr_scan.py [--cpr CPR]... [--cpr-from SOURCE]... LOG...
Prints each finding as path:line: kind: the line with the number masked, and
exits 1 if there is one, 0 if there is none, 2 if there is nothing to scan
(no file, an unreadable file) or an exact CPR list that came out empty.
The fault suite (tests/fault/fault_suite.py) imports scan_files(); the tests
are tests/support/cpr_scan_test.py.
"""
import argparse
import pathlib
import re
import sys

# Day 01-31, month 01-12, any year, optional hyphen, four serial digits; not
# preceded or followed by a letter or digit, nor part of a decimal number
# (librdkafka's log lines start with the Unix time, "%4|1801234567.123|…").
CPR_PATTERN = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9]\.)(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])[0-9]{2}-?[0-9]{4}"
    r"(?![0-9A-Za-z])(?!\.[0-9])")
# A string literal in a source file that holds one CPR number.
CPR_LITERAL = re.compile(r"[\"']([0-9]{6}-?[0-9]{4})[\"']")
MASK = "<CPR>"


def spellings(cpr):
    """Both spellings of one CPR number: DDMMYY-SSSS and DDMMYYSSSS."""
    digits = cpr.replace("-", "")
    if not re.fullmatch(r"[0-9]{10}", digits):
        raise ValueError(f"not a CPR number: {cpr!r}")
    return {digits, f"{digits[:6]}-{digits[6:]}"}


def cprs_in_source(path):
    """Every CPR-shaped string literal in a test's source (its citizens)."""
    text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    return sorted({m.group(1) for m in CPR_LITERAL.finditer(text)})


def scan_line(line, exact=()):
    """The findings in one line: [(kind, masked line)], kind "exact" or "pattern"."""
    masked, kinds = line, []
    for spelling in sorted({s for cpr in exact for s in spellings(cpr)}, key=len, reverse=True):
        if spelling in masked:
            kinds.append("exact")
            masked = masked.replace(spelling, MASK)
    masked, found = CPR_PATTERN.subn(MASK, masked)
    if found:
        kinds.append("pattern")
    return [(kind, masked) for kind in dict.fromkeys(kinds)]


def scan_files(paths, exact=()):
    """Scans every line of every file; returns [(path, line number, kind, masked line)].
    Raises OSError for a file that cannot be read."""
    findings = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                for kind, masked in scan_line(line.rstrip("\n"), exact):
                    findings.append((str(path), number, kind, masked))
    return findings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpr", action="append", default=[], help="a CPR number the test used (either spelling)")
    p.add_argument("--cpr-from", action="append", default=[],
                   help="a test source file: every CPR-shaped string literal in it is a CPR the test used")
    p.add_argument("logs", nargs="*", help="log files to scan")
    args = p.parse_args(argv)
    exact = list(args.cpr)
    for source in args.cpr_from:
        found = cprs_in_source(source)
        if not found:
            print(f"cpr_scan: no CPR number in {source}: the exact check would be vacuous", file=sys.stderr)
            return 2
        exact += found
    if not args.logs:
        print("cpr_scan: no log files to scan", file=sys.stderr)
        return 2
    try:
        for cpr in exact:
            spellings(cpr)
        findings = scan_files(args.logs, exact)
    except (OSError, ValueError) as error:
        print(f"cpr_scan: {error}", file=sys.stderr)
        return 2
    for path, number, kind, masked in findings:
        print(f"{path}:{number}: CPR number ({kind}): {masked[:300]}")
    lines = 0
    for path in args.logs:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += sum(1 for _ in f)
    verdict = f"{len(findings)} CPR number(s) found" if findings else "no CPR number"
    print(f"cpr_scan: {len(args.logs)} log file(s), {lines} lines, {len(exact)} exact CPR number(s) "
          f"and the DDMMYY-SSSS pattern: {verdict}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
