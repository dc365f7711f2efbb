"""Creates topics and ACLs on the local secure broker (`kafka acls`).

Run by deploy/local/kafka/kafka with the project venv (confluent-kafka's
AdminClient: one process for all ACLs, no JVM start-up per ACL). Connects as
the casebridge-admin super user (--client-config, librdkafka properties).

Spec file, one entry per line, `#` starts a comment:

    topic NAME [PARTITIONS]                        create the topic if missing
    allow PRINCIPAL OPS topic|group NAME [prefix]  allow User:PRINCIPAL the
                                                   operations (comma-separated:
                                                   read, write, describe,
                                                   create, ...) on the literal
                                                   resource, or on every name
                                                   starting with NAME

`--casebridge --recipient ID ...` adds casebridge's least-privilege layout
(docs/operations.md, "Security: TLS and ACLs") for those recipients.
"""

import argparse
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

CANONICAL = "casebridge.case-events.v1"
AUDIT = "casebridge.audit.v1"
DEAD_LETTER = "casebridge.dead-letter.v1"
CASE_SYSTEMS = ("casebridge-jobcentre", "casebridge-social", "casebridge-health")
COORDINATION = "casebridge-coordination"
AUDITOR = "auditor"


def party_topic(recipient):
    return f"casebridge.party.{recipient}.v1"


def casebridge_layout(recipients, partitions):
    """The least-privilege layout, as spec lines."""
    lines = [f"topic {CANONICAL} {partitions}", f"topic {AUDIT} {partitions}",
             f"topic {DEAD_LETTER} {partitions}"]
    for system in CASE_SYSTEMS:
        lines.append(f"allow {system} write,describe topic {CANONICAL}")
    # Coordination consumes the canonical topic and publishes its own events
    # (role assignments, derived events) there; it delivers to every party
    # topic and writes the audit topic.
    lines += [
        f"allow {COORDINATION} read,write,describe topic {CANONICAL}",
        f"allow {COORDINATION} read,describe group {COORDINATION} prefix",
        f"allow {COORDINATION} write,describe,create topic casebridge.party. prefix",
        f"allow {COORDINATION} write,describe,create topic {AUDIT}",
        # Poison records from the canonical topic (operators read it as admin).
        f"allow {COORDINATION} write,describe,create topic {DEAD_LETTER}",
        f"allow {AUDITOR} read,describe topic {AUDIT}",
        f"allow {AUDITOR} read group {AUDITOR} prefix",
    ]
    for recipient in recipients:
        lines += [
            f"topic {party_topic(recipient)} {partitions}",
            f"allow {recipient} read,describe topic {party_topic(recipient)}",
            f"allow {recipient} read,describe group {recipient} prefix",
        ]
    return lines


def parse(lines, source):
    topics, bindings = [], []
    for number, raw in enumerate(lines, 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{source}:{number}"
        if words[0] == "topic" and len(words) in (2, 3):
            partitions = int(words[2]) if len(words) == 3 else 3
            topics.append(NewTopic(words[1], num_partitions=partitions, replication_factor=1))
        elif words[0] == "allow" and len(words) in (5, 6):
            _, principal, ops, kind, name = words[:5]
            pattern = ResourcePatternType.LITERAL
            if len(words) == 6:
                if words[5] != "prefix":
                    sys.exit(f"kafka acls: {where}: expected 'prefix', got '{words[5]}'")
                pattern = ResourcePatternType.PREFIXED
            try:
                resource = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}[kind]
            except KeyError:
                sys.exit(f"kafka acls: {where}: resource type must be topic or group, got '{kind}'")
            for op in ops.split(","):
                try:
                    operation = AclOperation[op.upper()]
                except KeyError:
                    sys.exit(f"kafka acls: {where}: unknown operation '{op}'")
                bindings.append(AclBinding(resource, name, pattern, f"User:{principal}", "*",
                                           operation, AclPermissionType.ALLOW))
        else:
            sys.exit(f"kafka acls: {where}: cannot parse '{raw.strip()}'")
    return topics, bindings


def everything():
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)


def key(binding):
    return (binding.restype_int, binding.name, binding.resource_pattern_type_int,
            binding.principal, binding.operation_int, binding.permission_type_int)


def wait_until_in_effect(admin, bindings, timeout=15.0):
    """Returns once the broker's authorizer lists every binding, so that
    callers can rely on them as soon as this command exits."""
    wanted = {key(b) for b in bindings}
    deadline = time.monotonic() + timeout
    while True:
        present = {key(b) for b in admin.describe_acls(everything(), request_timeout=10).result()}
        if wanted <= present:
            return
        if time.monotonic() > deadline:
            sys.exit(f"kafka acls: {len(wanted - present)} ACL(s) not in effect after {timeout:.0f}s")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(prog="kafka acls")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--client-config", required=True)
    ap.add_argument("--spec", action="append", default=[])
    ap.add_argument("--casebridge", action="store_true")
    ap.add_argument("--recipient", action="append", default=[])
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.recipient and not args.casebridge:
        sys.exit("kafka acls: --recipient only applies with --casebridge")

    config = {"bootstrap.servers": args.bootstrap}
    with open(args.client_config, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, value = line.split("=", 1)
                config[key.strip()] = value.strip()
    admin = AdminClient(config)

    topics, bindings = [], []
    for path in args.spec:
        with open(path, encoding="utf-8") as f:
            t, b = parse(f.readlines(), path)
        topics += t
        bindings += b
    if args.casebridge:
        t, b = parse(casebridge_layout(args.recipient, args.partitions), "--casebridge")
        topics += t
        bindings += b

    failed = False
    if topics:
        for name, future in admin.create_topics(topics, request_timeout=20).items():
            try:
                future.result()
                print(f"kafka acls: created topic {name}", file=sys.stderr)
            except KafkaException as e:
                if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    print(f"kafka acls: topic {name}: {e}", file=sys.stderr)
                    failed = True
    if bindings:
        for binding, future in admin.create_acls(bindings, request_timeout=20).items():
            try:
                future.result()
            except KafkaException as e:
                print(f"kafka acls: {binding}: {e}", file=sys.stderr)
                failed = True
        if not failed:
            wait_until_in_effect(admin, bindings)
        print(f"kafka acls: {len(bindings)} ACL(s) in place", file=sys.stderr)
    if args.list:
        for b in sorted(admin.describe_acls(everything(), request_timeout=20).result(),
                        key=lambda b: (b.principal, b.restype_int, b.name, b.operation_int)):
            pattern = " prefix" if b.resource_pattern_type == ResourcePatternType.PREFIXED else ""
            print(f"{b.principal} {b.permission_type.name.lower()} {b.operation.name.lower()} "
                  f"{b.restype.name.lower()} {b.name}{pattern}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
