/*
 * tls - server-side TLS for the smtp process (STARTTLS and implicit TLS),
 * on OpenSSL through libevent's bufferevent_openssl.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "smtpd.h"

/*
 * TLS 1.2 and later, forward-secret AEAD suites for TLS 1.2 (TLS 1.3's are
 * all fine), the server's order, no renegotiation.
 */
#define TLS_CIPHERS	"HIGH:!aNULL:!kRSA:!PSK:!SRP:!MD5:!RC4:!3DES:!SHA1"

static SSL_CTX *
tls_ctx_new(void)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	return ctx;
}

static SSL_CTX *
tls_ctx_failed(SSL_CTX *ctx)
{
	unsigned long e = ERR_get_error();

	log_warnx("TLS: %s", e ? ERR_error_string(e, NULL) : "no memory");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key)
{
	SSL_CTX	*ctx;

	if ((ctx = tls_ctx_new()) == NULL)
		return tls_ctx_failed(NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return tls_ctx_failed(ctx);
	return ctx;
}

/* The same from PEM text: the certificate, its chain, then the key. */
SSL_CTX *
tls_server_ctx_mem(const char *cert, size_t certlen, const char *key,
    size_t keylen)
{
	SSL_CTX		*ctx;
	BIO		*bio = NULL;
	X509		*x;
	EVP_PKEY	*pk;

	if (certlen > INT_MAX || keylen > INT_MAX ||
	    (ctx = tls_ctx_new()) == NULL)
		return tls_ctx_failed(NULL);
	if ((bio = BIO_new_mem_buf(cert, (int)certlen)) == NULL ||
	    (x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL)) == NULL)
		goto fail;
	if (SSL_CTX_use_certificate(ctx, x) != 1) {
		X509_free(x);
		goto fail;
	}
	X509_free(x);
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			goto fail;
		}
	ERR_clear_error();	/* the end of the chain */
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key, (int)keylen)) == NULL ||
	    (pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL)
		goto fail;
	if (SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
		EVP_PKEY_free(pk);
		goto fail;
	}
	EVP_PKEY_free(pk);
	BIO_free(bio);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return tls_ctx_failed(ctx);
	return ctx;
fail:
	BIO_free(bio);
	return tls_ctx_failed(ctx);
}

/*
 * Put TLS over a session's connection: a new TLS bufferevent on fd takes
 * the place of the plain one, which is freed once the new one exists (on
 * failure bev is untouched). For STARTTLS the caller switches only once
 * its "220" has been written to the socket, so nothing is lost under the
 * TLS layer, and "output empty" always means "on the wire".
 */
struct bufferevent *
tls_wrap(struct bufferevent *bev, int fd, char *info, size_t infolen)
{
	struct bufferevent	*tb;
	SSL			*ssl;

	if ((ssl = SSL_new(smtpd.tls_ctx)) == NULL)
		return NULL;
	tb = bufferevent_openssl_socket_new(smtpd.proc->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* the TLS bufferevent owns fd now: do not let bev close it */
	bufferevent_setfd(bev, -1);
	bufferevent_free(bev);
	snprintf(info, infolen, "TLS");
	return tb;
}

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done */
void
tls_session_info(struct bufferevent *bev, char *info, size_t infolen)
{
	SSL	*ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL)
		return;
	snprintf(info, infolen, "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
}
