using System.Net;
using System.Net.Sockets;
using MegaPipe.Core.Tests.Infrastructure;

namespace MegaPipe.Core.Tests;

// Listening-socket partitioning: a SO_REUSEPORT group steered by the CPU that handles the SYN
// (the kernel selftest reuseport_bpf_cpu.c does the same over loopback). On loopback the SYN is
// processed on the CPU of the thread that calls connect(), so a client pinned to CPU n must be
// accepted by partition n mod 2.
public abstract class PartitioningTests : EngineTestBase
{
    private const int PerCpu = 20;

    // A channel on its own thread that accepts on one partition and records each peer's port.
    private sealed class Acceptor
    {
        private readonly List<int> _ports = new();
        private readonly TestThread _thread;

        public Acceptor(ChannelEngine engine, MegaPipeListener listener, int partition, CountdownEvent accepted, CancellationToken stop)
        {
            using var ready = new ManualResetEventSlim();
            _thread = TestThread.Start($"partition-{partition}", () =>
            {
                using var channel = CreateChannel(engine);
                var pump = new ChannelPump(channel);
                MegaPipeHandle lh = channel.RegisterListener(listener, partition, partition);
                Assert.Equal(listener.LocalEndPoint, channel.GetLocalEndPoint(lh));
                channel.Accept(lh);
                pump.DispatchOnce(TimeSpan.Zero);
                ready.Set();
                pump.OnEvent = e =>
                {
                    if (e.Command != ChannelCommand.Accept)
                    {
                        return;
                    }
                    Assert.True(e.Succeeded, e.ToString());
                    Assert.Equal(partition, e.Cookie);
                    var peer = (IPEndPoint)channel.GetRemoteEndPoint(e.Accepted)!;
                    lock (_ports)
                    {
                        _ports.Add(peer.Port);
                    }
                    channel.Close(e.Accepted);
                    accepted.Signal();
                };
                pump.Until(() => stop.IsCancellationRequested, TimeSpan.FromSeconds(60), "stop");
            });
            Assert.True(ready.Wait(ChannelPump.DefaultTimeout), "the acceptor did not start");
        }

        public int[] Ports
        {
            get
            {
                lock (_ports)
                {
                    return _ports.Order().ToArray();
                }
            }
        }

        public void Join() => _thread.Join();
    }

    // Connects count clients from a thread pinned to cpu; returns their local ports (sockets kept open in keep).
    private static int[] ConnectFromCpu(int cpu, EndPoint endPoint, int count, List<Socket> keep)
        => TestThread.Run($"client-cpu{cpu}", () =>
        {
            MegaPipeChannel.PinCurrentThread(cpu);
            Assert.Equal(cpu, MegaPipeChannel.CurrentCpu);
            var ports = new List<int>();
            for (int i = 0; i < count; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                lock (keep)
                {
                    keep.Add(socket);
                }
                socket.Connect(endPoint);
                ports.Add(((IPEndPoint)socket.LocalEndPoint!).Port);
            }
            return ports.Order().ToArray();
        });

    private static void RequireTwoCpus()
    {
        Assert.True(Environment.ProcessorCount >= 2, $"partitioning tests need 2 CPUs, the process may use {Environment.ProcessorCount}");
    }

