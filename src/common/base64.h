/*
 * base64 - the value of one character of the base64 alphabet (RFC 4648
 * section 4), shared by the decoders that each apply their own rules on
 * padding and white space: SASL (strict), DKIM tags (FWS allowed) and
 * MIME parts of the masked relay.
 */
#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

/* 0..63 for A-Z a-z 0-9 + /, -1 for anything else ('=' included) */
int	base64_value(int c);

#endif
