"""Crash safety (issue 2, DESIGN.md P1/P2): send 2,000 messages over parallel
sessions while SIGKILLing the whole sluiced process group at random moments,
restarting it each time. Every message that got its 250 after DATA must end
up in the Maildir (lost == 0). Duplicates are allowed (P2) but counted and
reported: in the test output (a warning and junit properties) and in
crash-results.json under the test's temporary directory.

Each message carries a token (which message) and an attempt number (which
send of it: clients retry after a connection error or a 4xx, like a real
MTA). So a duplicate is either
  - "retry": two different attempts of one token were delivered -- the
    server committed an attempt but died before the client saw its 250;
    unavoidable in SMTP, not a server duplicate;
  - "redelivery": the same attempt was delivered twice -- the server's own
    duplicate window (Maildir rename -> envelope state write, P2).
"""
import json
import os
import random
import re
import smtplib
import sys
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from sluice_harness import Sluice, wait_for  # noqa: E402

N_MESSAGES = 2000
N_THREADS = 8
N_KILLS = 20                    # at least 10 (issue 2)
SEED = int(os.environ.get("SLUICE_CRASH_SEED", "20251123"))
DEADLINE = 600                  # seconds: only stops a hung run
RCPT = "demo@example.test"


class Tally:
    """What the clients know: which tokens were acknowledged (250 after
    DATA), how many attempts each took, and any permanent refusal."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}         # token -> (attempt, queue id)
        self.attempts = {}      # token -> attempts made
        self.permanent = []     # (token, reply) for 5xx replies
        self.errors = 0         # connection errors and 4xx replies seen
        self.stop = threading.Event()
        self.failure = None     # exception in the killer thread

    def next_attempt(self, token):
        with self.lock:
            self.attempts[token] = self.attempts.get(token, 0) + 1
            return self.attempts[token]

    def ack(self, token, attempt, qid):
        with self.lock:
            self.acked[token] = (attempt, qid)

    def n_acked(self):
        with self.lock:
            return len(self.acked)


def message(token, attempt, rng):
    filler = "".join("%s filler line %d of %s\r\n" % ("x" * rng.randrange(60), i, token)
                     for i in range(rng.randrange(1, 60)))
    return ("From: <sender@client.test>\r\n"
            "To: <%s>\r\n"
            "Subject: crash %s attempt %d\r\n"
            "Message-ID: <%s.%d@client.test>\r\n"
            "X-Crash-Token: %s\r\n"
            "X-Crash-Attempt: %d\r\n"
            "\r\n"
            "start %s\r\n%s.leading dot line\r\nend %s\r\n"
            % (RCPT, token, attempt, token, attempt, token, attempt, token, filler,
               token)).encode()


class Retry(Exception):
    pass


def client(s, tid, tokens, tally):
    """Send tokens in order over reused sessions; retry each until a 250."""
    rng = random.Random(SEED * 1000 + tid)
    conn = None
    i = 0
    while i < len(tokens) and not tally.stop.is_set():
        token = tokens[i]
        try:
            if conn is None:
                conn = smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30)
                code, _ = conn.ehlo("client%d.client.test" % tid)
                if code != 250:
                    raise Retry()
            attempt = tally.next_attempt(token)
            code, resp = conn.mail("sender@client.test")
            if code == 250:
                code, resp = conn.rcpt(RCPT)
            if code == 250:
                code, resp = conn.data(message(token, attempt, rng))
            if code == 250:
                qid = resp.decode(errors="replace").split()[-1]
                tally.ack(token, attempt, qid)
                i += 1
                if rng.random() < 0.05:         # sessions of varied length
                    conn.quit()
                    conn = None
                continue
            if 400 <= code < 500:
                raise Retry()
            with tally.lock:
                tally.permanent.append((token, code, resp))
            i += 1                              # a 5xx is final: give up on it
        except (OSError, smtplib.SMTPException, Retry):
            with tally.lock:
                tally.errors += 1
            try:
                if conn is not None:
                    conn.close()
            except OSError:
                pass
            conn = None
            time.sleep(rng.uniform(0.005, 0.05))
    if conn is not None:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            pass


def killer(s, tally, rng, done, kills):
    """Kill sluiced when the acknowledged count passes random thresholds,
    a random moment later, and start it again on the same spool."""
    try:
        thresholds = sorted(rng.sample(range(40, N_MESSAGES - 40), N_KILLS))
        for th in thresholds:
            while tally.n_acked() < th and not done.is_set():
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
            s.kill()
            kills.append(tally.n_acked())
            time.sleep(rng.uniform(0, 0.2))     # down for a while: refused
            s.start()
    except BaseException as e:  # noqa: B902 -- reported by the test
        tally.failure = e
        tally.stop.set()


def delivered(s):
    """token -> list of attempts found in the Maildir (new/ and cur/)."""
    out = {}
    bad = []
    for m in s.messages(RCPT):
        tok = re.search(rb"^X-Crash-Token: (\S+)$", m, re.M)
        att = re.search(rb"^X-Crash-Attempt: (\d+)$", m, re.M)
        if not tok or not att:
            bad.append(m[:300])
            continue
        token = tok.group(1).decode()
        if not m.endswith(b"end %s\n" % tok.group(1)) or \
                b"\n..leading" in m or b"\n.leading dot line\n" not in m:
            bad.append(m[:300])
        out.setdefault(token, []).append(int(att.group(1)))
    return out, bad


def test_crash_kill9_loses_nothing(tmp_path, record_property):
    rng = random.Random(SEED)
    s = Sluice(extra_conf="retry-interval 1s\n")
    try:
        s.add_domain("example.test")
        s.add_account("demo@example.test")
        s.start()
        tally = Tally()
        tokens = ["t%05d-%08x" % (n, rng.getrandbits(32)) for n in range(N_MESSAGES)]
        done = threading.Event()
        kills = []
        threads = [threading.Thread(target=client, args=(s, t, tokens[t::N_THREADS], tally),
                                    daemon=True) for t in range(N_THREADS)]
        kt = threading.Thread(target=killer, args=(s, tally, random.Random(SEED + 1),
                                                   done, kills), daemon=True)
        started = time.monotonic()
        for t in threads:
            t.start()
        kt.start()
        for t in threads:
            t.join(max(1, DEADLINE - (time.monotonic() - started)))
        hung = any(t.is_alive() for t in threads)
        tally.stop.set()
        done.set()
        kt.join(60)
        assert tally.failure is None, "restart failed: %r\n%s" % (tally.failure,
                                                                 s.read_log()[-4000:])
        assert not hung, "clients did not finish within %ds" % DEADLINE
        assert not kt.is_alive()

        # the final crash and restart: whatever was in flight is recovered
        s.kill()
        kills.append(tally.n_acked())
        s.start()
        wait_for(lambda: s.queue_empty(), timeout=180, what="the queue to drain")
        got, bad = delivered(s)

        acked = tally.acked
        lost = sorted(t for t in acked if t not in got)
        redelivered = {t: a for t, a in got.items() if len(a) != len(set(a))}
        retried = {t: a for t, a in got.items() if len(set(a)) > 1}
        n_dup = sum(len(a) - 1 for a in got.values())
        results = {
            "seed": SEED, "messages": N_MESSAGES, "threads": N_THREADS,
            "kills": len(kills), "acked_at_kill": kills,
            "acknowledged": len(acked), "client_errors": tally.errors,
            "attempts": sum(tally.attempts.values()),
            "delivered_files": sum(len(a) for a in got.values()),
            "lost": len(lost), "duplicates": n_dup,
            "duplicates_redelivery": sum(len(a) - len(set(a)) for a in redelivered.values()),
            "duplicates_retry": sum(len(set(a)) - 1 for a in retried.values()),
            "permanent_refusals": len(tally.permanent),
            "corrupt_files": s.spool_files("corrupt"),
            "lost_tokens": lost[:50],
            "redelivered_tokens": sorted(redelivered)[:50],
        }
        (tmp_path / "crash-results.json").write_text(json.dumps(results, indent=2))
        for k in ("kills", "acknowledged", "lost", "duplicates", "duplicates_redelivery",
                  "duplicates_retry", "client_errors"):
            record_property(k, results[k])
        summary = ("crash test: %(kills)d kills, %(acknowledged)d acknowledged, "
                   "%(lost)d lost, %(duplicates)d duplicated (%(duplicates_redelivery)d "
                   "redelivered by the server, %(duplicates_retry)d from client retries "
                   "of a commit whose 250 was lost), %(client_errors)d client errors"
                   % results)
        print(summary + "; results in %s" % (tmp_path / "crash-results.json"))
        warnings.warn(summary)     # reported on every run, -s or not

        assert len(kills) >= 10
        assert not tally.permanent, "5xx during the crash test: %r" % tally.permanent[:5]
        assert not bad, "damaged or foreign messages in the Maildir: %r" % bad[:3]
        assert not set(got) - set(tokens), "delivered tokens nobody sent"
        assert len(acked) == N_MESSAGES
        assert lost == [], "%d acknowledged messages lost: %s" % (len(lost), lost[:20])
        assert s.spool_files("corrupt") == [], "a crash left unparsable spool files"
        assert s.spool_files("tmp") == [] and s.spool_files("data") == []
        assert s.sanitizer_reports() == []
    finally:
        s.cleanup()
