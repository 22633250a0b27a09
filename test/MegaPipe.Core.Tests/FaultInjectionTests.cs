using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using MegaPipe.Core.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MegaPipe.Core.Tests;

// Faults injected into the engine's traffic (Infrastructure/FaultInjector, through the channel's
// test hook): short writes, ENOBUFS, EAGAIN, ECANCELED and ECONNRESET on the continuous receive
// or on sends, and a CQ too small for what completes. Under each, an echo server on a channel serves many connections sending seeded
// random payloads; every connection must get exactly its bytes back, in order, or be closed with
// an error after an exact prefix of them. Nothing may be dropped or duplicated silently.
public abstract class FaultInjectionTests(ITestOutputHelper output) : EngineTestBase
{
    public enum Fault
    {
        ShortWrites,
        ReceiveENOBUFS,
        ReceiveEAGAIN,
        ReceiveECANCELED,
        ReceiveECONNRESET,
        SendEAGAIN,
        SendECANCELED,
        SendECONNRESET,
        CqOverflow,
        // Every fault the channel absorbs, together, with a CQ that overflows.
        AllAbsorbed,
    }

    private const int Connections = 32;
    private const int MinPayload = 128 * 1024;
    private const int MaxPayload = 384 * 1024;
    private const int MaxChunk = 16 * 1024;
    // At most this many received chunks go out in one (gathered) write.
    private const int MaxSegmentsPerWrite = 8;
    private const int ReceiveBuffers = 64;
    // Backpressure: a connection stops receiving with this much queued, and resumes below the low mark.
    private const int HighWater = 64 * 1024;
    private const int LowWater = 16 * 1024;
    private const int Seed = 20121008;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    private static FaultInjector CreateInjector(Fault fault, ChannelOptions options)
    {
        var injector = new FaultInjector(Seed + (int)fault);
        // Schedules: every Nth where the test needs the fault to land for sure (at least 32 receive
        // arms and 32 * MinPayload / (MaxSegmentsPerWrite * 4 KiB) = 128 sends happen), seeded
        // random where there are many candidates.
        switch (fault)
        {
            case Fault.ShortWrites:
                injector.ShortWrites(FaultSchedule.Random(0.5));
                break;
            case Fault.ReceiveENOBUFS:
                injector.Fail(FaultTarget.Receive, Errno.ENOBUFS, FaultSchedule.EveryNth(2));
                break;
            case Fault.ReceiveEAGAIN:
                injector.Fail(FaultTarget.Receive, Errno.EAGAIN, FaultSchedule.Random(0.5));
                break;
            case Fault.ReceiveECANCELED:
                injector.Fail(FaultTarget.Receive, Errno.ECANCELED, FaultSchedule.EveryNth(3));
                break;
            case Fault.ReceiveECONNRESET:
                injector.Fail(FaultTarget.Receive, Errno.ECONNRESET, FaultSchedule.EveryNth(16));
                break;
            case Fault.SendEAGAIN:
                injector.Fail(FaultTarget.Send, Errno.EAGAIN, FaultSchedule.Random(0.3));
                break;
            case Fault.SendECANCELED:
                injector.Fail(FaultTarget.Send, Errno.ECANCELED, FaultSchedule.EveryNth(89));
                break;
            case Fault.SendECONNRESET:
                injector.Fail(FaultTarget.Send, Errno.ECONNRESET, FaultSchedule.EveryNth(97));
                break;
            case Fault.CqOverflow:
                // The smallest queues both engines take (a CQ at least twice the SQ), and every
                // other dispatch that has completions leaves them unread.
                options.SubmissionQueueSize = 4;
                options.CompletionQueueSize = 8;
                injector.SkipReaping(FaultSchedule.EveryNth(2));
                break;
            case Fault.AllAbsorbed:
                options.SubmissionQueueSize = 4;
                options.CompletionQueueSize = 8;
                injector.SkipReaping(FaultSchedule.Random(0.3));
                injector.ShortWrites(FaultSchedule.Random(0.3));
                injector.Fail(FaultTarget.Send, Errno.EAGAIN, FaultSchedule.Random(0.2));
                injector.Fail(FaultTarget.Receive, Errno.ENOBUFS, FaultSchedule.Random(0.2));
                injector.Fail(FaultTarget.Receive, Errno.EAGAIN, FaultSchedule.Random(0.2));
                injector.Fail(FaultTarget.Receive, Errno.ECANCELED, FaultSchedule.EveryNth(2));
                break;
        }
        return injector;
    }

