/* The native floor for perf/MegaPipe.Tls.Benchmarks: the same in-memory handshake loop as the managed
 * benchmark (server SSL and client SSL back to back over memory BIOs, one thread), written directly against
 * OpenSSL 3 with the engine's configuration, timing only the server's calls. What nginx's event loop pays per
 * handshake is this plus its socket I/O.
 * Build: gcc -O2 handshake.c -o handshake -lssl -lcrypto
 * Run:   ./handshake cert.pem key.pem [tls12] [resume] [count]
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static unsigned char buffer[65536];

/* Moves everything pending in from's write BIO into to's read BIO. */
static void transfer(BIO *from, BIO *to) {
    int n;
    while ((n = BIO_read(from, buffer, sizeof buffer)) > 0) BIO_write(to, buffer, n);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s cert.pem key.pem [tls12] [resume] [count]\n", argv[0]); return 2; }
    int tls12 = 0, resume = 0, count = 2000;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "tls12")) tls12 = 1;
        else if (!strcmp(argv[i], "resume")) resume = 1;
        else count = atoi(argv[i]);
    }
    SSL_CTX *server = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(server, TLS1_2_VERSION);
    SSL_CTX_set_options(server, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(server, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_cipher_list(server, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    SSL_CTX_set_ciphersuites(server, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_set1_groups_list(server, "X25519:P-256:P-384");
    SSL_CTX_set_session_cache_mode(server, SSL_SESS_CACHE_OFF); /* stateless tickets, OpenSSL's built-in keys */
    SSL_CTX_set_session_id_context(server, (const unsigned char *)"bench", 5);
    if (getenv("TICKETS")) SSL_CTX_set_num_tickets(server, (size_t)atoi(getenv("TICKETS"))); /* TLS 1.3 tickets per handshake (default 2) */
    if (SSL_CTX_use_certificate_chain_file(server, argv[1]) != 1 || SSL_CTX_use_PrivateKey_file(server, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(client, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(client, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_SESSION *ticket = NULL;
    double server_us = 0, start_all = 0;
    for (int i = -50 - (resume ? 1 : 0); i < count; i++) {
        if (i == 0) { server_us = 0; start_all = now_us(); }
        double t0 = now_us();
        SSL *s = SSL_new(server);
        BIO *srb = BIO_new(BIO_s_mem()), *swb = BIO_new(BIO_s_mem());
        SSL_set_bio(s, srb, swb);
        SSL_set_accept_state(s);
        server_us += now_us() - t0;
        SSL *c = SSL_new(client);
        BIO *crb = BIO_new(BIO_s_mem()), *cwb = BIO_new(BIO_s_mem());
        SSL_set_bio(c, crb, cwb);
        SSL_set_connect_state(c);
        if (ticket) SSL_set_session(c, ticket);
        int server_done = 0;
        for (int round = 0; round < 10 && !server_done; round++) {
            SSL_do_handshake(c);
            int n;
            while ((n = BIO_read(cwb, buffer, sizeof buffer)) > 0) {
                t0 = now_us();
                BIO_write(srb, buffer, n);
                server_us += now_us() - t0;
            }
            t0 = now_us();
            server_done = SSL_do_handshake(s) == 1;
            n = BIO_read(swb, buffer, sizeof buffer);
            server_us += now_us() - t0;
            while (n > 0) {
                BIO_write(crb, buffer, n);
                t0 = now_us();
                n = BIO_read(swb, buffer, sizeof buffer);
                server_us += now_us() - t0;
            }
        }
        if (SSL_do_handshake(c) != 1 || (ticket && !SSL_session_reused(s))) { fprintf(stderr, "handshake failed\n"); ERR_print_errors_fp(stderr); return 1; }
        if (resume && !ticket) {
            char sink[16];
            SSL_read(c, sink, sizeof sink); /* TLS 1.3 tickets arrive after the handshake */
            ticket = SSL_get1_session(c);
        }
        SSL_shutdown(c);
        SSL_free(c);
        t0 = now_us();
        SSL_free(s);
        server_us += now_us() - t0;
    }
    printf("native OpenSSL %s%s: server %.1f µs, total %.1f µs\n", tls12 ? "TLS 1.2" : "TLS 1.3", resume ? " resumed" : " full", server_us / count, (now_us() - start_all) / count);
    return 0;
}
