using System.Security.Authentication;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// The engine against Python's ssl module: resumption (session= / session_reused) and close_notify.
public sealed class PythonClientTests
{
    [Theory]
    [InlineData("1.3", SslProtocols.Tls13)]
    [InlineData("1.2", SslProtocols.Tls12)]
    public async Task Resumption_ObservedByClient(string version, SslProtocols protocol)
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        using ClientProcess client = PythonClient.Start(server.Port, version, "resume");
        Assert.True(await client.WaitForExitAsync() == 0, client.ToString());
        Assert.Contains($"reused False TLSv{version}\nreused True TLSv{version}\n", client.Output);
        ConnectionResult first = await server.NextResultAsync();
        ConnectionResult second = await server.NextResultAsync();
        Assert.Equal(protocol, first.Protocol);
        Assert.False(first.IsResumed);
        Assert.True(second.IsResumed, second.ToString());
    }

    [Fact]
    public async Task SessionTicketsOff_NoResumption()
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa, SessionTickets = false });
        foreach (string version in new[] { "1.3", "1.2" })
        {
            using ClientProcess client = PythonClient.Start(server.Port, version, "resume");
            Assert.True(await client.WaitForExitAsync() == 0, client.ToString());
            Assert.Contains($"reused False TLSv{version}\nreused False TLSv{version}\n", client.Output);
            Assert.False((await server.NextResultAsync()).IsResumed);
            Assert.False((await server.NextResultAsync()).IsResumed);
        }
    }

    [Theory]
    [InlineData("1.3")]
    [InlineData("1.2")]
    public async Task ServerClose_SendsCloseNotifyBeforeFin(string version)
    {
        await using var server = new TlsEchoServer(new TlsServerOptions { ServerCertificate = TestCertificates.Rsa });
        using ClientProcess client = PythonClient.Start(server.Port, version, "bye");
        Assert.True(await client.WaitForExitAsync() == 0, client.ToString());
        // Python reports a ragged EOF (no close_notify) as SSLEOFError; "clean" means it read close_notify.
        Assert.Contains("clean b'bye\\n'", client.Output);
        await server.NextResultAsync();
    }
}
