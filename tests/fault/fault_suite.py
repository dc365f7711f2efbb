#!/usr/bin/env python3
"""casebridge fault suite (issue 5, item 7; rolling restarts and the log scan: issue 7).

Starts its own Kafka broker (deploy/local/kafka/kafka, a temp dir, free ports),
casebridge-jobcentre, -social, -health and casebridge-coordination (plaintext, one
municipality) — by default two coordination replicas in one consumer group sharing
a PostgreSQL store (deploy/local/postgres/postgres, ADR 0019); --replicas 1 runs one
instance on SQLite —
assigns roles on a few cases, drives a steady load of RecordDecision on the three case
systems from a few client threads (every failed or timed-out call is retried with the
same idempotency key, with capped exponential backoff, as docs/integrators.md asks of
clients; a share of the calls repeat an already accepted key), and meanwhile
injects, in turn: kill -9 of the job centre + restart, kill -9 of a coordination
replica + restart (the replicas in turn, so the other one takes over its
partitions meanwhile), broker stop + start (same data dir and port), broker SIGSTOP for longer
than the producer's delivery timeout + SIGCONT, and a rolling restart (like a Kubernetes
rolling update: each service in turn gets SIGTERM, exits, is started again with the same
config and is SERVING before the next). Faults cycle until the load ends; the first
cycle always runs in full. Then it reads the canonical topic
and every party topic from the beginning and compares them, by event id, with
what the callers were told was accepted, stops the services (SIGTERM) and scans
their logs for CPR numbers (tests/support/cpr_scan.py).

Usage: tests/fault/run [--duration S] [--events N] [--rate R] [--threads T] ...
Exit 0 when nothing accepted was lost, duplicated (under two recipient sequence
numbers) or out of order, every service was rolled and exited 0 on SIGTERM, and no
log holds a CPR number; 1 otherwise; 2 when the harness itself failed.
"""
import argparse
import collections
import importlib
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
sys.path.insert(0, str(SOURCE / "tests/support"))
import cpr_scan  # noqa: E402  (tests/support/cpr_scan.py)

# The case systems the load records decisions in: their stub, gRPC service (health name)
# and a refusal their reference system accepts.
CASE_SYSTEMS = {
    "jobcentre": dict(module="casebridge.jobcentre.v1.jobcentre_service_pb2_grpc", stub="JobCentreServiceStub",
                      service="casebridge.jobcentre.v1.JobCentreService", offer="LAB-mentor-extended",
                      alternative="LAB-mentor", law="LAB", paragraph="78", unit="Jobcenter Aarhus"),
    "social": dict(module="casebridge.social.v1.social_service_pb2_grpc", stub="SocialServiceStub",
                   service="casebridge.social.v1.SocialService", offer="SEL-107", alternative="SEL-85",
                   law="SEL", paragraph="85", unit="Socialforvaltningen, Aarhus Kommune"),
    "health": dict(module="casebridge.health.v1.health_service_pb2_grpc", stub="HealthServiceStub",
                   service="casebridge.health.v1.HealthService", offer="SUL-140", alternative="SUL-119",
                   law="SUL", paragraph="140", unit="Sundhed og Omsorg, Aarhus Kommune"),
}
COORDINATION_SERVICE = "casebridge.coordination.v1.CoordinationService"


def source_of(system):
    """The ce_source of a case system's events."""
    return f"/casebridge/{system}/{MUNICIPALITY}"


JOBCENTRE_SOURCE = source_of("jobcentre")
CASE_SYSTEM_SOURCES = {source_of(system) for system in CASE_SYSTEMS}

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

