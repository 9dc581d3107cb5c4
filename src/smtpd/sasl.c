/*
 * sasl - strict base64 and the PLAIN message for SMTP AUTH. See sasl.h.
 *
 * Strict on purpose: a decoder that skips junk lets two different byte
 * strings name the same credentials, which makes logs and rate limits
 * lie. Anything but the RFC 4648 alphabet with correct padding is refused.
 */
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "encoding.h"
#include "sasl.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
sasl_b64_decode(const char *in, size_t inlen, unsigned char *out,
    size_t outmax, size_t *outlen)
{
	size_t	 i, n = 0;
	int	 v[4];

	*outlen = 0;
	if (inlen == 1 && in[0] == '=')
		return 0;	/* an empty response */
	if (inlen == 0 || inlen % 4 != 0)
		return -1;
	for (i = 0; i < inlen; i += 4) {
		int last = i + 4 == inlen;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && last && k >= 2) {
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad || (v[k] = base64_value(c)) < 0)
				return -1;	/* junk, or data after '=' */
		}
		/* the bits under the padding must be zero (canonical form) */
		if ((pad == 1 && (v[2] & 0x3)) || (pad == 2 && (v[1] & 0xf)))
			return -1;
		if (n + 3 - (size_t)pad > outmax)
			return -1;
		out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[n++] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
		if (pad < 1)
			out[n++] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
	}
	*outlen = n;
	return 0;
}

size_t
sasl_b64_encode(const unsigned char *in, size_t len, char *out,
    size_t outmax)
{
	size_t	 i, n = 0;

	if (outmax < 4 * ((len + 2) / 3) + 1) {
		if (outmax)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; i + 2 < len; i += 3) {
		out[n++] = b64[in[i] >> 2];
		out[n++] = b64[(in[i] & 0x3) << 4 | in[i + 1] >> 4];
		out[n++] = b64[(in[i + 1] & 0xf) << 2 | in[i + 2] >> 6];
		out[n++] = b64[in[i + 2] & 0x3f];
	}
	if (i < len) {
		out[n++] = b64[in[i] >> 2];
		if (i + 1 < len) {
			out[n++] = b64[(in[i] & 0x3) << 4 | in[i + 1] >> 4];
			out[n++] = b64[(in[i + 1] & 0xf) << 2];
		} else {
			out[n++] = b64[(in[i] & 0x3) << 4];
			out[n++] = '=';
		}
		out[n++] = '=';
	}
	out[n] = '\0';
	return n;
}

enum sasl_mech
sasl_mech_parse(const char *s, size_t len)
{
	if (len == 5 && strncasecmp(s, "PLAIN", 5) == 0)
		return SASL_M_PLAIN;
	if (len == 5 && strncasecmp(s, "LOGIN", 5) == 0)
		return SASL_M_LOGIN;
	return SASL_M_NONE;
}

enum sasl_err
sasl_identity_check(const unsigned char *s, size_t len)
{
	if (len > SASL_ID_MAX)
		return SASL_E_TOO_LONG;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return SASL_E_IDENTITY;
	if (!addr_utf8_valid((const char *)s, len))
		return SASL_E_IDENTITY;
	return SASL_OK;
}

enum sasl_err
sasl_plain_parse(const unsigned char *msg, size_t len, char *authz,
    char *authc, char *pass)
{
	const unsigned char	*nul1, *nul2;
	size_t			 zlen, clen, plen;
	enum sasl_err		 e;

	authz[0] = authc[0] = pass[0] = '\0';
	if ((nul1 = memchr(msg, '\0', len)) == NULL)
		return SASL_E_FORMAT;
	zlen = (size_t)(nul1 - msg);
	if ((nul2 = memchr(nul1 + 1, '\0', len - zlen - 1)) == NULL)
		return SASL_E_FORMAT;
	clen = (size_t)(nul2 - nul1 - 1);
	plen = len - zlen - clen - 2;
	if (memchr(nul2 + 1, '\0', plen) != NULL)
		return SASL_E_FORMAT;	/* a third NUL */
	if ((e = sasl_identity_check(msg, zlen)) != SASL_OK ||
	    (e = sasl_identity_check(nul1 + 1, clen)) != SASL_OK)
		return e;
	if (plen > SASL_PASS_MAX)
		return SASL_E_TOO_LONG;
	if (clen == 0 || plen == 0)
		return SASL_E_EMPTY;
	memcpy(authz, msg, zlen);
	authz[zlen] = '\0';
	memcpy(authc, nul1 + 1, clen);
	authc[clen] = '\0';
	memcpy(pass, nul2 + 1, plen);
	pass[plen] = '\0';
	return SASL_OK;
}

const char *
sasl_strerror(enum sasl_err e)
{
	switch (e) {
	case SASL_OK:
		return "ok";
	case SASL_E_BASE64:
		return "invalid base64";
	case SASL_E_FORMAT:
		return "malformed PLAIN response";
	case SASL_E_TOO_LONG:
		return "identity or password too long";
	case SASL_E_IDENTITY:
		return "invalid characters in the identity";
	case SASL_E_EMPTY:
		return "empty user name or password";
	}
	return "?";
}
