// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;
using MegaPipe.Tls.Internal;

namespace MegaPipe;

// libssl (OpenSSL 3, Debian's libssl3). Many SSL_CTX_set_* "functions" are macros over
// SSL_CTX_ctrl / SSL_ctrl; their command numbers are kept here with the macro they stand for.
// Constants are checked against /usr/include/openssl by MegaPipe.Tls.Tests' OpenSslConstantsTests.
internal static unsafe partial class Interop
{
    internal const string LibSsl = "libssl.so.3";

    // libssl constants, kept apart from Interop's own so that Core's kernel-header check (StructLayoutTests)
    // and MegaPipe.Tls.Tests' OpenSSL-header check (OpenSslConstantsTests) each see only theirs.
    internal static class Ssl
    {
        internal const int TLS1_2_VERSION = 0x0303;
        internal const int TLS1_3_VERSION = 0x0304;
        internal const ulong SSL_OP_ALLOW_CLIENT_RENEGOTIATION = 0x100;
        internal const ulong SSL_OP_NO_TICKET = 0x4000;
        internal const ulong SSL_OP_NO_COMPRESSION = 0x20000;
        internal const ulong SSL_OP_CIPHER_SERVER_PREFERENCE = 0x400000;
        internal const ulong SSL_OP_NO_RENEGOTIATION = 0x40000000;
        internal const long SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1;
        internal const long SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2;
        internal const long SSL_MODE_RELEASE_BUFFERS = 0x10;
        internal const int SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;    // SSL_set_tlsext_host_name
        internal const int SSL_CTRL_SET_SESS_CACHE_SIZE = 42;    // SSL_CTX_sess_set_cache_size
        internal const int SSL_CTRL_SET_SESS_CACHE_MODE = 44;    // SSL_CTX_set_session_cache_mode
        internal const int SSL_CTRL_MODE = 33;                   // SSL_CTX_set_mode
        internal const int SSL_CTRL_SET_TLSEXT_SERVERNAME_CB = 53; // SSL_CTX_set_tlsext_servername_callback
        internal const int SSL_CTRL_CHAIN_CERT = 89;             // SSL_CTX_add1_chain_cert (larg 1 = add1)
        internal const int SSL_CTRL_SET_GROUPS_LIST = 92;        // SSL_CTX_set1_groups_list
        internal const int SSL_CTRL_SET_SIGALGS_LIST = 98;       // SSL_CTX_set1_sigalgs_list
        internal const int SSL_CTRL_SET_MIN_PROTO_VERSION = 123; // SSL_CTX_set_min_proto_version
        internal const int SSL_CTRL_SET_MAX_PROTO_VERSION = 124; // SSL_CTX_set_max_proto_version
        internal const int SSL_SESS_CACHE_OFF = 0;
        internal const int SSL_SESS_CACHE_SERVER = 2;
        internal const int TLSEXT_NAMETYPE_host_name = 0;
        internal const int SSL_ERROR_NONE = 0;
        internal const int SSL_ERROR_SSL = 1;
        internal const int SSL_ERROR_WANT_READ = 2;
        internal const int SSL_ERROR_WANT_WRITE = 3;
        internal const int SSL_ERROR_WANT_X509_LOOKUP = 4;
        internal const int SSL_ERROR_SYSCALL = 5;
        internal const int SSL_ERROR_ZERO_RETURN = 6;
        internal const int SSL_SENT_SHUTDOWN = 1;
        internal const int SSL_RECEIVED_SHUTDOWN = 2;
        internal const int SSL_VERIFY_NONE = 0;
        internal const int SSL_VERIFY_PEER = 1;
        internal const int SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 2;
        internal const int SSL_TLSEXT_ERR_OK = 0;
        internal const int SSL_TLSEXT_ERR_ALERT_FATAL = 2;
        internal const int SSL_TLSEXT_ERR_NOACK = 3;
        internal const int SSL_AD_HANDSHAKE_FAILURE = 40;
        internal const int SSL_AD_INTERNAL_ERROR = 80;
        internal const int SSL_AD_UNRECOGNIZED_NAME = 112;
        internal const int SSL_AD_NO_APPLICATION_PROTOCOL = 120;
    }

    // ---- SSL_CTX ----

    [LibraryImport(LibSsl)]
    internal static partial nint TLS_server_method();

    [LibraryImport(LibSsl)]
    internal static partial nint TLS_client_method();

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_CTX_new(nint method);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_CTX_free(nint ctx);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_CTX_ctrl(SafeSslContextHandle ctx, int cmd, nint larg, nint parg);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_CTX_callback_ctrl(SafeSslContextHandle ctx, int cmd, nint callback);

