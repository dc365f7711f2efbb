#!/usr/bin/env python3
"""Proves that deploy/monitoring/validate fails on broken monitoring files.

Copies deploy/monitoring, docs/operations.md and proto/ into a temporary
directory, checks that validate passes on the copy, then applies one breakage
at a time (a broken alert, an alert whose test no longer holds, an unknown
metric, a missing runbook section, a broken dashboard, ...) and checks that
validate then exits non-zero and names the problem.

Usage: tests/monitoring/validate_catches_errors.py [SOURCE_DIR]
"""
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))

# (name, file, text to replace, replacement, what validate's output must contain)
BREAKAGES = [
    ("alert expression that does not parse", "alerts.yaml",
     "expr: casebridge_kafka_connected{job=\"casebridge\"} == 0",
     "expr: casebridge_kafka_connected{job=\"casebridge\"} == 0)",
     "promtool check rules failed"),
    ("threshold changed so that its test no longer holds", "alerts.yaml",
     "casebridge_outbox_events{job=\"casebridge\"} > 100",
     "casebridge_outbox_events{job=\"casebridge\"} > 1000",
     "promtool test rules failed"),
    ("alert firing where its test says it must not", "alerts.yaml",
     "expr: changes(process_start_time_seconds{job=\"casebridge\"}[1h]) > 2",
     "expr: changes(process_start_time_seconds{job=\"casebridge\"}[1h]) > 1",
     "promtool test rules failed"),
    ("metric not in the catalogue", "alerts.yaml",
     "expr: casebridge_kafka_connected{job=\"casebridge\"} == 0",
     "expr: casebridge_kafka_connection_up{job=\"casebridge\"} == 0",
     "metric casebridge_kafka_connection_up is not in metrics.txt"),
    ("selector without the job matcher", "alerts.yaml",
     "expr: up{job=\"casebridge\"} == 0",
     "expr: up == 0",
     "lacks job=\"casebridge\""),
    ("gRPC method that is not an rpc", "alerts.yaml",
     "grpc_method=~\"RecordDecision|",
     "grpc_method=~\"RecordDecisions|",
     "grpc_method RecordDecisions is not an rpc"),
    ("alert without severity", "alerts.yaml",
     "        for: 15m\n        labels:\n          severity: warning\n        annotations:\n          summary: No casebridge target",
     "        for: 15m\n        labels:\n          team: casebridge\n        annotations:\n          summary: No casebridge target",
     "severity label must be one of"),
    ("runbook_url pointing elsewhere", "alerts.yaml",
     "runbook_url: docs/operations.md#alert-casebridgedeadletters",
     "runbook_url: docs/operations.md#dead-letters",
     "runbook_url should end with docs/operations.md#alert-casebridgedeadletters"),
    ("alert without tests", "alerts.yaml",
     "  - name: casebridge.certificates\n    rules:\n",
     "  - name: casebridge.certificates\n    rules:\n"
     "      - alert: CasebridgeUntested\n        expr: casebridge_ready{job=\"casebridge\"} > 1\n"
     "        labels:\n          severity: info\n        annotations:\n          summary: s\n"
     "          description: d\n          runbook_url: docs/operations.md#alert-casebridgeuntested\n",
     "no test in which CasebridgeUntested fires"),
    ("runbook section missing", "operations.md",
     "### Alert: CasebridgeDeadLetters\n", "### Dead letters\n",
     "docs/operations.md has no heading \"### Alert: CasebridgeDeadLetters\""),
    ("runbook link to a section that does not exist", "operations.md",
     "(#alert-casebridgenotready)", "(#alert-casebridge-not-ready)",
     "link to #alert-casebridge-not-ready, which no heading has"),
    ("metric dropped from the catalogue", "metrics.txt",
     "casebridge_outbox_events\n", "",
     "metric casebridge_outbox_events is not in metrics.txt"),
    ("dashboard that is not JSON", "dashboard.json",
     "\"schemaVersion\": 39,", "\"schemaVersion\": 39,,",
     "dashboard.json: does not parse"),
    ("dashboard expression that does not parse", "dashboard.json",
     "\"expr\": \"casebridge_outbox_events{",
     "\"expr\": \"sum by (pod (casebridge_outbox_events{",
     "an expression does not parse"),
    ("dashboard metric not in the catalogue", "dashboard.json",
     "\"expr\": \"casebridge_outbox_events{",
     "\"expr\": \"casebridge_outbox_depth{",
     "metric casebridge_outbox_depth is not in metrics.txt"),
    ("dashboard variable that is not defined", "dashboard.json",
     "casebridge_kafka_producer_queue_messages{job=~\\\"$job\\\"",
     "casebridge_kafka_producer_queue_messages{job=~\\\"$cluster\\\"",
     "variable $cluster is not defined"),
    ("dashboard panel with a fixed data source", "dashboard.json",
     "\"uid\": \"${datasource}\"", "\"uid\": \"P1809F7CD0C75ACF3\"",
     "datasource must be ${datasource}"),
]


def copy_tree(dst):
    mon = os.path.join(dst, "deploy", "monitoring")
    shutil.copytree(os.path.join(ROOT, "deploy", "monitoring"), mon,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "proto"), os.path.join(dst, "proto"))
    os.makedirs(os.path.join(dst, "docs"))
    shutil.copy(os.path.join(ROOT, "docs", "operations.md"), os.path.join(dst, "docs", "operations.md"))
    return mon


def validate(dst):
    mon = os.path.join(dst, "deploy", "monitoring")
    p = subprocess.run([os.path.join(mon, "validate")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def check(base, i, breakage):
    """(caught, report line) for one breakage, on its own copy."""
    name, fname, old, new, expect = breakage
    dst = os.path.join(base, f"case{i}")
    mon = copy_tree(dst)
    path = os.path.join(dst, "docs", fname) if fname == "operations.md" else os.path.join(mon, fname)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if old not in text:
        return False, f"FAIL  {name}: the text to break is not in {fname} any more: {old!r}"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace(old, new, 1))
    rc, out = validate(dst)
    shutil.rmtree(dst)
    if rc == 0:
        return False, f"FAIL  {name}: validate passed"
    if expect not in out:
        return False, f"FAIL  {name}: validate failed, but without {expect!r}:\n{out}"
    return True, f"ok    {name}: {expect}"


def main():
    failures = 0
    with tempfile.TemporaryDirectory(prefix="casebridge-monitoring-") as base:
        clean = os.path.join(base, "clean")
        copy_tree(clean)
        rc, out = validate(clean)
        if rc != 0:
            print("FAIL: validate fails on the unchanged copy, so the breakages prove nothing:\n" + out)
            return 1
        print("ok    unchanged copy passes")
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = list(pool.map(lambda c: check(base, *c), enumerate(BREAKAGES)))
        for ok, line in results:
            print(line)
            failures += 0 if ok else 1
    if failures:
        print(f"\n{failures} of {len(BREAKAGES)} breakages not caught")
        return 1
    print(f"\nall {len(BREAKAGES)} breakages caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
