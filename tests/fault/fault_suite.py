#!/usr/bin/env python3
"""casebridge fault suite (issue 5, item 7).

Starts its own Kafka broker (deploy/local/kafka/kafka, a temp dir, free ports),
casebridge-jobcentre and casebridge-coordination (plaintext, one municipality) —
by default two coordination replicas in one consumer group sharing a PostgreSQL
store (deploy/local/postgres/postgres, ADR 0019); --replicas 1 runs one instance
on SQLite —
assigns roles on a few cases, drives a steady load of JobCentreService.RecordDecision
from a few client threads (every failed or timed-out call is retried with the same
idempotency key; a share of the calls repeat an already accepted key), and meanwhile
injects, in turn: kill -9 of the job centre + restart, kill -9 of a coordination
replica + restart (the replicas in turn, so the other one takes over its
partitions meanwhile), broker stop + start (same data dir and port), broker SIGSTOP for longer
than the producer's delivery timeout + SIGCONT. Then it reads the canonical topic
and every party topic from the beginning and compares them, by event id, with
what the callers were told was accepted.

Usage: tests/fault/run [--duration S] [--events N] [--rate R] [--threads T] ...
Exit 0 when nothing accepted was lost, duplicated (under two recipient sequence
numbers) or out of order; 1 otherwise; 2 when the harness itself failed.
"""
import argparse
import collections
import json
import os
import pathlib
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SOURCE = pathlib.Path(os.environ.get("CASEBRIDGE_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
KAFKA = SOURCE / "deploy/local/kafka/kafka"
POSTGRES = SOURCE / "deploy/local/postgres/postgres"
CANONICAL = "casebridge.case-events.v1"
MUNICIPALITY = "0751"
JOBCENTRE_SOURCE = f"/casebridge/jobcentre/{MUNICIPALITY}"

# Recipients and the roles they hold: (recipient, role name, which cases).
RECIPIENTS = [
    ("fault-caseworker", "ROLE_COORDINATING_CASEWORKER", lambda i: True),
    ("fault-citizen", "ROLE_CITIZEN", lambda i: True),
    ("fault-mentor", "ROLE_MENTOR", lambda i: i % 2 == 0),
    ("fault-rehab", "ROLE_REHABILITATION_TEAM", lambda i: i % 3 == 0),
]

T0 = time.monotonic()
T0_WALL = time.time()


def now():
    return time.monotonic() - T0


def say(text):
    print(f"[{now():7.1f}s] {text}", flush=True)


class HarnessError(Exception):
    pass


# --------------------------------------------------------------- processes --

class Service:
    """One casebridge binary run as a subprocess; restartable on the same port."""

    def __init__(self, name, binary, config, run_dir):
        self.name, self.binary, self.config, self.dir = name, binary, config, run_dir
        self.port = None
        self.process = None
        self.log_path = run_dir / f"{name}.log"
        self.config_path = run_dir / f"{name}.json"
        self.port_file = run_dir / f"{name}.port"
        self.starts = 0

    def start(self, timeout=60):
        if self.port is not None:  # a restart binds the same port: clients keep their channel
            self.config["server"]["listenAddress"] = f"127.0.0.1:{self.port}"
        self.config["server"]["portFile"] = str(self.port_file)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.port_file.unlink(missing_ok=True)
        log = open(self.log_path, "a")
        log.write(f"==== {time.strftime('%H:%M:%S')} harness: start #{self.starts + 1}\n")
        log.flush()
        started = time.monotonic()
        self.process = subprocess.Popen([str(self.binary), "--config", str(self.config_path)],
                                        stdout=log, stderr=log, env=dict(os.environ, GRPC_VERBOSITY="ERROR"))
        log.close()
        deadline = started + timeout
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise HarnessError(f"{self.name} exited with {self.process.returncode} at start; "
                                   f"log {self.log_path}:\n" + self.tail())
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name} did not write its port file in {timeout}s")
            time.sleep(0.05)
        port = int(self.port_file.read_text().strip())
        if self.port is not None and port != self.port:
            raise HarnessError(f"{self.name} restarted on port {port}, not {self.port}")
        self.port = port
        self.starts += 1
        return time.monotonic() - started

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines=20):
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""


