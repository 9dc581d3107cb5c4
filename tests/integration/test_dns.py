"""The MX resolver (src/common/dns.c) against a real dnsmasq on loopback,
through tests/tools/dns-mx. Issue 3, item 4 and the DNS rows of "Bad input
and faults": ordering, equal-preference shuffle, implicit MX, null MX,
NXDOMAIN, SERVFAIL / REFUSED / timeout (temporary, never permanent), CNAME
chains, 50 MX records, MX hosts without addresses, IPv6, loops."""
import time

import pytest

from dns_harness import (DNSMasq, StubDNS, dns_mx, free_udp_tcp_port,
                         RCODE_SERVFAIL, T_MX)

BIG = 50


def records(stub_port, blackhole_port):
    r = [
        # ordinary: two preferences, mx2 dual-stack
        "--mx-host=example.test,mx1.example.test,10",
        "--mx-host=example.test,mx2.example.test,20",
        "--host-record=mx1.example.test,127.0.0.2",
        "--host-record=mx2.example.test,127.0.0.3,::1",
        # three equal preferences after a better one
        "--mx-host=equal.test,d.equal.test,5",
        "--mx-host=equal.test,a.equal.test,10",
        "--mx-host=equal.test,b.equal.test,10",
        "--mx-host=equal.test,c.equal.test,10",
        "--host-record=d.equal.test,127.0.0.10",
        "--host-record=a.equal.test,127.0.0.11",
        "--host-record=b.equal.test,127.0.0.12",
        "--host-record=c.equal.test,127.0.0.13",
        # no MX: implicit
        "--host-record=plain.test,127.0.0.4",
        "--host-record=plain6.test,127.0.0.5,::1",
        "--txt-record=nodata.test,nothing here",
        # RFC 7505
        "--mx-host=null.test,.,0",
        # CNAME chains: for the domain, for an MX host, for an MX query
        "--cname=alias1.test,alias2.test",
        "--cname=alias2.test,plain.test",
        "--mx-host=viacname.test,mxalias.viacname.test,10",
        "--cname=mxalias.viacname.test,mxalias2.viacname.test",
        "--cname=mxalias2.viacname.test,mxreal.viacname.test",
        "--host-record=mxreal.viacname.test,127.0.0.6",
        "--cname=mailalias.test,example.test",
        # MX hosts that do not resolve
        "--mx-host=ghost.test,ghost.example.test,10",
        "--mx-host=partial.test,nohost.partial.test,10",
        "--mx-host=partial.test,mx1.example.test,20",
        # IPv6 only
        "--mx-host=v6only.test,mx6.v6only.test,10",
        "--host-record=mx6.v6only.test,::1",
        # loops: we are the only MX, or the backup
        "--mx-host=loop.test,mx1.example.test,10",
        "--mx-host=backup.test,mx1.example.test,10",
        "--mx-host=backup.test,us.backup.test,20",
        "--mx-host=backup.test,mx2.example.test,30",
        "--host-record=us.backup.test,127.0.0.1",
        # temporary failures behind a SERVFAIL upstream
        "--server=/fail.test/127.0.0.1#%d" % stub_port,
        "--mx-host=mixed.test,mx.fail.test,10",
        "--mx-host=mixed.test,mx1.example.test,20",
        "--mx-host=tempmx.test,mx.fail.test,10",
        "--mx-host=tempmx.test,ghost.example.test,20",
        # an MX host whose lookups never come back
        "--server=/slow.test/127.0.0.1#%d" % blackhole_port,
        "--mx-host=hang.test,mx.slow.test,10",
        "--mx-host=hang.test,mx1.example.test,20",
    ]
    for i in range(1, BIG + 1):
        r.append("--mx-host=big.test,mx%d.big.test,%d" % (i, (i % 5) * 10))
        r.append("--host-record=mx%d.big.test,127.0.1.%d" % (i, i))
    return r


@pytest.fixture(scope="module")
def servfail():
    with StubDNS(RCODE_SERVFAIL) as stub:
        yield stub


@pytest.fixture(scope="module")
def blackhole():
    with StubDNS(rcode=None) as stub:
        yield stub


@pytest.fixture(scope="module")
def dns(servfail, blackhole):
    with DNSMasq(records(servfail.port, blackhole.port)) as d:
        yield d


def one(dns, domain, **kw):
    _, (res,) = dns_mx(dns.server, domain, **kw)
    return res


def test_mx_in_preference_order_ipv6_first(dns):
    r = one(dns, "example.test")
    assert r["status"] == "OK" and r["error"] is None
    assert r["hosts"] == [(10, "mx1.example.test", "127.0.0.2"),
                          (20, "mx2.example.test", "::1"),
                          (20, "mx2.example.test", "127.0.0.3")]
    assert r["records"] == 2 and r["implicit"] == 0


def test_prefer_ipv4(dns):
    r = one(dns, "example.test", prefer_ipv4=True)
    assert [h[2] for h in r["hosts"]] == ["127.0.0.2", "127.0.0.3", "::1"]