def health_status(port, service, timeout=2.0):
    """grpc.health.v1.Health/Check of `service` on 127.0.0.1:port: "SERVING", "NOT_SERVING", … or the
    gRPC error code. Raw bytes, so no grpcio-health-checking package is needed."""
    import grpc
    name = service.encode()
    request = b"\x0a" + bytes([len(name)]) + name  # HealthCheckRequest{service} (names < 128 bytes)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda r: r,
                                    response_deserializer=lambda r: r)
        try:
            answer = check(request, timeout=timeout)
        except grpc.RpcError as error:
            return error.code().name if error.code() else "UNKNOWN"
    # HealthCheckResponse{status}: UNKNOWN (0, empty), SERVING (1), NOT_SERVING (2), SERVICE_UNKNOWN (3).
    return {b"": "UNKNOWN", b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING",
            b"\x08\x03": "SERVICE_UNKNOWN"}.get(answer, answer.hex())


class Service:
    """One casebridge binary run as a subprocess; restartable on the same port."""

    def __init__(self, name, binary, config, run_dir, health_name):
        self.name, self.binary, self.config, self.dir = name, binary, config, run_dir
        self.health_name = health_name
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
        # Ready: the port file is written once the server listens and its health is SERVING
        # (services/common/grpc_server.cc); ask gRPC health anyway, as a readiness probe would.
        last = None
        while (last := health_status(self.port, self.health_name)) != "SERVING":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"{self.name} not SERVING within {timeout}s (health: {last}); "
                                   f"log {self.log_path}:\n" + self.tail())
            time.sleep(0.05)  # poll interval
        return time.monotonic() - started

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout):
        """Graceful stop: SIGTERM, then polls until the process exits. Returns (exit status, seconds);
        the status is None if it did not exit within `timeout` s and was killed (kill -9)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        while self.process.poll() is None:
            if time.monotonic() - started > timeout:
                self.process.kill()
                self.process.wait()
                return None, time.monotonic() - started
            time.sleep(0.02)  # poll interval
        return self.process.returncode, time.monotonic() - started

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
    """Client threads that call RecordDecision at a steady rate and remember every outcome.

    New calls go to the case systems in turn (each case gets events from all of them). A client
    does what docs/integrators.md asks: a call that fails with UNAVAILABLE (Kafka did not confirm;
    the service is shutting down and refuses new calls, or is down), DEADLINE_EXCEEDED, CANCELLED
    (a call still running at the end of a shutdown's grace period) or any other non-deliberate
    error is retried with the same idempotency key, with capped exponential backoff and jitter."""

    def __init__(self, args, addresses, case_cprs, run_id):
        import grpc
        self.grpc = grpc
        self.args = args
        self.case_cprs = case_cprs
        self.run_id = run_id
        self.systems = list(addresses)
        options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 500)]
        stub_classes = {system: getattr(importlib.import_module(CASE_SYSTEMS[system]["module"]),
                                        CASE_SYSTEMS[system]["stub"]) for system in self.systems}
        # One channel per thread and system.
        self.stubs = [{system: stub_classes[system](grpc.insecure_channel(address, options=options))
                       for system, address in addresses.items()} for _ in range(args.threads)]
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
        self.errors_by_phase = collections.defaultdict(collections.Counter)  # fault in progress -> codes
        self.phase = None           # set by Faults while a fault is held
        self.retried_calls = 0
        self.replayed_after_retry = 0
        self.latencies = []
        self.started_at = None
        self.stopped_at = None

    def request(self, key, case, system):
        from casebridge.common.v1 import common_pb2
        from casebridge.events.v1 import case_event_pb2
        from casebridge.recording.v1 import recording_pb2
        profile = CASE_SYSTEMS[system]
        deadline = case_event_pb2.ComplaintGuidance().deadline
        deadline.FromSeconds(1_900_000_000)  # fixed, so a replay sends exactly the same request
        return recording_pb2.RecordDecisionRequest(
            context=recording_pb2.RecordContext(
                idempotency_key=key, case_ref=common_pb2.CaseRef(cpr=self.case_cprs[case]),
                actor=common_pb2.Actor(role=common_pb2.ROLE_CASEWORKER, unit=profile["unit"]),
                legal_basis=[common_pb2.LegalReference(law=profile["law"], paragraph=profile["paragraph"])]),
            decision=case_event_pb2.Decision(
                outcome=case_event_pb2.DECISION_OUTCOME_REFUSED,
                offer=case_event_pb2.Offer(code=profile["offer"]),
                reasons=[case_event_pb2.Reason(code="need-covered-by-other-support")],
                alternatives=[case_event_pb2.Alternative(offer=case_event_pb2.Offer(code=profile["alternative"]))],
                complaint=case_event_pb2.ComplaintGuidance(text="Klag inden 4 uger.", deadline=deadline),
                decided_by=common_pb2.Actor(role=common_pb2.ROLE_CASEWORKER, unit=profile["unit"])))

    def call(self, stub, key, case, system, rng):
        """Calls until OK (retrying with the same key) or the per-call deadline; returns the answer."""
        request = self.request(key, case, system)
        started = time.monotonic()
        deadline = started + self.args.call_deadline
        attempts = 0
        backoff = 0.1
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
                    self.errors_by_phase[self.phase or "no fault held"][f"{system} {code}"] += 1
                if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS",
                            "PERMISSION_DENIED", "UNAUTHENTICATED", "NOT_FOUND"):
                    with self.lock:
                        self.anomalies.append(f"{key}: {code} {error.details()}")
                    return None, attempts, time.monotonic() - started
                if time.monotonic() > deadline:
                    return None, attempts, time.monotonic() - started
                # Retry with the same key after a capped exponential backoff with jitter.
                time.sleep(rng.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, 1.0)

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
        stubs = self.stubs[index]
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
                    case, system = first["case"], first["system"]
                    self.replays += 1
                else:
                    n = self.counter
                    self.counter += 1
                    key = f"fault-{self.run_id}-{n}"
                    case = n % len(self.case_cprs)
                    system = self.systems[(n // len(self.case_cprs)) % len(self.systems)]
                    self.calls += 1
            answer, attempts, latency = self.call(stubs[system], key, case, system, rng)
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
                                          at=now(), system=system, source=source_of(system))
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

# The fault kinds, in the order they are injected (--faults picks some).
FAULT_KINDS = ["jobcentre-kill", "coordination-kill", "broker-restart", "broker-pause", "rolling-restart"]


class Faults:
    def __init__(self, args, broker, case_systems, coordinations):
        self.args, self.broker, self.coordinations = args, broker, coordinations
        self.jobcentre = case_systems[0]
        # A rolling update's order: the case systems, then each coordination replica.
        self.rolling_order = [*case_systems, *coordinations]
        self.rolled = collections.Counter({service.name: 0 for service in self.rolling_order})
        self.graceful_failures = []  # a service that did not exit 0 on SIGTERM in time
        self.coordination_kills = 0
        self.timeline = []
        self.counts = collections.Counter()
        self.first_cycle_done = False

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

    def rolling_restart(self):
        """A rolling update: each service in turn gets SIGTERM (graceful shutdown), exits, is started
        again with the same config and port, and is SERVING before the next one goes; the load runs on.
        Callers of a service being rolled see UNAVAILABLE (or CANCELLED) and retry with the same key."""
        self.note("rolling restart: " + ", ".join(service.name for service in self.rolling_order))
        for service in self.rolling_order:
            status, took = service.terminate(self.args.shutdown_timeout)
            if status != 0:
                self.graceful_failures.append(
                    f"{service.name} (rolling restart at {now():.1f}s): " +
                    (f"did not exit within {self.args.shutdown_timeout:.0f}s of SIGTERM (killed)"
                     if status is None else f"exited with status {status} on SIGTERM"))
            ready = service.start()
            self.rolled[service.name] += 1
            self.note(f"  casebridge-{service.name}: SIGTERM, exited {status} after {took:.1f}s; "
                      f"started again, SERVING after {ready:.1f}s")

    def pause_broker(self):
        self.broker.pause()
        self.note(f"broker SIGSTOP (pid {self.broker.paused_pid}) for {self.args.pause:.0f}s "
                  f"(delivery timeout {self.args.delivery_timeout}s)")
        time.sleep(self.args.pause)  # hold the fault
        self.broker.cont()
        self.note("broker SIGCONT")

    def run(self, load):
        kinds = {"jobcentre-kill": ("kill -9 jobcentre", self.kill_jobcentre),
                 "coordination-kill": ("kill -9 coordination", self.kill_coordination),
                 "broker-restart": ("broker stop/start", self.restart_broker),
                 "broker-pause": ("broker pause", self.pause_broker),
                 "rolling-restart": ("rolling restart", self.rolling_restart)}
        plan = [kinds[kind] for kind in FAULT_KINDS if kind in self.args.faults]
        self.note(f"load started: {self.args.threads} threads, {self.args.rate}/s target, "
                  f"on {', '.join(load.systems)}")
        index = 0
        next_at = time.monotonic() + self.args.warmup
        while plan:
            time.sleep(max(0.0, min(0.2, next_at - time.monotonic())))  # wait for the next slot
            if self.load_should_end(load):
                break
            if time.monotonic() < next_at:
                continue
            if not self.args.events and now() > self.load_end - self.args.quiet_tail and self.first_cycle_done:
                continue
            name, fault = plan[index % len(plan)]
            index += 1
            self.counts[name] += 1
            load.phase = name
            try:
                fault()
            finally:
                load.phase = None
            self.first_cycle_done = index >= len(plan)
            if not self.args.events:
                self.load_end = max(self.load_end, now() + self.args.quiet_tail)  # load after the last fault
            next_at = time.monotonic() + self.args.interval
        if not plan:
            self.first_cycle_done = True
            while not self.load_should_end(load):
                time.sleep(0.2)  # no faults: just the load

    def load_should_end(self, load):
        if self.args.events:
            return load.done()
        # With --duration the first cycle of faults runs in full, even past the duration.
        return now() >= self.load_end and self.first_cycle_done


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

    # Canonical topic: the case systems' events. Each system numbers a case's events itself
    # (its own ledger), so order and gaps are judged per (source, subject).
    canonical = collections.defaultdict(list)          # id -> [(partition, offset, subject, seq, id, at, source)]
    by_subject = collections.defaultdict(list)
    for partition, offset, key, h in collector.records[CANONICAL]:
        if h.get("ce_source") not in CASE_SYSTEM_SOURCES:
            continue
        entry = (partition, offset, h.get("ce_subject", key), int(h.get("ce_sequence", "0")), h.get("ce_id"),
                 h.get("_at", 0.0), h.get("ce_source"))
        canonical[h.get("ce_id")].append(entry)
        by_subject[(entry[6], entry[2])].append(entry)
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
        source = a.get("source", JOBCENTRE_SOURCE)
        if any(c[2] != a["subject"] or c[3] != a["sequence"] or c[6] != source for c in copies):
            canonical_mismatch += 1
            details["canonical_mismatch"].append(f"{event_id}: answer {source} {a['subject'][:12]} seq "
                                                 f"{a['sequence']}, topic {[(c[6], c[2][:12], c[3]) for c in copies]}")
    for (source, subject), entries in by_subject.items():
        system = source.split("/")[2]
        entries.sort(key=lambda e: (e[0], e[1]))
        seen, last = set(), 0
        seq_ids = {}
        for entry in entries:
            if entry[4] in seen:
                continue  # a repeated copy of an event: judged as canonical_dup
            seen.add(entry[4])
            if entry[3] <= last:
                canonical_ooo += 1
                details["out_of_order"].append(f"canonical {system} {subject[:12]}: seq {entry[3]} ({entry[4]}) "
                                               f"at offset {entry[1]} after seq {last}")
            last = max(last, entry[3])
            if seq_ids.setdefault(entry[3], entry[4]) != entry[4]:
                details["canonical_mismatch"].append(f"{system} {subject[:12]} seq {entry[3]}: two ids "
                                                     f"{seq_ids[entry[3]]} and {entry[4]}")
                canonical_mismatch += 1
        sequences = set(seq_ids)
        missing = set(range(1, max(sequences) + 1)) - sequences if sequences else set()
        if missing:
            seq_gaps += len(missing)
            details["seq_gaps"].append(f"{system} {subject[:12]}: missing sequences {sorted(missing)[:20]}")

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
            source = h.get("ce_source")
            if source in CASE_SYSTEM_SOURCES:  # each case system's own sequence, per case
                seq = int(h.get("ce_sequence", "0"))
                if seq <= last_src.get((source, subject), 0):
                    party_ooo += 1
                    details["out_of_order"].append(
                        f"{recipient} {subject[:12]}: {source.split('/')[2]} seq {seq} ({event_id}, rseq {rseq}) "
                        f"at {partition}/{offset} after seq {last_src[(source, subject)]}")
                last_src[(source, subject)] = max(seq, last_src.get((source, subject), 0))
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
    p.add_argument("--duration", type=float, default=60, help="seconds of load (default 60; longer if the first fault cycle needs it; "
                   "ignored with --events)")
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
    p.add_argument("--case-systems", default="jobcentre,social,health",
                   help="case systems under load and rolled (default jobcentre,social,health; jobcentre required)")
    p.add_argument("--faults", default=",".join(FAULT_KINDS),
                   help=f"fault kinds, injected in this order (default all: {','.join(FAULT_KINDS)})")
    p.add_argument("--shutdown-timeout", type=float, default=45,
                   help="a service must exit within S seconds of SIGTERM (rolling restart, final stop)")
    p.add_argument("--build", default=os.environ.get("CASEBRIDGE_BINARY_DIR", str(SOURCE / "build")))
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs, configs, data)")
    args = p.parse_args()
    if not args.pause:
        args.pause = args.delivery_timeout + 3
    if not args.attempt_timeout:
        args.attempt_timeout = args.delivery_timeout + 5
    args.case_systems = [name for name in args.case_systems.split(",") if name]
    args.faults = [kind for kind in args.faults.split(",") if kind]
    if "jobcentre" not in args.case_systems or set(args.case_systems) - set(CASE_SYSTEMS):
        p.error(f"--case-systems: a list of {', '.join(CASE_SYSTEMS)}, with jobcentre")
    if set(args.faults) - set(FAULT_KINDS):
        p.error(f"--faults: a list of {', '.join(FAULT_KINDS)}")
    return args


def main():
    args = parse_args()
    build = pathlib.Path(args.build).resolve()
    binaries = {name: build / f"services/{name}/casebridge-{name}" for name in (*args.case_systems, "coordination")}
    for binary in binaries.values():
        if not os.access(binary, os.X_OK):
            raise HarnessError(f"{binary} not built (cmake --build {build} --target "
                               f"{' '.join('casebridge-' + name for name in binaries)}), or pass --build DIR")
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
        case_system_configs = {name: {
            "municipality": MUNICIPALITY,
            "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": True},
            "kafka": kafka, "canonicalTopic": CANONICAL,
            "adapter": {"reference": {"databasePath": str(run_dir / f"{name}-system.db")}},
            "ledgerPath": str(run_dir / f"{name}-ledger.db"),
            "pseudonym": {"keyFile": str(key_file)},
        } for name in args.case_systems}
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
                    json.loads(json.dumps(coordination_config)), run_dir, COORDINATION_SERVICE)
            for i in range(args.replicas)]
        coordination = coordinations[0]
        case_systems = [Service(name, binaries[name], case_system_configs[name], run_dir,
                                CASE_SYSTEMS[name]["service"]) for name in args.case_systems]
        services = [*case_systems, *coordinations]
        for service in [*coordinations, *case_systems]:
            service.start()
        say(", ".join(f"{service.name} 127.0.0.1:{service.port}" for service in services))

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

        load = Load(args, {service.name: f"127.0.0.1:{service.port}" for service in case_systems}, case_cprs, run_id)
        faults = Faults(args, broker, case_systems, coordinations)
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

        # Stop the services as a pod's deletion would (SIGTERM; each must exit 0), then scan every
        # service's log, shutdown lines included, for CPR numbers: this run's citizens' in either
        # spelling anywhere, and anything shaped like one (tests/support/cpr_scan.py).
        for service in services:
            status, took = service.terminate(args.shutdown_timeout)
            if status != 0:
                faults.graceful_failures.append(
                    f"{service.name} (final stop): " +
                    (f"did not exit within {args.shutdown_timeout:.0f}s of SIGTERM (killed)"
                     if status is None else f"exited with status {status} on SIGTERM"))
        logs = [service.log_path for service in services]
        cpr_findings = cpr_scan.scan_files(logs, case_cprs)
        log_lines = sum(len(path.read_text(errors="replace").splitlines()) for path in logs)

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
        for phase, codes in sorted(load.errors_by_phase.items()):
            print(f"    while {phase}: {dict(sorted(codes.items()))}")
        print(f"  replays of used keys: {load.replays}, same event and replayed=true: {load.replays_ok}")
        print(f"  throughput {len(load.accepted) / load_seconds:.1f} accepted/s over {load_seconds:.1f}s; "
              f"latency incl. retries p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
        print(f"  faults: {dict(faults.counts)}; coordination replicas: {args.replicas}"
              f"{' (PostgreSQL store)' if args.replicas > 1 else ' (SQLite store)'}")
        print("\n== Rolling restarts and graceful shutdown")
        print("  rolling restarts: " + " ".join(f"{name}={count}" for name, count in faults.rolled.items()))
        sigterms = sum(faults.rolled.values()) + len(services)
        print(f"  SIGTERMs: {sigterms} ({sum(faults.rolled.values())} rolling, {len(services)} at the end); "
              f"{'every service exited 0' if not faults.graceful_failures else 'failures:'}")
        for line in faults.graceful_failures[:10]:
            print(f"    {line}")
        print("\n== Service logs")
        print(f"  {len(logs)} logs, {log_lines} lines, scanned for the run's {len(case_cprs)} CPR numbers (both "
              f"spellings) and the DDMMYY-SSSS pattern: "
              f"{'no CPR number' if not cpr_findings else f'{len(cpr_findings)} CPR number(s) found'}")
        for path, number, kind, masked in cpr_findings[:10]:
            print(f"    {pathlib.Path(path).name}:{number} ({kind}): {masked[:200]}")
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
              f" replay_mismatch={len(load.anomalies)} unresolved={len(load.unresolved)}"
              f" cpr_in_logs={len(cpr_findings)}")
        failed = [k for k in ("lost", "duplicated", "out_of_order", "canonical_missing", "canonical_mismatch",
                              "seq_gaps", "recipient_gaps") if figures[k]]
        if load.anomalies:
            failed.append("replay_mismatch")
        if load.unresolved:
            failed.append("unresolved")
        if figures["accepted"] == 0:
            failed.append("nothing accepted")
        if cpr_findings:
            failed.append("cpr_in_logs")
        if faults.graceful_failures:
            failed.append("graceful shutdown")
        # Every service rolled at least once: with --duration the first cycle always runs in full.
        if "rolling-restart" in args.faults and (not args.events or faults.first_cycle_done):
            missed = [name for name, count in faults.rolled.items() if count == 0]
            if missed:
                failed.append(f"not rolled: {', '.join(missed)}")
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
