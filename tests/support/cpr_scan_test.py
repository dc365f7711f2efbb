#!/usr/bin/env python3
"""The CPR log scanner (cpr_scan.py): a log line with a CPR number fails the
scan, in either spelling, by the exact numbers and by the pattern; the ids and
numbers real service logs carry do not."""
import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cpr_scan  # noqa: E402

# Lines as the services write them (services/common/log.cc).
CLEAN = [
    '{"ts":"2026-11-23T16:31:20.175Z","level":"info","service":"coordination","msg":"ready","port":"33813",'
    '"canonical_topic":"casebridge.case-events.v1","consumer_group":"casebridge-coordination","recipients":"4",'
    '"municipality":"0751"}',
    '{"ts":"2026-11-23T16:31:21.002Z","level":"warning","service":"jobcentre","msg":"ledger drain failed; the '
    'background drain retries","subject":"3f5a0101901234c0a8e4d1f0b2c3d4e5f60718293a4b5c6d7e8f9012345678ab",'
    '"event_id":"ab010190-1234-4c5d-8e9f-0101901234ab","sequence":"00000000000000000042"}',
    '{"ts":"2026-11-23T16:31:22.000Z","level":"info","service":"jobcentre","msg":"shut down","grace_ms":"10000",'
    '"epoch":"1764000000","offset":"9912345678"}',
    "==== 16:31:19 harness: start #2",
    # librdkafka's own lines: the Unix time with a fraction (1801234567 would be 18 Jan 2023 as a CPR date).
    "%4|1801234567.123|SESSTMOUT|casebridge#consumer-3| [thrd:main]: Consumer group session timed out",
]


def scan(line, exact=()):
    return [kind for kind, _ in cpr_scan.scan_line(line, exact)]


class ScanLineTest(unittest.TestCase):
    def test_real_log_lines_are_clean(self):
        for line in CLEAN:
            self.assertEqual(scan(line, ["290890-1235"]), [], line)

    def test_a_cpr_in_a_log_line_is_found_in_both_spellings(self):
        for cpr in ("290890-1235", "2908901235"):
            line = f'{{"ts":"2026-11-23T16:31:20.175Z","level":"error","msg":"bad case ref","cpr":"{cpr}"}}'
            self.assertEqual(scan(line), ["pattern"], line)
            self.assertEqual(scan(line, ["2908901235"]), ["exact"], line)
            self.assertEqual(scan(line, ["290890-1235"]), ["exact"], line)

    def test_an_exact_cpr_is_found_even_glued_to_other_text(self):
        line = '{"msg":"unknown key","key":"refusal-for-cpr2908901235x"}'
        self.assertEqual(scan(line), [])  # no boundary: the pattern does not see it
        self.assertEqual(scan(line, ["290890-1235"]), ["exact"])

    def test_the_pattern_needs_a_plausible_date(self):
        self.assertEqual(scan("cpr 3213901234"), [])   # day 32
        self.assertEqual(scan("cpr 011390-1234"), [])  # month 13
        self.assertEqual(scan("cpr 000190-1234"), [])  # day 00
        self.assertEqual(scan("cpr 311299-9999"), ["pattern"])
        self.assertEqual(scan("cpr_010100-0000;"), ["pattern"])  # '_' and ';' are boundaries
        self.assertEqual(scan("cpr 0101000000."), ["pattern"])  # a full stop ends a sentence

    def test_the_finding_is_masked(self):
        [(kind, masked)] = cpr_scan.scan_line('{"cpr":"290890-1235"}', ["2908901235"])
        self.assertEqual(masked, '{"cpr":"<CPR>"}')
        self.assertNotIn("1235", masked)

    def test_cprs_are_collected_from_a_test_source(self):
        with tempfile.NamedTemporaryFile("w", suffix=".cc", delete=False) as f:
            f.write('constexpr char kA[] = "070791-4321";\nconstexpr char kB[] = "2305882468";\n'
                    'const int port = 1234567890;\n')
        self.assertEqual(cpr_scan.cprs_in_source(f.name), ["070791-4321", "2305882468"])
        pathlib.Path(f.name).unlink()


class MainTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def log(self, name, lines):
        path = pathlib.Path(self.dir.name) / name
        path.write_text("".join(line + "\n" for line in lines))
        return str(path)

    def test_a_log_with_a_cpr_fails_the_scan(self):
        clean = self.log("jobcentre.log", CLEAN)
        leaky = self.log("coordination.log", CLEAN + ['{"level":"error","msg":"AssignRole failed for 0707914321"}'])
        self.assertEqual(cpr_scan.main(["--cpr", "070791-4321", clean]), 0)
        self.assertEqual(cpr_scan.main(["--cpr", "070791-4321", clean, leaky]), 1)
        self.assertEqual(cpr_scan.main([clean, leaky]), 1)  # the pattern alone finds it too
        findings = cpr_scan.scan_files([clean, leaky], ["070791-4321"])
        self.assertEqual([(pathlib.Path(p).name, n, k) for p, n, k, _ in findings],
                         [("coordination.log", len(CLEAN) + 1, "exact")])

    def test_nothing_to_scan_is_an_error_not_a_pass(self):
        self.assertEqual(cpr_scan.main([]), 2)
        self.assertEqual(cpr_scan.main([str(pathlib.Path(self.dir.name) / "missing.log")]), 2)
        empty_source = self.log("player.cc", ["int main() { return 0; }"])
        self.assertEqual(cpr_scan.main(["--cpr-from", empty_source, self.log("a.log", CLEAN)]), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
