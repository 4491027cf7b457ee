#!/usr/bin/env python3
"""Adds up lit's JSON results (.json) and JUnit reports (.xml: ctest, fuzz.sh)
into one line."""
import json
import sys
import xml.etree.ElementTree as ET

LIT_PASSED = {"PASS", "XFAIL"}
LIT_SKIPPED = {"UNSUPPORTED", "EXCLUDED", "SKIPPED"}


def lit_counts(path):
    passed = failed = skipped = 0
    with open(path) as f:
        for test in json.load(f)["tests"]:
            if test["code"] in LIT_PASSED:
                passed += 1
            elif test["code"] in LIT_SKIPPED:
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped


def junit_counts(path):
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        status = case.get("status", "run")
        if case.find("failure") is not None or status == "fail":
            failed += 1
        elif case.find("skipped") is not None or status in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(*reports):
    totals = [0, 0, 0]
    for path in reports:
        counts = lit_counts(path) if path.endswith(".json") else junit_counts(path)
        totals = [a + b for a, b in zip(totals, counts)]
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")


if __name__ == "__main__":
    main(*sys.argv[1:])
