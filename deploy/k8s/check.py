"""The checks of deploy/k8s/validate (run it, not this file: it installs the
tools and passes their paths).

Renders every overlay with kustomize, validates every object with
kubeconform -strict (Kubernetes' JSON schemas from the kubernetes-validate
package, casebridge's strict schemas of the custom resources in
deploy/k8s/schemas/), validates the custom resources again with validators
generated from the upstream CRDs (deploy/k8s/schemas/upstream), and checks
what no schema can: that the manifests agree with the services' configs, the
ACL layout, the proto service names and each other. Then lints the
Dockerfile and checks it against the CMake build and deploy/local/install-deps.
Finally it feeds deliberately broken input to each kind of check and fails if
any of them accepts it.
"""

import argparse
import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
HADOLINT_CONFIG = ROOT / "deploy" / "docker" / ".hadolint.yaml"
OVERLAYS = ["dev", "production"]
# The oldest and the newest Kubernetes version the manifests are checked
# against (gRPC probes are GA since 1.27).
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]

CANONICAL_DEFAULT = "casebridge.case-events.v1"
SHARED_TOPICS = {"casebridge.case-events.v1", "casebridge.audit.v1", "casebridge.dead-letter.v1"}
SERVICE_USERS = {"casebridge-jobcentre", "casebridge-social", "casebridge-health",
                 "casebridge-coordination", "auditor"}
# Coordination's shutdown is fixed in code (docs/operations.md, "Graceful
# shutdown"): up to 5 s for unary RPCs, then up to 15 s to flush.
COORDINATION_SHUTDOWN_SECONDS = 20


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        try:
            problems = fn(*args) or []
        except Exception as e:  # a check that crashes has failed
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            self.failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"     {p}")
        else:
            self.passed += 1
            print(f"ok   {name}")
        return not problems

    def expect_rejected(self, name, fn, *args):
        """A negative check: fn must report at least one problem."""
        try:
            problems = fn(*args) or []
        except Exception as e:
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            self.passed += 1
            print(f"ok   {name} (rejected: {problems[0][:150]})")
        else:
            self.failed += 1
            print(f"FAIL {name}: the broken input was accepted")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---- rendering ----------------------------------------------------------------

def render_all(kustomize, work):
    """Copies deploy/k8s to `work` (with placeholder dev secrets, so that the
    repository stays untouched) and renders every overlay."""
    tree = work / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets", "__pycache__"))
    r = run([str(tree / "overlays/dev/app/make-secrets"), "--placeholders"])
    if r.returncode != 0:
        raise RuntimeError(f"make-secrets --placeholders: {r.stderr}")
    rendered = {}
    for overlay in OVERLAYS:
        r = run([kustomize, "build", str(tree / "overlays" / overlay)])
        if r.returncode != 0:
            raise RuntimeError(f"kustomize build overlays/{overlay}:\n{r.stderr}")
        path = work / f"{overlay}.yaml"
        path.write_text(r.stdout)
        rendered[overlay] = (path, [d for d in yaml.safe_load_all(r.stdout) if d])
    return rendered


# ---- schemas --------------------------------------------------------------------

def kind_suffix(api_version):
    """kubeconform's {{ .KindSuffix }}: apps/v1 → -apps-v1, v1 → -v1,
    networking.k8s.io/v1 → -networking-v1 (kubernetes-validate names its
    files the same way)."""
    parts = api_version.split("/")
    suffix = "-" + parts[0].split(".")[0].lower()
    if len(parts) > 1:
        suffix += "-" + parts[1].lower()
    return suffix