    // The error a fault makes the server see, or None when the channel must absorb it.
    private static Errno ExpectedError(Fault fault) => fault switch
    {
        Fault.ReceiveECONNRESET or Fault.SendECONNRESET => Errno.ECONNRESET,
        Fault.SendECANCELED => Errno.ECANCELED,
        _ => Errno.None,
    };

    // Per-connection state of the echo server, kept as the handle's cookie.
    private sealed class EchoConnection
    {
        public required MegaPipeHandle Handle;
        public readonly Queue<byte[]> Pending = new();
        public int PendingBytes;
        // Receiving stopped for backpressure.
        public bool Paused;
        public bool Writing;
        public bool Eof;
        public bool Closing;
    }

    private sealed class ServerReport
    {
        public int Accepted;
        public int Closed;
        public int Aborted;
        public int Pauses;
        public readonly List<string> Errors = new();
        public int BaselineHandles;
        public int FinalHandles = -1;
        public int FinalBuffers = -1;
    }

    private sealed record ClientResult(int Id, byte[] Sent, byte[] Received, bool Eof, SocketError? ReceiveError, SocketError? SendError)
    {
        public bool Failed => ReceiveError is not null || SendError is not null;

        public override string ToString()
            => $"client {Id}: sent {Sent.Length}, received {Received.Length}, eof {Eof}, receive error {ReceiveError?.ToString() ?? "-"}, send error {SendError?.ToString() ?? "-"}";
    }

    [Theory]
    [InlineData(Fault.ShortWrites)]
    [InlineData(Fault.ReceiveENOBUFS)]
    [InlineData(Fault.ReceiveEAGAIN)]
    [InlineData(Fault.ReceiveECANCELED)]
    [InlineData(Fault.ReceiveECONNRESET)]
    [InlineData(Fault.SendEAGAIN)]
    [InlineData(Fault.SendECANCELED)]
    [InlineData(Fault.SendECONNRESET)]
    [InlineData(Fault.CqOverflow)]
    [InlineData(Fault.AllAbsorbed)]
    public async Task Echo_UnderFault_DeliversEveryByteOnceInOrder_OrClosesWithAnError(Fault fault)
    {
        var options = new ChannelOptions { ReceiveBufferCount = ReceiveBuffers };
        FaultInjector injector = CreateInjector(fault, options);
        var report = new ServerReport();
        var endpoint = new TaskCompletionSource<EndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        TestThread server = TestThread.Start($"fault-echo-{fault}", () => RunEchoServer(options, injector, report, endpoint, stop.Token));

        ClientResult[] results;
        try
        {
            EndPoint ep = await endpoint.Task.WaitAsync(Limit);
            results = await Task.WhenAll(Enumerable.Range(0, Connections).Select(id => RunClient(id, ep))).WaitAsync(Limit);
            server.Join(Limit);
        }
        finally
        {
            stop.Cancel();
            server.Join(Limit);
        }

        string summary = $"{fault} on {Engine}: {string.Join("; ", injector.Rules)}; {injector.ReapsSkipped} reaps skipped, {injector.OverflowsSeen} with completions held back; "
            + $"server: {report.Accepted} accepted, {report.Closed} closed, {report.Aborted} aborted, {report.Pauses} pauses, errors [{string.Join(", ", report.Errors.Distinct())}]";

        output.WriteLine(summary);
        output.WriteLine($"clients: {results.Count(r => r.Failed)} failed, {results.Sum(r => (long)r.Received.Length)} of {results.Sum(r => (long)r.Sent.Length)} bytes echoed");

        // Every connection: all of its bytes, in order, then the end of stream; or an error after
        // an exact prefix of them.
        foreach (ClientResult r in results)
        {
            Assert.True(r.Received.Length <= r.Sent.Length, $"{r} (more than was sent). {summary}");
            byte[] expected = r.Failed ? r.Sent[..r.Received.Length] : r.Sent;
            Assert.True(SHA256.HashData(expected).AsSpan().SequenceEqual(SHA256.HashData(r.Received)),
                $"{r}: the bytes received are not {(r.Failed ? "a prefix of" : "exactly")} those sent. {summary}");
            if (!r.Failed)
            {
                Assert.True(r.Eof, $"{r}: no end of stream. {summary}");
            }
        }

        // The fault was injected, and the server saw it as the test expects.
        if (fault is Fault.CqOverflow or Fault.AllAbsorbed)
        {
            Assert.True(injector.ReapsSkipped > 0, summary);
            Assert.True(injector.OverflowsSeen > 0, $"the CQ never overflowed. {summary}");
        }
        Assert.All(injector.Rules, rule => Assert.True(rule.Injected > 0, $"{rule}: nothing was injected. {summary}"));
        Errno error = ExpectedError(fault);
        int failed = results.Count(r => r.Failed);
        if (error == Errno.None)
        {
            // Absorbed by the channel: no connection noticed.
            Assert.True(report.Errors.Count == 0 && failed == 0, $"{failed} clients failed: {string.Join("; ", results.Where(r => r.Failed))}. {summary}");
        }
        else
        {
            // The error path ran, and only for the injected error; every connection the server
            // aborted saw an error, and no other did.
            Assert.True(report.Aborted > 0, $"no connection ended with an error. {summary}");
            Assert.All(report.Errors, e => Assert.Equal(error.ToString(), e.Split(' ')[^1]));
            Assert.True(failed == report.Aborted, $"{failed} clients saw an error, the server aborted {report.Aborted}. {summary}");
        }
        Assert.Equal(Connections, report.Accepted);
        Assert.Equal(Connections, report.Closed);
        // Nothing leaked: handles, receive buffers.
        Assert.Equal(report.BaselineHandles, report.FinalHandles);
        Assert.Equal(ReceiveBuffers, report.FinalBuffers);
    }

