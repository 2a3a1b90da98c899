"""Run CPython's regression tests through regrtest, and write one line per test case to
standard output: "STATUS TEST_ID", STATUS one of ok, FAIL, ERROR, skipped, xfail, xpass.

regrtest's own report goes to standard error instead, so nothing a test prints can break a
line of the record. Used by tests/cpython.rs, outside and inside the sandbox alike:

    python3 record.py [regrtest options and test modules]
"""

import os
import sys

from test.support import testresult

# The record is the original standard output; everything else writes to standard error.
record = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


regrtest = testresult.RegressionTestResult


class Recording(regrtest):
    def addSubTest(self, test, subtest, err):
        # A failing subtest fails its test case, which then gets no result of its own.
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            record.write(f"{'FAIL' if failed else 'ERROR'} {test.id()}\n")


def recording(name, status):
    """regrtest's own `name` method, then the case's line."""
    def method(self, test, *args):
        getattr(regrtest, name)(self, test, *args)
        record.write(f"{status} {test.id()}\n")
    return method


for name, status in [
    ("addSuccess", "ok"),
    ("addFailure", "FAIL"),
    ("addError", "ERROR"),
    ("addSkip", "skipped"),
    ("addExpectedFailure", "xfail"),
    ("addUnexpectedSuccess", "xpass"),
]:
    setattr(Recording, name, recording(name, status))

testresult.RegressionTestResult = Recording

from test.libregrtest import main  # noqa: E402  (after the patch it must see)

main()