def test_equal_preferences_shuffled(dns):
    orders = set()
    for seed in range(40):
        r = one(dns, "equal.test", seed=seed)
        assert r["status"] == "OK"
        names = [h[1] for h in r["hosts"]]
        assert names[0] == "d.equal.test"          # the best always first
        assert sorted(names[1:]) == ["a.equal.test", "b.equal.test", "c.equal.test"]
        assert [h[0] for h in r["hosts"]] == [5, 10, 10, 10]
        orders.add(tuple(names[1:]))
        # a seed decides the order
        assert [h[1] for h in one(dns, "equal.test", seed=seed)["hosts"]] == names
    assert len(orders) >= 4, orders
    # unseeded runs vary too
    unseeded = {tuple(h[1] for h in one(dns, "equal.test")["hosts"]) for _ in range(20)}
    assert len(unseeded) >= 2


def test_implicit_mx(dns):
    r = one(dns, "plain.test")
    assert r["status"] == "OK" and r["implicit"] == 1 and r["records"] == 0
    assert r["hosts"] == [(0, "plain.test", "127.0.0.4")]
    r = one(dns, "plain6.test")
    assert r["hosts"] == [(0, "plain6.test", "::1"), (0, "plain6.test", "127.0.0.5")]


def test_name_without_mx_or_address_is_permanent(dns):
    r = one(dns, "nodata.test")
    assert r["status"] == "NOHOSTS" and r["implicit"] == 1
    assert r["error"].startswith("5.4.4 ")


def test_null_mx(dns):
    code, (r,) = dns_mx(dns.server, "null.test")
    assert code == 1
    assert r["status"] == "NULLMX" and r["hosts"] == []
    assert r["error"] == "5.1.10 null MX: null.test does not accept mail"


def test_nxdomain(dns):
    r = one(dns, "nope.test")
    assert r["status"] == "NXDOMAIN"
    assert r["error"] == "5.1.2 domain not found: nope.test"


def test_cname_chain(dns):
    # the domain itself is a chain alias1 -> alias2 -> plain (implicit MX)
    r = one(dns, "alias1.test")
    assert r["status"] == "OK"
    assert r["hosts"] == [(0, "alias1.test", "127.0.0.4")]
    # an MX host behind a chain of two CNAMEs
    r = one(dns, "viacname.test")
    assert r["hosts"] == [(10, "mxalias.viacname.test", "127.0.0.6")]
    # the MX query itself answered through a CNAME
    r = one(dns, "mailalias.test")
    assert [h[1] for h in r["hosts"]] == ["mx1.example.test", "mx2.example.test",
                                          "mx2.example.test"]


def test_fifty_mx_records_capped_and_ordered(dns):
    for seed in (1, 2):
        r = one(dns, "big.test", seed=seed)
        assert r["status"] == "OK"
        assert r["records"] == BIG
        assert len(r["hosts"]) == 20 and r["skipped"] == BIG - 20
        prefs = [h[0] for h in r["hosts"]]
        assert prefs == [0] * 10 + [10] * 10       # the 20 best, in order
        for pref, name, addr in r["hosts"]:
            i = int(name[2:].split(".")[0])
            assert (i % 5) * 10 == pref and addr == "127.0.1.%d" % i


def test_concurrent_lookups_with_a_tcp_answer(dns):
    # the 50-record answer needs TCP; the others must not stall behind it
    domains = ["big.test", "example.test", "plain.test", "null.test",
               "nope.test", "alias1.test"] * 3
    # a stalled query would time out (TEMPFAIL) and fail the comparison
    code, res = dns_mx(dns.server, *domains, timeout_ms=2000, tries=1)
    want = {"big.test": "OK", "example.test": "OK", "plain.test": "OK",
            "null.test": "NULLMX", "nope.test": "NXDOMAIN", "alias1.test": "OK"}
    # results come in completion order
    assert sorted((r["domain"], r["status"]) for r in res) == \
        sorted((d, want[d]) for d in domains)
    assert all(len(r["hosts"]) == 20 for r in res if r["domain"] == "big.test")


def test_mx_host_without_address(dns):
    r = one(dns, "ghost.test")
    assert r["status"] == "NOHOSTS" and r["skipped"] == 1 and r["tempfail"] == 0
    assert r["error"] == "5.4.4 no address for any mail exchanger of ghost.test"
    r = one(dns, "partial.test")
    assert r["status"] == "OK" and r["skipped"] == 1
    assert r["hosts"] == [(20, "mx1.example.test", "127.0.0.2")]


def test_ipv6_only_mx(dns):
    r = one(dns, "v6only.test")
    assert r["status"] == "OK"
    assert r["hosts"] == [(10, "mx6.v6only.test", "::1")]


def test_mx_pointing_at_ourselves(dns):
    r = one(dns, "loop.test", selfs=["127.0.0.2"])
    assert r["status"] == "LOOP"
    assert r["error"] == "5.4.6 mail for loop.test loops back to myself"
    # an implicit MX that is us
    assert one(dns, "plain.test", selfs=["127.0.0.4"])["status"] == "LOOP"
    # we are the backup: only the better MX is left
    r = one(dns, "backup.test", selfs=["127.0.0.1"])
    assert r["status"] == "OK"
    assert r["hosts"] == [(10, "mx1.example.test", "127.0.0.2")]
    # 127.0.0.1 in the list without being one of ours is not a loop
    r = one(dns, "backup.test", selfs=["127.0.0.9"])
    assert [h[2] for h in r["hosts"]] == ["127.0.0.2", "127.0.0.1", "::1", "127.0.0.3"]