    [Fact]
    public void ReceiveEagain_EveryTime_IsRetriedBoundedly_ThenReported_WithNothingConsumed()
    {
        using LoopbackServer server = CreateServer();
        var injector = new FaultInjector(Seed);
        FaultRule rule = injector.Fail(FaultTarget.Receive, Errno.EAGAIN, FaultSchedule.EveryNth(1));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("c");
        using (client)
        {
            client.Send("waiting"u8);
            server.Channel.FaultHook = injector;
            server.Channel.Receive(conn);
            // Armed again and again while it keeps failing, but not forever: then the error is reported.
            CompletionEvent failed = server.Pump.WaitFor(ChannelCommand.Receive, conn);
            Assert.Equal(Errno.EAGAIN, failed.Error);
            Assert.False(failed.More);
            Assert.Equal(MegaPipeChannel.MaxTransientRetries + 1, rule.Injected);
            server.Pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
            Assert.Equal(rule.Injected, rule.Matched);

            // None of the failed receives took data: all of it arrives once receiving starts again.
            server.Channel.FaultHook = null;
            server.Channel.Receive(conn);
            client.Send(" here"u8);
            server.Pump.Until(() => server.Pump.ReceivedCount(conn) == 12, what: "the data");
            Assert.Equal("waiting here", System.Text.Encoding.ASCII.GetString(server.Pump.ReceivedBytes(conn)));
        }
    }

