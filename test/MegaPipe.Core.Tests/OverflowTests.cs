using System.Net.Sockets;
using System.Reflection;
using MegaPipe.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests;

// Queues far smaller than the work: a tiny SQ/CQ flooded with commands, and a receive-buffer
// pool of two buffers shared by several busy connections.
public abstract class OverflowTests : EngineTestBase
{
    private const int Commands = 500;

    // The kernel's minimums: at least 1 SQ entry, and a CQ (rounded up to a power of two) no
    // smaller than the SQ. The channel's wake-up read already takes one of the two SQ entries.
    private static ChannelOptions Tiny(bool batching) => new()
    {
        SubmissionQueueSize = 2,
        CompletionQueueSize = 4,
        Batching = batching,
    };

    // The ring's real sizes, to be sure the kernel did not give us more than asked.
    private static (uint Sq, uint Cq) RingSizes(MegaPipeChannel channel)
    {
        var ring = (MegaPipe.Internal.Ring)typeof(MegaPipeChannel).GetField("_ring", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(channel)!;
        return (ring.SqEntries, ring.CqEntries);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TinyQueues_FloodedWithPipeWrites_EveryCompletionArrivesExactlyOnce(bool batching)
    {
        using var channel = CreateChannel(Tiny(batching));
        Assert.Equal((2u, 4u), RingSizes(channel));
        var pump = new ChannelPump(channel);
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            // One registration per command, so every event names the command it completes.
            var handles = new MegaPipeHandle[Commands];
            for (int i = 0; i < Commands; i++)
            {
                handles[i] = channel.Register(writeEnd, HandleKind.Pipe, i);
            }
            for (int i = 0; i < Commands; i++)
            {
                channel.Write(handles[i], new[] { (byte)i });
            }
            // All 500 were issued before the first dispatch; most of their completions wait in
            // the kernel's overflow list behind a 4-entry CQ.
            var seen = new int[Commands];
            int total = 0;
            pump.OnEvent = e =>
            {
                Assert.Equal(ChannelCommand.Write, e.Command);
                Assert.Equal(1, e.Result);
                seen[(int)e.Cookie!]++;
                total++;
            };
            pump.Until(() => total >= Commands, what: "500 write completions");
            pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
            pump.Drain();
            Assert.Equal(Commands, total);
            Assert.All(seen, count => Assert.Equal(1, count));
            Assert.Equal(Commands, channel.Counters.Commands);
            Assert.True(channel.Counters.Completions >= Commands);

            var bytes = new byte[Commands];
            TestNative.ReadExactly(readEnd, bytes);
            Array.Sort(bytes);
            byte[] expected = Enumerable.Range(0, Commands).Select(i => (byte)i).ToArray();
            Array.Sort(expected);
            Assert.Equal(expected, bytes);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TinyQueues_FloodedWithSocketWrites_EveryCompletionArrivesExactlyOnce(bool lightweight)
    {
        ChannelOptions options = Tiny(batching: true);
        options.LightweightSockets = lightweight;
        using var server = CreateServer(options);
        Assert.Equal((2u, 4u), RingSizes(server.Channel));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("conn");
        using (client)
        {
            const int Size = 100;
            for (int i = 0; i < Commands; i++)
            {
                server.Channel.Write(conn, new byte[Size]);
            }
            int writes = 0;
            server.Pump.OnEvent = e =>
            {
                if (e.Command == ChannelCommand.Write)
                {
                    Assert.Equal(Size, e.Result);
                    writes++;
                }
            };
            server.Pump.Until(() => writes >= Commands, what: "500 write completions");
            server.Pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
            server.Pump.Drain();
            Assert.Equal(Commands, writes);
            LoopbackServer.ReceiveExactly(client, Commands * Size);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TwoReceiveBuffers_SeveralFloodingConnections_EveryByteInOrder(bool lightweight)
    {
        const int ConnectionCount = 4;
        const int Size = 256 * 1024;
        using var server = CreateServer(new ChannelOptions
        {
            LightweightSockets = lightweight,
            ReceiveBufferCount = 2,
            ReceiveBufferSize = 256,
        });
        var connections = new (MegaPipeHandle Handle, Socket Client, byte[] Data)[ConnectionCount];
        try
        {
            for (int i = 0; i < ConnectionCount; i++)
            {
                (MegaPipeHandle handle, Socket client) = server.AcceptClient(i);
                var data = new byte[Size];
                new Random(100 + i).NextBytes(data);
                connections[i] = (handle, client, data);
                server.Channel.Receive(handle);
            }
            // All peers send at once: the two buffers run dry again and again (ENOBUFS), and each
            // starved receive must be re-armed when buffers come back.
            Task[] senders = connections.Select(c => Task.Run(() => c.Client.Send(c.Data))).ToArray();
            server.Pump.Until(() => connections.All(c => server.Pump.ReceivedCount(c.Handle) >= Size), what: "all bytes");
            Assert.True(Task.WaitAll(senders, ChannelPump.DefaultTimeout));
            foreach ((MegaPipeHandle handle, Socket _, byte[] data) in connections)
            {
                Assert.Equal(data, server.Pump.ReceivedBytes(handle));
            }
            Assert.All(server.Pump.History, e => Assert.True(e.Succeeded, e.ToString()));

            // End of stream still arrives on every connection after all that starvation.
            foreach ((MegaPipeHandle _, Socket client, byte[] _) in connections)
            {
                client.Shutdown(SocketShutdown.Send);
            }
            int eofs = 0;
            server.Pump.OnEvent = e => eofs += e.Command == ChannelCommand.Receive && e.Result == 0 ? 1 : 0;
            server.Pump.Until(() => eofs == ConnectionCount, what: "end of stream on every connection");
            server.Pump.Drain();
            Assert.Equal(2, server.Channel.ReceiveBuffersAvailable);
        }
        finally
        {
            foreach ((MegaPipeHandle _, Socket client, byte[] _) in connections)
            {
                client?.Dispose();
            }
        }
    }
}

public sealed class IoUringOverflowTests : OverflowTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollOverflowTests : OverflowTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
