using System.Net;
using MegaPipe.StaticServer.Tests.Infrastructure;

namespace MegaPipe.StaticServer.Tests;

/// <summary>
/// On MegaPipe, file contents are read by the connection's own channel (io_uring read commands,
/// counted by the channel's IMegaPipeFileReader); on Sockets, by RandomAccess. Both serve the same bytes.
/// </summary>
public sealed class ChannelReadTests
{
    private const int LargeSize = 1024 * 1024 + 4321; // streamed: above the content cache's file size limit

    private static async Task AssertReadsThroughTheChannelAsync(SiteFixture fixture, string name)
    {
        byte[] content = TempSite.RandomBytes(LargeSize, 3);
        fixture.Site.Write($"channel/{name}.bin", content);
        StaticServerStats stats = fixture.Server.Stats;
        long channelReads = stats.ChannelReads;

        Assert.Equal(content, await fixture.Client.GetByteArrayAsync($"/channel/{name}.bin"));

        // The request saw the transport's features through HttpContext.Features...
        Transport.IMegaPipeFileReader reader = Assert.IsAssignableFrom<Transport.IMegaPipeFileReader>(fixture.Server.Probe.Reader);
        Transport.IMegaPipeChannelFeature channel = Assert.IsAssignableFrom<Transport.IMegaPipeChannelFeature>(fixture.Server.Probe.Channel);
        Assert.Same(reader, channel.FileReader);
        Assert.InRange(channel.ChannelIndex, 0, Environment.ProcessorCount - 1);
        // ...and every read of the body went through the channel: 1 MiB + 4321 bytes in 256 KiB reads is at least 5 commands.
        Assert.True(stats.ChannelReads - channelReads >= 5, $"{stats.ChannelReads - channelReads} channel reads");
        Assert.True(reader.ReadCommands >= 5, $"{reader.ReadCommands} ReadFile commands on the channel");
        Assert.True(channel.Counters.Commands >= reader.ReadCommands);
        Assert.Equal(0, stats.FallbackReads);
    }

    public sealed class Inline(SiteFixture fixture) : IClassFixture<SiteFixture>
    {
        [Fact]
        public Task LargeFile_IsReadThroughTheConnectionsChannel() => AssertReadsThroughTheChannelAsync(fixture, "inline");

        [Fact]
        public async Task SmallFile_IsReadThroughTheChannelOnce_ThenServedFromTheContentCache()
        {
            fixture.Site.Write("channel/small.html", new string('s', 6 * 1024));
            StaticServerStats stats = fixture.Server.Stats;
            long reads = stats.ChannelReads;
            long fills = stats.ContentCacheFills;

            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(6 * 1024, (await fixture.Client.GetStringAsync("/channel/small.html")).Length);
            }

            Assert.Equal(1, stats.ContentCacheFills - fills);
            Assert.Equal(1, stats.ChannelReads - reads);
            Assert.Equal(0, stats.FallbackReads);
        }
    }

    public sealed class ThreadPool(ThreadPoolSiteFixture fixture) : IClassFixture<ThreadPoolSiteFixture>
    {
        [Fact]
        public Task LargeFile_IsReadThroughTheConnectionsChannel() => AssertReadsThroughTheChannelAsync(fixture, "threadpool");

        [Fact]
        public async Task ConcurrentDownloads_OnSeveralChannels_AreAllIntact()
        {
            byte[] content = TempSite.RandomBytes(LargeSize, 4);
            fixture.Site.Write("channel/concurrent.bin", content);

            byte[][] bodies = await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
            {
                using HttpClient client = fixture.Server.CreateClient(); // own connections, spread over the channels
                return await client.GetByteArrayAsync("/channel/concurrent.bin");
            }));

            Assert.All(bodies, body => Assert.Equal(content, body));
            Assert.Equal(0, fixture.Server.Stats.FallbackReads);
        }
    }

    public sealed class Sockets(SocketsSiteFixture fixture) : IClassFixture<SocketsSiteFixture>
    {
        [Fact]
        public async Task WithoutMegaPipe_FilesAreReadWithRandomAccess()
        {
            byte[] content = TempSite.RandomBytes(LargeSize, 5);
            fixture.Site.Write("channel/sockets.bin", content);
            fixture.Site.Write("channel/sockets-small.txt", "small");

            Assert.Equal(content, await fixture.Client.GetByteArrayAsync("/channel/sockets.bin"));
            Assert.Equal("small", await fixture.Client.GetStringAsync("/channel/sockets-small.txt"));

            Assert.Null(fixture.Server.Probe.Reader);
            Assert.Null(fixture.Server.Probe.Channel);
            Assert.True(fixture.Server.Stats.FallbackReads >= 5);
            Assert.Equal(0, fixture.Server.Stats.ChannelReads);
        }

        [Fact]
        public async Task WithoutMegaPipe_RangesAndConditionalsStillWork()
        {
            fixture.Site.Write("channel/sockets-range.txt", "0123456789");
            var request = new HttpRequestMessage(HttpMethod.Get, "/channel/sockets-range.txt");
            request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(2, 4);
            using HttpResponseMessage partial = await fixture.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
            Assert.Equal("234", await partial.Content.ReadAsStringAsync());

            var conditional = new HttpRequestMessage(HttpMethod.Get, "/channel/sockets-range.txt");
            conditional.Headers.IfNoneMatch.Add(partial.Headers.ETag!);
            using HttpResponseMessage notModified = await fixture.Client.SendAsync(conditional);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        }
    }
}