def standalone(schema, defs):
    """The kind's schema with every definition it reaches inlined under
    $defs, so that kubeconform needs no other file."""
    # The kind's file refers to "/api/_definitions.json#/$defs/X", the
    # definitions to each other as "#/$defs/X".
    prefixes = ("/api/_definitions.json#/$defs/", "#/$defs/")
    needed = {}

    def walk(node):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str) and v.startswith(prefixes):
                    name = v.split("#/$defs/", 1)[1]
                    if name not in needed:
                        needed[name] = {}
                        needed[name] = walk(defs[name])
                    out[k] = "#/$defs/" + name
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    top = walk(schema)
    top["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    top["$defs"] = needed
    return top


def kubernetes_schemas(work, docs_by_overlay):
    """Writes standalone strict schemas of every built-in kind the overlays
    use, per Kubernetes version, from the kubernetes-validate package."""
    import kubernetes_validate
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    kinds = {(d["kind"], d["apiVersion"]) for docs in docs_by_overlay
             for d in docs if "." not in d["apiVersion"].split("/")[0]
             or d["apiVersion"].split("/")[0].endswith(".k8s.io")}
    dirs = {}
    for version in KUBERNETES_VERSIONS:
        src = source / f"v{version}-local-strict"
        if not src.is_dir():
            raise RuntimeError(f"kubernetes-validate has no schemas for {version}")
        defs = json.loads((src / "_definitions.json").read_text())["$defs"]
        out = work / "schemas" / f"v{version}"
        out.mkdir(parents=True)
        for kind, api_version in sorted(kinds):
            name = f"{kind.lower()}{kind_suffix(api_version)}.json"
            if not (src / name).exists():
                raise RuntimeError(f"no schema {name} in Kubernetes {version}")
            schema = json.loads((src / name).read_text())
            (out / name).write_text(json.dumps(standalone(schema, defs)))
        dirs[version] = out
    return dirs


def kubeconform_problems(kubeconform, schema_dir, path):
    r = run([kubeconform, "-strict", "-summary", "-output", "text",
             "-schema-location", f"{schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
             "-schema-location",
             f"{K8S}/schemas/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
             str(path)])
    if r.returncode != 0:
        return [line for line in (r.stdout + r.stderr).splitlines() if line.strip()][-12:]
    summary = [line for line in r.stdout.splitlines() if line.startswith("Summary")]
    print(f"     kubeconform: {summary[-1] if summary else r.stdout.strip()}")
    return []


def upstream_problems(node_dir, docs):
    crs = [d for d in docs if d["apiVersion"].split("/")[0] in
           ("kafka.strimzi.io", "monitoring.coreos.com")]
    if not crs:
        return ["no custom resources to check"]
    r = run(["node", str(node_dir / "check.mjs")], input=json.dumps(crs), cwd=node_dir)
    if r.returncode != 0:
        return [line for line in (r.stdout + r.stderr).splitlines()
                if not line.startswith("ok ")] or [f"exit {r.returncode}"]
    return []


# ---- what no schema checks ---------------------------------------------------

def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def container_of(workload):
    containers = workload["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        raise ValueError(f"{workload['metadata']['name']}: expected one container")
    return containers[0]


def config_of(docs, workload):
    """The JSON config the workload's command names, from its ConfigMap."""
    c = container_of(workload)
    cmd = c.get("command", [])
    if "--config" not in cmd:
        raise ValueError(f"{workload['metadata']['name']}: command has no --config")
    path = cmd[cmd.index("--config") + 1]
    mount, rel = covering_mount(c, path)
    if mount is None:
        raise ValueError(f"{workload['metadata']['name']}: {path} is on no volume")
    volume = volume_named(workload, mount["name"])
    name = volume.get("configMap", {}).get("name")
    cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == name]
    if not cms or rel not in cms[0].get("data", {}):
        raise ValueError(f"{workload['metadata']['name']}: no ConfigMap {name} with key {rel}")
    return json.loads(cms[0]["data"][rel])


def binary_of(workload):
    return Path(container_of(workload)["command"][0]).name


def covering_mount(container, path):
    best, rel = None, None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path.startswith(mp + "/") and (best is None or len(mp) > len(best["mountPath"])):
            best, rel = m, path[len(mp) + 1:]
    return best, rel


def volume_named(workload, name):
    for v in workload["spec"]["template"]["spec"].get("volumes", []):
        if v["name"] == name:
            return v
    for t in workload["spec"].get("volumeClaimTemplates", []):
        if t["metadata"]["name"] == name:
            return {"name": name, "persistentVolumeClaim": {"claimName": name}}
    raise ValueError(f"{workload['metadata']['name']}: no volume {name}")


def files_of_volume(volume):
    """The relative paths a configMap/secret/projected volume provides, or
    None if it is a directory the service may write."""
    def items(src, keys_from):
        if "items" in src:
            return {i["path"] for i in src["items"]}
        return {f"*{keys_from}"}  # every key of the object: not checkable here
    if "configMap" in volume:
        return items(volume["configMap"], volume["configMap"].get("name"))
    if "secret" in volume:
        return items(volume["secret"], volume["secret"].get("secretName"))
    if "projected" in volume:
        out = set()
        for s in volume["projected"]["sources"]:
            for k in ("secret", "configMap"):
                if k in s:
                    out |= items(s[k], s[k].get("name"))
        return out
    return None


def parse_port(address):
    return int(address.rsplit(":", 1)[1])


def duration_seconds(text, default):
    if not text:
        return default
    return float(text.rstrip("s"))


def config_paths(config):
    """(field, path, writable) of every file the config names."""
    out = []
    server_tls = config.get("server", {}).get("tls", {})
    for f in ("certFile", "keyFile", "clientCaFile"):
        if f in server_tls:
            out.append((f"server.tls.{f}", server_tls[f], False))
    kafka_tls = config.get("kafka", {}).get("tls", {})
    for f in ("caFile", "certFile", "keyFile"):
        if f in kafka_tls:
            out.append((f"kafka.tls.{f}", kafka_tls[f], False))
    if "keyFile" in config.get("pseudonym", {}):
        out.append(("pseudonym.keyFile", config["pseudonym"]["keyFile"], False))
    ref = config.get("adapter", {}).get("reference", {})
    if "databasePath" in ref:
        out.append(("adapter.reference.databasePath", ref["databasePath"], True))
    for f in ("ledgerPath", "storePath"):
        if f in config:
            out.append((f, config[f], True))
    if "storeUrl" in config:
        for key, value in re.findall(r"[?&](sslrootcert|sslcert|sslkey)=([^&]+)", config["storeUrl"]):
            out.append((f"storeUrl {key}", value, False))
    return out


def workload_problems(docs, proto_services):
    problems = []
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    for w in workloads(docs):
        name = w["metadata"]["name"]
        where = f"{w['kind']} {name}"
        c = container_of(w)
        config = config_of(docs, w)
        binary = binary_of(w)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

        # Ports: the config's addresses, the container's named ports, the
        # Service, the probes.
        listen = config.get("server", {}).get("listenAddress")
        if not listen or ports.get("grpc") != parse_port(listen):
            problems.append(f"{where}: container port 'grpc' {ports.get('grpc')} is not server.listenAddress {listen}")
        obs = config.get("observability", {})
        for field, port_name in (("healthAddress", "health"), ("metricsAddress", "metrics")):
            if field not in obs:
                problems.append(f"{where}: the config has no observability.{field}")
            elif ports.get(port_name) != parse_port(obs[field]):
                problems.append(f"{where}: container port '{port_name}' {ports.get(port_name)} "
                                f"is not observability.{field} {obs[field]}")
        svc = services.get(name)
        if svc is None:
            problems.append(f"{where}: no Service {name}")
        else:
            sports = {p["name"]: p for p in svc["spec"]["ports"]}
            for pn in ("grpc", "metrics"):
                if pn not in sports or sports[pn].get("targetPort") not in (pn, ports.get(pn)):
                    problems.append(f"Service {name}: no port '{pn}' to the container's '{pn}'")
            if "metrics" in sports and sports["metrics"]["port"] != 9464:
                problems.append(f"Service {name}: metrics port is not 9464")
        want = proto_services.get(binary)
        for probe, service in (("startupProbe", ""), ("livenessProbe", ""), ("readinessProbe", want)):
            p = c.get(probe, {}).get("grpc")
            if p is None:
                problems.append(f"{where}: {probe} is not a gRPC probe")
                continue
            if p.get("port") != ports.get("health"):
                problems.append(f"{where}: {probe} port {p.get('port')} is not the health port {ports.get('health')}")
            if p.get("service", "") != service:
                problems.append(f"{where}: {probe} asks for service {p.get('service')!r}, expected {service!r}")

        # Files: every path the config names lies on a volume that provides it.
        for field, path, writable in config_paths(config):
            mount, rel = covering_mount(c, path)
            if mount is None:
                problems.append(f"{where}: {field} {path} is on no volume (the root file system is read-only)")
                continue
            files = files_of_volume(volume_named(w, mount["name"]))
            if writable:
                if files is not None or mount.get("readOnly"):
                    problems.append(f"{where}: {field} {path} must be on a writable volume")
            elif files is not None and rel not in files and not any(f.startswith("*") for f in files):
                problems.append(f"{where}: {field} {path}: volume {mount['name']} has no item {rel} ({sorted(files)})")

        # Shutdown: the kubelet's SIGKILL comes after the service's own drain.
        grace = w["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if binary == "casebridge-coordination":
            need = COORDINATION_SHUTDOWN_SECONDS
        else:
            need = duration_seconds(config.get("shutdownGracePeriod"), 10)
        if grace <= need:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} is not above the shutdown's {need:g} s")

        # Security context and resources.
        pod = w["spec"]["template"]["spec"]
        psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
        if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not set")
        if (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if csc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities are not drop [ALL]")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    problems.append(f"{where}: no resources.{kind}.{r}")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
    if len(workloads(docs)) != 4:
        problems.append(f"expected 4 workloads, found {len(workloads(docs))}")
    return problems


def references_problems(docs, secrets_external):
    """Every ConfigMap and Secret a pod uses exists in the rendering (Secrets
    may be external: production references Secrets that cert-manager,
    Strimzi and the operator create)."""
    problems = []
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for w in workloads(docs):
        pod = w["spec"]["template"]["spec"]
        refs = []
        for v in pod.get("volumes", []):
            if "configMap" in v:
                refs.append(("ConfigMap", v["configMap"]["name"]))
            if "secret" in v:
                refs.append(("Secret", v["secret"]["secretName"]))
            for s in v.get("projected", {}).get("sources", []):
                if "secret" in s:
                    refs.append(("Secret", s["secret"]["name"]))
                if "configMap" in s:
                    refs.append(("ConfigMap", s["configMap"]["name"]))
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.append(("Secret", ref["name"]))
        for kind, name in refs:
            if kind == "Secret" and secrets_external:
                continue
            if (kind, name) not in have:
                problems.append(f"{w['kind']} {w['metadata']['name']}: {kind} {name} is not in the rendering")
    return problems


def network_problems(docs):
    problems = []
    nps = by_kind(docs, "NetworkPolicy")
    deny = [n for n in nps if n["spec"].get("podSelector") == {}
            and set(n["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not n["spec"].get("ingress") and not n["spec"].get("egress")]
    if not deny:
        problems.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    egress_ports = {p.get("port") for n in nps for e in n["spec"].get("egress", []) for p in e.get("ports", [])}
    for port, what in ((53, "DNS"), (9093, "Kafka TLS"), (5432, "PostgreSQL")):
        if port not in egress_ports:
            problems.append(f"no egress to {what} (port {port})")
    ingress_ports = {p.get("port") for n in nps for i in n["spec"].get("ingress", []) for p in i.get("ports", [])}
    for port in ("grpc", "metrics"):
        if port not in ingress_ports:
            problems.append(f"no ingress to the '{port}' ports")
    return problems


def coordination_config(docs):
    coord = [w for w in workloads(docs) if binary_of(w) == "casebridge-coordination"]
    if len(coord) != 1:
        raise ValueError("expected one coordination workload")
    return coord[0], config_of(docs, coord[0])


def topic_name(t):
    return t["spec"].get("topicName") or t["metadata"]["name"]


def kafka_problems(docs):
    """Topics and users against the coordination config: one party topic and
    one KafkaUser per recipient, nothing more; replication settings; the
    coordination replicas against the canonical topic's partitions."""
    problems = []
    _, config = coordination_config(docs)
    topics = {topic_name(t): t for t in by_kind(docs, "KafkaTopic")}
    users = {u["metadata"]["name"] for u in by_kind(docs, "KafkaUser")}
    recipients = config["recipients"]
    want_topics = {r.get("topic") or f"casebridge.party.{r['id']}.v1" for r in recipients}
    shared = {config.get("canonicalTopic") or CANONICAL_DEFAULT,
              config.get("auditTopic") or "casebridge.audit.v1",
              config.get("deadLetterTopic") or "casebridge.dead-letter.v1"}
    for t in sorted(shared - set(topics)):
        problems.append(f"no KafkaTopic {t}")
    for t in sorted(want_topics - set(topics)):
        problems.append(f"recipient topic {t} (coordination config) has no KafkaTopic")
    for t in sorted(set(topics) - want_topics - shared):
        problems.append(f"KafkaTopic {t} is no recipient's topic in the coordination config")
    want_users = {r["id"] for r in recipients} | SERVICE_USERS
    for u in sorted(want_users - users):
        problems.append(f"no KafkaUser {u}")
    for u in sorted(users - want_users):
        problems.append(f"KafkaUser {u} is neither a service, the auditor nor a recipient in the coordination config")
    for name, t in topics.items():
        # acks=all is durable on min.insync.replicas brokers; with 3 or more
        # replicas that is at least 2, and one broker may still be down.
        replicas, isr = t["spec"]["replicas"], int(t["spec"].get("config", {}).get("min.insync.replicas", 1))
        if not 1 <= isr <= replicas or (replicas >= 3 and not 2 <= isr <= replicas - 1):
            problems.append(f"KafkaTopic {name}: min.insync.replicas {isr} with {replicas} replicas")
    canonical = topics.get(config.get("canonicalTopic") or CANONICAL_DEFAULT)
    if canonical:
        partitions = canonical["spec"]["partitions"]
        coord, _ = coordination_config(docs)
        if coord["spec"].get("replicas", 1) > partitions:
            problems.append(f"coordination replicas {coord['spec']['replicas']} > {partitions} canonical partitions")
        for h in by_kind(docs, "HorizontalPodAutoscaler"):
            if h["spec"]["scaleTargetRef"]["name"] == coord["metadata"]["name"]:
                if h["spec"]["maxReplicas"] > partitions:
                    problems.append(f"HPA {h['metadata']['name']}: maxReplicas {h['spec']['maxReplicas']} "
                                    f"> {partitions} partitions of the canonical topic (idle replicas)")
    return problems


def load_acls_module():
    spec = importlib.util.spec_from_file_location("casebridge_acls", ROOT / "deploy/local/kafka/acls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def acl_problems(docs, acls_module):
    """The KafkaUsers' ACLs are exactly deploy/local/kafka/acls.py's layout
    (docs/operations.md, "The ACL layout") for the config's recipients."""
    _, config = coordination_config(docs)
    ids = [r["id"] for r in config["recipients"]]
    want = set()
    for line in acls_module.casebridge_layout(ids, 3):
        words = line.split()
        if words[0] != "allow":
            continue
        _, principal, ops, kind, name = words[:5]
        pattern = "prefix" if len(words) == 6 else "literal"
        for op in ops.split(","):
            want.add((principal, kind, name, pattern, op.lower()))
    # A recipient with its own topic reads that one (docs/operations.md).
    for r in config["recipients"]:
        if r.get("topic") and r["topic"] != acls_module.party_topic(r["id"]):
            want = {a for a in want if not (a[0] == r["id"] and a[1] == "topic")}
            want |= {(r["id"], "topic", r["topic"], "literal", op) for op in ("read", "describe")}
    have = set()
    problems = []
    for u in by_kind(docs, "KafkaUser"):
        spec = u["spec"]
        name = u["metadata"]["name"]
        if spec.get("authentication", {}).get("type") != "tls":
            problems.append(f"KafkaUser {name}: authentication is not tls")
        authz = spec.get("authorization", {})
        if authz.get("type") != "simple":
            problems.append(f"KafkaUser {name}: authorization is not simple")
        for acl in authz.get("acls", []):
            if acl.get("type", "allow") != "allow" or acl.get("host", "*") != "*":
                problems.append(f"KafkaUser {name}: only allow rules for host * are in the layout")
            res = acl["resource"]
            for op in acl["operations"]:
                have.add((name, res["type"], res.get("name"), res.get("patternType", "literal"), op.lower()))
    for a in sorted(want - have):
        problems.append(f"missing ACL: User:{a[0]} {a[4]} {a[1]} {a[2]} ({a[3]})")
    for a in sorted(have - want):
        problems.append(f"ACL not in the layout: User:{a[0]} {a[4]} {a[1]} {a[2]} ({a[3]})")
    return problems


def proto_services():
    """Binary name → the full name of the gRPC service it serves, from
    proto/casebridge/<dir>/v1/*_service.proto."""
    out = {}
    for d in ("jobcentre", "social", "health", "coordination"):
        for f in (ROOT / "proto/casebridge" / d / "v1").glob("*.proto"):
            text = f.read_text()
            pkg = re.search(r"^package\s+([\w.]+);", text, re.M)
            svc = re.search(r"^service\s+(\w+)", text, re.M)
            if pkg and svc:
                out[f"casebridge-{d}"] = f"{pkg.group(1)}.{svc.group(1)}"
    return out


# ---- the configs against config.proto ---------------------------------------------

def config_messages(work):
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
    from grpc_tools import protoc
    import grpc_tools
    out = work / "config.pb"
    include = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--descriptor_set_out={out}",
                      "--include_imports", "casebridge/config/v1/config.proto"])
    if rc != 0:
        raise RuntimeError("protoc could not read proto/casebridge/config/v1/config.proto")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)

    def parse(message, text):
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"casebridge.config.v1.{message}"))
        json_format.Parse(text, cls())  # unknown fields are errors, as in the services
    return parse, pool


def config_problems(docs, parse, pool, notes):
    problems = []
    for w in workloads(docs):
        binary = binary_of(w)
        message = "CoordinationServiceConfig" if binary == "casebridge-coordination" else "CaseSystemServiceConfig"
        config = config_of(docs, w)
        fields = {f.json_name for f in pool.FindMessageTypeByName(f"casebridge.config.v1.{message}").fields}
        if "observability" not in fields and "observability" in config:
            config = dict(config)
            del config["observability"]
            notes.add("config.proto has no `observability` yet (the plaintext health port and the metrics port, "
                      "issue 7): the configs are checked without it, and the services refuse them until it exists")
        try:
            parse(message, json.dumps(config))
        except Exception as e:
            problems.append(f"{w['kind']} {w['metadata']['name']}: config is not a valid {message}: {e}")
    return problems


# ---- the Dockerfile ---------------------------------------------------------------

def dockerfile_instructions(text):
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def install_deps_packages():
    text = (ROOT / "deploy/local/install-deps").read_text()
    block = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M).group(1)
    return {w for line in block.splitlines() for w in line.split("#", 1)[0].split()}


