#!/usr/bin/env python3
"""The fault suite's comparison (fault_suite.analyse) on synthetic topic contents:
each kind of failure it must report is reported, and allowed repeats are not failures."""
import collections
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import fault_suite as f  # noqa: E402

CASEWORKER = "casebridge.party.fault-caseworker.v1"
CITIZEN = "casebridge.party.fault-citizen.v1"


def headers(event_id, seq, rseq=None, recipient=None, source=f.JOBCENTRE_SOURCE):
    h = {"ce_id": event_id, "ce_source": source, "ce_subject": "S", "ce_sequence": f"{seq:020d}"}
    if rseq:
        h.update(ce_recipientseq=f"{rseq:020d}", ce_recipient=recipient)
    return h


class Fake:
    pass


def run(canonical, caseworker, citizen, accepted=None):
    load = Fake()
    load.accepted = accepted or {f"k{i}": dict(event_id=f"e{i}", subject="S", sequence=i, case=0, at=1.0)
                                 for i in (1, 2, 3)}
    collector = Fake()
    collector.records = collections.defaultdict(list)
    collector.records[f.CANONICAL] = [(0, o, "S", h) for o, h in enumerate(canonical)]
    collector.records[CASEWORKER] = [(0, o, "S", h) for o, h in enumerate(caseworker)]
    collector.records[CITIZEN] = [(0, o, "S", h) for o, h in enumerate(citizen)]
    figures, _, _ = f.analyse(load, ["S"], {0: ["fault-caseworker", "fault-citizen"]}, collector)
    return figures


def party(recipient, *pairs):
    return [headers(f"e{seq}", seq, rseq, recipient) for seq, rseq in pairs]


class AnalyseTest(unittest.TestCase):
    canonical = [headers(f"e{i}", i) for i in (1, 2, 3)]

    def test_a_clean_run_has_no_findings(self):
        figures = run(self.canonical, party("fault-caseworker", (1, 1), (2, 2), (3, 3)),
                      party("fault-citizen", (1, 1), (2, 2), (3, 3)))
        self.assertEqual({k: v for k, v in figures.items() if v}, {"accepted": 3})

    def test_a_repeat_with_the_same_recipient_sequence_is_redelivered_not_duplicated(self):
        figures = run(self.canonical + [headers("e3", 3)],
                      party("fault-caseworker", (1, 1), (2, 2), (2, 2), (3, 3)),
                      party("fault-citizen", (1, 1), (2, 2), (3, 3)))
        self.assertEqual((figures["redelivered"], figures["canonical_dup"]), (1, 1))
        self.assertEqual(figures["duplicated"] + figures["out_of_order"] + figures["lost"], 0)

    def test_an_event_under_a_second_recipient_sequence_is_duplicated(self):
        figures = run(self.canonical, party("fault-caseworker", (1, 1), (2, 2), (3, 3), (1, 4)),
                      party("fault-citizen", (1, 1), (2, 2), (3, 3)))
        self.assertEqual(figures["duplicated"], 1)
        self.assertEqual(figures["out_of_order"], 1)  # job-centre sequence 1 after 3

    def test_a_missing_delivery_is_lost_and_a_gap(self):
        figures = run(self.canonical, party("fault-caseworker", (1, 1), (2, 2), (3, 3)),
                      party("fault-citizen", (1, 1), (3, 3)))
        self.assertEqual((figures["lost"], figures["recipient_gaps"]), (1, 1))

    def test_reordering_on_the_canonical_or_a_party_topic_is_out_of_order(self):
        canonical = [headers("e1", 1), headers("e3", 3), headers("e2", 2)]
        figures = run(canonical, party("fault-caseworker", (1, 1), (3, 2), (2, 3)),
                      party("fault-citizen", (1, 1), (2, 3), (3, 2)))
        self.assertEqual(figures["out_of_order"], 3)  # canonical, caseworker seq, citizen rseq

    def test_an_accepted_event_missing_on_the_canonical_topic_is_reported(self):
        figures = run(self.canonical[:2], party("fault-caseworker", (1, 1), (2, 2)),
                      party("fault-citizen", (1, 1), (2, 2)))
        self.assertEqual(figures["canonical_missing"], 1)
        self.assertEqual(figures["lost"], 2)

    def test_each_case_system_numbers_a_case_by_itself(self):
        # The job centre's 1, 2 and the social system's 1, 2 interleaved on one case: in order.
        social = f.source_of("social")
        accepted = {"j1": dict(event_id="j1", subject="S", sequence=1, case=0, at=1.0),
                    "s1": dict(event_id="s1", subject="S", sequence=1, case=0, at=1.0, source=social),
                    "j2": dict(event_id="j2", subject="S", sequence=2, case=0, at=1.0),
                    "s2": dict(event_id="s2", subject="S", sequence=2, case=0, at=1.0, source=social)}
        order = [("j1", 1, f.JOBCENTRE_SOURCE), ("s1", 1, social), ("j2", 2, f.JOBCENTRE_SOURCE), ("s2", 2, social)]

        def topics(order):
            canonical = [headers(i, seq, source=src) for i, seq, src in order]
            parties = [[headers(i, seq, n, r, src) for n, (i, seq, src) in enumerate(order, 1)]
                       for r in ("fault-caseworker", "fault-citizen")]
            return canonical, *parties

        figures = run(*topics(order), accepted=accepted)
        self.assertEqual({k: v for k, v in figures.items() if v}, {"accepted": 4})
        # The social system's 2 before its 1: out of order on the canonical topic and both parties.
        figures = run(*topics([order[0], order[3], order[2], order[1]]), accepted=accepted)
        self.assertEqual(figures["out_of_order"], 3)
        # An answer naming another system than the record on the topic is a mismatch.
        accepted["s2"] = dict(accepted["s2"], source=f.JOBCENTRE_SOURCE)
        figures = run(*topics(order), accepted=accepted)
        self.assertEqual(figures["canonical_mismatch"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
