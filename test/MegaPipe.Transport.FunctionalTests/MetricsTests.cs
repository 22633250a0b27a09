using System.Diagnostics.Metrics;
using System.Net;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// The transport's meter: created through the host's IMeterFactory, its measurements tagged with
/// channel and engine (and endpoint where they are per endpoint), batching as it is now, and accept pauses.
/// </summary>
public sealed class MetricsTests(ITestOutputHelper output)
{
    private sealed record Reading(string Instrument, double Value, Dictionary<string, object?> Tags, object? Scope);

    private static List<Reading> Collect(object? scope = null)
    {
        var readings = new List<Reading>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == MegaPipeMetrics.MeterName && (scope is null || instrument.Meter.Scope == scope))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var map = new Dictionary<string, object?>();
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                map[tag.Key] = tag.Value;
            }
            readings.Add(new Reading(instrument.Name, value, map, instrument.Meter.Scope));
        }
        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Add(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Add(i, v, t));
        listener.Start();
        listener.RecordObservableInstruments();
        return readings;
    }

    [Theory]
    [InlineData(ChannelEngine.IoUring, "io_uring")]
    [InlineData(ChannelEngine.Epoll, "epoll")]
    public async Task Instruments_AreTaggedWithChannelAndEngine_FromTheHostsMeterFactory(ChannelEngine engine, string engineName)
    {
        await using TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app),
            configureMegaPipe: options => options.Engine = engine, output: output);
        IMeterFactory meterFactory = server.App.Services.GetRequiredService<IMeterFactory>();
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(200, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).StatusCode);
        }

        List<Reading> readings = Collect(meterFactory);
        string[] instruments = ["megapipe.channels", "megapipe.engine", "megapipe.connections", "megapipe.handles", "megapipe.registered_files",
            "megapipe.receive_buffers_available", "megapipe.commands", "megapipe.system_calls", "megapipe.completions", "megapipe.wakeups",
            "megapipe.commands_per_system_call", "megapipe.accept_pauses", "megapipe.tls.handshakes"];
        foreach (string name in instruments)
        {
            Reading[] mine = readings.Where(r => r.Instrument == name).ToArray();
            Assert.True(mine.Length >= 2, $"{name}: {mine.Length} measurements, one per channel expected");
            Assert.All(mine, r =>
            {
                Assert.Same(meterFactory, r.Scope);
                Assert.Equal(engineName, r.Tags["megapipe.engine"]);
                Assert.Contains(r.Tags["megapipe.channel"], new object?[] { 0, 1 });
            });
        }
        Assert.Equal(2, readings.Where(r => r.Instrument == "megapipe.channels").Sum(r => r.Value));
        // The one open connection is on one of the two channels.
        Assert.Equal(1, readings.Where(r => r.Instrument == "megapipe.connections").Sum(r => r.Value));
        Assert.All(readings.Where(r => r.Instrument is "megapipe.accept_pauses" or "megapipe.connections"), r => Assert.Equal(server.EndPoint.ToString(), r.Tags["megapipe.endpoint"]));
    }

    // Handshakes on the channels by outcome: full, resumed (Python resumes its second connection), failed (garbage),
    // timed out (a silent client).
    [Fact]
    public async Task TlsHandshakes_CountedByOutcome()
    {
        await using TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(System.Net.IPAddress.Loopback, 0, listen => listen.UseMegaPipeHttps(TestCertificates.Rsa, https => https.HandshakeTimeout = TimeSpan.FromSeconds(1))),
            output: output);
        IMeterFactory meterFactory = server.App.Services.GetRequiredService<IMeterFactory>();
        using (MegaPipe.Tests.Shared.ClientProcess python = await TlsClients.PythonAsync(server.EndPoint, "resume", "1.3"))
        {
            Assert.True(python.ExitCode == 0, python.ToString());
        }
        using (RawHttpConnection garbage = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await garbage.SendAsync("GET / HTTP/1.1\r\n\r\n");
            await garbage.WaitForCloseAsync();
        }
        using (RawHttpConnection silent = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await silent.WaitForCloseAsync();
        }
        double Count(string outcome) => Collect(meterFactory).Where(r => r.Instrument == "megapipe.tls.handshakes" && (string?)r.Tags["megapipe.tls.outcome"] == outcome).Sum(r => r.Value);
        Assert.Equal(1, Count("full"));
        Assert.Equal(1, Count("resumed"));
        Assert.Equal(1, Count("failed"));
        Assert.Equal(1, Count("timed_out"));
    }

    [Fact]
    public async Task CommandsPerSystemCall_IsTheRatioSinceThePreviousReading()
    {
        await using TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app),
            configureMegaPipe: options => options.ChannelCount = 1, output: output);
        IMeterFactory meterFactory = server.App.Services.GetRequiredService<IMeterFactory>();
        MegaPipeTransportFactory factory = server.App.Services.GetServices<Microsoft.AspNetCore.Connections.IConnectionListenerFactory>().OfType<MegaPipeTransportFactory>().Single();
        ChannelThread channel = factory.Group!.Threads[0];

        // Pipelined requests on many connections make batches of many commands per enter.
        var connections = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => RawHttpConnection.ConnectAsync(server.EndPoint)));
        ChannelCounters before = channel.Counters;
        Collect(meterFactory); // the previous reading the next one is measured from
        await Task.Delay(600); // the reading is a rate over at least 0.5 s
        string pipelined = string.Concat(Enumerable.Repeat(RawHttpConnection.Get("/hello"), 16));
        await Task.WhenAll(connections.Select(async c =>
        {
            await c.SendAsync(pipelined);
            for (int i = 0; i < 16; i++)
            {
                Assert.Equal(200, (await c.ReadResponseAsync()).StatusCode);
            }
        }));
        ChannelCounters after = channel.Counters;
        double now = Collect(meterFactory).Single(r => r.Instrument == "megapipe.commands_per_system_call").Value;
        double expected = (double)(after.Commands - before.Commands) / (after.SystemCalls - before.SystemCalls);
        // Counted over the window between the two readings, not since start (a few commands may
        // land between our snapshot and the reading).
        Assert.InRange(now, expected * 0.8, expected * 1.2);
        foreach (RawHttpConnection c in connections)
        {
            c.Dispose();
        }
    }

    [Fact]
    public async Task AcceptPauses_CountTheConnectionLimit()
    {
        await using TestServer server = await TestServer.StartAsync(TestTransport.MegaPipe, app => CommonEndpoints.Map(app),
            configureMegaPipe: options => options.MaxConnections = 1, output: output);
        IMeterFactory meterFactory = server.App.Services.GetRequiredService<IMeterFactory>();
        Assert.Equal(0, Collect(meterFactory).Where(r => r.Instrument == "megapipe.accept_pauses").Sum(r => r.Value));
        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            Assert.Equal(200, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).StatusCode);
            await server.Logs.WaitForAsync(e => e.EventId.Name == "ConnectionLimitReached");
            // Each channel paused (one accept queue per channel).
            await Poll.UntilAsync(() => Collect(meterFactory).Where(r => r.Instrument == "megapipe.accept_pauses" && (string?)r.Tags["megapipe.reason"] == "max_connections").Sum(r => r.Value) >= 2,
                "an accept pause for max_connections on each of the 2 channels");
        }
        Assert.Equal(0, Collect(meterFactory).Where(r => r.Instrument == "megapipe.accept_pauses" && (string?)r.Tags["megapipe.reason"] == "descriptors").Sum(r => r.Value));
    }
}
