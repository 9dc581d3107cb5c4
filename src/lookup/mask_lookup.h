/*
 * mask_lookup - the masked relay's decisions, in the lookup process (the
 * only one with the tables). docs/masks.md has the model.
 *
 * mask_rcpt_check: at RCPT time, may sender write to this mask address?
 * mask_resolve: in the queue, where does the copy go and how is it
 * dressed (struct mask_route); creates the person's pair on a first
 * message and records the event for the statistics.
 */
#ifndef SLUICE_MASK_LOOKUP_H
#define SLUICE_MASK_LOOKUP_H

#include <stddef.h>

#include "addr.h"
#include "config.h"
#include "table.h"

enum mask_dir { MASK_DIR_IN = 0, MASK_DIR_REPLY = 1 };

/* what mask_check / mask_resolve answer (mapped to lookup_rcpt) */
enum mask_res {
	MASK_R_NOTMASK = 0,	/* not a mask address: the ordinary rules */
	MASK_R_OK,
	MASK_R_NOUSER,		/* unknown, bad MAC, disabled, expired: 5.1.1 */
	MASK_R_DENIED,		/* this sender may not write here: 5.7.1 */
	MASK_R_DROP,		/* accepted earlier, not relayed (logged) */
	MASK_R_TEMPFAIL,
	MASK_R_BOUNCE,		/* a relayed copy bounced: notify target */
};

struct mask_route {
	enum mask_dir	 dir;
	char		 service[TABLE_MASK_CODE_MAX + 1];
	char		 pair[TABLE_MASK_CODE_MAX + 1];
	char		 target[ADDR_STR_MAX + 1];	/* the copy goes to */
	char		 verp[ADDR_STR_MAX + 1];	/* its envelope sender */
	char		 from_mask[ADDR_STR_MAX + 1];	/* its From: */
	char		 reply_to[ADDR_STR_MAX + 1];	/* "" none */
	char		 person[ADDR_STR_MAX + 1];
	char		 service_real[ADDR_STR_MAX + 1];
	char		 user_mask[ADDR_STR_MAX + 1];
	char		 service_mask[ADDR_STR_MAX + 1];
};

/* is this address in the mask domain (then only the mask rules apply)? */
int		mask_domain_of(const struct config *, const char *addr);
enum mask_res	mask_check(struct table *, const struct config *,
		    const char *rcpt, const char *sender, char *why, size_t);
/*
 * flags: MASK_F_AUTO an automatic message; MASK_F_DELAYED a delay notice
 * (for a bounce address: not a failure, nothing to tell or count).
 * MASK_R_BOUNCE: the bounce of a relayed copy, counted against the real
 * address that bounced; the other side (route->target) gets a notice
 * naming only route->from_mask.
 */
#define MASK_F_AUTO	0x1
#define MASK_F_DELAYED	0x2
enum mask_res	mask_resolve(struct table *, const struct config *,
		    const char *rcpt, const char *sender, unsigned flags,
		    struct mask_route *, char *why, size_t);
/*
 * A relayed copy (envelope sender: our VERP address) was delivered: the
 * real address it went to works, so its bounce count starts again
 * (table_mask_ok). 1 reset, 0 not a VERP address of ours or nothing to
 * reset, -1 database trouble.
 */
int		mask_delivered(struct table *, const struct config *,
		    const char *sender);

#endif
