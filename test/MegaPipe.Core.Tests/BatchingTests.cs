using System.Net.Sockets;
using MegaPipe.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests;

// Batching, counted in system calls (Counters), never timed.
public class BatchingTests
{
    private const int N = 64;

    private static List<CompletionEvent> DispatchAll(MegaPipeChannel channel, int expected)
    {
        var events = new CompletionEvent[expected];
        var all = new List<CompletionEvent>();
        var deadline = DateTime.UtcNow + ChannelPump.DefaultTimeout;
        while (all.Count < expected && DateTime.UtcNow < deadline)
        {
            int n = channel.Dispatch(events.AsSpan(0, expected - all.Count), TimeSpan.FromSeconds(1));
            all.AddRange(events[..n]);
        }
        Assert.Equal(expected, all.Count);
        return all;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PipeWrites_SystemCallsPerCommand(bool batching)
    {
        using var channel = MegaPipeChannel.Create(new ChannelOptions { Batching = batching });
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle w = channel.Register(writeEnd, HandleKind.Pipe);
            // Settle: the channel's own start-up requests go to the kernel.
            channel.Dispatch(new CompletionEvent[1], TimeSpan.Zero);

            ChannelCounters before = channel.Counters;
            for (int i = 0; i < N; i++)
            {
                channel.Write(w, new[] { (byte)i });
            }
            ChannelCounters issued = channel.Counters - before;
            List<CompletionEvent> events = DispatchAll(channel, N);
            ChannelCounters delta = channel.Counters - before;

            Assert.All(events, e => Assert.Equal(1, e.Result));
            Assert.Equal(N, delta.Commands);
            Assert.Equal(N, delta.Submissions);
            Assert.Equal(N, delta.Events);
            if (batching)
            {
                Assert.Equal(0, issued.SystemCalls);
                Assert.True(delta.SystemCalls <= 3, $"batched: {delta.SystemCalls} system calls for {N} commands");
                Assert.True(delta.CommandsPerSystemCall >= N / 3.0, delta.ToString());
            }
            else
            {
                Assert.True(issued.SystemCalls >= N, $"unbatched: {issued.SystemCalls} system calls for {N} commands");
                Assert.True(delta.SystemCalls >= N, delta.ToString());
            }
            TestNative.ReadExactly(readEnd, new byte[N]);
        }
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void SocketWrites_OnePerConnection_SystemCallsPerCommand(bool batching, bool lightweight)
    {
        const int Connections = 16;
        using var server = new LoopbackServer(new ChannelOptions { Batching = batching, LightweightSockets = lightweight });
        var clients = new List<(MegaPipeHandle Handle, Socket Client)>();
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                clients.Add(server.AcceptClient(i));
            }
            server.Pump.Drain();

            ChannelCounters before = server.Channel.Counters;
            foreach ((MegaPipeHandle handle, Socket _) in clients)
            {
                server.Channel.Write(handle, new byte[100]);
            }
            List<CompletionEvent> events = DispatchAll(server.Channel, Connections);
            ChannelCounters delta = server.Channel.Counters - before;

            Assert.All(events, e => Assert.Equal(100, e.Result));
            Assert.Equal(Connections, events.Select(e => e.Handle).Distinct().Count());
            Assert.Equal(Connections, delta.Commands);
            if (batching)
            {
                Assert.True(delta.SystemCalls <= 3, $"batched: {delta.SystemCalls} system calls for {Connections} commands");
            }
            else
            {
                Assert.True(delta.SystemCalls >= Connections, $"unbatched: {delta.SystemCalls} system calls for {Connections} commands");
            }
            foreach ((MegaPipeHandle _, Socket client) in clients)
            {
                LoopbackServer.ReceiveExactly(client, 100);
            }
        }
        finally
        {
            clients.ForEach(c => c.Client.Dispose());
        }
    }
}
