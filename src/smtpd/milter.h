/*
 * milter - the milter client of an SMTP session (milter protocol 6).
 *
 * Each configured milter gets one connection per session, opened at the
 * first MAIL; CONNECT, HELO and MAIL go then, RCPT at each accepted RCPT,
 * the header fields, EOH, the body (re-read from the data file, in chunks
 * of 64 KB) and BODYEOB at the end of data. Milters are asked in order;
 * the first reject or tempfail ends the step. While a milter is asked the
 * session waits in SMTP_W_MILTER and reads no input; the verdict comes
 * back through smtp_milter_done().
 *
 * Applied: accept, continue, reject, tempfail, discard, a reply code,
 * add/insert header (prepended to the message at commit), quarantine
 * (the message is committed on hold), change sender, add/delete
 * recipient (the session's envelope is changed before the commit). Not
 * applied (logged): change header, replace body.
 *
 * A milter that cannot be reached, times out, closes or sends a reply we
 * refuse is dropped for the session, and its on-failure policy decides:
 * accept (go on without it), tempfail (451) or reject (550).
 */
#ifndef SLUICE_MILTER_H
#define SLUICE_MILTER_H

struct smtp_session;
struct buf;

enum milter_stage { MILTER_S_MAIL, MILTER_S_RCPT, MILTER_S_DATA };

enum milter_verdict {
	MILTER_V_CONTINUE = 0,	/* go on (also: no milter configured) */
	MILTER_V_REJECT,	/* milter_reply_text() has the 5xx */
	MILTER_V_TEMPFAIL,	/* milter_reply_text() has the 4xx */
	MILTER_V_DISCARD,	/* end of data: accept and drop */
	MILTER_V_PENDING,	/* asked; smtp_milter_done() follows */
};

/* ask the milters about this step; arg: the address for MAIL and RCPT */
enum milter_verdict milter_step(struct smtp_session *, enum milter_stage,
	    const char *arg);
const char *milter_reply_text(const struct smtp_session *);
/* after the data step: headers to prepend ("" if none), hold or not */
const struct buf *milter_headers(const struct smtp_session *);
int	milter_held(const struct smtp_session *);
/* the milters' change-header and insert-header, applied to the data
   file (datafd still open); 0, or -1 on an I/O error (logged) */
int	milter_apply_edits(struct smtp_session *);
/* the transaction ended (RSET, commit, rejection): filters forget it */
void	milter_tx_reset(struct smtp_session *);
void	milter_session_free(struct smtp_session *);

#endif
