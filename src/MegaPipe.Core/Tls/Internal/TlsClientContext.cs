// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Security;
using System.Security.Authentication;

namespace MegaPipe.Tls.Internal;

// The client side of the engine, for in-process tests and benchmarks only: it does not verify the server's
// certificate, so it is internal and must never be used to talk to anything but our own server.
internal sealed unsafe class TlsClientContext : IDisposable
{
    private readonly SafeSslContextHandle _context;

    public TlsClientContext(SslProtocols protocols = SslProtocols.None, IReadOnlyList<SslApplicationProtocol>? applicationProtocols = null)
    {
        OpenSslError.Clear();
        _context = SafeSslContextHandle.Create(Interop.TLS_client_method());
        if (_context.IsInvalid)
        {
            _context.Dispose();
            TlsThrowHelper.ThrowOpenSsl("SSL_CTX_new");
        }
        int min = protocols is SslProtocols.None || (protocols & SslProtocols.Tls12) != 0 ? Interop.Ssl.TLS1_2_VERSION : Interop.Ssl.TLS1_3_VERSION;
        int max = protocols is SslProtocols.None || (protocols & SslProtocols.Tls13) != 0 ? Interop.Ssl.TLS1_3_VERSION : Interop.Ssl.TLS1_2_VERSION;
        Interop.SSL_CTX_ctrl(_context, Interop.Ssl.SSL_CTRL_SET_MIN_PROTO_VERSION, min, 0);
        Interop.SSL_CTX_ctrl(_context, Interop.Ssl.SSL_CTRL_SET_MAX_PROTO_VERSION, max, 0);
        Interop.SSL_CTX_ctrl(_context, Interop.Ssl.SSL_CTRL_MODE, (nint)Interop.Ssl.SSL_MODE_RELEASE_BUFFERS, 0);
        if (applicationProtocols is { Count: > 0 })
        {
            var wire = new List<byte>();
            foreach (SslApplicationProtocol protocol in applicationProtocols)
            {
                wire.Add((byte)protocol.Protocol.Length);
                wire.AddRange(protocol.Protocol.Span);
            }
            byte[] list = wire.ToArray();
            fixed (byte* pointer = list)
            {
                // Unlike most OpenSSL calls, 0 means success here.
                if (Interop.SSL_CTX_set_alpn_protos(_context, pointer, (uint)list.Length) != 0)
                {
                    TlsThrowHelper.ThrowOpenSsl("SSL_CTX_set_alpn_protos");
                }
            }
        }
    }

    public TlsSession CreateSession(string? serverName = null, SafeSslSessionHandle? resume = null)
    {
        var session = new TlsSession(_context, isServer: false, serverName);
        if (resume is not null && !resume.IsInvalid)
        {
            session.SetClientSessionToResume(resume);
        }
        return session;
    }

    public void Dispose() => _context.Dispose();
}
