import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sluice_harness import Sluice  # noqa: E402


@pytest.fixture
def sluice():
    """A running sluiced with domain example.test and account demo@example.test."""
    s = Sluice()
    try:
        s.add_domain("example.test")
        s.add_account("demo@example.test")
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def make_sluice():
    """Factory for servers with extra configuration; all are cleaned up."""
    made = []

    def make(extra_conf="", tls=False, start=True):
        s = Sluice(extra_conf=extra_conf, tls=tls)
        made.append(s)
        s.add_domain("example.test")
        s.add_account("demo@example.test")
        if start:
            s.start()
        return s

    yield make
    for s in made:
        s.cleanup()
