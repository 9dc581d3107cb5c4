"""`sluice mask` (issue 6, docs/masks.md): the services of the masked relay,
their pairs and statistics, on SQLite and PostgreSQL. Events are written
behind sluice's back (the db fixture's sql()) as a scripted conversation
with known timestamps, so the statistics are exact numbers."""
import json
import os
import re
import shutil
import subprocess

import pytest

from sluice_harness import BUILD, RUN_USER, Sluice, free_port

DOMAIN = "relay.example.test"
MASK_CONF = "mask-domain %s\nmask-key 00112233445566778899aabbccddeeff\n" % DOMAIN
SERVICE_RE = re.compile(r"^service-([a-z2-7]{20})@relay\.example\.test$")


@pytest.fixture
def ms(make_sluice):
    """A configured (not running) sluice with the masked relay on."""
    return make_sluice(extra_conf=MASK_CONF, start=False)


def mask(s, *args, rc=0):
    r = s.cli("mask", *args, check=False)
    assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
    return r


def add(s, real, *more):
    out = mask(s, "service", "add", real, "--json", *more).stdout
    return json.loads(out)


def listing(s):
    return {x["code"]: x for x in json.loads(mask(s, "list", "--json").stdout)}


@pytest.mark.db_backends
def test_service_lifecycle(ms, db_backend):
    r = mask(ms, "service", "add", "Shop@Example.ORG", "--label", "Listing 42 — Bücher")
    m = SERVICE_RE.match(r.stdout.strip())
    assert m, r.stdout
    code = m.group(1)
    j = add(ms, "<other@example.org>", "--expires", "2099-12-31T23:59:59Z")
    assert SERVICE_RE.match(j["address"]) and j["code"] != code
    assert j["real"] == "other@example.org" and j["label"] == ""
    assert j["expires"] == "2099-12-31T23:59:59Z"
    assert add(ms, "x@example.org", "--expires", "2099-01-02")["expires"] == \
        "2099-01-02T00:00:00Z"

    lst = listing(ms)
    assert len(lst) == 3
    assert lst[code]["real"] == "shop@example.org"
    assert lst[code]["label"] == "Listing 42 — Bücher"
    assert lst[code]["state"] == "active" and lst[code]["expires"] is None
    assert lst[code]["address"] == "service-%s@%s" % (code, DOMAIN)
    assert lst[code]["pairs"] == 0 and lst[code]["bounces"] == 0
    text = mask(ms, "list").stdout
    assert "service-%s@%s -> shop@example.org  active" % (code, DOMAIN) in text

    # disable / enable by address, by service-CODE and by CODE, any case
    r = mask(ms, "service", "disable", "service-%s@%s" % (code.upper(), DOMAIN))
    assert "disabled" in r.stdout
    assert listing(ms)[code]["state"] == "disabled"
    mask(ms, "service", "enable", "service-" + code)
    assert listing(ms)[code]["state"] == "active"
    mask(ms, "service", "disable", code)
    mask(ms, "service", "enable", code)

    # states set by the relay: bounces and expiry
    ms.db.sql("UPDATE mask_services SET disabled = 2, bounces = 3 WHERE code = '%s'"
              % code)
    assert listing(ms)[code]["state"] == "disabled (bounces)"
    assert listing(ms)[code]["bounces"] == 3
    mask(ms, "service", "enable", code)
    assert listing(ms)[code]["state"] == "active"
    assert listing(ms)[code]["bounces"] == 0
    ms.db.sql("UPDATE mask_services SET expires = 1000 WHERE code = '%s'" % j["code"])
    assert listing(ms)[j["code"]]["state"] == "expired"

    # pairs
    ms.db.sql("INSERT INTO mask_pairs (code, service, person, created) VALUES "
              "('%s', '%s', 'ann@client.test', 1700000000)" % ("c" * 20, code))
    pairs = json.loads(mask(ms, "pairs", code, "--json").stdout)
    assert pairs == [{"address": "user-%s@%s" % ("c" * 20, DOMAIN), "code": "c" * 20,
                      "person": "ann@client.test", "state": "active",
                      "created": "2023-11-14T22:13:20Z", "bounces": 0}]
    assert "user-%s@%s -> ann@client.test" % ("c" * 20, DOMAIN) in \
        mask(ms, "pairs", code).stdout
    assert listing(ms)[code]["pairs"] == 1
    assert json.loads(mask(ms, "pairs", j["code"], "--json").stdout) == []
    ms.db.sql("INSERT INTO mask_events (service, pair, kind, at) VALUES "
              "('%s', '%s', 'in', 1700000000)" % (code, "c" * 20))

    # del takes the pairs and events with it
    mask(ms, "service", "del", code, "--yes")
    assert code not in listing(ms)
    assert ms.db.sql("SELECT count(*) FROM mask_pairs") == [["0"]]
    assert ms.db.sql("SELECT count(*) FROM mask_events") == [["0"]]
    mask(ms, "service", "del", code, "--yes", rc=67)
    mask(ms, "service", "disable", code, rc=67)
    mask(ms, "pairs", code, rc=67)
    mask(ms, "stats", code, rc=67)