    [Fact]
    public void WriteEagain_EveryTime_IsRetriedBoundedly_ThenReported_WithNothingSent()
    {
        using LoopbackServer server = CreateServer();
        var injector = new FaultInjector(Seed);
        FaultRule rule = injector.Fail(FaultTarget.Send, Errno.EAGAIN, FaultSchedule.EveryNth(1));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("c");
        using (client)
        {
            server.Pump.Drain();
            server.Channel.FaultHook = injector;
            ChannelCounters before = server.Channel.Counters;
            server.Channel.Write(conn, new byte[1000]);
            CompletionEvent failed = server.Pump.WaitFor(ChannelCommand.Write, conn);
            ChannelCounters delta = server.Channel.Counters - before;
            Assert.Equal(Errno.EAGAIN, failed.Error);
            Assert.Equal(MegaPipeChannel.MaxTransientRetries + 1, rule.Injected);
            // One command, one event; the retries were submissions of it.
            Assert.Equal(1, delta.Commands);
            Assert.Equal(1, delta.Events);
            Assert.Equal(rule.Injected, delta.Submissions);
            Assert.False(client.Poll(TimeSpan.FromMilliseconds(100), SelectMode.SelectRead), "a failed send sent data");

            server.Channel.FaultHook = null;
            server.Channel.Write(conn, "then"u8.ToArray());
            Assert.Equal(4, server.Pump.WaitFor(ChannelCommand.Write, conn).Result);
            Assert.Equal("then", System.Text.Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 4)));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    public void ShortWrites_EverySend_WriteCompletesWithItsTotal(int segments)
    {
        const int Size = 200_000;
        using LoopbackServer server = CreateServer();
        var injector = new FaultInjector(Seed + segments);
        FaultRule rule = injector.ShortWrites(FaultSchedule.EveryNth(1));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("c");
        using (client)
        {
            byte[] data = new byte[Size];
            new Random(segments).NextBytes(data);
            Task<byte[]> peer = Task.Run(() => LoopbackServer.ReceiveExactly(client, Size));
            server.Channel.FaultHook = injector;
            if (segments == 1)
            {
                server.Channel.Write(conn, data);
            }
            else
            {
                server.Channel.Write(conn, Segments.Split(data, segments, seed: segments));
            }
            Assert.Equal(Size, server.Pump.WaitFor(ChannelCommand.Write, conn).Result);
            Assert.True(peer.Wait(ChannelPump.DefaultTimeout), "the peer did not receive everything");
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(peer.Result));
            // Every send but a last 1-byte one was cut short, and each was continued.
            Assert.True(rule.Injected >= 5 && rule.Injected >= rule.Matched - 1, rule.ToString());
        }
    }

    // Echoes every connection: continuous receive, one write in flight, the rest queued (and sent
    // gathered), receiving stopped while much is queued; closes after the peer's end of stream is
    // echoed, aborts on any error.
    private void RunEchoServer(ChannelOptions options, FaultInjector injector, ServerReport report, TaskCompletionSource<EndPoint> endpoint, CancellationToken stop)
    {
        using var channel = CreateChannel(options);
        channel.FaultHook = injector;
        using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 1);
        MegaPipeHandle lh = channel.RegisterListener(listener, 0);
        channel.Accept(lh);
        report.BaselineHandles = channel.HandleCount;
        endpoint.SetResult(listener.LocalEndPoint);

        void Abort(EchoConnection c, CompletionEvent e)
        {
            report.Errors.Add($"{e.Command} {e.Error}");
            report.Aborted++;
            c.Closing = true;
            channel.Abort(c.Handle);
        }

        void Advance(EchoConnection c)
        {
            if (c.Writing || c.Closing)
            {
                return;
            }
            if (c.Pending.Count == 1)
            {
                c.Writing = true;
                byte[] chunk = c.Pending.Dequeue();
                c.PendingBytes -= chunk.Length;
                channel.Write(c.Handle, chunk);
            }
            else if (c.Pending.Count > 1)
            {
                var parts = new List<ReadOnlyMemory<byte>>();
                while (parts.Count < MaxSegmentsPerWrite && c.Pending.TryDequeue(out byte[]? chunk))
                {
                    c.PendingBytes -= chunk.Length;
                    parts.Add(chunk);
                }
                c.Writing = true;
                channel.Write(c.Handle, Segments.Create(parts));
            }
            else if (c.Eof)
            {
                c.Closing = true;
                channel.Close(c.Handle);
            }
        }

        var events = new CompletionEvent[64];
        var watch = Stopwatch.StartNew();
        while (report.Closed < Connections)
        {
            if (stop.IsCancellationRequested || watch.Elapsed > Limit)
            {
                throw new TimeoutException($"echo server: {report.Accepted} accepted, {report.Closed} closed, {report.Aborted} aborted, {channel.HandleCount} handles");
            }
            int n = channel.Dispatch(events, TimeSpan.FromMilliseconds(100));
            for (int i = 0; i < n; i++)
            {
                CompletionEvent e = events[i];
                if (e.Command == ChannelCommand.Accept)
                {
                    Assert.True(e.Succeeded, e.ToString());
                    report.Accepted++;
                    channel.SetCookie(e.Accepted, new EchoConnection { Handle = e.Accepted });
                    channel.Receive(e.Accepted);
                    continue;
                }
                var c = (EchoConnection)e.Cookie!;
                if (e.Command == ChannelCommand.Close)
                {
                    report.Closed++;
                    continue;
                }
                if (c.Closing)
                {
                    // Produced before this batch closed the connection.
                    continue;
                }
                switch (e.Command)
                {
                    case ChannelCommand.Receive when e.Result > 0:
                        c.Pending.Enqueue(channel.GetReceivedData(e).ToArray());
                        c.PendingBytes += e.Result;
                        if (!c.Paused && c.PendingBytes > HighWater)
                        {
                            // Data already taken still arrives; the rest waits in the socket.
                            c.Paused = true;
                            report.Pauses++;
                            channel.StopReceive(c.Handle);
                        }
                        Advance(c);
                        break;
                    case ChannelCommand.Receive when e.Result == 0:
                        c.Eof = true;
                        Advance(c);
                        break;
                    case ChannelCommand.Receive:
                        Abort(c, e);
                        break;
                    case ChannelCommand.Write when e.Succeeded:
                        c.Writing = false;
                        Advance(c);
                        if (c.Paused && c.PendingBytes < LowWater && !c.Eof && !c.Closing)
                        {
                            c.Paused = false;
                            channel.Receive(c.Handle);
                        }
                        break;
                    case ChannelCommand.Write:
                        Abort(c, e);
                        break;
                    default:
                        Assert.Fail($"unexpected event {e}");
                        break;
                }
            }
        }
        // Buffers lent by the last dispatch come back at the next.
        channel.Dispatch(events, TimeSpan.Zero);
        report.FinalHandles = channel.HandleCount;
        report.FinalBuffers = channel.ReceiveBuffersAvailable;
    }

    // Sends a seeded random payload in random chunks, then ends its side, while reading the echo
    // until the end of stream or an error.
    private static async Task<ClientResult> RunClient(int id, EndPoint endpoint)
    {
        var random = new Random(Seed * 31 + id);
        byte[] payload = new byte[random.Next(MinPayload, MaxPayload + 1)];
        random.NextBytes(payload);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint);
        }
        catch (SocketException e)
        {
            // Accepted and aborted before the connect was seen to finish.
            return new ClientResult(id, payload, [], false, e.SocketErrorCode, null);
        }

        SocketError? sendError = null;
        Task sender = Task.Run(async () =>
        {
            var chunks = new Random(Seed * 37 + id);
            int offset = 0;
            try
            {
                while (offset < payload.Length)
                {
                    int size = Math.Min(payload.Length - offset, chunks.Next(1, MaxChunk + 1));
                    offset += await socket.SendAsync(payload.AsMemory(offset, size));
                }
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException e)
            {
                sendError = e.SocketErrorCode;
            }
        });

        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        SocketError? receiveError = null;
        bool eof = false;
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory());
                if (n == 0)
                {
                    eof = true;
                    break;
                }
                received.Write(buffer, 0, n);
            }
        }
        catch (SocketException e)
        {
            receiveError = e.SocketErrorCode;
        }
        await sender;
        return new ClientResult(id, payload, received.ToArray(), eof, receiveError, sendError);
    }
}

public sealed class IoUringFaultInjectionTests(ITestOutputHelper output) : FaultInjectionTests(output)
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollFaultInjectionTests(ITestOutputHelper output) : FaultInjectionTests(output)
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
