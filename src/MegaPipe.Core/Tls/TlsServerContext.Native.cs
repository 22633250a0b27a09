// Licensed under the MIT License. See LICENSE in the repository root.

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

// Building one SSL_CTX: every context of a TlsServerContext is configured the same way and differs
// only in its certificate, so a session switched to another one by SNI keeps the same policy.
public sealed partial class TlsServerContext
{
    // TLS 1.2: ECDHE key exchange with AEAD only (no CBC, no static RSA, no DHE), ECDSA before RSA, AES-128 first (fastest).
    private static ReadOnlySpan<byte> Tls12CipherList =>
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305\0"u8;

    // TLS 1.3 suites are all AEAD; the order is the server's preference.
    private static ReadOnlySpan<byte> Tls13CipherSuites => "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\0"u8;

    private static ReadOnlySpan<byte> Groups => "X25519:P-256:P-384\0"u8;

    // No SHA-1 and no SHA-224 signatures, for the handshake and for client certificates.
    private static ReadOnlySpan<byte> SignatureAlgorithms =>
        "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:RSA+SHA256:RSA+SHA384:RSA+SHA512\0"u8;

    // Level 2: at least 112-bit security (RSA/DH >= 2048 bits, ECC >= 224 bits), no SHA-1 in signatures.
    private const int SecurityLevel = 2;

    // Every connection's record buffers are released while it is idle; partial writes and a moving buffer make
    // SSL_write's retry contract the caller-friendly one (a memory BIO never asks for a retry in practice).
    private const long Modes = Interop.Ssl.SSL_MODE_RELEASE_BUFFERS | Interop.Ssl.SSL_MODE_ENABLE_PARTIAL_WRITE | Interop.Ssl.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;