class Broker:
    def __init__(self, kafka_dir):
        self.dir = kafka_dir
        self.paused_pid = None
        self.started = False

    def _run(self, *args, timeout=300):
        result = subprocess.run([str(KAFKA), *args, "--dir", str(self.dir)], capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise HarnessError(f"kafka {args[0]} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout.strip()

    def start(self):
        self.started = True
        return self._run("start", "--partitions", "3")

    def stop(self, purge=False):
        self.cont()
        self._run("stop", *(["--purge"] if purge else []))

    def pid(self):
        return int((self.dir / "broker.pid").read_text().strip())

    def pause(self):
        self.paused_pid = self.pid()
        os.kill(self.paused_pid, signal.SIGSTOP)

    def cont(self):
        if self.paused_pid is not None:
            try:
                os.kill(self.paused_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.paused_pid = None


# ------------------------------------------------------------------- stubs --

def load_stubs(python, generated):
    subprocess.run([str(SOURCE / "docs/examples/python/generate.sh"), str(generated), python], check=True)
    sys.path[:0] = [str(generated)]
    return generated


# -------------------------------------------------------------------- load --

class Load:
    """Client threads that call RecordDecision at a steady rate and remember every outcome."""

    def __init__(self, args, address, case_cprs, run_id):
        import grpc
        from casebridge.jobcentre.v1 import jobcentre_service_pb2_grpc as jobcentre_grpc
        self.grpc = grpc
        self.args = args
        self.case_cprs = case_cprs
        self.run_id = run_id
        options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 500)]
        self.stubs = [jobcentre_grpc.JobCentreServiceStub(grpc.insecure_channel(address, options=options))
                      for _ in range(args.threads)]
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.next_slot = time.monotonic()
        self.counter = 0
        self.accepted = {}          # key -> dict(event_id, subject, sequence, case, attempts, at)
        self.accepted_keys = []     # for replays
        self.unresolved = []        # keys that never got an OK
        self.anomalies = []         # answers that break the API contract
        self.replays = 0
        self.replays_ok = 0
        self.calls = 0
        self.attempts = 0
        self.errors = collections.Counter()
        self.retried_calls = 0
        self.replayed_after_retry = 0
        self.latencies = []
        self.started_at = None
        self.stopped_at = None

    def request(self, key, case):
        from casebridge.common.v1 import common_pb2
        from casebridge.events.v1 import case_event_pb2
        from casebridge.recording.v1 import recording_pb2
        deadline = case_event_pb2.ComplaintGuidance().deadline
        deadline.FromSeconds(1_900_000_000)  # fixed, so a replay sends exactly the same request
        return recording_pb2.RecordDecisionRequest(
            context=recording_pb2.RecordContext(
                idempotency_key=key, case_ref=common_pb2.CaseRef(cpr=self.case_cprs[case]),
                actor=common_pb2.Actor(role=common_pb2.ROLE_CASEWORKER, unit="Jobcenter Aarhus"),
                legal_basis=[common_pb2.LegalReference(law="LAB", paragraph="78")]),
            decision=case_event_pb2.Decision(
                outcome=case_event_pb2.DECISION_OUTCOME_REFUSED,
                offer=case_event_pb2.Offer(code="LAB-mentor-extended"),
                reasons=[case_event_pb2.Reason(code="need-covered-by-other-support")],
                alternatives=[case_event_pb2.Alternative(offer=case_event_pb2.Offer(code="LAB-mentor"))],
                complaint=case_event_pb2.ComplaintGuidance(text="Klag inden 4 uger.", deadline=deadline),
                decided_by=common_pb2.Actor(role=common_pb2.ROLE_CASEWORKER, unit="Jobcenter Aarhus")))

    def call(self, stub, key, case):
        """Calls until OK (retrying with the same key) or the per-call deadline; returns the answer."""
        request = self.request(key, case)
        started = time.monotonic()
        deadline = started + self.args.call_deadline
        attempts = 0
        while True:
            attempts += 1
            with self.lock:
                self.attempts += 1
            try:
                answer = stub.RecordDecision(request, timeout=self.args.attempt_timeout)
                return answer, attempts, time.monotonic() - started
            except self.grpc.RpcError as error:
                code = error.code().name if error.code() else "UNKNOWN"
                with self.lock:
                    self.errors[code] += 1
                if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS",
                            "PERMISSION_DENIED", "UNAUTHENTICATED", "NOT_FOUND"):
                    with self.lock:
                        self.anomalies.append(f"{key}: {code} {error.details()}")
                    return None, attempts, time.monotonic() - started
                if time.monotonic() > deadline:
                    return None, attempts, time.monotonic() - started
                time.sleep(0.2)  # pace the retries

    def pace(self):
        with self.lock:
            slot = self.next_slot = max(self.next_slot + 1.0 / self.args.rate, time.monotonic() - 1.0)
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing of the load generator

    def done(self):
        if self.stop_event.is_set():
            return True
        return bool(self.args.events) and len(self.accepted) >= self.args.events

    def worker(self, index):
        stub = self.stubs[index]
        rng = random.Random(index)
        while not self.done():
            self.pace()
            if self.done():
                break
            with self.lock:
                replay = bool(self.accepted_keys) and rng.random() < self.args.replay_share
                if replay:
                    key = rng.choice(self.accepted_keys)
                    first = self.accepted[key]
                    case = first["case"]
                    self.replays += 1
                else:
                    n = self.counter
                    self.counter += 1
                    key = f"fault-{self.run_id}-{n}"
                    case = n % len(self.case_cprs)
                    self.calls += 1
            answer, attempts, latency = self.call(stub, key, case)
            with self.lock:
                if answer is None:
                    if not replay:
                        self.unresolved.append(key)
                    else:
                        self.anomalies.append(f"replay of {key}: no OK answer")
                    continue
                if replay:
                    if answer.event_id == first["event_id"] and answer.replayed and \
                            answer.sequence == first["sequence"] and answer.subject == first["subject"]:
                        self.replays_ok += 1
                    else:
                        self.anomalies.append(
                            f"replay of {key}: event {answer.event_id} seq {answer.sequence} replayed="
                            f"{answer.replayed}, first answer {first['event_id']} seq {first['sequence']}")
                    continue
                if attempts == 1 and answer.replayed:
                    self.anomalies.append(f"{key}: first call answered replayed=true")
                if attempts > 1:
                    self.retried_calls += 1
                    self.replayed_after_retry += int(answer.replayed)
                self.accepted[key] = dict(event_id=answer.event_id, subject=answer.subject,
                                          sequence=answer.sequence, case=case, attempts=attempts,
                                          at=now())
                self.accepted_keys.append(key)
                self.latencies.append(latency)

    def run(self):
        self.started_at = time.monotonic()
        self.threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                        for i in range(self.args.threads)]
        for thread in self.threads:
            thread.start()

    def stop_and_join(self, timeout):
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        self.stopped_at = time.monotonic()
        return all(not t.is_alive() for t in self.threads)