# Packages of install-deps that only the tests, the fuzzers, the demo's broker
# and PostgreSQL server need.
NOT_FOR_THE_BUILD = {"libgtest-dev", "libgmock-dev", "googletest", "libclang-rt-14-dev"}
BUILD_TOOLS = {"build-essential", "cmake", "ninja-build", "pkg-config",
               "protobuf-compiler", "protobuf-compiler-grpc"}


def dockerfile_problems(text, build_dir=None):
    """The binaries the Dockerfile copies are the executables the CMake build
    defines (and where it writes them), all of them, built by the builder's
    cmake command; the builder installs every build package of
    deploy/local/install-deps."""
    problems = []
    ins = dockerfile_instructions(text)
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    if len(froms) < 2:
        return ["expected a build stage and a runtime stage"]
    build = ins[froms[0]:froms[1]]
    stage = re.search(r"\bAS\s+(\S+)", build[0][1], re.I)
    stage = stage.group(1) if stage else "0"
    builder_packages, build_targets, build_tree = set(), set(), None
    workdir = "/"
    for w, rest in build:
        if w == "WORKDIR":
            workdir = rest
        if w == "RUN":
            for m in re.finditer(r"apt-get install ([^&;]*)", rest):
                builder_packages |= {p for p in m.group(1).split() if not p.startswith("-")}
            m = re.search(r"cmake -S \S+ -B (\S+)", rest)
            if m:
                build_tree = str(Path(workdir) / m.group(1))
                if "-DCASEBRIDGE_BUILD_TESTS=OFF" not in rest:
                    problems.append("the builder's cmake does not set -DCASEBRIDGE_BUILD_TESTS=OFF")
            m = re.search(r"cmake --build \S+ --target (.*)", rest)
            if m:
                build_targets = set(re.split(r"\s+", m.group(1).split("&&")[0].strip()))
    if build_tree is None:
        problems.append("the build stage runs no 'cmake -S … -B …'")
        build_tree = "/src/build"
    need = {p for p in install_deps_packages() - NOT_FOR_THE_BUILD
            if p.endswith("-dev") or p in BUILD_TOOLS}
    for p in sorted(need - builder_packages):
        problems.append(f"the builder does not install {p} (deploy/local/install-deps does)")

    executables = {}
    for cml in sorted((ROOT / "services").glob("*/CMakeLists.txt")):
        text_cml = cml.read_text()
        for name in re.findall(r"add_executable\(\s*([\w-]+)", text_cml):
            if re.search(r"RUNTIME_OUTPUT_DIRECTORY|OUTPUT_NAME", text_cml):
                problems.append(f"{cml.relative_to(ROOT)} moves or renames its output: update this check")
            executables[f"services/{cml.parent.name}/{name}"] = name
    copied = set()
    for w, rest in ins[froms[1]:]:
        if w != "COPY" or f"--from={stage}" not in rest:
            continue
        args = [a for a in rest.split() if not a.startswith("--")]
        for src in args[:-1]:
            if not src.startswith(build_tree + "/"):
                problems.append(f"COPY {src}: not from the build tree {build_tree}")
                continue
            rel = src[len(build_tree) + 1:]
            if rel not in executables:
                problems.append(f"COPY {src}: the CMake build makes no executable {rel} "
                                f"(it makes {', '.join(sorted(executables))})")
                continue
            copied.add(executables[rel])
            if build_dir is not None:
                f = Path(build_dir) / rel
                if not (f.is_file() and f.stat().st_mode & 0o111):
                    problems.append(f"COPY {src}: {f} was not built")
    for name in sorted(set(executables.values()) - copied):
        problems.append(f"the image lacks {name} (every service is in the one image)")
    if build_targets != set(executables.values()):
        problems.append(f"cmake --build --target {sorted(build_targets)} is not the services' "
                        f"executables {sorted(executables.values())}")
    user = [rest for w, rest in ins[froms[1]:] if w == "USER"]
    if not user or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user[-1]):
        problems.append("the runtime stage does not end as a numeric non-root USER")
    return problems


