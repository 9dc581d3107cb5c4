/*
 * mask - the pure core of the masked relay (issue 6): codes, the header
 * section of a relayed copy, loop and auto-reply checks, VERP addresses.
 * No I/O, no tables, no processes; OpenSSL for HMAC-SHA256 and RAND_bytes.
 *
 * Codes. A mask address is service-CODE@DOMAIN or user-CODE@DOMAIN.
 * CODE is MASK_RAND_LEN random base32 characters (80 bits; alphabet a-z2-7,
 * RFC 4648 lower-cased) followed by MASK_MAC_LEN MAC characters: the first
 * 20 bits of HMAC-SHA256(key, KIND ":" RANDOM) in base32, KIND being
 * "service" or "user". A guessed or mistyped code fails without a table
 * look-up, and a code of one kind never verifies as the other. Keys rotate:
 * the first key signs, any key verifies. Codes are case-insensitive.
 *
 * The relayed copy's header section (mask_rewrite) is built by allow-list:
 * From, To, Cc, Subject, Date, Message-ID, References, In-Reply-To,
 * MIME-Version, Content-*, List-* and Auto-Submitted are kept, every other
 * field is dropped, and so is a line that is no "name:" field (obsolete
 * white space before the colon included). Kept fields other than
 * From/To/Cc are copied byte for byte (with their folding) or, when a line
 * is over MASK_LINE_MAX octets or holds a CR or NUL, dropped (never
 * repaired: repairs change threading).
 *   From: one field, "NAME via DOMAIN" <from_mask>, at the place of the
 *	first From: (or before the mark when there is none). NAME is the
 *	first mailbox's display name: a quoted string or plain phrase becomes
 *	one quoted string "NAME via DOMAIN"; encoded words (RFC 2047) are kept
 *	as they are, followed by "via DOMAIN" as a quoted string; raw UTF-8
 *	becomes UTF-8 B encoded words of "NAME via DOMAIN". A mailbox without
 *	a display name, or one whose name (decoded) holds '@' - the name is
 *	then often the real address - or cannot be read, gets MASK_ANON_NAME:
 *	never a name made from the address, which would leak it.
 *   Reply-To: <reply_to>, after From:, when map->reply_to is set.
 *   To:, Cc: every mailbox through map->map_addr, written as "<addr>"
 *	without display names, comments or groups (a display name may hold
 *	the real address). A field whose addresses all drop is omitted; a
 *	field that cannot be read (unbalanced quote, comment or bracket, two
 *	angle-addrs in a mailbox) is omitted whole, never copied raw. A
 *	mailbox that is no address (addr_parse) is dropped without a call.
 *   X-Sluice-Mask: mark, the loop mark, last.
 * The empty line that ends the section is written if the input had one;
 * input after it is ignored. Written lines are folded below 78 octets where
 * the syntax allows and are never longer than MASK_LINE_MAX.
 *
 * VERP. A bounce address local part is bounce-PAIR-MSGNO-MAC: PAIR a code
 * (base32, at most MASK_CODE_LEN characters), MSGNO decimal, MAC the first
 * 40 bits of HMAC-SHA256(key, "bounce:" PAIR "-" MSGNO) in base32.
 */
#ifndef SLUICE_MASK_H
#define SLUICE_MASK_H

#include <stddef.h>

#include "buf.h"

#define MASK_RAND_LEN	16	/* base32 characters: 80 bits */
#define MASK_MAC_LEN	4	/* base32 characters: 20 bits */
#define MASK_CODE_LEN	(MASK_RAND_LEN + MASK_MAC_LEN)
#define MASK_KEY_MIN	16	/* octets of a key; shorter keys never sign */
#define MASK_KEY_MAX	255
#define MASK_ADDRS_MAX	100	/* mailboxes in one To:/Cc: field */
#define MASK_OUT_MAX	(256 * 1024)	/* octets of a rewritten section */
#define MASK_LINE_MAX	998	/* octets of a line, RFC 5322 2.1.1 */
#define MASK_NAME_MAX	200	/* octets of a display name kept */
#define MASK_MARK_MAX	200	/* octets of the loop mark */
#define MASK_VERP_MAC_LEN 8	/* base32 characters: 40 bits */
#define MASK_ANON_NAME	"Someone"
#define MASK_MARK_FIELD	"X-Sluice-Mask"

