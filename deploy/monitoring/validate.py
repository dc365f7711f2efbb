#!/usr/bin/env python3
"""Checks casebridge's monitoring files; run through deploy/monitoring/validate.

  1. metrics.txt: one valid metric name per line, no duplicates.
  2. alerts.yaml: `promtool check rules`; every alert named Casebridge…, with a
     severity label (critical|warning|info), summary, description and a
     runbook_url "docs/operations.md#alert-<name in lower case>" whose heading
     "### Alert: <name>" exists in docs/operations.md (and every in-page link
     of its sections "The dashboard" and "Alerts" resolves); every metric an
     expression reads is in metrics.txt (or is `up`, or recorded in the file);
     every selector of a scraped metric matches job="casebridge"; every gRPC
     method named in a matcher is an rpc in proto/.
  3. alerts_test.yaml: `promtool test rules`; every alert has a test in which
     it fires and one in which it must not; input series use catalogue names.
  4. dashboard.json: parses; panels have unique ids, a gridPos and the
     ${datasource} data source; every variable used is defined; multi-value
     variables only in =~ / !~ matchers; every PromQL expression (panels and
     variable queries) parses (promtool check rules on a generated rule file)
     and reads only metrics of metrics.txt (or up, ALERTS).

Prints one line per problem and exits 1 if there is any.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SEVERITIES = {"critical", "warning", "info"}
JOB_MATCHER = ("job", "=", "casebridge")
# Series Prometheus itself writes; allowed without being in metrics.txt.
PROMETHEUS_SERIES_RULES = {"up"}
PROMETHEUS_SERIES_DASHBOARD = {"up", "ALERTS"}
GRAFANA_BUILTINS = {
    "__rate_interval": "5m", "__interval": "1m", "__range": "1h",
    "__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000",
}

problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


# ---------------------------------------------------------------- PromQL lexing --

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>[0-9]+(?:ms|[smhdwy])(?:[0-9]+(?:ms|[smhdwy]))*(?![a-zA-Z0-9_:]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=,(){}\[\]@])
""", re.X)

LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OTHER_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def tokenize(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def unquote(s):
    if s.startswith("`"):
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def selectors(expr):
    """[(metric name, [(label, op, value)])] for every vector selector in expr."""
    toks = tokenize(expr)
    out, i = [], 0

    def skip_group(i, open_, close):
        depth = 0
        while i < len(toks):
            if toks[i][1] == open_:
                depth += 1
            elif toks[i][1] == close:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise ValueError(f"unbalanced {open_!r}")

    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if text == "[":
            i = skip_group(i, "[", "]")
            continue
        if text == "{":
            raise ValueError("a selector without a metric name ({__name__=…}) is not supported here")
        if kind != "ident":
            i += 1
            continue
        if text in LABEL_LIST_KEYWORDS:
            i = skip_group(i + 1, "(", ")") if nxt == "(" else i + 1
            continue
        if nxt == "(" or text in OTHER_KEYWORDS or text.lower() in ("inf", "nan"):
            i += 1           # a function or aggregation, or a keyword
            continue
        if nxt in LABEL_LIST_KEYWORDS and i + 2 < len(toks) and toks[i + 2][1] == "(":
            i += 1           # "sum by (…) (…)": an aggregation
            continue
        matchers = []
        i += 1
        if nxt == "{":
            end = skip_group(i, "{", "}")
            body = toks[i + 1:end - 1]
            j = 0
            while j < len(body):
                if body[j][1] == ",":
                    j += 1
                    continue
                if j + 2 >= len(body):
                    raise ValueError(f"cannot read the matchers of {text}")
                lab, op, val = body[j], body[j + 1], body[j + 2]
                if lab[0] != "ident" or op[1] not in ("=", "!=", "=~", "!~") or val[0] != "string":
                    raise ValueError(f"cannot read the matchers of {text}")
                matchers.append((lab[1], op[1], unquote(val[1])))
                j += 3
            i = end
        out.append((text, matchers))
    return out


def check_names(where, expr, allowed, histograms):
    try:
        sels = selectors(expr)
    except ValueError as e:
        problem(where, f"{e}: {expr}")
        return []
    for name, _ in sels:
        if name in allowed:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != name and base in histograms:
            continue
        problem(where, f"metric {name} is not in metrics.txt")
    return sels


# -------------------------------------------------------------------- helpers --

def gh_anchor(heading):
    """GitHub's anchor of a Markdown heading text."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def rpc_names(proto_dir):
    names = set()
    for root, _, files in os.walk(proto_dir):
        for f in files:
            if f.endswith(".proto"):
                with open(os.path.join(root, f), encoding="utf-8") as fh:
                    names.update(re.findall(r"^\s*rpc\s+(\w+)\s*\(", fh.read(), re.M))
    return names


# --------------------------------------------------------------------- checks --

def load_catalogue(path):
    names = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            name = line.strip()
            if not METRIC_NAME.match(name) or name != line.rstrip("\n"):
                problem(f"{path}:{n}", f"not a metric name: {line.rstrip()!r}")
                continue
            if name in names:
                problem(f"{path}:{n}", f"{name} listed twice")
            names.append(name)
    if not names:
        problem(path, "no metric names")
    return set(names)


def check_rules(args, catalogue, histograms, promtool, rpcs):
    path = os.path.join(args.dir, "alerts.yaml")
    rc, out = run([promtool, "check", "rules", path])
    print(out.rstrip())
    if rc != 0:
        problem(path, "promtool check rules failed")
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    with open(args.operations, encoding="utf-8") as fh:
        ops = fh.read()
    anchors = {gh_anchor(h) for h in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", ops, re.M)}
    alert_headings = set(re.findall(r"^###\s+Alert:\s+(\S+)\s*$", ops, re.M))

    alerts, recorded = [], set()
    groups = (doc or {}).get("groups") or []
    for g in groups:
        for r in g.get("rules") or []:
            if "record" in r:
                recorded.add(r["record"])
    allowed = catalogue | recorded | PROMETHEUS_SERIES_RULES
    for g in groups:
        for r in g.get("rules") or []:
            name = r.get("alert") or r.get("record")
            where = f"{path}: {'alert' if 'alert' in r else 'record'} {name}"
            sels = check_names(where, str(r.get("expr", "")), allowed, histograms)
            for metric, matchers in sels:
                for lab, op, val in matchers:
                    if lab == "grpc_method" and op in ("=", "=~"):
                        for m in (val.split("|") if op == "=~" else [val]):
                            if re.fullmatch(r"[A-Za-z]\w*", m) and m not in rpcs:
                                problem(where, f"grpc_method {m} is not an rpc in proto/")
                if metric not in recorded and JOB_MATCHER not in matchers:
                    problem(where, f'selector of {metric} lacks job="casebridge"')
            if "record" in r:
                if ":" not in r["record"]:
                    problem(where, "a recorded name should read level:metric:operations")
                continue
            alerts.append(name)
            if not re.fullmatch(r"Casebridge[A-Z][A-Za-z0-9]+", name or ""):
                problem(where, "alert names start with Casebridge (CamelCase)")
            sev = (r.get("labels") or {}).get("severity")
            if sev not in SEVERITIES:
                problem(where, f"severity label must be one of {sorted(SEVERITIES)}, is {sev!r}")
            ann = r.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not str(ann.get(key, "")).strip():
                    problem(where, f"annotation {key} missing")
            want = f"docs/operations.md#alert-{(name or '').lower()}"
            url = str(ann.get("runbook_url", ""))
            if url and not url.endswith(want):
                problem(where, f"runbook_url should end with {want}, is {url}")
            if name not in alert_headings or f"alert-{(name or '').lower()}" not in anchors:
                problem(where, f'docs/operations.md has no heading "### Alert: {name}"')
    if len(set(alerts)) != len(alerts):
        problem(path, "an alert name is used twice")
    for h in alert_headings - set(alerts):
        problem(args.operations, f'"### Alert: {h}" describes an alert that alerts.yaml does not have')
    # In-page links of the dashboard and alert sections (the end of the file).
    start = ops.find("\n## The dashboard")
    for link in re.findall(r"\]\(#([^)\s]+)\)", ops[start:] if start >= 0 else ""):
        if link not in anchors:
            problem(args.operations, f"link to #{link}, which no heading has")
    return set(alerts)


def check_tests(args, alerts, catalogue, histograms, promtool):
    path = os.path.join(args.dir, "alerts_test.yaml")
    rc, out = run([promtool, "test", "rules", path])
    print(out.rstrip())
    if rc != 0:
        problem(path, "promtool test rules failed")
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    if "alerts.yaml" not in [os.path.basename(f) for f in doc.get("rule_files") or []]:
        problem(path, "rule_files does not load alerts.yaml")
    fires, quiet = set(), set()
    allowed = catalogue | PROMETHEUS_SERIES_RULES
    for t in doc.get("tests") or []:
        tname = t.get("name", "?")
        for s in t.get("input_series") or []:
            check_names(f"{path}: test {tname!r}: series", s.get("series", ""), allowed, histograms)
        for a in t.get("alert_rule_test") or []:
            name = a.get("alertname")
            if name not in alerts:
                problem(path, f"test {tname!r} tests {name}, which alerts.yaml does not have")
            (fires if a.get("exp_alerts") else quiet).add(name)
    for name in sorted(alerts):
        if name not in fires:
            problem(path, f"no test in which {name} fires")
        if name not in quiet:
            problem(path, f"no test in which {name} must stay quiet (exp_alerts: [])")


VAR_REF = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def substitute(expr, variables, where):
    """The expression as Grafana would send it, with every variable replaced."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name not in variables:
            problem(where, f"variable ${name} is not defined in templating")
            return "undefined_variable"
        return ".*"
    for m in re.finditer(r'(\w+)\s*(=|!=)\s*"[^"]*\$', expr):
        problem(where, f"variable in a {m.group(2)} matcher of {m.group(1)}: use =~ or !~ "
                       "(multi-value and All expand to a regular expression)")
    return VAR_REF.sub(repl, expr)


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels") or [])


def check_dashboard(args, catalogue, histograms, promtool):
    path = os.path.join(args.dir, "dashboard.json")
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except (OSError, ValueError) as e:
        problem(path, f"does not parse: {e}")
        return set()
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        problem(path, f"schemaVersion {d.get('schemaVersion')!r}: expected 36 or later")
    for key in ("uid", "title"):
        if not d.get(key):
            problem(path, f"{key} missing")
    tvars = {v.get("name"): v for v in (d.get("templating") or {}).get("list") or []}
    ds = tvars.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(path, "templating needs a variable 'datasource' of type datasource, query prometheus")
    for v in ("namespace", "service", "recipient"):
        if v not in tvars:
            problem(path, f"templating has no variable {v}")

    exprs = []    # (where, expr)
    for name, v in tvars.items():
        if v.get("type") != "query":
            continue
        where = f"{path}: variable {name}"
        if (v.get("datasource") or {}).get("uid") != "${datasource}":
            problem(where, "datasource must be ${datasource}")
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q) or \
            re.fullmatch(r"\s*query_result\((.*)\)\s*", q)
        if m:
            exprs.append((where, m.group(1)))
        elif not re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", q):
            problem(where, f"cannot check the query {q!r}")

    ids = set()
    for p in all_panels(d.get("panels") or []):
        where = f"{path}: panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids or not isinstance(p.get("id"), int):
            problem(where, "panel id missing or used twice")
        ids.add(p.get("id"))
        gp = p.get("gridPos") or {}
        if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")) or gp.get("x", 0) + gp.get("w", 0) > 24:
            problem(where, f"bad gridPos {gp}")
        if not p.get("title"):
            problem(where, "no title")
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problem(where, "datasource must be ${datasource}")
        targets = p.get("targets") or []
        if not targets:
            problem(where, "no targets")
        refs = set()
        for t in targets:
            tw = f"{where} target {t.get('refId')}"
            if not t.get("refId") or t.get("refId") in refs:
                problem(tw, "refId missing or used twice")
            refs.add(t.get("refId"))
            if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
                problem(tw, "datasource must be ${datasource}")
            if not str(t.get("expr", "")).strip():
                problem(tw, "no expr")
                continue
            exprs.append((tw, t["expr"]))

    rendered = [(w, substitute(e, tvars, w)) for w, e in exprs]
    used = set()
    allowed = catalogue | PROMETHEUS_SERIES_DASHBOARD
    for w, e in rendered:
        used |= {n for n, _ in check_names(w, e, allowed, histograms)}
    # Let promtool parse every expression: one recording rule per group, so
    # that an error names the panel.
    groups = [{"name": w, "rules": [{"record": f"dashboard:expr:{i}", "expr": e}]}
              for i, (w, e) in enumerate(rendered)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        yaml.safe_dump({"groups": groups}, tmp, sort_keys=False, width=1000)
    try:
        rc, out = run([promtool, "check", "rules", tmp.name])
    finally:
        os.unlink(tmp.name)
    if rc != 0:
        problem(path, "an expression does not parse (promtool check rules):\n"
                + out.replace(tmp.name, "dashboard expressions").rstrip())
    else:
        print(f"Checking dashboard.json\n  SUCCESS: {len(rendered)} PromQL expressions parse")
    return used


def names_in(expr_list):
    out = set()
    for e in expr_list:
        try:
            out |= {n for n, _ in selectors(e)}
        except ValueError:
            pass
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--dir", default=here, help="the directory with alerts.yaml, alerts_test.yaml, "
                    "dashboard.json and metrics.txt")
    ap.add_argument("--operations", default=os.path.join(root, "docs", "operations.md"))
    ap.add_argument("--proto", default=os.path.join(root, "proto"))
    args = ap.parse_args()

    catalogue = load_catalogue(os.path.join(args.dir, "metrics.txt"))
    histograms = {n for n in catalogue if not n.endswith(("_total", "_info"))}
    rpcs = rpc_names(args.proto)
    if not rpcs:
        problem(args.proto, "no rpc found")
    alerts = check_rules(args, catalogue, histograms, args.promtool, rpcs)
    check_tests(args, alerts, catalogue, histograms, args.promtool)
    used = check_dashboard(args, catalogue, histograms, args.promtool)

    with open(os.path.join(args.dir, "alerts.yaml"), encoding="utf-8") as fh:
        rules = yaml.safe_load(fh) or {}
    used |= names_in(str(r.get("expr", "")) for g in rules.get("groups") or [] for r in g.get("rules") or [])
    used = {re.sub(r"_(bucket|sum|count)$", "", n) if re.sub(r"_(bucket|sum|count)$", "", n) in histograms else n
            for n in used}
    unused = sorted(catalogue - used)
    if unused:
        print("note: metrics.txt names that neither the dashboard nor the alerts use: " + ", ".join(unused))

    if problems:
        print(f"\nFAILED: {len(problems)} problem(s)")
        for p in problems:
            print("  " + p)
        return 1
    print(f"\nOK: {len(alerts)} alerts, each with tests; dashboard and {len(catalogue)} metric names consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
