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


class Recording(testresult.RegressionTestResult):
    def _record(self, test, status):
        record.write(f"{status} {test.id()}\n")

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "ERROR")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass")

    def addSubTest(self, test, subtest, err):
        # A failing subtest fails its test case, which then gets no result of its own.
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "FAIL" if failed else "ERROR")


testresult.RegressionTestResult = Recording

from test.libregrtest import main  # noqa: E402  (after the patch it must see)

main()
