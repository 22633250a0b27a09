using System.Net;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// Every <see cref="TransportTests"/> test on the MegaPipe transport with its epoll fallback engine
/// forced (MegaPipeTransportOptions.Engine = Epoll): the engine that runs where io_uring is blocked.
/// </summary>
public sealed class MegaPipeEpollTransportTests(ITestOutputHelper output) : TransportTests(output)
{
    protected override TestTransport Transport => TestTransport.MegaPipeEpoll;

    [Fact]
    public async Task EngineChoice_IsLoggedOnce_WithTheReason()
    {
        await using TestServer server = await StartServerAsync(app => CommonEndpoints.Map(app), kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0);
            kestrel.Listen(IPAddress.IPv6Loopback, 0);
        });
        LogEntry engine = Assert.Single(server.Logs.Entries, e => e.Category == "MegaPipe.Transport" && e.EventId.Name == "EngineFallback");
        Assert.Equal(LogLevel.Warning, engine.Level);
        Assert.Contains("epoll", engine.Message, StringComparison.Ordinal);
        Assert.Contains("ChannelOptions.Engine=Epoll", engine.Message, StringComparison.Ordinal);
        // Each endpoint's line names the engine and does not claim lightweight sockets it cannot have.
        LogEntry[] listening = server.Logs.Entries.Where(e => e.EventId.Name == "Listening").ToArray();
        Assert.Equal(2, listening.Length);
        Assert.All(listening, e =>
        {
            Assert.Contains("2 channels on epoll", e.Message, StringComparison.Ordinal);
            Assert.Contains("lightweight sockets emulated with regular descriptors (epoll engine)", e.Message, StringComparison.Ordinal);
        });
        await AssertServerServesAsync(server, "EngineFallback");
    }
}
