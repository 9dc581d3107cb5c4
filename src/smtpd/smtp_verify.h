/*
 * smtp_verify - SPF, DKIM and DMARC for mail that comes in from other
 * hosts, recorded in an Authentication-Results: field (RFC 8601) and, if
 * the config says so, acted on. The evaluators are pure (spf.c,
 * dkim_verify.c, dmarc.c over a dns_cache); this file feeds them and asks
 * their DNS questions on the smtp process's resolver.
 *
 * When: SPF starts at MAIL (its lookups run while the client sends RCPT
 * and DATA); the message's bytes are fed to the DKIM verifier as they are
 * written to the data file (the body is hashed once, while it streams);
 * at the end of data the DKIM keys and the DMARC record are looked up in
 * parallel, and the message waits for the answers before the milters.
 *
 * Who: sessions on an smtp listener from clients that are neither
 * trusted-networks nor logged in. Submission and the local listener are
 * never checked (their mail is ours to sign, not to verify).
 *
 * What comes of it:
 *   - always an Authentication-Results: field with our authserv-id; any
 *     such field already in the message that claims our id is renamed
 *     in place (X-Spoofed-Auth-Results, the same length) so that a
 *     forged "pass" cannot pass for ours (RFC 8601 section 5);
 *   - a message with more than one From: address: 550 5.7.1 under
 *     `multiple-from reject` (the default), dmarc=permerror under tag;
 *   - `dmarc enforce`: a DMARC fail whose domain asks for reject gets
 *     550 5.7.1, one asking for quarantine goes on hold; `dmarc header`
 *     (the default) only records the result.
 * A DNS failure or timeout is a temperror and never rejects (P3).
 */
#ifndef SLUICE_SMTP_VERIFY_H
#define SLUICE_SMTP_VERIFY_H

#include <stddef.h>

struct buf;
struct proc;
struct smtp_session;
struct smtp_verify;

enum verify_verdict {
	VERIFY_ACCEPT = 0,	/* go on (the field is ready) */
	VERIFY_PENDING,		/* smtp_verify_done() is called later */
	VERIFY_REJECT,		/* the reply is in the verdict text */
	VERIFY_HOLD		/* DMARC quarantine: accept, on hold */
};

/* MAIL was accepted: start (or not) this transaction's checks */
void	smtp_verify_mail(struct smtp_session *);
/* bytes written to the data file, in order */
void	smtp_verify_feed(struct smtp_session *, const void *, size_t);
/* end of data (datafd still open): the verdict, or PENDING */
enum verify_verdict smtp_verify_end(struct smtp_session *);
/* the last verdict's reply text (REJECT) */
const char *smtp_verify_reply(struct smtp_session *);
/* the Authentication-Results: field to prepend, NULL if none */
const struct buf *smtp_verify_header(struct smtp_session *);
/* the transaction ends (RSET, commit, reject, disconnect) */
void	smtp_verify_reset(struct smtp_session *);

/* smtp_session.c: a PENDING verdict is in */
void	smtp_verify_done(struct smtp_session *, enum verify_verdict);

#endif
