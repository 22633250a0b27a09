// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

// OpenSSL's callbacks into managed code. Each is an [UnmanagedCallersOnly] static function (AOT and
// trimming safe, nothing for the GC to move or collect), finds its TlsSession through the SSL's ex_data
// GCHandle, never lets an exception escape (it records the reason on the session and returns the
// failure code OpenSSL expects), and runs on the thread driving that session, inside one of its calls.
public sealed unsafe partial class TlsServerContext
{
    // Client authentication, checked in the client certificate's chain (RFC 5280 extended key usage).
    private static readonly Oid s_clientAuthentication = new("1.3.6.1.5.5.7.3.2");

    // The X509_STORE_CTX ex_data slot that holds the SSL; looked up at first use, so that creating a context on a
    // machine without OpenSSL 3 fails with TlsLibrary's reason instead of a type initializer's exception.
    private static int StoreContextSslIndex => StoreContextIndex.Value;

    private static nint AlpnSelectCallbackPointer => (nint)(delegate* unmanaged[Cdecl]<nint, byte**, byte*, byte*, uint, nint, int>)&AlpnSelectCallback;

    private static nint ServerNameCallbackPointer => (nint)(delegate* unmanaged[Cdecl]<nint, int*, nint, int>)&ServerNameCallback;

    private static nint CertificateVerifyCallbackPointer => (nint)(delegate* unmanaged[Cdecl]<nint, nint, int>)&CertificateVerifyCallback;

    private static nint TicketKeyCallbackPointer => (nint)(delegate* unmanaged[Cdecl]<nint, byte*, byte*, nint, nint, int, int>)&TicketKeyCallback;

    // Chooses the first of the server's protocols (its preference order) that the client offered.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int AlpnSelectCallback(nint ssl, byte** output, byte* outputLength, byte* input, uint inputLength, nint argument)
    {
        TlsSession? session = null;
        try
        {
            session = TlsExData.GetSession(ssl);
            if (session?.ServerContext is not { } server || server.IsDisposed)
            {
                return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
            }
            // The client's list was validated by OpenSSL: a sequence of (length byte, name) entries.
            var offered = new ReadOnlySpan<byte>(input, (int)inputLength);
            for (int i = 0; i < server._applicationProtocols.Length; i++)
            {
                ReadOnlySpan<byte> wanted = server._applicationProtocols[i].Protocol.Span;
                for (int offset = 0; offset < offered.Length;)
                {
                    int length = offered[offset];
                    if (offset + 1 + length > offered.Length)
                    {
                        break;
                    }
                    if (offered.Slice(offset + 1, length).SequenceEqual(wanted))
                    {
                        // OpenSSL copies the selection out of the client's buffer before this buffer goes away.
                        *output = input + offset + 1;
                        *outputLength = (byte)length;
                        session.SetApplicationProtocolIndex(i);
                        return Interop.Ssl.SSL_TLSEXT_ERR_OK;
                    }
                    offset += 1 + length;
                }
            }
            session.RecordCallbackFailure("the client offered none of the server's ALPN protocols");
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL; // OpenSSL sends no_application_protocol
        }
        catch (Exception e)
        {
            session?.RecordCallbackFailure("ALPN selection failed: " + e.Message);
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }
    }

    // SNI: switches the SSL to the context of the certificate the selector chose.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ServerNameCallback(nint ssl, int* alert, nint argument)
    {
        TlsSession? session = null;
        try
        {
            session = TlsExData.GetSession(ssl);
            if (session?.ServerContext is not { } server || server.IsDisposed)
            {
                *alert = Interop.Ssl.SSL_AD_INTERNAL_ERROR;
                return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
            }
            return server.SelectCertificate(ssl, session, alert);
        }
        catch (Exception e)
        {
            session?.RecordCallbackFailure("server certificate selection failed: " + e.GetType().Name + ": " + e.Message);
            *alert = Interop.Ssl.SSL_AD_INTERNAL_ERROR;
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }
    }