    [Fact]
    public void Partitioned_ClientOnCpuN_IsAcceptedByPartitionN()
    {
        RequireTwoCpus();
        using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 2);
        Assert.True(listener.IsPartitioned);
        Assert.Equal(2, listener.QueueCount);
        using var stop = new CancellationTokenSource();
        using var accepted = new CountdownEvent(2 * PerCpu);
        var clients = new List<Socket>();
        var acceptors = new List<Acceptor>();
        try
        {
            acceptors.Add(new Acceptor(Engine, listener, 0, accepted, stop.Token));
            acceptors.Add(new Acceptor(Engine, listener, 1, accepted, stop.Token));
            int[] fromCpu0 = ConnectFromCpu(0, listener.LocalEndPoint, PerCpu, clients);
            int[] fromCpu1 = ConnectFromCpu(1, listener.LocalEndPoint, PerCpu, clients);
            Assert.True(accepted.Wait(ChannelPump.DefaultTimeout), $"only {2 * PerCpu - accepted.CurrentCount} of {2 * PerCpu} accepted");
            stop.Cancel();
            acceptors.ForEach(a => a.Join());

            Assert.Equal(fromCpu0, acceptors[0].Ports);
            Assert.Equal(fromCpu1, acceptors[1].Ports);
        }
        finally
        {
            stop.Cancel();
            clients.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void NotPartitioned_OneSharedQueue_AcceptsFromEveryCpu()
    {
        RequireTwoCpus();
        using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 2, new ListenerOptions { Partitioned = false });
        Assert.False(listener.IsPartitioned);
        Assert.Equal(1, listener.QueueCount);
        using var stop = new CancellationTokenSource();
        var clients = new List<Socket>();
        try
        {
            // A single channel on the shared queue takes connections whatever CPU they came from.
            using (var accepted = new CountdownEvent(2 * PerCpu))
            {
                var only = new Acceptor(Engine, listener, 1, accepted, stop.Token);
                int[] fromCpu0 = ConnectFromCpu(0, listener.LocalEndPoint, PerCpu, clients);
                int[] fromCpu1 = ConnectFromCpu(1, listener.LocalEndPoint, PerCpu, clients);
                Assert.True(accepted.Wait(ChannelPump.DefaultTimeout), $"only {2 * PerCpu - accepted.CurrentCount} of {2 * PerCpu} accepted");
                stop.Cancel();
                only.Join();
                Assert.Equal(fromCpu0.Concat(fromCpu1).Order(), only.Ports);
            }

            // Two channels share the queue: each connection is accepted exactly once, by either.
            using var stop2 = new CancellationTokenSource();
            using (var accepted = new CountdownEvent(2 * PerCpu))
            {
                var a = new Acceptor(Engine, listener, 0, accepted, stop2.Token);
                var b = new Acceptor(Engine, listener, 1, accepted, stop2.Token);
                int[] fromCpu0 = ConnectFromCpu(0, listener.LocalEndPoint, PerCpu, clients);
                int[] fromCpu1 = ConnectFromCpu(1, listener.LocalEndPoint, PerCpu, clients);
                Assert.True(accepted.Wait(ChannelPump.DefaultTimeout), $"only {2 * PerCpu - accepted.CurrentCount} of {2 * PerCpu} accepted");
                stop2.Cancel();
                a.Join();
                b.Join();
                Assert.Equal(fromCpu0.Concat(fromCpu1).Order(), a.Ports.Concat(b.Ports).Order());
            }
        }
        finally
        {
            stop.Cancel();
            clients.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void Partitioned_PortInUse_IsReportedAsAddressInUse()
    {
        using Socket holder = Loopback.Listen();
        SocketException e = Assert.Throws<SocketException>(() => MegaPipeListener.Bind(holder.LocalEndPoint!, 2));
        Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
    }

    [Fact]
    public void UnixDomainListener_IsNeverPartitioned_AndConnectsChannelToChannel()
    {
        string path = Path.Combine(Path.GetTempPath(), $"megapipe-{Guid.NewGuid():N}.sock");
        using var listener = MegaPipeListener.Bind(new UnixDomainSocketEndPoint(path), 2);
        Assert.False(listener.IsPartitioned);
        Assert.Equal(1, listener.QueueCount);
        using var channel = CreateChannel();
        var pump = new ChannelPump(channel);
        // Partition 1 of an unpartitioned listener is its one queue.
        MegaPipeHandle lh = channel.RegisterListener(listener, 1);
        channel.Accept(lh);
        MegaPipeHandle client = channel.Connect(new UnixDomainSocketEndPoint(path), "client");
        Assert.True(pump.WaitFor(ChannelCommand.Connect, client).Succeeded);
        MegaPipeHandle server = pump.WaitFor(ChannelCommand.Accept, lh).Accepted;
        channel.Write(client, "over unix"u8.ToArray());
        var buffer = new byte[16];
        channel.Read(server, buffer);
        Assert.Equal(9, pump.WaitFor(ChannelCommand.Write, client).Result);
        Assert.Equal(9, pump.WaitFor(ChannelCommand.Read, server).Result);
        Assert.Equal("over unix", System.Text.Encoding.ASCII.GetString(buffer, 0, 9));
        channel.Close(client);
        pump.WaitFor(ChannelCommand.Close, client);
        channel.Read(server, buffer);
        Assert.Equal(0, pump.WaitFor(ChannelCommand.Read, server).Result);
        channel.Dispose();
        listener.Dispose();
        Assert.False(File.Exists(path));
    }
}

public sealed class IoUringPartitioningTests : PartitioningTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollPartitioningTests : PartitioningTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