    [LibraryImport(LibSsl)]
    internal static partial ulong SSL_CTX_set_options(SafeSslContextHandle ctx, ulong options);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_set_cipher_list(SafeSslContextHandle ctx, byte* list);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_set_ciphersuites(SafeSslContextHandle ctx, byte* list);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_CTX_set_security_level(SafeSslContextHandle ctx, int level);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_set_num_tickets(SafeSslContextHandle ctx, nuint count);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_set_session_id_context(SafeSslContextHandle ctx, byte* sidCtx, uint length);

    // The SSL_CTX takes its own reference to the X509 / EVP_PKEY; the caller still frees its own.
    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_use_certificate(SafeSslContextHandle ctx, SafeX509Handle x509);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_use_PrivateKey(SafeSslContextHandle ctx, SafePrivateKeyHandle pkey);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_check_private_key(SafeSslContextHandle ctx);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_CTX_set_verify(SafeSslContextHandle ctx, int mode, nint callback);

    // int (*cb)(X509_STORE_CTX *, void *arg): replaces OpenSSL's chain verification.
    [LibraryImport(LibSsl)]
    internal static partial void SSL_CTX_set_cert_verify_callback(SafeSslContextHandle ctx, nint callback, nint arg);

    // int (*cb)(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen, void *arg)
    [LibraryImport(LibSsl)]
    internal static partial void SSL_CTX_set_alpn_select_cb(SafeSslContextHandle ctx, nint callback, nint arg);

    // int (*cb)(SSL *, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *, EVP_MAC_CTX *, int enc)
    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_set_tlsext_ticket_key_evp_cb(SafeSslContextHandle ctx, nint callback);

    // Client side (in-process test and benchmark client): the wire list of protocols.
    [LibraryImport(LibSsl)]
    internal static partial int SSL_CTX_set_alpn_protos(SafeSslContextHandle ctx, byte* protos, uint length);

    // ---- SSL ----

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_new(SafeSslContextHandle ctx);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_free(nint ssl);

    // The SSL takes ownership of both BIOs (one reference each); SSL_free frees them.
    [LibraryImport(LibSsl)]
    internal static partial void SSL_set_bio(nint ssl, nint rbio, nint wbio);

    // Replace one BIO; the SSL frees the one it had (BIO_free_all) and owns the new one.
    [LibraryImport(LibSsl)]
    internal static partial void SSL_set0_rbio(nint ssl, nint rbio);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_set0_wbio(nint ssl, nint wbio);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_set_accept_state(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_set_connect_state(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_do_handshake(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_read_ex(nint ssl, byte* buf, nuint num, nuint* readBytes);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_write_ex(nint ssl, byte* buf, nuint num, nuint* written);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_get_error(nint ssl, int ret);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_shutdown(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_get_shutdown(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_has_pending(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_is_init_finished(nint ssl);

    // The record layer's state as a two-letter string: "RH" read header, "RB" read body, "RD" read done.
    [LibraryImport(LibSsl)]
    internal static partial nint SSL_rstate_string(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_set_ex_data(nint ssl, int index, nint data);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_get_ex_data(nint ssl, int index);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_get_ex_data_X509_STORE_CTX_idx();

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_ctrl(nint ssl, int cmd, nint larg, nint parg);

    // Switches the SSL to another SSL_CTX (SNI); the SSL takes a reference to the new context.
    [LibraryImport(LibSsl)]
    internal static partial nint SSL_set_SSL_CTX(nint ssl, SafeSslContextHandle ctx);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_version(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_get_current_cipher(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_CIPHER_standard_name(nint cipher);

    [LibraryImport(LibSsl)]
    internal static partial ushort SSL_CIPHER_get_protocol_id(nint cipher);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_get_servername(nint ssl, int type);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_get0_alpn_selected(nint ssl, byte** data, uint* length);

    // Returns a new reference (X509_free it).
    [LibraryImport(LibSsl)]
    internal static partial nint SSL_get1_peer_certificate(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_session_reused(nint ssl);

    // Client-side resumption (in-process client only): get1 returns a new reference.
    [LibraryImport(LibSsl)]
    internal static partial nint SSL_get1_session(nint ssl);

    [LibraryImport(LibSsl)]
    internal static partial int SSL_set_session(nint ssl, nint session);

    [LibraryImport(LibSsl)]
    internal static partial void SSL_SESSION_free(nint session);

    [LibraryImport(LibSsl)]
    internal static partial nint SSL_alert_desc_string_long(int value);
}