# ------------------------------------------------------------------ faults --

class Faults:
    def __init__(self, args, broker, jobcentre, coordinations):
        self.args, self.broker, self.jobcentre, self.coordinations = args, broker, jobcentre, coordinations
        self.coordination_kills = 0
        self.timeline = []
        self.counts = collections.Counter()

    def note(self, text):
        self.timeline.append((now(), text))
        say(text)

    def kill_jobcentre(self):
        self.jobcentre.kill9()
        self.note("kill -9 casebridge-jobcentre")
        time.sleep(self.args.down_time)  # hold the fault
        took = self.jobcentre.start()
        self.note(f"casebridge-jobcentre restarted (serving after {took:.1f}s)")

    def kill_coordination(self):
        # The replicas in turn: with two, the other one takes over the partitions meanwhile.
        victim = self.coordinations[self.coordination_kills % len(self.coordinations)]
        self.coordination_kills += 1
        victim.kill9()
        self.note(f"kill -9 casebridge-{victim.name}")
        time.sleep(self.args.down_time)  # hold the fault
        took = victim.start()
        self.note(f"casebridge-{victim.name} restarted (serving after {took:.1f}s)")

    def restart_broker(self):
        started = time.monotonic()
        self.broker.stop()
        self.note(f"broker stopped (SIGTERM, took {time.monotonic() - started:.1f}s)")
        time.sleep(self.args.down_time)  # hold the fault
        started = time.monotonic()
        address = self.broker.start()
        self.note(f"broker restarted on {address} (ready after {time.monotonic() - started:.1f}s)")

    def pause_broker(self):
        self.broker.pause()
        self.note(f"broker SIGSTOP (pid {self.broker.paused_pid}) for {self.args.pause:.0f}s "
                  f"(delivery timeout {self.args.delivery_timeout}s)")
        time.sleep(self.args.pause)  # hold the fault
        self.broker.cont()
        self.note("broker SIGCONT")

    def run(self, load):
        plan = [("kill -9 jobcentre", self.kill_jobcentre),
                ("kill -9 coordination", self.kill_coordination),
                ("broker stop/start", self.restart_broker),
                ("broker pause", self.pause_broker)]
        self.note(f"load started: {self.args.threads} threads, {self.args.rate}/s target")
        index = 0
        next_at = time.monotonic() + self.args.warmup
        while True:
            time.sleep(max(0.0, min(0.2, next_at - time.monotonic())))  # wait for the next slot
            if self.load_should_end(load):
                break
            if time.monotonic() < next_at:
                continue
            if not self.args.events and now() > self.load_end - self.args.quiet_tail:
                if load.done():
                    break
                continue
            name, fault = plan[index % len(plan)]
            index += 1
            self.counts[name] += 1
            fault()
            next_at = time.monotonic() + self.args.interval

    def load_should_end(self, load):
        if self.args.events:
            return load.done()
        return now() >= self.load_end