def test_servfail_is_temporary(dns, servfail):
    n = len(servfail.queries)
    r = one(dns, "x.fail.test", timeout_ms=1000, tries=1)
    assert r["status"] == "TEMPFAIL"
    assert r["error"].startswith("4.4.3 DNS temporary failure for x.fail.test")
    assert ("x.fail.test", T_MX) in servfail.queries[n:]   # forwarded, SERVFAIL back


def test_servfail_straight_from_the_server():
    with StubDNS(RCODE_SERVFAIL) as stub:
        code, (r,) = dns_mx(stub.server, "example.test", timeout_ms=1000, tries=1)
        assert code == 1 and r["status"] == "TEMPFAIL"
        assert stub.queries == [("example.test", T_MX)]


def test_temporary_failure_of_one_mx_host(dns):
    # the better MX cannot be resolved now: use the other, but say so
    r = one(dns, "mixed.test", timeout_ms=1000, tries=1)
    assert r["status"] == "OK" and r["tempfail"] == 1
    assert r["hosts"] == [(20, "mx1.example.test", "127.0.0.2")]
    # one host temporarily unresolvable, the other nonexistent: TEMPFAIL,
    # not NOHOSTS (P3: temporary never becomes permanent)
    r = one(dns, "tempmx.test", timeout_ms=1000, tries=1)
    assert r["status"] == "TEMPFAIL" and r["error"].startswith("4.4.3 ")


def test_refused_is_temporary(dns):
    # outside the local domains, with no upstream: dnsmasq answers REFUSED
    r = one(dns, "example.org", timeout_ms=1000, tries=1)
    assert r["status"] == "TEMPFAIL" and r["error"].startswith("4.4.3 ")


def test_timeout_is_temporary():
    with StubDNS(rcode=None) as stub:
        t0 = time.monotonic()
        r = one(stub, "example.test", timeout_ms=300, tries=2)
        elapsed = time.monotonic() - t0
        assert r["status"] == "TEMPFAIL"
        assert "Timeout" in r["error"]
        assert len(stub.queries) == 2                  # both tries were sent
        assert elapsed < 10


def test_closed_port_is_temporary():
    port = free_udp_tcp_port()
    _, (r,) = dns_mx("127.0.0.1:%d" % port, "example.test", timeout_ms=300, tries=1)
    assert r["status"] == "TEMPFAIL" and r["error"].startswith("4.4.3 ")


def test_address_literals_need_no_dns(dns):
    before = dns.log().count("query[")
    code, res = dns_mx(dns.server, "[127.0.0.9]", "[IPv6:::1]", "[127.0.0]",
                       "[IPv6:nonsense]")
    res = {r["domain"]: r for r in res}
    assert [res[d]["status"] for d in ("[127.0.0.9]", "[IPv6:::1]", "[127.0.0]",
                                       "[IPv6:nonsense]")] == \
        ["OK", "OK", "BADNAME", "BADNAME"]
    assert res["[127.0.0.9]"]["hosts"] == [(0, "[127.0.0.9]", "127.0.0.9")]
    assert res["[IPv6:::1]"]["hosts"] == [(0, "[IPv6:::1]", "::1")]
    assert res["[127.0.0]"]["error"] == "5.1.2 bad domain name: [127.0.0]"
    assert dns.log().count("query[") == before


def test_bad_names_are_not_queried(dns):
    before = dns.log().count("query[")
    _, res = dns_mx(dns.server, "a..test", "sp ace.test", "x" * 64 + ".test")
    assert [r["status"] for r in res] == ["BADNAME"] * 3
    assert dns.log().count("query[") == before


def test_free_with_lookups_in_flight(dns):
    # every callback exactly once (the tool checks and exits 2 otherwise)
    code, res = dns_mx(dns.server, "example.test", "big.test", "[127.0.0.1]",
                       cancel=True)
    assert code == 1
    assert [r["status"] for r in res] == ["CANCELLED"] * 3
    assert all(r["error"].startswith("4.4.3 ") for r in res)


def test_free_with_host_lookups_in_flight(dns, blackhole):
    # the MX answer is in, one host's A/AAAA never come back: free then
    code, (r,) = dns_mx(dns.server, "hang.test", timeout_ms=5000, tries=1,
                        cancel_after_ms=500)
    assert code == 1 and r["status"] == "CANCELLED"
    assert ("mx.slow.test", 1) in blackhole.queries


def test_host_lookup_timeout_falls_back_to_the_next_mx(dns):
    r = one(dns, "hang.test", timeout_ms=300, tries=1)
    assert r["status"] == "OK" and r["tempfail"] == 1
    assert r["hosts"] == [(20, "mx1.example.test", "127.0.0.2")]