    private unsafe SafeSslContextHandle CreateNativeContext(X509Certificate2? certificate, X509Certificate2Collection? chain, AsymmetricAlgorithm? privateKey = null)
    {
        // A stale error left on this thread by earlier work must not be reported as this context's reason.
        OpenSslError.Clear();
        SafeSslContextHandle context = SafeSslContextHandle.Create(Interop.TLS_server_method());
        if (context.IsInvalid)
        {
            context.Dispose();
            TlsThrowHelper.ThrowOpenSsl("SSL_CTX_new");
        }
        try
        {
            Check(Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_SET_MIN_PROTO_VERSION, _minVersion, 0) == 1, "SSL_CTX_set_min_proto_version");
            Check(Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_SET_MAX_PROTO_VERSION, _maxVersion, 0) == 1, "SSL_CTX_set_max_proto_version");
            ulong options = Interop.Ssl.SSL_OP_NO_RENEGOTIATION | Interop.Ssl.SSL_OP_NO_COMPRESSION | Interop.Ssl.SSL_OP_CIPHER_SERVER_PREFERENCE;
            if (_ticketKeys is null)
            {
                options |= Interop.Ssl.SSL_OP_NO_TICKET;
            }
            Interop.SSL_CTX_set_options(context, options);
            Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_MODE, (nint)Modes, 0);
            fixed (byte* list = Tls12CipherList)
            {
                Check(Interop.SSL_CTX_set_cipher_list(context, list) == 1, "SSL_CTX_set_cipher_list");
            }
            fixed (byte* list = Tls13CipherSuites)
            {
                Check(Interop.SSL_CTX_set_ciphersuites(context, list) == 1, "SSL_CTX_set_ciphersuites");
            }
            fixed (byte* list = Groups)
            {
                Check(Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_SET_GROUPS_LIST, 0, (nint)list) == 1, "SSL_CTX_set1_groups_list");
            }
            fixed (byte* list = SignatureAlgorithms)
            {
                Check(Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_SET_SIGALGS_LIST, 0, (nint)list) == 1, "SSL_CTX_set1_sigalgs_list");
            }
            Interop.SSL_CTX_set_security_level(context, SecurityLevel);
            fixed (byte* id = _sessionIdContext)
            {
                Check(Interop.SSL_CTX_set_session_id_context(context, id, (uint)_sessionIdContext.Length) == 1, "SSL_CTX_set_session_id_context");
            }
            // Resumption is stateless (tickets) only, as nginx does by default: no shared session cache to lock on
            // every handshake, and nothing per session kept on the server.
            Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_SET_SESS_CACHE_MODE, Interop.Ssl.SSL_SESS_CACHE_OFF, 0);
            if (_ticketKeys is null)
            {
                Check(Interop.SSL_CTX_set_num_tickets(context, 0) == 1, "SSL_CTX_set_num_tickets");
            }
            else
            {
                Check(Interop.SSL_CTX_set_num_tickets(context, (nuint)_tls13TicketCount) == 1, "SSL_CTX_set_num_tickets");
                Check(Interop.SSL_CTX_set_tlsext_ticket_key_evp_cb(context, TicketKeyCallbackPointer) == 1, "SSL_CTX_set_tlsext_ticket_key_evp_cb");
            }
            if (_clientCertificateMode != TlsClientCertificateMode.NoCertificate)
            {
                int mode = Interop.Ssl.SSL_VERIFY_PEER;
                if (_clientCertificateMode == TlsClientCertificateMode.RequireCertificate)
                {
                    mode |= Interop.Ssl.SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
                }
                Interop.SSL_CTX_set_verify(context, mode, 0);
                Interop.SSL_CTX_set_cert_verify_callback(context, CertificateVerifyCallbackPointer, 0);
            }
            if (_applicationProtocols.Length > 0)
            {
                Interop.SSL_CTX_set_alpn_select_cb(context, AlpnSelectCallbackPointer, 0);
            }
            if (_selector is not null)
            {
                Interop.SSL_CTX_callback_ctrl(context, Interop.Ssl.SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, ServerNameCallbackPointer);
            }
            if (certificate is not null)
            {
                UseCertificate(context, certificate, chain, privateKey);
            }
            return context;
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    // Loads the certificate, its private key and its chain into the context and checks that the key matches.
    private static void UseCertificate(SafeSslContextHandle context, X509Certificate2 certificate, X509Certificate2Collection? chain, AsymmetricAlgorithm? privateKey)
    {
        string name = $"'{certificate.Subject}' (SHA-256 {Thumbprint(certificate)})";
        if (privateKey is null && !certificate.HasPrivateKey)
        {
            TlsThrowHelper.ThrowArgument($"The server certificate {name} has no private key.", nameof(TlsServerOptions.ServerCertificate));
        }
        using (SafeX509Handle x509 = SafeX509Handle.FromDer(certificate.RawDataMemory.Span))
        {
            if (x509.IsInvalid)
            {
                TlsThrowHelper.ThrowOpenSsl("d2i_X509", $"the server certificate {name} could not be parsed");
            }
            Check(Interop.SSL_CTX_use_certificate(context, x509) == 1, "SSL_CTX_use_certificate", $"certificate {name}");
        }
        using (SafePrivateKeyHandle key = ExportPrivateKey(certificate, privateKey, name))
        {
            if (Interop.SSL_CTX_use_PrivateKey(context, key) != 1 || Interop.SSL_CTX_check_private_key(context) != 1)
            {
                TlsThrowHelper.ThrowOpenSsl("Loading the server certificate", $"the private key does not match the certificate {name}");
            }
        }
        X509Certificate2Collection? built = null;
        if (chain is null)
        {
            // No chain given: find the intermediates in the certificate stores, as Kestrel does (offline, no downloads).
            chain = built = FindIntermediates(certificate);
        }
        try
        {
            AddChain(context, chain);
        }
        finally
        {
            if (built is not null)
            {
                foreach (X509Certificate2 c in built)
                {
                    c.Dispose();
                }
            }
        }
    }

    private static void AddChain(SafeSslContextHandle context, X509Certificate2Collection chain)
    {
        foreach (X509Certificate2 intermediate in chain)
        {
            using SafeX509Handle x509 = SafeX509Handle.FromDer(intermediate.RawDataMemory.Span);
            if (x509.IsInvalid)
            {
                TlsThrowHelper.ThrowOpenSsl("d2i_X509", $"the chain certificate '{intermediate.Subject}' could not be parsed");
            }
            // SSL_CTX_add1_chain_cert takes its own reference, so ours is released by the using.
            Check(Interop.SSL_CTX_ctrl(context, Interop.Ssl.SSL_CTRL_CHAIN_CERT, 1, x509.DangerousGetHandle()) == 1, "SSL_CTX_add1_chain_cert", $"chain certificate '{intermediate.Subject}'");
        }
    }

    // The chain above the leaf up to (not including) a self-signed root, from the stores; empty when none is found.
    private static X509Certificate2Collection FindIntermediates(X509Certificate2 certificate)
    {
        var result = new X509Certificate2Collection();
        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllFlags;
        chain.Build(certificate);
        for (int i = 1; i < chain.ChainElements.Count; i++)
        {
            X509Certificate2 element = chain.ChainElements[i].Certificate;
            if (element.SubjectName.RawData.AsSpan().SequenceEqual(element.IssuerName.RawData))
            {
                break;
            }
            // A copy: the chain's own element certificates go with the chain.
            result.Add(X509CertificateLoader.LoadCertificate(element.RawDataMemory.Span));
        }
        foreach (X509ChainElement element in chain.ChainElements)
        {
            element.Certificate.Dispose();
        }
        return result;
    }

    // PKCS#8 export into a pinned buffer (the GC never copies it), parsed by OpenSSL, then zeroed.
    private static SafePrivateKeyHandle ExportPrivateKey(X509Certificate2 certificate, AsymmetricAlgorithm? explicitKey, string name)
    {
        AsymmetricAlgorithm? key = explicitKey is RSA or ECDsa ? explicitKey : explicitKey is null ? (AsymmetricAlgorithm?)certificate.GetRSAPrivateKey() ?? certificate.GetECDsaPrivateKey() : null;
        try
        {
            return ExportPrivateKey(key, name);
        }
        finally
        {
            // The key objects the certificate handed out are ours to dispose; an explicit key belongs to the options.
            if (!ReferenceEquals(key, explicitKey))
            {
                key?.Dispose();
            }
        }
    }

    private static SafePrivateKeyHandle ExportPrivateKey(AsymmetricAlgorithm? key, string name)
    {
        if (key is null)
        {
            TlsThrowHelper.ThrowArgument($"The server certificate {name} has an unsupported key type: only RSA and ECDSA keys are supported.", nameof(TlsServerOptions.ServerCertificate));
        }
        byte[] buffer = GC.AllocateUninitializedArray<byte>(16 * 1024, pinned: true);
        try
        {
            if (!key.TryExportPkcs8PrivateKey(buffer, out int length))
            {
                TlsThrowHelper.ThrowArgument($"The private key of {name} is too large to export.", nameof(TlsServerOptions.ServerCertificate));
            }
            SafePrivateKeyHandle result = SafePrivateKeyHandle.FromPkcs8(buffer.AsSpan(0, length));
            if (result.IsInvalid)
            {
                result.Dispose();
                TlsThrowHelper.ThrowOpenSsl("d2i_AutoPrivateKey", $"the private key of {name} could not be parsed");
            }
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    private static void Check(bool succeeded, string operation, string? detail = null)
    {
        if (!succeeded)
        {
            TlsThrowHelper.ThrowOpenSsl(operation, detail);
        }
    }
}
