using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls.Internal;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// The library probe the transport checks before it terminates TLS itself, and the session state the selector gets.
public sealed class TlsLibraryTests
{
    [Fact]
    public void OpenSsl3_IsAvailable_WithItsVersion()
    {
        Assert.True(TlsLibrary.IsAvailable, TlsLibrary.UnavailableReason);
        Assert.Null(TlsLibrary.UnavailableReason);
        Assert.StartsWith("OpenSSL 3.", TlsLibrary.Version);
    }

    [Fact]
    public void Selector_GetsTheSessionState_AndTheHostName()
    {
        var seen = new List<(object? State, string? Name)>();
        var options = new TlsServerOptions
        {
            ServerCertificateSelector = (state, name) =>
            {
                seen.Add((state, name));
                return name == "alpha.test" ? TestCertificates.Alpha : TestCertificates.Beta;
            },
        };
        using var server = new TlsServerContext(options);
        using var client = new TlsClientContext();
        object owner = new();
        using var pair = new InProcessPair(server, client, serverName: "alpha.test");
        pair.Server.State = owner;
        Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
        (object? state, string? name) = Assert.Single(seen);
        Assert.Same(owner, state);
        Assert.Equal("alpha.test", name);
        using X509Certificate2? presented = pair.Client.RemoteCertificate;
        Assert.Equal(TestCertificates.Alpha.Thumbprint, presented?.Thumbprint);
    }
}