def hadolint_problems(hadolint, path):
    r = run([hadolint, "--no-color", "--config", str(HADOLINT_CONFIG), str(path)])
    if r.returncode != 0:
        return (r.stdout + r.stderr).strip().splitlines() or [f"exit {r.returncode}"]
    return []


# ---- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kustomize", required=True)
    ap.add_argument("--kubeconform", required=True)
    ap.add_argument("--hadolint", required=True)
    ap.add_argument("--node-dir", required=True, help="node_modules of deploy/k8s/schemas/upstream with check.mjs")
    ap.add_argument("--build-dir", help="a CMake build tree: also check that the copied binaries were built")
    args = ap.parse_args()

    checks = Checks()
    notes = set()
    with tempfile.TemporaryDirectory(prefix="casebridge-k8s-") as tmp:
        work = Path(tmp)
        rendered = {}
        if not checks.run("kustomize build of every overlay", lambda: rendered.update(render_all(args.kustomize, work))):
            print(f"\nvalidate: {checks.passed} passed, {checks.failed} failed")
            return 1
        schema_dirs = kubernetes_schemas(work, [docs for _, docs in rendered.values()])
        services = proto_services()
        acls = load_acls_module()
        parse, pool = config_messages(work)
        node_dir = Path(args.node_dir)

        for overlay, (path, docs) in rendered.items():
            kinds = sorted({d["kind"] for d in docs})
            print(f"---- overlays/{overlay}: {len(docs)} objects ({', '.join(kinds)})")
            for version, sdir in schema_dirs.items():
                checks.run(f"{overlay}: kubeconform -strict, Kubernetes {version}",
                           kubeconform_problems, args.kubeconform, sdir, path)
            checks.run(f"{overlay}: custom resources against the upstream CRDs", upstream_problems, node_dir, docs)
            checks.run(f"{overlay}: workloads agree with their configs (ports, probes, files, shutdown, security)",
                       workload_problems, docs, services)
            checks.run(f"{overlay}: every ConfigMap and Secret used is rendered"
                       + (" (Secrets are external)" if overlay == "production" else ""),
                       references_problems, docs, overlay == "production")
            checks.run(f"{overlay}: configs parse as config.proto messages", config_problems, docs, parse, pool, notes)
            checks.run(f"{overlay}: NetworkPolicies (default deny; DNS, Kafka, PostgreSQL, gRPC, metrics)",
                       network_problems, docs)
            checks.run(f"{overlay}: KafkaTopics and KafkaUsers match the coordination config and replicas",
                       kafka_problems, docs)
            checks.run(f"{overlay}: KafkaUser ACLs are exactly the ACL layout (deploy/local/kafka/acls.py)",
                       acl_problems, docs, acls)

        print("---- deploy/docker/Dockerfile")
        checks.run("hadolint", hadolint_problems, args.hadolint, DOCKERFILE)
        checks.run("COPY'd binaries are the CMake build's executables; builder packages ⊇ install-deps'",
                   dockerfile_problems, DOCKERFILE.read_text(), args.build_dir)

        print("---- negative checks: broken input must be rejected")
        prod_path, prod = rendered["production"]
        sdir = schema_dirs[KUBERNETES_VERSIONS[-1]]

        def kubeconform_on(objs):
            p = work / "broken.yaml"
            p.write_text(yaml.safe_dump_all(objs))
            # Rejected by the schema, not for want of one.
            return [line for line in kubeconform_problems(args.kubeconform, sdir, p) if " is invalid: " in line]

        def mutated(kind, name, fn):
            docs = copy.deepcopy(prod)
            for d in docs:
                if d["kind"] == kind and (name is None or d["metadata"]["name"] == name):
                    fn(d)
                    return docs, d
            raise ValueError(f"no {kind} {name}")

        _, dep = mutated("Deployment", None, lambda d: d["spec"].__setitem__("replica", 2))
        checks.expect_rejected("kubeconform: Deployment with an unknown field spec.replica", kubeconform_on, [dep])
        _, sts = mutated("StatefulSet", None,
                         lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]
                         .__setitem__("port", "health"))
        checks.expect_rejected("kubeconform: gRPC probe port given by name", kubeconform_on, [sts])
        _, user = mutated("KafkaUser", "auditor", lambda d: d["spec"].__setitem__("authorisation", d["spec"]["authorization"]))
        checks.expect_rejected("kubeconform: KafkaUser with a misspelt field", kubeconform_on, [user])
        _, topic = mutated("KafkaTopic", None, lambda d: d["spec"].__setitem__("partitions", "six"))
        checks.expect_rejected("kubeconform: KafkaTopic with partitions \"six\"", kubeconform_on, [topic])
        _, user = mutated("KafkaUser", "auditor",
                          lambda d: d["spec"]["authorization"]["acls"][0].__setitem__("operations", ["Reed"]))
        checks.expect_rejected("upstream CRD: KafkaUser with operation Reed", upstream_problems, node_dir, [user])
        docs, _ = mutated("KafkaUser", "mentorhuset", lambda d: None)
        docs = [d for d in docs if not (d["kind"] == "KafkaUser" and d["metadata"]["name"] == "mentorhuset")]
        checks.expect_rejected("a recipient without its KafkaUser", kafka_problems, docs)
        docs, _ = mutated("KafkaUser", "mentorhuset",
                          lambda d: d["spec"]["authorization"]["acls"][0]["operations"].append("Write"))
        checks.expect_rejected("a recipient allowed to write its topic", acl_problems, docs, acls)
        docs, _ = mutated("KafkaUser", "casebridge-jobcentre",
                          lambda d: d["spec"]["authorization"]["acls"][0].__setitem__(
                              "resource", {"type": "topic", "name": "casebridge.", "patternType": "prefix"}))
        checks.expect_rejected("a case system allowed every casebridge.* topic", acl_problems, docs, acls)
        docs, _ = mutated("HorizontalPodAutoscaler", None, lambda d: d["spec"].__setitem__("maxReplicas", 7))
        checks.expect_rejected("an HPA beyond the canonical partitions", kafka_problems, docs)
        docs, _ = mutated("StatefulSet", "casebridge-health",
                          lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]
                          .__setitem__("service", "casebridge.health.v1.Health"))
        checks.expect_rejected("a readiness probe naming a service the proto does not define",
                               workload_problems, docs, services)
        docs, _ = mutated("StatefulSet", "casebridge-social",
                          lambda d: d["spec"]["template"]["spec"]["volumes"][1]["projected"]["sources"][1]["secret"]
                          ["items"].pop())
        checks.expect_rejected("a config naming a key file the Secret volume lacks", workload_problems, docs, services)
        docs, _ = mutated("StatefulSet", "casebridge-jobcentre",
                          lambda d: d["spec"]["template"]["spec"].__setitem__("terminationGracePeriodSeconds", 10))
        checks.expect_rejected("terminationGracePeriodSeconds not above shutdownGracePeriod",
                               workload_problems, docs, services)
        docs = copy.deepcopy(prod)
        for d in docs:
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("casebridge-jobcentre-config"):
                c = json.loads(d["data"]["config.json"])
                c["kafka"]["bootstrap_server"] = c["kafka"].pop("bootstrapServers")
                d["data"]["config.json"] = json.dumps(c)
        checks.expect_rejected("a config with a misspelt field", config_problems, docs, parse, pool, set())
        docs = [d for d in prod if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "casebridge-default-deny")]
        checks.expect_rejected("no default-deny NetworkPolicy", network_problems, docs)
        text = DOCKERFILE.read_text()
        checks.expect_rejected("Dockerfile copying a binary the build does not make", dockerfile_problems,
                               text.replace("jobcentre/casebridge-jobcentre /", "jobcentre/casebridge-jobcenter /"))
        checks.expect_rejected("Dockerfile whose builder lacks a -dev package of install-deps", dockerfile_problems,
                               text.replace(" libpq-dev", ""))
        bad = work / "Dockerfile.bad"
        bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
        checks.expect_rejected("hadolint on a Dockerfile with a `latest` base image and apt lists left behind",
                               hadolint_problems, args.hadolint, bad)

    for n in sorted(notes):
        print(f"NOTE {n}")
    print(f"\nvalidate: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