@pytest.mark.parametrize("args,rc,msg", [
    (["service", "add", "not-an-address"], 65, "not a valid address"),
    (["service", "add", "a@"], 65, "not a valid address"),
    (["service", "add", "service-x@" + DOMAIN], 65, "never forwards to a mask"),
    (["service", "add", "anyone@RELAY.example.test"], 65, "never forwards to a mask"),
    (["service", "add", "a@example.org", "--expires", "2099-13-01"], 65, "--expires"),
    (["service", "add", "a@example.org", "--expires", "2099-02-30"], 65, "--expires"),
    (["service", "add", "a@example.org", "--expires", "tomorrow"], 65, "--expires"),
    (["service", "add", "a@example.org", "--expires", "2099-01-01 10:00"], 65, "--expires"),
    (["service", "add", "a@example.org", "--expires", "2020-01-01"], 65, "future"),
    (["service", "add", "a@example.org", "--label", "a\tb"], 65, "--label"),
    (["service", "add", "a@example.org", "--label", "a\x1bb"], 65, "--label"),
    (["service", "add", "a@example.org", "--label", "a\u0085b"], 65, "--label"),
    (["service", "add", "a@example.org", "--label", "x" * 256], 65, "--label"),
    (["stats", "--since", "yesterday"], 65, "--since"),
    (["service", "disable", "service-%s@other.test" % ("a" * 20)], 67, "mask domain"),
    (["service", "disable", "a" * 20], 67, "no such service"),
    (["service", "enable", "tooshort"], 67, "no such service"),
    (["pairs", "user-" + "a" * 20], 67, "no such service"),
    (["pair", "disable", "a" * 20], 67, "no such pair"),
    (["pair", "enable", "service-" + "a" * 20], 67, "no such pair"),
    (["pair", "disable", "user-%s@other.test" % ("a" * 20)], 67,
     "mask domain"),
    (["pair", "disable"], 64, "usage"),
    (["pair", "delete", "a" * 20], 64, "usage"),
    (["pair", "disable", "a" * 20, "--json"], 64, "usage"),
    ([], 64, "usage"),
    (["service"], 64, "usage"),
    (["service", "add"], 64, "usage"),
    (["service", "add", "a@example.org", "--label"], 64, "needs a value"),
    (["service", "add", "a@example.org", "--since", "2020-01-01"], 64, "usage"),
    (["service", "disable", "x", "--json"], 64, "usage"),
    (["list", "extra"], 64, "usage"),
    (["frobnicate"], 64, "usage"),
    (["list", "--bogus"], 64, "unknown option"),
])
def test_bad_input(ms, args, rc, msg):
    r = mask(ms, *args, rc=rc)
    assert msg in r.stderr, r.stderr
    assert json.loads(mask(ms, "list", "--json").stdout) == []


def test_label_limit_and_help(ms):
    assert add(ms, "a@example.org", "--label", "é" * 127)["label"] == "é" * 127
    for args in (["--help"], ["service", "--help"], ["stats", "-h"],
                 ["service", "add", "--help"]):
        r = mask(ms, *args)
        assert r.stdout.startswith("usage: sluice [-c FILE] mask")


def test_without_mask_config(make_sluice):
    s = make_sluice(start=False)
    r = mask(s, "list", rc=78)
    assert "mask-domain" in r.stderr
    mask(s, "service", "add", "a@example.org", rc=78)
    assert mask(s, "--help").returncode == 0


def test_files_backend_has_no_masks():
    s = Sluice(extra_conf=MASK_CONF)
    try:
        tables = os.path.join(s.dir, "tables")
        os.mkdir(tables)
        for name in ("domains", "accounts"):
            with open(os.path.join(tables, name), "w") as f:
                f.write("")
            if os.geteuid() == 0:
                shutil.chown(os.path.join(tables, name), RUN_USER, RUN_USER)
        with open(s.conf, "a") as f:
            f.write("database files:%s\n" % tables)
        assert json.loads(mask(s, "list", "--json").stdout) == []
        r = mask(s, "service", "add", "a@example.org", rc=78)
        assert "read-only" in r.stderr and "needs a sqlite" in r.stderr
        mask(s, "service", "disable", "a" * 20, rc=67)
        assert "all: in=0 people=0" in mask(s, "stats").stdout
    finally:
        s.cleanup()


def test_database_down_is_temporary():
    s = Sluice(extra_conf=MASK_CONF + "database postgresql://u:pw@127.0.0.1:%d/db\n"
               % free_port())
    try:
        for args in (["list"], ["service", "add", "a@example.org"], ["stats"],
                     ["service", "disable", "a" * 20], ["pairs", "a" * 20]):
            r = mask(s, *args, rc=75)
            assert "postgresql" in r.stderr and "pw@" not in r.stderr
    finally:
        s.cleanup()


T = 1700000000  # 2023-11-14T22:13:20Z


