#!/usr/bin/env python3
"""The Python witness: an independent client (confluent-kafka, and code that
grpcio-tools generated from proto/) drives the real casebridge binaries on
the real broker, receives and decodes a party topic, and sends receipts that
show in the coordination service's delivery status.

Run by ctest (label integration) with the venv of deploy/local/install-python:
    python_consumer_test.py   (env: CASEBRIDGE_KAFKA_DIR, CASEBRIDGE_BINARY_DIR,
                               CASEBRIDGE_SOURCE_DIR)
"""
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE = pathlib.Path(os.environ.get("CASEBRIDGE_SOURCE_DIR", pathlib.Path(__file__).parents[3]))
BINARY = pathlib.Path(os.environ["CASEBRIDGE_BINARY_DIR"])
KAFKA_DIR = pathlib.Path(os.environ["CASEBRIDGE_KAFKA_DIR"])
GENERATED = pathlib.Path(tempfile.mkdtemp(prefix="casebridge-py-gen-"))
subprocess.run([str(SOURCE / "docs/examples/python/generate.sh"), str(GENERATED), sys.executable],
               check=True)
sys.path[:0] = [str(GENERATED), str(SOURCE / "docs/examples/python")]

import grpc  # noqa: E402
from casebridge.common.v1 import common_pb2  # noqa: E402
from casebridge.coordination.v1 import coordination_service_pb2 as coordination_pb2  # noqa: E402
from casebridge.coordination.v1 import coordination_service_pb2_grpc as coordination_grpc  # noqa: E402
from casebridge.events.v1 import case_event_pb2  # noqa: E402
from casebridge.jobcentre.v1 import jobcentre_service_pb2_grpc as jobcentre_grpc  # noqa: E402
from casebridge.recording.v1 import recording_pb2  # noqa: E402
import casebridge_consumer  # noqa: E402

CPR = "121264-1236"


def wait_for_file(path, process, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)
    return int(path.read_text().strip())


class PythonConsumerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = pathlib.Path(tempfile.mkdtemp(prefix="casebridge-py-"))
        cls.bootstrap = (KAFKA_DIR / "bootstrap").read_text().strip()
        suffix = secrets.token_hex(4)
        cls.canonical = f"casebridge.case-events.py-{suffix}"
        cls.mentor_topic = f"casebridge.party.mentorhuset.py-{suffix}"
        key_file = cls.dir / "pseudonym.key"
        key_file.write_text(secrets.token_hex(32))
        kafka = {"bootstrapServers": cls.bootstrap, "createTopics": True}
        coordination = {
            "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": True, "portFile": str(cls.dir / "coordination.port")},
            "kafka": kafka, "canonicalTopic": cls.canonical,
            "consumerGroup": f"coordination-py-{suffix}", "municipality": "0751",
            "storePath": str(cls.dir / "coordination.db"),
            "recipients": [
                {"id": "aarhus-jobcenter", "topic": f"casebridge.party.aarhus-jobcenter.py-{suffix}"},
                {"id": "mentorhuset", "topic": cls.mentor_topic},
            ],
            "pseudonym": {"keyFile": str(key_file)},
        }
        jobcentre = {
            "municipality": "0751",
            "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": True, "portFile": str(cls.dir / "jobcentre.port")},
            "kafka": kafka, "canonicalTopic": cls.canonical,
            "adapter": {"reference": {"databasePath": str(cls.dir / "jobcentre.db")}},
            "ledgerPath": str(cls.dir / "jobcentre-ledger.db"),
            "pseudonym": {"keyFile": str(key_file)},
        }
        (cls.dir / "coordination.json").write_text(json.dumps(coordination))
        (cls.dir / "jobcentre.json").write_text(json.dumps(jobcentre))
        cls.processes = []
        for name, binary in (("coordination", "services/coordination/casebridge-coordination"),
                             ("jobcentre", "services/jobcentre/casebridge-jobcentre")):
            log = open(cls.dir / f"{name}.log", "w")
            cls.processes.append(subprocess.Popen(
                [str(BINARY / binary), "--config", str(cls.dir / f"{name}.json")], stderr=log))
        cls.coordination_port = wait_for_file(cls.dir / "coordination.port", cls.processes[0])
        cls.jobcentre_port = wait_for_file(cls.dir / "jobcentre.port", cls.processes[1])
        cls.coordination = coordination_grpc.CoordinationServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{cls.coordination_port}"))
        cls.jobcentre = jobcentre_grpc.JobCentreServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{cls.jobcentre_port}"))

    @classmethod
    def tearDownClass(cls):
        for process in cls.processes:
            process.terminate()
        for process in cls.processes:
            process.wait(timeout=30)

    def assign(self, recipient, role):
        return self.coordination.AssignRole(coordination_pb2.AssignRoleRequest(
            idempotency_key=f"py-assign-{recipient}", case_ref=common_pb2.CaseRef(cpr=CPR),
            role=role, recipient=recipient,
            actor=common_pb2.Actor(role=common_pb2.ROLE_COORDINATING_CASEWORKER, unit="Jobcenter Aarhus")),
            timeout=30)

    def refuse(self):
        deadline = case_event_pb2.ComplaintGuidance().deadline
        deadline.FromSeconds(int(time.time()) + 28 * 86400)
        request = recording_pb2.RecordDecisionRequest(
            context=recording_pb2.RecordContext(
                idempotency_key="py-refusal-1", case_ref=common_pb2.CaseRef(cpr=CPR),
                actor=common_pb2.Actor(role=common_pb2.ROLE_CASEWORKER, unit="Jobcenter Aarhus"),
                legal_basis=[common_pb2.LegalReference(law="LAB", paragraph="78")]),
            decision=case_event_pb2.Decision(
                outcome=case_event_pb2.DECISION_OUTCOME_REFUSED,
                offer=case_event_pb2.Offer(code="LAB-mentor-extended"),
                reasons=[case_event_pb2.Reason(code="need-covered-by-other-support")],
                alternatives=[case_event_pb2.Alternative(offer=case_event_pb2.Offer(code="LAB-mentor"))],
                complaint=case_event_pb2.ComplaintGuidance(text="Klag inden 4 uger.", deadline=deadline),
                decided_by=common_pb2.Actor(role=common_pb2.ROLE_CASEWORKER, unit="Jobcenter Aarhus")))
        return self.jobcentre.RecordDecision(request, timeout=30)

    def test_consumer_decodes_the_party_topic_and_its_receipt_shows_in_the_delivery_status(self):
        subject = self.assign("aarhus-jobcenter", common_pb2.ROLE_COORDINATING_CASEWORKER).subject
        self.assign("mentorhuset", common_pb2.ROLE_MENTOR)
        refusal = self.refuse()
        self.assertEqual(refusal.subject, subject)

        consumer = casebridge_consumer.PartyConsumer(
            self.bootstrap, "mentorhuset", f"127.0.0.1:{self.coordination_port}",
            group=f"py-consumer-{secrets.token_hex(4)}", topic=self.mentor_topic)
        try:
            processed = consumer.run(max_events=2, timeout=60)
        finally:
            consumer.close()

        # The mentor's own role event, then the refusal — decoded, in order.
        self.assertEqual([p["type"] for p in processed],
                         ["dk.casebridge.role.assigned.v1", "dk.casebridge.decision.refused.v1"])
        self.assertEqual([p["recipient_sequence"] for p in processed], [1, 2])
        self.assertEqual(consumer.gaps, [])
        decision = processed[1]
        self.assertEqual(decision["event_id"], refusal.event_id)
        self.assertEqual(decision["subject"], subject)
        self.assertEqual(decision["outcome"], "DECISION_OUTCOME_REFUSED")
        self.assertEqual(decision["reasons"], ["need-covered-by-other-support"])
        self.assertEqual(decision["source"], "/casebridge/jobcentre/0751")

        # The receipt shows: the mentor accepted, the caseworker has not answered.
        status = self.coordination.GetDeliveryStatus(
            coordination_pb2.GetDeliveryStatusRequest(event_id=refusal.event_id), timeout=10)
        states = {r.recipient: r.state for r in status.recipients}
        self.assertEqual(states["mentorhuset"], coordination_pb2.DELIVERY_STATE_ACCEPTED)
        self.assertIn(states["aarhus-jobcenter"], (coordination_pb2.DELIVERY_STATE_PUBLISHED,
                                                   coordination_pb2.DELIVERY_STATE_ROUTED))
        self.assertEqual(list(status.unacknowledged), ["aarhus-jobcenter"])

    def test_decoder_refuses_a_record_whose_headers_disagree_with_the_value(self):
        class Fake:
            def headers(self):
                return [("content-type", b"application/protobuf"), ("ce_specversion", b"1.0"),
                        ("ce_id", b"other"), ("ce_type", b"x"), ("ce_subject", b"s")]

            def value(self):
                return case_event_pb2.CaseEvent(id="real", type="x", subject="s").SerializeToString()

            def key(self):
                return b"s"

        with self.assertRaises(casebridge_consumer.ConsumerError):
            casebridge_consumer.decode(Fake())


if __name__ == "__main__":
    unittest.main(verbosity=2)
