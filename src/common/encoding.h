/*
 * encoding - the value of one character of the base64 and base32
 * alphabets (RFC 4648 sections 4 and 6), shared by the decoders that
 * each apply their own rules on padding, case and white space: SASL
 * (strict), DKIM tags (FWS allowed), MIME parts of the masked relay,
 * and the base32 codes of SRS and the masked relay.
 */
#ifndef SLUICE_ENCODING_H
#define SLUICE_ENCODING_H

/* 0..63 for A-Z a-z 0-9 + /, -1 for anything else ('=' included) */
int	base64_value(int c);
/* 0..31 for A-Z (either case) and 2-7, -1 for anything else */
int	base32_value(int c);

#endif