    // Replaces OpenSSL's chain verification for client certificates with .NET's X509Chain and the
    // application's validation callback, as SslStream does.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int CertificateVerifyCallback(nint storeContext, nint argument)
    {
        TlsSession? session = null;
        try
        {
            nint ssl = Interop.X509_STORE_CTX_get_ex_data(storeContext, StoreContextSslIndex);
            session = ssl == 0 ? null : TlsExData.GetSession(ssl);
            if (session?.ServerContext is not { } server || server.IsDisposed)
            {
                Interop.X509_STORE_CTX_set_error(storeContext, Interop.Crypto.X509_V_ERR_APPLICATION_VERIFICATION);
                return 0;
            }
            if (server.ValidateClientCertificate(session, storeContext))
            {
                return 1;
            }
            Interop.X509_STORE_CTX_set_error(storeContext, Interop.Crypto.X509_V_ERR_CERT_REJECTED);
            return 0;
        }
        catch (Exception e)
        {
            session?.RecordCallbackFailure("client certificate validation threw " + e.GetType().Name + ": " + e.Message);
            Interop.X509_STORE_CTX_set_error(storeContext, Interop.Crypto.X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
        }
        finally
        {
            // .NET's own crypto calls made here share this thread's OpenSSL error queue; whatever they left must not
            // make the handshake's SSL_get_error misreport. OpenSSL pushes its own error after a rejection returns.
            OpenSslError.Clear();
        }
    }

    // Session ticket encryption (enc = 1) and decryption (enc = 0) with this context's rotating keys.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int TicketKeyCallback(nint ssl, byte* keyName, byte* iv, nint cipherContext, nint macContext, int encrypt)
    {
        TlsSession? session = null;
        try
        {
            session = TlsExData.GetSession(ssl);
            // No keys (a disposed context): issue no ticket, or treat the ticket as unknown (full handshake).
            if (session?.ServerContext?.TicketKeys is not { } keys)
            {
                return 0;
            }
            if (encrypt == 1)
            {
                return keys.Encrypt(keyName, iv, cipherContext, macContext);
            }
            int result = keys.Decrypt(keyName, iv, cipherContext, macContext);
            // 2 = "valid, issue a new one": TLS 1.3 clients use each ticket once (RFC 8446, appendix C.4), so a resumption
            // must leave them a fresh ticket or their next connection is a full handshake (OpenSSL issues none after a
            // TLS 1.3 resumption unless asked). A TLS 1.2 ticket is reused and renewed only when its key is retiring.
            return result == 1 && Interop.SSL_version(ssl) == Interop.Ssl.TLS1_3_VERSION ? 2 : result;
        }
        catch (Exception e)
        {
            session?.RecordCallbackFailure("session ticket key callback failed: " + e.GetType().Name);
            return 0;
        }
    }

    private int SelectCertificate(nint ssl, TlsSession session, int* alert)
    {
        string? hostName = session.HostName;
        X509Certificate2? certificate;
        try
        {
            certificate = _selector!(session.State, hostName) ?? _defaultCertificate;
        }
        catch (Exception e)
        {
            session.RecordCallbackFailure($"ServerCertificateSelector threw {e.GetType().Name} for host name '{LogSafe.Text(hostName)}': {e.Message}");
            *alert = Interop.Ssl.SSL_AD_INTERNAL_ERROR;
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        if (certificate is null)
        {
            session.RecordCallbackFailure($"ServerCertificateSelector returned no certificate for host name '{LogSafe.Text(hostName)}' and there is no ServerCertificate");
            *alert = Interop.Ssl.SSL_AD_UNRECOGNIZED_NAME;
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        if (ReferenceEquals(certificate, _defaultCertificate))
        {
            return Interop.Ssl.SSL_TLSEXT_ERR_OK;
        }
        SafeSslContextHandle? context = GetSelectedContext(certificate, session);
        if (context is null)
        {
            *alert = Interop.Ssl.SSL_AD_INTERNAL_ERROR;
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        if (!ReferenceEquals(context, _defaultContext) && Interop.SSL_set_SSL_CTX(ssl, context) == 0)
        {
            session.RecordCallbackFailure("SSL_set_SSL_CTX failed: " + OpenSslError.Drain());
            *alert = Interop.Ssl.SSL_AD_INTERNAL_ERROR;
            return Interop.Ssl.SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        return Interop.Ssl.SSL_TLSEXT_ERR_OK;
    }

    // The native context for a selector certificate: cached by instance (a lock-free lookup), then by SHA-256, built once.
    private SafeSslContextHandle? GetSelectedContext(X509Certificate2 certificate, TlsSession session)
    {
        if (_selectedByInstance.TryGetValue(certificate, out SafeSslContextHandle? cached))
        {
            return cached;
        }
        string thumbprint = Thumbprint(certificate);
        if (thumbprint == _defaultThumbprint)
        {
            return _defaultContext;
        }
        lock (_selectedLock)
        {
            if (IsDisposed)
            {
                return null;
            }
            if (!_selectedByThumbprint.TryGetValue(thumbprint, out cached))
            {
                if (_selectedByThumbprint.Count >= MaxSelectedCertificates)
                {
                    session.RecordCallbackFailure($"ServerCertificateSelector returned more than {MaxSelectedCertificates} distinct certificates; refusing to build more contexts");
                    return null;
                }
                try
                {
                    cached = CreateNativeContext(certificate, null);
                }
                catch (Exception e)
                {
                    session.RecordCallbackFailure("the selected server certificate could not be used: " + e.Message);
                    return null;
                }
                _selectedByThumbprint.Add(thumbprint, cached);
            }
            _selectedByInstance.AddOrUpdate(certificate, cached);
            return cached;
        }
    }

    private bool ValidateClientCertificate(TlsSession session, nint storeContext)
    {
        X509Certificate2 certificate = X509Interop.ToManaged(Interop.X509_STORE_CTX_get0_cert(storeContext));
        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = _revocationMode;
        // No AIA fetches on the channel thread; only an explicitly Online revocation mode may use the network.
        chain.ChainPolicy.DisableCertificateDownloads = _revocationMode != X509RevocationMode.Online;
        chain.ChainPolicy.ApplicationPolicy.Add(s_clientAuthentication);
        // The intermediates the client sent (the stack may include the leaf; an extra copy is harmless).
        nint untrusted = Interop.X509_STORE_CTX_get0_untrusted(storeContext);
        int count = untrusted == 0 ? 0 : Interop.OPENSSL_sk_num(untrusted);
        for (int i = 0; i < count; i++)
        {
            chain.ChainPolicy.ExtraStore.Add(X509Interop.ToManaged(Interop.OPENSSL_sk_value(untrusted, i)));
        }
        bool accepted;
        SslPolicyErrors errors = SslPolicyErrors.None;
        try
        {
            if (!chain.Build(certificate))
            {
                errors = SslPolicyErrors.RemoteCertificateChainErrors;
            }
            accepted = _clientCertificateValidation is null ? errors == SslPolicyErrors.None : _clientCertificateValidation(certificate, chain, errors);
            if (!accepted)
            {
                session.RecordCallbackFailure(_clientCertificateValidation is null
                    ? $"the client certificate '{LogSafe.Text(certificate.Subject)}' was rejected: {DescribeChain(chain)}"
                    : $"ClientCertificateValidation rejected the client certificate '{LogSafe.Text(certificate.Subject)}' ({errors})");
            }
        }
        finally
        {
            // The chain was the callback's only during the call; its certificates (copies, not `certificate`) go now.
            foreach (X509Certificate2 extra in chain.ChainPolicy.ExtraStore)
            {
                extra.Dispose();
            }
            foreach (X509ChainElement element in chain.ChainElements)
            {
                element.Certificate.Dispose();
            }
        }
        if (accepted)
        {
            session.SetRemoteCertificate(certificate);
        }
        else
        {
            certificate.Dispose();
        }
        return accepted;
    }

    private static string DescribeChain(X509Chain chain)
    {
        if (chain.ChainStatus.Length == 0)
        {
            return "chain errors";
        }
        return string.Join("; ", chain.ChainStatus.Select(s => s.Status + (string.IsNullOrWhiteSpace(s.StatusInformation) ? "" : " (" + s.StatusInformation.Trim() + ")")));
    }

    private static class StoreContextIndex
    {
        public static readonly int Value = Interop.SSL_get_ex_data_X509_STORE_CTX_idx();
    }
}
