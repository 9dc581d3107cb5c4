import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sluice_harness import Sluice  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "db_backends: run the test on each database backend "
        "(sqlite, postgresql), as test[sqlite] and test[postgresql]")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("db_backends") and \
            "db_backend" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the whole run (started on first use)."""
    from pg_harness import PgServer
    pg = PgServer()
    try:
        yield pg
    finally:
        pg.cleanup()


class Db:
    """The database of one test: its DSN, and SQL behind sluice's back."""

    def __init__(self, kind, dsn, path=None, pg=None, name=None):
        self.kind, self.dsn, self.path, self.pg, self.name = kind, dsn, path, pg, name

    def sql(self, statement):
        """Run statement(s); the rows of the last one, as lists of strings."""
        if self.kind == "postgresql":
            return self.pg.psql(statement, db=self.name, user=self.pg.ROLE)
        db = sqlite3.connect(self.path)
        try:
            if ";" in statement.strip().rstrip(";"):
                db.executescript(statement)
                rows = []
            else:
                rows = [[("" if v is None else str(v)) for v in row]
                        for row in db.execute(statement).fetchall()]
            db.commit()
            return rows
        finally:
            db.close()


@pytest.fixture
def db_backend(request):
    """The database backend of this test: "sqlite" unless the test is marked
    db_backends (then it runs once per backend)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database(request, db_backend):
    """None for SQLite (the harness's file), else a fresh PostgreSQL database."""
    if db_backend != "postgresql":
        yield None
        return
    pg = request.getfixturevalue("pg_server")
    name, dsn = pg.new_database()
    try:
        yield Db("postgresql", dsn, pg=pg, name=name)
    finally:
        pg.drop_database(name)


def _attach_db(s, database):
    s.db = database or Db("sqlite", "sqlite:%s/sluice.db" % s.dbdir,
                          path=os.path.join(s.dbdir, "sluice.db"))
    return s


@pytest.fixture
def sluice(database):
    """A running sluiced with domain example.test and account demo@example.test."""
    s = _attach_db(Sluice(database=database and database.dsn), database)
    try:
        s.add_domain("example.test")
        s.add_account("demo@example.test")
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def make_sluice(database):
    """Factory for servers with extra configuration; all are cleaned up.
    On PostgreSQL (a db_backends test) they share the test's database."""
    made = []

    def make(extra_conf="", tls=False, start=True):
        s = _attach_db(Sluice(extra_conf=extra_conf, tls=tls,
                              database=database and database.dsn), database)
        made.append(s)
        s.add_domain("example.test")
        s.add_account("demo@example.test")
        if start:
            s.start()
        return s

    yield make
    for s in made:
        s.cleanup()


@pytest.fixture
def peer():
    """An aiosmtpd server on a free loopback port that records what it
    gets (smtp_peers.Recorder); .port is its port."""
    from aiosmtpd.controller import Controller
    from sluice_harness import free_port
    from smtp_peers import Recorder
    rec = Recorder()
    rec.port = free_port()
    ctl = Controller(rec, hostname="127.0.0.1", port=rec.port)
    ctl.start()
    try:
        yield rec
    finally:
        ctl.stop()


@pytest.fixture
def make_dovecot():
    """Dovecots (dovecot_harness.py) for a test's sluices; their logs are
    printed at teardown (pytest shows them when the test failed)."""
    from dovecot_harness import Dovecot
    made = []

    def make(sluice, **kw):
        d = Dovecot(sluice, **kw)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        print("---- dovecot log (%s) ----\n%s" % (d.dir, d.read_log()))
        d.cleanup()
