using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls.Tests.Infrastructure;

// A client TlsSession and a server TlsSession wired back to back in memory: bytes one side outputs are fed to the
// other. Drives the engine deterministically where no socket is needed (ticket rotation, buffer edge cases).
internal sealed class InProcessPair : IDisposable
{
    private readonly byte[] _buffer = new byte[64 * 1024];

    public InProcessPair(TlsServerContext server, TlsClientContext client, string? serverName = null, SafeSslSessionHandle? resume = null)
    {
        Server = server.CreateSession();
        Client = client.CreateSession(serverName, resume);
    }

    public TlsSession Server { get; }

    public TlsSession Client { get; }

    /// <summary>Runs both handshakes to completion (or failure); returns the server's status.</summary>
    public TlsHandshakeStatus Handshake()
    {
        for (int round = 0; round < 20; round++)
        {
            TlsHandshakeStatus client = Client.Handshake();
            Transfer(Client, Server);
            TlsHandshakeStatus server = Server.Handshake();
            Transfer(Server, Client);
            if (server == TlsHandshakeStatus.Failed || client == TlsHandshakeStatus.Failed)
            {
                return server == TlsHandshakeStatus.Failed ? server : Client.Handshake() == TlsHandshakeStatus.Failed ? TlsHandshakeStatus.Failed : server;
            }
            if (server == TlsHandshakeStatus.Completed && Client.Handshake() == TlsHandshakeStatus.Completed)
            {
                return TlsHandshakeStatus.Completed;
            }
        }
        throw new InvalidOperationException("The in-process handshake did not finish in 20 rounds.");
    }

    /// <summary>Has the client read what the server sent (TLS 1.3 tickets arrive after the handshake).</summary>
    public void ClientReadsPending()
    {
        Transfer(Server, Client);
        Span<byte> sink = stackalloc byte[256];
        Client.Decrypt(sink, out _);
    }

    public void Transfer(TlsSession from, TlsSession to)
    {
        int taken;
        while ((taken = from.TakeOutput(_buffer)) > 0)
        {
            to.Feed(_buffer.AsSpan(0, taken));
        }
    }

    public void Dispose()
    {
        // A clean close: OpenSSL marks a session that ended without close_notify as not resumable.
        Client.Shutdown();
        Server.Shutdown();
        Server.Dispose();
        Client.Dispose();
    }
}