enum mask_kind {
	MASK_NONE = 0,		/* not a service-/user- local part */
	MASK_SERVICE,
	MASK_USER,
};

/* what map_addr returns */
#define MASK_ADDR_KEEP	0	/* write out[] in place of the address */
#define MASK_ADDR_DROP	1	/* leave the address out */
/* anything else (a failed look-up): mask_rewrite fails, MASK_ERR_MAP */

enum mask_err {
	MASK_OK = 0,
	MASK_ERR_ARGS,		/* a map field is missing or malformed */
	MASK_ERR_ADDRS,		/* more than MASK_ADDRS_MAX in a field */
	MASK_ERR_TOOBIG,	/* output over MASK_OUT_MAX or out's cap */
	MASK_ERR_NOMEM,
	MASK_ERR_MAP,		/* map_addr failed or gave no address */
};

struct mask_map {
	const char	*domain;	/* the mask domain, "via DOMAIN" */
	const char	*from_mask;	/* the From: address written */
	const char	*reply_to;	/* NULL: no Reply-To: written */
	const char	*mark;		/* the X-Sluice-Mask: value */
	/* addr: "local@domain"; out: outlen >= ADDR_STR_MAX + 1 octets */
	int		(*map_addr)(void *arg, const char *addr, char *out,
			    size_t outlen);
	void		*arg;
};

/*
 * A new code of kind (MASK_SERVICE or MASK_USER) signed with key into
 * code (MASK_CODE_LEN + 1 octets at least), lower-case, without prefix.
 * 0, or -1 (bad kind or key, short buffer, no randomness, HMAC failure).
 */
int		mask_code_new(enum mask_kind kind, const char *key, char *code,
		    size_t codelen);
/*
 * The kind of a local part by its prefix ("service-", "user-", any case)
 * and its code, lower-cased, into code. A prefixed local part whose code
 * does not fit gets an empty code (which never verifies): it is still a
 * mask address, to be refused as one. code is "" with MASK_NONE.
 */
enum mask_kind	mask_local_parse(const char *local, char *code,
		    size_t codelen);
/*
 * 1 if code (any case) has the right length and alphabet and the MAC of
 * kind under one of keys[0..nkeys), 0 if not, -1 if the HMAC failed
 * (temporary). Compared in constant time.
 */
int		mask_code_valid(enum mask_kind kind, const char *code,
		    const char *const *keys, size_t nkeys);

/*
 * Append the relayed copy's header section, made from hdr[0..len) (LF line
 * ends) by the rules above, to out. 0, or -1 with *why (if why is not
 * NULL) telling the reason; out may then hold part of a section.
 */
int		mask_rewrite(const char *hdr, size_t len,
		    const struct mask_map *map, struct buf *out,
		    enum mask_err *why);
/* "ok", "too many addresses in a field", ... for logs */
const char	*mask_strerr(enum mask_err);
/* 1 if the section has an X-Sluice-Mask: field whose value is mark */
int		mask_mark_present(const char *hdr, size_t len,
		    const char *mark);
/*
 * 1 if the section is of an automatic message: Auto-Submitted: other
 * than "no" (comments allowed), Precedence: bulk, junk or list, or a read
 * receipt (Content-Type: multipart/report;
 * report-type=disposition-notification); else 0.
 */
int		mask_auto_submitted(const char *hdr, size_t len);

/*
 * The VERP local part bounce-PAIR-MSGNO-MAC for pair_code (base32, 1 to
 * MASK_CODE_LEN characters, any case) into out, signed with key. 0 or -1.
 */
int		mask_verp_new(const char *key, const char *pair_code,
		    unsigned long long msgno, char *out, size_t outlen);
/*
 * 0 and the pair code (lower-case) and message number if local is a VERP
 * local part signed by one of keys; -1 if it is not one, is malformed,
 * tampered with or signed by another key, or pair_code is too short.
 */
int		mask_verp_parse(const char *local, const char *const *keys,
		    size_t nkeys, char *pair_code, size_t pclen,
		    unsigned long long *msgno);

#endif
