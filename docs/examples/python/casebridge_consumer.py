#!/usr/bin/env python3
"""A casebridge party-topic consumer in Python: an example for event consumers.

It reads one recipient's Kafka topic (casebridge.party.<recipient>.v1) with
confluent-kafka, checks the CloudEvents binary-mode headers, decodes each
value as casebridge.events.v1.CaseEvent (code generated from proto/ with
generate.sh), drops duplicates by ce_id, detects gaps per case with
ce_recipientseq, and sends a receipt to the coordination service over gRPC
(SendReceipt) once it has processed an event.

    ./generate.sh /tmp/cb-gen
    PYTHONPATH=/tmp/cb-gen python3 casebridge_consumer.py \\
        --bootstrap 127.0.0.1:9092 --recipient mentorhuset \\
        --coordination 127.0.0.1:50052 --max-events 10

Each processed event is printed as one JSON line.
"""
import argparse
import json
import sys
import time

import grpc
from confluent_kafka import Consumer, KafkaError

from casebridge.coordination.v1 import coordination_service_pb2 as coordination_pb2
from casebridge.coordination.v1 import coordination_service_pb2_grpc as coordination_grpc
from casebridge.events.v1 import case_event_pb2


class ConsumerError(Exception):
    """A record that breaks the wire contract."""


def header_map(message):
    return {k: (v.decode() if v is not None else None) for k, v in (message.headers() or [])}


def decode(message):
    """Returns (event, headers) for a party-topic record, or raises ConsumerError."""
    headers = header_map(message)
    if headers.get("content-type") != "application/protobuf":
        raise ConsumerError(f"content-type is {headers.get('content-type')!r}")
    if headers.get("ce_specversion") != "1.0":
        raise ConsumerError("not a CloudEvents 1.0 record")
    event = case_event_pb2.CaseEvent()
    event.ParseFromString(message.value())
    key = message.key().decode() if message.key() is not None else None
    if headers.get("ce_id") != event.id or headers.get("ce_type") != event.type:
        raise ConsumerError("ce_id / ce_type disagree with the event")
    if key != event.subject or headers.get("ce_subject") != event.subject:
        raise ConsumerError("the key / ce_subject disagree with the event's subject")
    return event, headers


class PartyConsumer:
    """Reads a recipient's topic; de-duplicates, detects gaps, sends receipts."""

    def __init__(self, bootstrap, recipient, coordination, group=None, topic=None):
        self.recipient = recipient
        self.topic = topic or f"casebridge.party.{recipient}.v1"
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group or f"{recipient}-example-consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })
        self.consumer.subscribe([self.topic])
        self.stub = coordination_grpc.CoordinationServiceStub(grpc.insecure_channel(coordination))
        self.seen_ids = set()        # for de-duplication (persist this in a real consumer)
        self.last_sequence = {}      # subject -> last ce_recipientseq processed
        self.gaps = []               # (subject, expected, got)

    def handle(self, message):
        """Processes one record; returns a summary dict, or None for a duplicate."""
        event, headers = decode(message)
        sequence = int(headers["ce_recipientseq"])
        if headers.get("ce_recipient") != self.recipient:
            raise ConsumerError(f"record for {headers.get('ce_recipient')!r} on my topic")
        if event.id in self.seen_ids:
            return None
        expected = self.last_sequence.get(event.subject, 0) + 1
        if sequence != expected:
            # A gap: ask for a replay (Subscribe with after_stream_sequence)
            # or alert; here it is recorded and reported.
            self.gaps.append((event.subject, expected, sequence))
        self.last_sequence[event.subject] = max(sequence, self.last_sequence.get(event.subject, 0))
        self.seen_ids.add(event.id)
        # ... the consumer's own processing would go here ...
        self.stub.SendReceipt(coordination_pb2.SendReceiptRequest(
            recipient=self.recipient, event_id=event.id,
            status=coordination_pb2.RECEIPT_STATUS_ACCEPTED), timeout=10)
        self.consumer.commit(message=message, asynchronous=False)
        summary = {"event_id": event.id, "type": event.type, "subject": event.subject,
                   "recipient_sequence": sequence, "source": event.source}
        which = event.WhichOneof("payload")
        if which == "decision":
            summary["outcome"] = case_event_pb2.DecisionOutcome.Name(event.decision.outcome)
            summary["reasons"] = [r.code for r in event.decision.reasons]
        elif which == "appointment":
            summary["appointment_id"] = event.appointment.appointment_id
        if event.HasField("supersedes"):
            summary["supersedes"] = event.supersedes.event_id
        return summary

    def run(self, max_events=None, timeout=30.0):
        """Consumes until `max_events` were processed or `timeout` seconds pass."""
        processed = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (max_events is None or len(processed) < max_events):
            message = self.consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    print(f"kafka error: {message.error()}", file=sys.stderr)
                continue
            summary = self.handle(message)
            if summary is not None:
                processed.append(summary)
        return processed

    def close(self):
        self.consumer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--coordination", required=True, help="host:port of the coordination service")
    parser.add_argument("--topic", help="default casebridge.party.<recipient>.v1")
    parser.add_argument("--group")
    parser.add_argument("--max-events", type=int)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    consumer = PartyConsumer(args.bootstrap, args.recipient, args.coordination, args.group, args.topic)
    try:
        for summary in consumer.run(args.max_events, args.timeout):
            print(json.dumps(summary, ensure_ascii=False))
        for subject, expected, got in consumer.gaps:
            print(json.dumps({"gap": {"subject": subject, "expected": expected, "got": got}}))
    finally:
        consumer.close()
    return 1 if consumer.gaps else 0


if __name__ == "__main__":
    sys.exit(main())