def conversation(s):
    """Two services, six pairs, a scripted conversation; returns the codes."""
    s1, s2 = add(s, "shop@example.org")["code"], add(s, "desk@example.org")["code"]
    pairs = {"p1": s1, "p2": s1, "p3": s1, "p4": s1, "p5": s2, "p6": s2}
    codes = {p: p * 10 for p in pairs}  # "p1p1p1..." is 20 characters
    for p, svc in pairs.items():
        s.db.sql("INSERT INTO mask_pairs (code, service, person, created) VALUES "
                 "('%s', '%s', '%s@client.test', %d)" % (codes[p], svc, p, T))
    events = [
        ("p1", "in", 0), ("p1", "reply", 600), ("p1", "in", 700), ("p1", "reply", 800),
        ("p2", "in", 1000), ("p2", "auto-reply", 1010), ("p2", "reply", 4600),
        ("p3", "in", 2000), ("p3", "auto-in", 2100),
        ("p4", "in", 3000), ("p4", "reply", 3060),
        ("p5", "in", 100), ("p5", "reply", 100 + 86400),
        ("p6", "auto-in", 200),
    ]
    s.db.sql("INSERT INTO mask_events (service, pair, kind, at) VALUES " + ", ".join(
        "('%s', '%s', '%s', %d)" % (pairs[p], codes[p], k, T + dt) for p, k, dt in events))
    s.db.sql("INSERT INTO mask_events (service, pair, kind, at) VALUES "
             "('%s', '', 'bounce-in', %d)" % (s1, T + 5000))
    return s1, s2


def stat(d):
    return (d["messages"], d["people"], d["replies"], d["replied"],
            round(d["reply_rate"], 4), d["median"], d["p90"])


@pytest.mark.db_backends
def test_stats_scripted_conversation(ms, db_backend):
    s1, s2 = conversation(ms)
    j = json.loads(mask(ms, "stats", "--json").stdout)
    assert j["since"] is None
    by = {x["code"]: x for x in j["services"]}
    # s1: 6 in (one automatic), 4 people, 4 human replies, 3 replied;
    # response times 600, 3600, 60
    assert stat(by[s1]) == (6, 4, 4, 3, 0.75, 600, 3600)
    assert by[s1]["median_human"] == "10m 0s" and by[s1]["p90_human"] == "1h 0m"
    assert stat(by[s2]) == (2, 1, 1, 1, 1.0, 86400, 86400)
    assert by[s2]["address"] == "service-%s@%s" % (s2, DOMAIN)
    # all: times 60 600 3600 86400 -> median the 2nd, p90 the 4th
    assert stat(j["all"]) == (8, 5, 5, 4, 0.8, 600, 86400)

    text = mask(ms, "stats").stdout
    assert ("service-%s@%s: in=6 people=4 replies=4 replied=3 rate=75.0%% "
            "median=600s (10m 0s) p90=3600s (1h 0m)" % (s1, DOMAIN)) in text
    assert "all: in=8 people=5 replies=5 replied=4 rate=80.0% median=600s (10m 0s) " \
        "p90=86400s (1d 0h)" in text

    # one service
    j = json.loads(mask(ms, "stats", "service-%s@%s" % (s1, DOMAIN), "--json").stdout)
    assert [x["code"] for x in j["services"]] == [s1]
    assert stat(j["all"]) == (6, 4, 4, 3, 0.75, 600, 3600)

    # since T + 1000: p1 and p6 drop out, p5's reply has no "in" any more
    j = json.loads(mask(ms, "stats", "--since", "2023-11-14T22:30:00Z", "--json").stdout)
    assert j["since"] == "2023-11-14T22:30:00Z"
    by = {x["code"]: x for x in j["services"]}
    assert stat(by[s1]) == (4, 3, 2, 2, 0.6667, 60, 3600)
    assert stat(by[s2]) == (0, 0, 1, 0, 0.0, None, None)
    assert by[s2]["median_human"] == "-"
    assert stat(j["all"]) == (4, 3, 3, 2, 0.6667, 60, 3600)
    text = mask(ms, "stats", s2, "--since", "2023-11-14T22:30:00Z").stdout
    assert "median=- p90=-" in text

    # nothing since a later day
    j = json.loads(mask(ms, "stats", "--since", "2030-01-01", "--json").stdout)
    assert stat(j["all"]) == (0, 0, 0, 0, 0.0, None, None)


def test_table_functions_on_postgresql(pg_server):
    """The unit test of the mask tables (tests/unit/test_table.c), run on a
    fresh PostgreSQL database: pair_add twice, bounce limits, events."""
    name, dsn = pg_server.new_database()
    try:
        r = subprocess.run([os.path.join(BUILD, "tests", "unit", "test_table")],
                           env=dict(os.environ, SLUICE_TEST_PGSQL_DSN=dsn),
                           capture_output=True, text=True)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "[       OK ] test_pgsql_mask" in out, out
    finally:
        pg_server.drop_database(name)