# ----------------------------------------------------------------- verify --

class Collector:
    """Reads the canonical and party topics from the beginning, incrementally."""

    def __init__(self, bootstrap, topics):
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fault-verify-{secrets.token_hex(4)}",
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                  "enable.partition.eof": False})
        metadata = self.consumer.list_topics(timeout=30)
        partitions = []
        for topic in topics:
            if topic not in metadata.topics:
                raise HarnessError(f"topic {topic} does not exist")
            for p in metadata.topics[topic].partitions:
                partitions.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        self.partitions = partitions
        self.consumer.assign(partitions)
        self.records = collections.defaultdict(list)  # topic -> [(partition, offset, key, headers)]

    def poll(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for msg in self.consumer.consume(num_messages=5000, timeout=0.2):
                if msg.error():
                    continue
                headers = {k: (v.decode() if v is not None else "") for k, v in (msg.headers() or [])}
                key = msg.key().decode() if msg.key() else ""
                headers["_at"] = msg.timestamp()[1] / 1000.0 - T0_WALL  # Kafka timestamp, on the run's clock
                self.records[msg.topic()].append((msg.partition(), msg.offset(), key, headers))

    def at_end(self):
        from confluent_kafka import TopicPartition
        positions = self.consumer.position([TopicPartition(p.topic, p.partition) for p in self.partitions])
        for position in positions:
            low, high = self.consumer.get_watermark_offsets(position, timeout=10, cached=False)
            current = position.offset if position.offset >= 0 else low
            if current < high:
                return False
        return True

    def close(self):
        self.consumer.close()


def analyse(load, case_subjects, expected_parties, collector):
    """Compares what the callers were told with the topics. Returns (figures, details)."""
    details = collections.defaultdict(list)
    accepted = {a["event_id"]: a for a in load.accepted.values()}
    subject_case = {s: i for i, s in enumerate(case_subjects)}

    # Canonical topic: the job centre's events.
    canonical = collections.defaultdict(list)          # id -> [(partition, offset, subject, seq)]
    by_subject = collections.defaultdict(list)
    for partition, offset, key, h in collector.records[CANONICAL]:
        if h.get("ce_source") != JOBCENTRE_SOURCE:
            continue
        entry = (partition, offset, h.get("ce_subject", key), int(h.get("ce_sequence", "0")), h.get("ce_id"),
                 h.get("_at", 0.0))
        canonical[h.get("ce_id")].append(entry)
        by_subject[entry[2]].append(entry)
    canonical_missing = canonical_dup = canonical_mismatch = canonical_ooo = seq_gaps = 0
    for event_id, a in accepted.items():
        copies = canonical.get(event_id, [])
        if not copies:
            canonical_missing += 1
            details["canonical_missing"].append(f"{event_id} (case {a['case']} seq {a['sequence']})")
            continue
        if len(copies) > 1:
            canonical_dup += 1
            details["canonical_dup"].append(f"{event_id} x{len(copies)} at offsets "
                                            f"{[(c[0], c[1]) for c in copies]}, written at "
                                            f"{[round(c[5], 1) for c in copies]}s")
        if any(c[2] != a["subject"] or c[3] != a["sequence"] for c in copies):
            canonical_mismatch += 1
            details["canonical_mismatch"].append(f"{event_id}: answer {a['subject'][:12]} seq {a['sequence']}, "
                                                 f"topic {[(c[2][:12], c[3]) for c in copies]}")
    for subject, entries in by_subject.items():
        entries.sort(key=lambda e: (e[0], e[1]))
        seen, last = set(), 0
        seq_ids = {}
        for entry in entries:
            if entry[4] in seen:
                continue  # a repeated copy of an event: judged as canonical_dup
            seen.add(entry[4])
            if entry[3] <= last:
                canonical_ooo += 1
                details["out_of_order"].append(f"canonical {subject[:12]}: seq {entry[3]} ({entry[4]}) at offset "
                                               f"{entry[1]} after seq {last}")
            last = max(last, entry[3])
            if seq_ids.setdefault(entry[3], entry[4]) != entry[4]:
                details["canonical_mismatch"].append(f"{subject[:12]} seq {entry[3]}: two ids "
                                                     f"{seq_ids[entry[3]]} and {entry[4]}")
                canonical_mismatch += 1
        sequences = set(seq_ids)
        missing = set(range(1, max(sequences) + 1)) - sequences if sequences else set()
        if missing:
            seq_gaps += len(missing)
            details["seq_gaps"].append(f"{subject[:12]}: missing sequences {sorted(missing)[:20]}")

    # Party topics.
    lost = duplicated = party_ooo = redelivered = recipient_gaps = 0
    delivered = collections.defaultdict(set)  # recipient -> event ids
    for recipient, _, _ in RECIPIENTS:
        topic = f"casebridge.party.{recipient}.v1"
        records = sorted(collector.records[topic], key=lambda r: (r[0], r[1]))
        rseqs = collections.defaultdict(set)      # event id -> recipient sequence numbers
        last_rseq = {}
        last_src = {}
        max_rseq = collections.defaultdict(set)
        for partition, offset, key, h in records:
            event_id, subject = h.get("ce_id"), h.get("ce_subject", key)
            rseq = int(h.get("ce_recipientseq", "0"))
            if h.get("ce_recipient") != recipient:
                details["out_of_order"].append(f"{topic} offset {offset}: ce_recipient {h.get('ce_recipient')}")
            if rseq in rseqs[event_id]:
                redelivered += 1
                details["redelivered"].append(f"{recipient} {event_id} rseq {rseq} again at {partition}/{offset}, "
                                              f"written at {h.get('_at', 0.0):.1f}s")
                continue
            if rseqs[event_id]:
                duplicated += 1
                details["duplicated"].append(f"{recipient} {event_id}: rseq {sorted(rseqs[event_id])} and {rseq} "
                                             f"(offset {partition}/{offset})")
            rseqs[event_id].add(rseq)
            max_rseq[subject].add(rseq)
            delivered[recipient].add(event_id)
            if rseq <= last_rseq.get(subject, 0):
                party_ooo += 1
                details["out_of_order"].append(f"{recipient} {subject[:12]}: rseq {rseq} ({event_id}) at "
                                               f"{partition}/{offset} after {last_rseq[subject]}")
            last_rseq[subject] = max(rseq, last_rseq.get(subject, 0))
            if h.get("ce_source") == JOBCENTRE_SOURCE:
                seq = int(h.get("ce_sequence", "0"))
                if seq <= last_src.get(subject, 0):
                    party_ooo += 1
                    details["out_of_order"].append(
                        f"{recipient} {subject[:12]}: job-centre seq {seq} ({event_id}, rseq {rseq}) at "
                        f"{partition}/{offset} after seq {last_src[subject]}")
                last_src[subject] = max(seq, last_src.get(subject, 0))
        for subject, numbers in max_rseq.items():
            missing = set(range(1, max(numbers) + 1)) - numbers
            if missing:
                recipient_gaps += len(missing)
                details["recipient_gaps"].append(f"{recipient} {subject[:12]}: missing rseq {sorted(missing)[:20]}")
    for event_id, a in accepted.items():
        for recipient in expected_parties[a["case"]]:
            if event_id not in delivered[recipient]:
                lost += 1
                details["lost"].append(f"{event_id} (case {a['case']} seq {a['sequence']}, accepted at "
                                       f"{a['at']:.1f}s) missing on {recipient}")
    figures = dict(accepted=len(accepted), lost=lost, duplicated=duplicated,
                   out_of_order=party_ooo + canonical_ooo, redelivered=redelivered,
                   canonical_missing=canonical_missing, canonical_dup=canonical_dup,
                   canonical_mismatch=canonical_mismatch, seq_gaps=seq_gaps, recipient_gaps=recipient_gaps)
    return figures, details, subject_case


def missing_count(load, expected_parties, collector):
    """Cheap check used while draining: accepted (event, party) pairs not yet read."""
    seen = collections.defaultdict(set)
    for topic, records in collector.records.items():
        for _, _, _, h in records:
            seen[topic].add(h.get("ce_id"))
    missing = 0
    for a in load.accepted.values():
        if a["event_id"] not in seen[CANONICAL]:
            missing += 1
        for recipient in expected_parties[a["case"]]:
            if a["event_id"] not in seen[f"casebridge.party.{recipient}.v1"]:
                missing += 1
    return missing


# -------------------------------------------------------------------- main --

def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60, help="seconds of load (default 60; ignored with --events)")
    p.add_argument("--events", type=int, default=0, help="run until this many events are accepted")
    p.add_argument("--rate", type=float, default=100, help="target new calls per second, all threads (default 100)")
    p.add_argument("--threads", type=int, default=6, help="client threads (default 6)")
    p.add_argument("--cases", type=int, default=6, help="cases (citizens) the load spreads over (default 6)")
    p.add_argument("--replay-share", type=float, default=0.03, help="share of calls that repeat a used key")
    p.add_argument("--delivery-timeout", type=int, default=3, help="kafka.deliveryTimeout of the services, s")
    p.add_argument("--pause", type=float, default=0, help="broker SIGSTOP length, s (default delivery timeout + 3)")
    p.add_argument("--interval", type=float, default=8, help="seconds between the end of a fault and the next")
    p.add_argument("--warmup", type=float, default=5, help="seconds of load before the first fault")
    p.add_argument("--quiet-tail", type=float, default=5, help="no new fault in the last S seconds of load")
    p.add_argument("--down-time", type=float, default=1, help="how long a killed process or the broker stays down")
    p.add_argument("--attempt-timeout", type=float, default=0, help="gRPC deadline of one attempt (default delivery timeout + 5)")
    p.add_argument("--call-deadline", type=float, default=120, help="give up retrying one key after S seconds")
    p.add_argument("--drain-timeout", type=float, default=60,
                   help="give up waiting for the topics to catch up after S seconds without progress")
    p.add_argument("--drain-max", type=float, default=1800, help="and after S seconds in all")
    p.add_argument("--replicas", type=int, default=2,
                   help="coordination replicas (default 2, sharing a PostgreSQL store; 1: one instance on SQLite)")
    p.add_argument("--build", default=os.environ.get("CASEBRIDGE_BINARY_DIR", str(SOURCE / "build")))
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs, configs, data)")
    args = p.parse_args()
    if not args.pause:
        args.pause = args.delivery_timeout + 3
    if not args.attempt_timeout:
        args.attempt_timeout = args.delivery_timeout + 5
    return args


