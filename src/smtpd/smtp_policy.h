/*
 * smtp_policy - connection policy of the smtp process (P5): concurrent
 * connections and messages per client, messages per authenticated user,
 * the pregreet wait and DNSBL lookups. The counting is in ratelimit.c;
 * this file applies it to sessions, and smtp_session.c calls it from a
 * few hooks and writes the replies it is given.
 *
 * Exempt from every client rule: the local (sendmail) listener and
 * trusted-networks. Pregreet and DNSBL apply to smtp listeners only
 * (submission clients log in); the per-client message rate does not apply
 * to authenticated sessions, which are counted per user instead.
 *
 * A DNS failure or timeout is "not listed" (P3: never a 5xx on a
 * temporary error); it is logged.
 */
#ifndef SLUICE_SMTP_POLICY_H
#define SLUICE_SMTP_POLICY_H

#include <stddef.h>

#include "config.h"

struct buf;
struct dns;
struct event;
struct proc;
struct smtp_session;
struct policy_dnsq;

/* the per-session part, inside struct smtp_session */
struct smtp_policy {
	int			 counted;	/* in the connection table */
	struct event		*pregreet_ev;
	void			(*greet)(struct smtp_session *, int talked);
	struct policy_dnsq	*dnsq[CONFIG_DNSBL_MAX];	/* in flight */
	unsigned		 pending;	/* DNSBL lookups in flight */
	char			 reject[CONFIG_DNSBL_ZONE_MAX];	/* listed by */
	char			 tags[256];	/* "zone, zone" of tag lists */
};

enum policy_verdict { POLICY_GO = 0, POLICY_WAIT, POLICY_REFUSE };

/* at start, before privileges are dropped (the resolver reads its config) */
void	smtp_policy_init(struct proc *);
/* SIGHUP: the new config is in place */
void	smtp_policy_reload(struct proc *);
/* a new session: -1 and the reply (421) when it is over its limit;
   otherwise its DNSBL lookups start */
int	smtp_policy_connect(struct smtp_session *, char *reply, size_t len);
/*
 * The banner: 0 to send it now, 1 when it waits pregreet-wait. Then
 * greet(s, talked) is called: talked 1 the client wrote before the banner
 * (its input is drained), 0 it waited, -1 it hung up meanwhile. Input is
 * not read while the banner waits.
 */
int	smtp_policy_pregreet(struct smtp_session *,
	    void (*greet)(struct smtp_session *, int talked));
/* before a command after HELO: go on, wait for DNS (smtp_answered is
   called when it is in), or refuse with the reply (554) */
enum policy_verdict smtp_policy_dnsbl(struct smtp_session *, char *reply,
	    size_t len);
/* MAIL: -1 and the reply (451) when over a message rate */
int	smtp_policy_mail(struct smtp_session *, char *reply, size_t len);
/* DATA starts: the header lines to put first (DNSBL tags) into out;
   how many bytes were added */
size_t	smtp_policy_data(struct smtp_session *, struct buf *out);
/* the resolver of the smtp process (DNSBL, SPF, DKIM, DMARC); NULL if
   none could be made */
struct dns *smtp_policy_dns(void);
/* the session ends */
void	smtp_policy_end(struct smtp_session *);

#endif
