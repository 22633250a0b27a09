using System.Net.Sockets;
using MegaPipe.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests;

// Batching, counted in system calls (Counters), never timed.
public static class Batching
{
    public static List<CompletionEvent> DispatchAll(MegaPipeChannel channel, int expected)
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
}

// io_uring: the commands issued between two dispatches go to the kernel in one io_uring_enter.
public class IoUringBatchingTests
{
    private const int N = 64;

    private static List<CompletionEvent> DispatchAll(MegaPipeChannel channel, int expected) => Batching.DispatchAll(channel, expected);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PipeWrites_SystemCallsPerCommand(bool batching)
    {
        using var channel = MegaPipeChannel.Create(new ChannelOptions { Batching = batching, Engine = ChannelEngine.IoUring });
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
        using var server = new LoopbackServer(ChannelEngine.IoUring, new ChannelOptions { Batching = batching, LightweightSockets = lightweight });
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

// The epoll engine makes each I/O its own system call; what it batches is the rest: the commands
// of a dispatch are taken together (no system call while they are issued), one epoll_wait collects
// readiness for every connection, and each descriptor is added to epoll once, not per command.
public class EpollBatchingTests
{
    private const int Connections = 16;

    [Fact]
    public void SocketWrites_IssuedWithoutSystemCalls_OneSendEach()
    {
        using var server = new LoopbackServer(ChannelEngine.Epoll, new ChannelOptions { LightweightSockets = true });
        var clients = new List<(MegaPipeHandle Handle, Socket Client)>();
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                clients.Add(server.AcceptClient(i));
            }
            for (int round = 0; round < 3; round++)
            {
                server.Pump.Drain();
                ChannelCounters before = server.Channel.Counters;
                foreach ((MegaPipeHandle handle, Socket _) in clients)
                {
                    server.Channel.Write(handle, new byte[100]);
                }
                ChannelCounters issued = server.Channel.Counters - before;
                List<CompletionEvent> events = Batching.DispatchAll(server.Channel, Connections);
                ChannelCounters delta = server.Channel.Counters - before;

                Assert.All(events, e => Assert.Equal(100, e.Result));
                Assert.Equal(Connections, delta.Commands);
                Assert.Equal(Connections, delta.Submissions);
                Assert.Equal(0, issued.SystemCalls);
                if (round > 0)
                {
                    // One send(2) per write and the dispatch's one epoll_wait; the first round also
                    // met each descriptor (its type, once).
                    Assert.True(delta.SystemCalls <= Connections + 1, $"round {round}: {delta.SystemCalls} system calls for {Connections} writes");
                }
                foreach ((MegaPipeHandle _, Socket client) in clients)
                {
                    LoopbackServer.ReceiveExactly(client, 100);
                }
            }
        }
        finally
        {
            clients.ForEach(c => c.Client.Dispose());
        }
    }

    [Fact]
    public void Receives_OneEpollWaitCollectsEveryConnection_EachDescriptorRegisteredOnce()
    {
        // Regular descriptors, so that the test can see (poll) when data has reached the server.
        using var server = new LoopbackServer(ChannelEngine.Epoll, new ChannelOptions { LightweightSockets = false });
        var clients = new List<(MegaPipeHandle Handle, Socket Client, int Fd)>();
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                (MegaPipeHandle handle, Socket client) = server.AcceptClient(i);
                Assert.True(server.Channel.TryGetDescriptor(handle, out int fd));
                clients.Add((handle, client, fd));
                server.Channel.Receive(handle);
            }
            // The receives find nothing, park, and their descriptors join epoll.
            server.Pump.DispatchOnce(TimeSpan.Zero);
            server.Pump.Drain();

            for (int round = 0; round < 3; round++)
            {
                foreach ((MegaPipeHandle _, Socket client, int _) in clients)
                {
                    client.Send(new byte[100]);
                }
                foreach ((MegaPipeHandle _, Socket _, int fd) in clients)
                {
                    Assert.True(TestNative.WaitReadable(fd, 30_000), "the data did not reach the server");
                }
                ChannelCounters before = server.Channel.Counters;
                List<CompletionEvent> events = Batching.DispatchAll(server.Channel, Connections);
                ChannelCounters delta = server.Channel.Counters - before;

                Assert.All(events, e => Assert.True(e.Command == ChannelCommand.Receive && e.Result == 100 && e.More, e.ToString()));
                Assert.Equal(Connections, events.Select(e => e.Handle).Distinct().Count());
                Assert.Equal(Connections, delta.Completions);
                // One epoll_wait for all of them, then per connection the recv(2) that takes the data
                // and the one that finds the socket empty; no epoll_ctl: the receives stayed armed
                // and registered.
                Assert.True(delta.SystemCalls <= 2 * Connections + 1, $"round {round}: {delta.SystemCalls} system calls for {Connections} receives");
                Assert.Equal(0, delta.Submissions);
            }
        }
        finally
        {
            clients.ForEach(c => c.Client.Dispose());
        }
    }
}