def main():
    args = parse_args()
    build = pathlib.Path(args.build).resolve()
    binaries = {name: build / f"services/{name}/casebridge-{name}" for name in ("jobcentre", "coordination")}
    for binary in binaries.values():
        if not os.access(binary, os.X_OK):
            raise HarnessError(f"{binary} not built (cmake --build {build} --target casebridge-jobcentre "
                               "casebridge-coordination), or pass --build DIR")
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="casebridge-fault-"))
    say(f"run directory {run_dir}")
    broker = Broker(run_dir / "kafka")
    postgres_dir = run_dir / "postgres"
    postgres_started = False
    services = []
    ok = False
    try:
        load_stubs(sys.executable, run_dir / "python")
        import grpc
        from casebridge.common.v1 import common_pb2
        from casebridge.coordination.v1 import coordination_service_pb2 as coordination_pb2
        from casebridge.coordination.v1 import coordination_service_pb2_grpc as coordination_grpc

        bootstrap = broker.start()
        say(f"broker {bootstrap}")
        key_file = run_dir / "pseudonym.key"
        key_file.write_text(secrets.token_hex(32))
        kafka = {"bootstrapServers": bootstrap, "createTopics": True, "deliveryTimeout": f"{args.delivery_timeout}s"}
        coordination_config = {
            "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": True},
            # A short session timeout: after kill -9 the group rebalances within seconds (the
            # producer ignores the consumer property, with a warning in the log).
            "kafka": dict(kafka, properties={"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}),
            "canonicalTopic": CANONICAL, "consumerGroup": "casebridge-coordination-0751",
            "municipality": MUNICIPALITY,
            "recipients": [{"id": r, "name": r} for r, _, _ in RECIPIENTS],
            "pseudonym": {"keyFile": str(key_file)},
        }
        jobcentre_config = {
            "municipality": MUNICIPALITY,
            "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": True},
            "kafka": kafka, "canonicalTopic": CANONICAL,
            "adapter": {"reference": {"databasePath": str(run_dir / "jobcentre-system.db")}},
            "ledgerPath": str(run_dir / "jobcentre-ledger.db"),
            "pseudonym": {"keyFile": str(key_file)},
        }
        if args.replicas > 1:
            postgres_started = True
            store_url = subprocess.run([str(POSTGRES), "start", "--dir", str(postgres_dir)], check=True,
                                       capture_output=True, text=True, timeout=120).stdout.strip()
            coordination_config["storeUrl"] = store_url
            say(f"coordination store {store_url} ({args.replicas} replicas)")
        else:
            coordination_config["storePath"] = str(run_dir / "coordination.db")
        coordinations = [
            Service("coordination" if args.replicas == 1 else f"coordination-{i + 1}", binaries["coordination"],
                    json.loads(json.dumps(coordination_config)), run_dir)
            for i in range(args.replicas)]
        coordination = coordinations[0]
        jobcentre = Service("jobcentre", binaries["jobcentre"], jobcentre_config, run_dir)
        services = [jobcentre, *coordinations]
        for replica in coordinations:
            replica.start()
        jobcentre.start()
        say(", ".join(f"{c.name} 127.0.0.1:{c.port}" for c in coordinations) +
            f", jobcentre 127.0.0.1:{jobcentre.port}")

        # Roles: every decision goes to known parties (no routing rules: every holder gets every event).
        run_id = secrets.token_hex(3)
        case_cprs = [f"{1 + i % 28:02d}{1 + (i // 28) % 12:02d}{(60 + i // 336) % 100:02d}-{1000 + i % 9000:04d}"
                     for i in range(args.cases)]
        coordination_stub = coordination_grpc.CoordinationServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{coordination.port}"))
        case_subjects = [None] * args.cases
        expected_parties = {}
        for i, cpr in enumerate(case_cprs):
            expected_parties[i] = []
            for recipient, role, on_case in RECIPIENTS:
                if not on_case(i):
                    continue
                answer = coordination_stub.AssignRole(coordination_pb2.AssignRoleRequest(
                    idempotency_key=f"fault-{run_id}-assign-{i}-{recipient}", case_ref=common_pb2.CaseRef(cpr=cpr),
                    role=common_pb2.Role.Value(role), recipient=recipient,
                    actor=common_pb2.Actor(role=common_pb2.ROLE_COORDINATING_CASEWORKER, unit="Jobcenter Aarhus")),
                    timeout=30)
                case_subjects[i] = answer.subject
                expected_parties[i].append(recipient)
        say(f"{sum(len(v) for v in expected_parties.values())} roles assigned on {args.cases} cases")

        load = Load(args, f"127.0.0.1:{jobcentre.port}", case_cprs, run_id)
        faults = Faults(args, broker, jobcentre, coordinations)
        faults.load_end = now() + args.duration
        load.run()
        faults.run(load)
        faults.note(f"faults over; stopping the load ({len(load.accepted)} accepted so far)")
        if not load.stop_and_join(args.call_deadline + args.attempt_timeout + 10):
            raise HarnessError("client threads did not finish")
        load_seconds = load.stopped_at - load.started_at
        faults.note(f"load drained: {len(load.accepted)} accepted")

        # Drain: read until every accepted event is on the canonical topic and its parties, or the deadline.
        topics = [CANONICAL] + [f"casebridge.party.{r}.v1" for r, _, _ in RECIPIENTS]
        collector = Collector(bootstrap, topics)
        # The deadline is for progress: coordination may lag behind a long run by minutes.
        hard_deadline = time.monotonic() + args.drain_max
        deadline = time.monotonic() + args.drain_timeout
        reported = time.monotonic()
        best = None
        while True:
            collector.poll(1.0)
            missing = missing_count(load, expected_parties, collector)
            if missing == 0 and collector.at_end():
                faults.note("every accepted event is on the canonical topic and on each of its parties")
                break
            if best is None or missing < best:
                best = missing
                deadline = time.monotonic() + args.drain_timeout
            if time.monotonic() - reported >= 10:
                say(f"draining: {missing} (event, topic) pairs not read yet")
                reported = time.monotonic()
            if time.monotonic() > min(deadline, hard_deadline):
                faults.note(f"drain deadline (no progress for {args.drain_timeout:.0f}s or {args.drain_max:.0f}s "
                            f"in all): {missing} (event, topic) pairs still missing")
                break
        collector.poll(1.0)
        faults.note(f"topics read: {sum(len(v) for v in collector.records.values())} records")
        figures, details, _ = analyse(load, case_subjects, expected_parties, collector)
        collector.close()

        # Report.
        print("\n== Fault timeline")
        for at, text in faults.timeline:
            print(f"  {at:7.1f}s  {text}")
        print("\n== Load")
        latencies = sorted(load.latencies) or [0]
        print(f"  {load.calls} calls with new keys, {len(load.accepted)} accepted, {len(load.unresolved)} never OK, "
              f"{load.attempts} attempts in all; {load.retried_calls} calls needed a retry "
              f"({load.replayed_after_retry} of them answered replayed=true)")
        print(f"  errors seen (then retried): {dict(load.errors) or 'none'}")
        print(f"  replays of used keys: {load.replays}, same event and replayed=true: {load.replays_ok}")
        print(f"  throughput {len(load.accepted) / load_seconds:.1f} accepted/s over {load_seconds:.1f}s; "
              f"latency incl. retries p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
        print(f"  faults: {dict(faults.counts)}; coordination replicas: {args.replicas}"
              f"{' (PostgreSQL store)' if args.replicas > 1 else ' (SQLite store)'}")
        print("\n== Details (up to 10 per kind)")
        for kind, lines in sorted(details.items()):
            print(f"  {kind}: {len(lines)}")
            for line in lines[:10]:
                print(f"    {line}")
        for line in load.anomalies[:10]:
            print(f"  contract: {line}")
        for key in load.unresolved[:10]:
            print(f"  never OK: {key}")
        print()
        print(" ".join(f"{k}={v}" for k, v in figures.items()) +
              f" replay_mismatch={len(load.anomalies)} unresolved={len(load.unresolved)}")
        failed = [k for k in ("lost", "duplicated", "out_of_order", "canonical_missing", "canonical_mismatch",
                              "seq_gaps", "recipient_gaps") if figures[k]]
        if load.anomalies:
            failed.append("replay_mismatch")
        if load.unresolved:
            failed.append("unresolved")
        if figures["accepted"] == 0:
            failed.append("nothing accepted")
        if failed:
            print(f"FAIL: {', '.join(failed)} (logs in {run_dir})")
            args.keep = True
            return 1
        print("PASS")
        ok = True
        return 0
    finally:
        for service in services:
            service.stop()
        if broker.started:
            try:
                broker.stop(purge=not args.keep)
            except Exception as error:  # noqa: BLE001 - cleanup must go on
                print(f"fault suite: broker stop failed: {error}", file=sys.stderr)
        if postgres_started:
            subprocess.run([str(POSTGRES), "stop", "--dir", str(postgres_dir)] + ([] if args.keep else ["--purge"]),
                           capture_output=True, timeout=120)
        if ok and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"run directory kept: {run_dir}", file=sys.stderr)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sys.exit(main())
    except HarnessError as error:
        print(f"fault suite: {error}", file=sys.stderr)
        sys.exit(2)
