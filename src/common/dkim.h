/*
 * dkim - DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256
 * (RFC 8463), relaxed/relaxed canonicalization, on OpenSSL 3's EVP API.
 *
 * Pure functions over buffers; the caller reads the message. The header
 * section is given as it sits in the spool (LF line ends; a CR, LF or
 * CRLF ends a line, as on the wire, where the smtp client sends every
 * one of them as CRLF). The body is hashed in chunks: dkim_body_init(),
 * dkim_body_update() as often as needed, dkim_body_final();
 * dkim_body_init_ex() adds, for the verifier (dkim_verify.h), simple
 * canonicalization and a limit on the octets hashed (l=).
 *
 * dkim_sign() chooses the header fields to sign from dkim_sign_names
 * (each present instance, From: once more than present so that a From:
 * added later breaks the signature) and returns the whole
 * "DKIM-Signature:" field, folded below 78 columns, LF ended, to put
 * first in the header section.
 *
 * Ownership: a struct dkim_key owns its EVP_PKEY (dkim_key_free). Errors:
 * -1 with a message in err (never key material); buffers' own errors are
 * reported as "out of memory".
 */
#ifndef SLUICE_DKIM_H
#define SLUICE_DKIM_H

#include <stddef.h>

#include <openssl/evp.h>

#include "buf.h"

#define DKIM_HASH_LEN		32	/* sha256 */
#define DKIM_RSA_MIN_BITS	1024
#define DKIM_RSA_MAX_BITS	8192
#define DKIM_SELECTOR_MAX	63	/* one DNS label */
#define DKIM_PER_NAME_MAX	32	/* instances of one field signed */
#define DKIM_KEYFILE_MAX	(64 * 1024)

enum dkim_alg { DKIM_RSA_SHA256 = 0, DKIM_ED25519_SHA256 };

struct dkim_key {
	EVP_PKEY	*pkey;
	enum dkim_alg	 alg;
	unsigned	 bits;
};

/* the field names signed, lower case, NULL ended */
extern const char *const dkim_sign_names[];

/* a PEM private key (RSA of DKIM_RSA_MIN_BITS or more, or Ed25519) */
struct dkim_key	*dkim_key_load(const char *path, char *err, size_t errlen);
struct dkim_key	*dkim_key_from_pem(const char *pem, size_t len, char *err,
		    size_t errlen);
/* a new key: bits only for RSA */
struct dkim_key	*dkim_key_generate(enum dkim_alg, unsigned bits, char *err,
		    size_t errlen);
void		 dkim_key_free(struct dkim_key *);
/* the private key as PKCS#8 PEM; -1 on error */
int		 dkim_key_pem(const struct dkim_key *, struct buf *out);
/* the p= value of the DNS record: base64 of the SubjectPublicKeyInfo
   (RSA) or of the raw 32-byte public key (Ed25519, RFC 8463 4.2) */
int		 dkim_key_public(const struct dkim_key *, struct buf *out);
/* "rsa" or "ed25519", the k= of the DNS record */
const char	*dkim_key_kind(const struct dkim_key *);

/* relaxed header canonicalization of one field (RFC 6376 3.4.2):
   "name:value\r\n" appended to out */
int	dkim_canon_header(const char *field, size_t len, struct buf *out);

struct dkim_body {
	EVP_MD_CTX	*md;		/* NULL: into out (tests) */
	struct buf	*out;
	size_t		 empty;		/* empty lines not yet written */
	int		 wsp;		/* white space seen, not yet written */
	int		 content;	/* the line has more than space */
	int		 cr;		/* the last octet was a CR */
	int		 simple;	/* simple canonicalization (3.4.3) */
	long long	 limit;		/* octets hashed at most (l=); -1: all */
	unsigned long long total;	/* octets of the canonical body */
	int		 err;
	size_t		 olen;
	char		 obuf[2048];
};

/* relaxed body canonicalization (RFC 6376 3.4.4) into a sha256, or into
   out when out is not NULL (for tests); 0 or -1 */
int	dkim_body_init(struct dkim_body *, struct buf *out);
/* the verifier's variant: simple (RFC 6376 3.4.3, an empty body is one
   CRLF) or relaxed, and only the first limit octets of the canonical
   body hashed (l=) unless limit is -1; total counts them all */
int	dkim_body_init_ex(struct dkim_body *, struct buf *out, int simple,
	    long long limit);
void	dkim_body_update(struct dkim_body *, const void *, size_t);
/* the body hash (not written when hashing into out); frees; 0 or -1 */
int	dkim_body_final(struct dkim_body *, unsigned char bh[DKIM_HASH_LEN]);
/* frees without a result (after an error elsewhere) */
void	dkim_body_abort(struct dkim_body *);

struct dkim_sign_req {
	const char		*domain;	/* d= */
	const char		*selector;	/* s= */
	const struct dkim_key	*key;
	long long		 t;		/* t=, seconds */
};

/* The DKIM-Signature field for the header section hdr[0..hlen) (its
   empty line, if there, is ignored) and the body hash bh. */
int	dkim_sign(const struct dkim_sign_req *, const char *hdr, size_t hlen,
	    const unsigned char bh[DKIM_HASH_LEN], struct buf *out,
	    char *err, size_t errlen);

#endif
