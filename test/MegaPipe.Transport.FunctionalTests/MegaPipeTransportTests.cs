using System.Net;
using System.Net.Http;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// Every <see cref="TransportTests"/> test on the MegaPipe transport (UseMegaPipe, ChannelCount = 2),
/// and the few tests that only make sense for MegaPipe.
/// </summary>
public sealed class MegaPipeTransportTests(ITestOutputHelper output) : TransportTests(output)
{
    protected override TestTransport Transport => TestTransport.MegaPipe;

    [Fact]
    public async Task UseMegaPipe_IsTheTransportInUse()
    {
        TaskCompletionSource<ConnectionContext> seen = NewSignal<ConnectionContext>();
        await using TestServer server = await StartServerAsync(
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => connection =>
            {
                seen.TrySetResult(connection);
                return next(connection);
            })));

        // The "MegaPipe.Transport" logger announced the bound endpoint, with the options in use.
        LogEntry listening = Assert.Single(server.Logs.Entries, e => e.Category == "MegaPipe.Transport" && e.EventId.Name == "Listening");
        Assert.Equal(8, listening.EventId.Id);
        Assert.Equal(LogLevel.Information, listening.Level);
        Assert.Contains(server.EndPoint.ToString(), listening.Message, StringComparison.Ordinal);
        Assert.Contains("2 channels", listening.Message, StringComparison.Ordinal);
        // And, once, the engine and why.
        LogEntry engine = Assert.Single(server.Logs.Entries, e => e.Category == "MegaPipe.Transport" && e.EventId.Name == "EngineSelected");
        Assert.Contains("io_uring", engine.Message, StringComparison.Ordinal);

        using HttpClient client = CreateClient(server);
        Assert.Equal(CommonEndpoints.Hello, await client.GetStringAsync("/hello"));
        ConnectionContext connection = await seen.Task.WaitAsync(TestTimeouts.Default);
        Assert.IsType<MegaPipeConnection>(connection);
        Assert.Same(connection, connection.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionTransportFeature>());
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(false, false, false, false)]
    [InlineData(true, false, true, false)]
    [InlineData(true, true, false, false)]
    [InlineData(true, true, true, true)]
    public async Task OptionVariants_ServeRequestsAndLargeBodies(bool batching, bool partitioning, bool lightweightSockets, bool inlineScheduling)
    {
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            configureMegaPipe: options =>
            {
                options.Batching = batching;
                options.Partitioning = partitioning;
                options.LightweightSockets = lightweightSockets;
                options.UnsafeInlineScheduling = inlineScheduling;
            },
            output: Output);
        LogEntry listening = Assert.Single(server.Logs.Entries, e => e.EventId.Name == "Listening");
        string partitioned = partitioning ? "on (2 CPU-steered accept queues)" : "off (MegaPipe:Partitioning is false)";
        string lightweight = lightweightSockets ? "on" : "off (MegaPipe:LightweightSockets is false)";
        Assert.Contains($"2 channels on io_uring, batching {batching}, partitioning {partitioned}, lightweight sockets {lightweight}, inline scheduling {inlineScheduling}", listening.Message, StringComparison.Ordinal);

        using HttpClient client = CreateClient(server);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            Assert.Equal($"{i}", await client.GetStringAsync($"/id/{i}"));
        }));
        ReadOnlyMemory<byte> payload = TestData.Payload(4 * 1024 * 1024);
        using (var content = new ReadOnlyMemoryContent(payload))
        using (HttpResponseMessage response = await client.PostAsync("/sha256", content))
        {
            Assert.Equal($"{payload.Length} {TestData.Sha256Hex(payload.Span)}", await response.Content.ReadAsStringAsync());
        }
        byte[] downloaded = await client.GetByteArrayAsync($"/bytes/{payload.Length}");
        Assert.Equal(TestData.Sha256Hex(payload.Span), TestData.Sha256Hex(downloaded));
        await AssertServerServesAsync(server);
    }

    private sealed class CustomFeature;

    private sealed class OtherCustomFeature;

    // The connection is its own feature collection: typed slots for the common features and a
    // dictionary for the rest, with the IFeatureCollection contract (revision, removal by null, enumeration).
    [Fact]
    public async Task ConnectionFeatures_BehaveAsAFeatureCollection()
    {
        TaskCompletionSource<string> checkedFeatures = NewSignal<string>();
        await using TestServer server = await StartServerAsync(
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => connection =>
            {
                try
                {
                    IFeatureCollection features = connection.Features;
                    Assert.Same(connection, features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionTransportFeature>());
                    Assert.NotNull(features.Get<IMegaPipeChannelFeature>());
                    Assert.Null(features.Get<CustomFeature>());
                    int revision = features.Revision;
                    var custom = new CustomFeature();
                    features.Set(custom);
                    Assert.Same(custom, features.Get<CustomFeature>());
                    Assert.Same(custom, features[typeof(CustomFeature)]);
                    Assert.True(features.Revision > revision);
                    Type[] types = features.Select(f => f.Key).ToArray();
                    Assert.Contains(typeof(CustomFeature), types);
                    Assert.Contains(typeof(IMegaPipeChannelFeature), types);
                    Assert.Equal(types.Length, types.Distinct().Count());
                    // A second type of its own (the spare slot or the dictionary, whichever is free).
                    var other = new OtherCustomFeature();
                    features.Set(other);
                    Assert.Same(other, features.Get<OtherCustomFeature>());
                    Assert.Same(custom, features.Get<CustomFeature>());
                    features.Set<CustomFeature>(null);
                    Assert.Null(features.Get<CustomFeature>());
                    Assert.Same(other, features.Get<OtherCustomFeature>());
                    features.Set(custom);
                    Assert.Same(custom, features.Get<CustomFeature>());
                    features.Set<OtherCustomFeature>(null);
                    features.Set<CustomFeature>(null);
                    Assert.Null(features.Get<OtherCustomFeature>());
                    Assert.Null(features.Get<CustomFeature>());
                    Assert.DoesNotContain(typeof(CustomFeature), features.Select(f => f.Key));
                    // A slot feature replaced and read back (Kestrel sets some of these).
                    var tags = new TagsFeature();
                    features.Set<Microsoft.AspNetCore.Connections.Features.IConnectionMetricsTagsFeature>(tags);
                    Assert.Same(tags, features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionMetricsTagsFeature>());
                    checkedFeatures.TrySetResult("ok");
                }
                catch (Exception e)
                {
                    checkedFeatures.TrySetResult(e.ToString());
                }
                return next(connection);
            })));
        using HttpClient client = CreateClient(server);
        Assert.Equal(CommonEndpoints.Hello, await client.GetStringAsync("/hello"));
        Assert.Equal("ok", await checkedFeatures.Task.WaitAsync(TestTimeouts.Default));
    }

    private sealed class TagsFeature : Microsoft.AspNetCore.Connections.Features.IConnectionMetricsTagsFeature
    {
        public ICollection<KeyValuePair<string, object?>> Tags { get; } = new List<KeyValuePair<string, object?>>();
    }

    [Fact]
    public async Task OneChannel_ListeningLineSaysWhyThereIsNoPartitioning()
    {
        await using TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app),
            configureMegaPipe: options => options.ChannelCount = 1, output: Output);
        LogEntry listening = Assert.Single(server.Logs.Entries, e => e.EventId.Name == "Listening");
        Assert.Contains("1 channel on io_uring, batching True, partitioning off (one channel), lightweight sockets on", listening.Message, StringComparison.Ordinal);
        await AssertServerServesAsync(server);
    }

    // MaxConnections: at the limit the channels stop accepting; further connections wait in the
    // backlog and are served as soon as connections close; Kestrel never sees more than the limit.
    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task MaxConnections_ExtraConnectionsWaitInBacklog_ThenAreServed(ChannelEngine engine)
    {
        const int Max = 4;
        int open = 0;
        int peak = 0;
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => async connection =>
            {
                int now = Interlocked.Increment(ref open);
                int seen;
                while (now > (seen = Volatile.Read(ref peak)) && Interlocked.CompareExchange(ref peak, now, seen) != seen)
                {
                }
                try
                {
                    await next(connection);
                }
                finally
                {
                    Interlocked.Decrement(ref open);
                }
            })),
            configureMegaPipe: options =>
            {
                options.MaxConnections = Max;
                options.Engine = engine;
            },
            output: Output);

        var held = new List<RawHttpConnection>();
        for (int i = 0; i < Max; i++)
        {
            RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
            held.Add(connection);
            Assert.Equal(200, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).StatusCode);
        }
        // The limit is reached: every channel paused accepting.
        await server.Logs.WaitForAsync(e => e.EventId.Name == "ConnectionLimitReached");

        // Two more connect (the kernel completes the handshake into the backlog) and ask.
        var waiting = new List<RawHttpConnection>();
        var answers = new List<Task<RawHttpResponse>>();
        for (int i = 0; i < 2; i++)
        {
            RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
            waiting.Add(connection);
            answers.Add(connection.RequestAsync(RawHttpConnection.Get("/hello")));
        }

        // Closing two held connections lets both in.
        held[0].Dispose();
        held[1].Dispose();
        foreach (Task<RawHttpResponse> answer in answers)
        {
            RawHttpResponse response = await answer.WaitAsync(TestTimeouts.Default);
            Assert.Equal(200, response.StatusCode);
        }
        Assert.True(Volatile.Read(ref peak) <= Max, $"Kestrel saw {peak} connections at once; the limit is {Max}");

        foreach (RawHttpConnection connection in held.Skip(2).Concat(waiting))
        {
            connection.Dispose();
        }
        await AssertServerServesAsync(server);
        Assert.True(Volatile.Read(ref peak) <= Max, $"Kestrel saw {peak} connections at once; the limit is {Max}");
    }
}
