/*
 * relay_dkim - DKIM signing in the relay process (docs/dkim.md).
 *
 * relay_dkim_load() (re)loads the dkim-sign keys of the config, as the
 * relay's unprivileged user, at start and on SIGHUP; a key that cannot be
 * loaded is logged and its mail goes out unsigned. relay_dkim_sign()
 * picks the keys of the From: domain (the envelope sender's when there is
 * no From:) and returns the DKIM-Signature fields to put first in the
 * header blob. Signing never fails a delivery: any error is logged and
 * the message is sent unsigned (0 signatures).
 */
#ifndef SLUICE_RELAY_DKIM_H
#define SLUICE_RELAY_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

void	relay_dkim_load(const struct config *);
size_t	relay_dkim_nkeys(void);
/*
 * Sign the message whose header section is hdr[0..hlen) (complete, with
 * its empty line) and whose body is the file fd from body_off to its end;
 * the fields go into sigs (LF ended). Returns how many signatures.
 */
size_t	relay_dkim_sign(const char *qid, const char *envfrom, const char *hdr,
	    size_t hlen, int fd, uint64_t body_off, struct buf *sigs);

#endif
