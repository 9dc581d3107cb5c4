/*
 * sasl - the pure parts of SMTP AUTH (RFC 4954): strict base64 (RFC 4648
 * section 4, no white space, padding required), the PLAIN message (RFC
 * 4616) and the mechanism argument. No I/O; the session does the exchange
 * and the lookup process checks the password.
 */
#ifndef SLUICE_SASL_H
#define SLUICE_SASL_H

#include <stddef.h>

#define SASL_LINE_MAX	12288	/* an AUTH line or response (RFC 4954 4) */
#define SASL_ID_MAX	255	/* authentication or authorization identity */
#define SASL_PASS_MAX	1024	/* password octets */

enum sasl_mech { SASL_M_NONE = 0, SASL_M_PLAIN, SASL_M_LOGIN };

enum sasl_err {
	SASL_OK = 0,
	SASL_E_BASE64,		/* not base64 */
	SASL_E_FORMAT,		/* not "authz NUL authc NUL passwd" */
	SASL_E_TOO_LONG,	/* an identity or password over its limit */
	SASL_E_IDENTITY,	/* control characters or bad UTF-8 */
	SASL_E_EMPTY,		/* empty user or password */
};

/*
 * Decode base64 into out (at most outmax octets, no NUL added). "=" alone
 * is an empty response (RFC 4954). Returns 0 and *outlen, or -1.
 */
int	sasl_b64_decode(const char *in, size_t inlen, unsigned char *out,
	    size_t outmax, size_t *outlen);
/* Encode; out needs 4 * ceil(len / 3) + 1 octets; returns the length. */
size_t	sasl_b64_encode(const unsigned char *in, size_t len, char *out,
	    size_t outmax);

/* "PLAIN", "login" ... -> mech (SASL_M_NONE if unknown) */
enum sasl_mech sasl_mech_parse(const char *s, size_t len);

/*
 * The decoded PLAIN message: authz (may be empty), authc and password,
 * NUL-terminated into buffers of SASL_ID_MAX + 1 / SASL_PASS_MAX + 1.
 */
enum sasl_err sasl_plain_parse(const unsigned char *msg, size_t len,
	    char *authz, char *authc, char *pass);
/* an identity from LOGIN (already decoded): same checks as PLAIN's */
enum sasl_err sasl_identity_check(const unsigned char *s, size_t len);

const char	*sasl_strerror(enum sasl_err);

#endif
