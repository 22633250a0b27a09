using System.Net;
using System.Net.Sockets;
using MegaPipe.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests;

// Many connections on one channel, and work handed to a channel from other threads.
public abstract class ConcurrencyTests : EngineTestBase
{
    private const int Connections = 1000;
    private const int MessageSize = 64;

    // Per-connection state of the echo server, kept as the handle's cookie.
    private sealed class EchoConnection
    {
        public required MegaPipeHandle Handle;
        public readonly Queue<byte[]> Pending = new();
        public bool Writing;
        public bool Eof;
        public bool Closing;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task OneChannel_EchoesThousandConcurrentConnections(bool lightweight)
    {
        var endpoint = new TaskCompletionSource<EndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        int baseline = -1;
        int maxHandles = 0;
        int finalHandles = -1;
        int accepted = 0;
        int closes = 0;

        TestThread server = TestThread.Start("echo-1000", () =>
        {
            using var channel = CreateChannel(Options(lightweight));
            using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 1, new ListenerOptions { Backlog = 1024 });
            MegaPipeHandle lh = channel.RegisterListener(listener, 0);
            channel.Accept(lh);
            baseline = channel.HandleCount;
            endpoint.SetResult(listener.LocalEndPoint);

            void Advance(EchoConnection c)
            {
                // One write in flight per connection; close once the peer's EOF is echoed through.
                if (c.Writing || c.Closing)
                {
                    return;
                }
                if (c.Pending.TryDequeue(out byte[]? data))
                {
                    c.Writing = true;
                    channel.Write(c.Handle, data);
                }
                else if (c.Eof)
                {
                    c.Closing = true;
                    channel.Close(c.Handle);
                }
            }

            var events = new CompletionEvent[256];
            while (!(closes == Connections && channel.HandleCount == baseline))
            {
                if (stop.IsCancellationRequested)
                {
                    throw new OperationCanceledException($"server stopped: {accepted} accepted, {closes} closed, {channel.HandleCount} handles");
                }
                int n = channel.Dispatch(events, TimeSpan.FromMilliseconds(100));
                for (int i = 0; i < n; i++)
                {
                    CompletionEvent e = events[i];
                    switch (e.Command)
                    {
                        case ChannelCommand.Accept:
                            Assert.True(e.Succeeded, e.ToString());
                            accepted++;
                            var connection = new EchoConnection { Handle = e.Accepted };
                            channel.SetCookie(e.Accepted, connection);
                            channel.Receive(e.Accepted);
                            maxHandles = Math.Max(maxHandles, channel.HandleCount);
                            break;
                        case ChannelCommand.Receive:
                        {
                            var c = (EchoConnection)e.Cookie!;
                            Assert.True(e.Result >= 0, e.ToString());
                            if (e.Result > 0)
                            {
                                c.Pending.Enqueue(channel.GetReceivedData(e).ToArray());
                            }
                            else
                            {
                                c.Eof = true;
                            }
                            Advance(c);
                            break;
                        }
                        case ChannelCommand.Write:
                        {
                            var c = (EchoConnection)e.Cookie!;
                            Assert.True(e.Succeeded, e.ToString());
                            c.Writing = false;
                            Advance(c);
                            break;
                        }
                        case ChannelCommand.Close:
                            closes++;
                            break;
                        default:
                            Assert.Fail($"unexpected event {e}");
                            break;
                    }
                }
            }
            finalHandles = channel.HandleCount;
        });

        try
        {
            EndPoint ep = await endpoint.Task.WaitAsync(ChannelPump.DefaultTimeout);
            var allEchoed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            int echoed = 0;
            using var connectGate = new SemaphoreSlim(128);

            async Task Client(int id)
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await connectGate.WaitAsync();
                try
                {
                    await socket.ConnectAsync(ep);
                }
                finally
                {
                    connectGate.Release();
                }
                var message = new byte[MessageSize];
                new Random(id).NextBytes(message);
                BitConverter.TryWriteBytes(message, id);
                await socket.SendAsync(message);
                var echo = new byte[MessageSize];
                int got = 0;
                while (got < MessageSize)
                {
                    int n = await socket.ReceiveAsync(echo.AsMemory(got));
                    Assert.True(n > 0, $"client {id}: EOF before the echo");
                    got += n;
                }
                Assert.Equal(message, echo);
                if (Interlocked.Increment(ref echoed) == Connections)
                {
                    allEchoed.SetResult();
                }
                // Every connection stays open until all have been echoed: 1,000 live at once.
                await allEchoed.Task;
                socket.Shutdown(SocketShutdown.Send);
                Assert.Equal(0, await socket.ReceiveAsync(echo.AsMemory()));
            }

            await Task.WhenAll(Enumerable.Range(0, Connections).Select(Client)).WaitAsync(TimeSpan.FromSeconds(60));
            server.Join(TimeSpan.FromSeconds(60));
        }
        finally
        {
            stop.Cancel();
            server.Join(TimeSpan.FromSeconds(60));
        }

        Assert.Equal(Connections, accepted);
        Assert.Equal(Connections, closes);
        Assert.Equal(baseline + Connections, maxHandles);
        Assert.Equal(baseline, finalHandles);
    }

    private sealed class RecordingWorkItem(Action<MegaPipeChannel> action) : IChannelWorkItem
    {
        public int ThreadId = -1;

        public void Execute(MegaPipeChannel channel)
        {
            ThreadId = Environment.CurrentManagedThreadId;
            action(channel);
        }
    }

    [Fact]
    public void Post_FromOtherThread_RunsOnOwnerAndWakesDispatch()
    {
        using var channel = CreateChannel();
        var pump = new ChannelPump(channel);
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle w = channel.Register(writeEnd, HandleKind.Pipe, "w");
            int owner = Environment.CurrentManagedThreadId;
            var events = new CompletionEvent[16];
            for (int round = 0; round < 20; round++)
            {
                // The work item issues a command; the event it produces ends the dispatch.
                var item = new RecordingWorkItem(ch => ch.Write(w, new byte[] { (byte)round }));
                using var dispatching = new ManualResetEventSlim();
                TestThread poster = TestThread.Start("poster", () =>
                {
                    Assert.True(dispatching.Wait(ChannelPump.DefaultTimeout));
                    Assert.False(channel.IsOwnerThread);
                    channel.Post(item);
                });
                dispatching.Set();
                int n = channel.Dispatch(events, ChannelPump.DefaultTimeout);
                poster.Join();
                if (n == 0)
                {
                    // The work ran but its write had not completed yet.
                    n = channel.Dispatch(events, ChannelPump.DefaultTimeout);
                }
                Assert.Equal(1, n);
                Assert.Equal(ChannelCommand.Write, events[0].Command);
                Assert.Equal(1, events[0].Result);
                Assert.Equal(owner, item.ThreadId);
                var one = new byte[1];
                TestNative.ReadExactly(readEnd, one);
                Assert.Equal((byte)round, one[0]);
            }
        }
    }

    [Fact]
    public void Post_WorkWithoutIo_EndsTheDispatchEarly()
    {
        // Documented: Dispatch returns 0 when posted work ran and nothing completed, so a loop
        // waiting without a timeout can be stopped by posting to it.
        using var channel = CreateChannel();
        var events = new CompletionEvent[4];
        bool stopRequested = false;
        var item = new RecordingWorkItem(_ => stopRequested = true);
        using var dispatching = new ManualResetEventSlim();
        TestThread poster = TestThread.Start("poster", () =>
        {
            Assert.True(dispatching.Wait(ChannelPump.DefaultTimeout));
            channel.Post(item);
        });
        dispatching.Set();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int n = 0;
        // Far longer than posting takes; if the dispatch waited its whole timeout, the early return is missing.
        TimeSpan timeout = TimeSpan.FromSeconds(20);
        while (!stopRequested && watch.Elapsed < timeout)
        {
            n = channel.Dispatch(events, timeout);
        }
        poster.Join();
        Assert.True(stopRequested);
        Assert.Equal(0, n);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"Dispatch returned only after {watch.Elapsed}");
        Assert.Equal(Environment.CurrentManagedThreadId, item.ThreadId);
    }
    private sealed class CountingWorkItem : IChannelWorkItem
    {
        public int Runs;
        public int WrongThread;
        public int OwnerThreadId;

        public void Execute(MegaPipeChannel channel)
        {
            Runs++;
            if (Environment.CurrentManagedThreadId != OwnerThreadId || !channel.IsOwnerThread)
            {
                WrongThread++;
            }
        }
    }

    [Fact]
    public void Post_ManyThreadsPostingWhileOwnerDispatches_NothingIsLost()
    {
        const int Threads = 4;
        const int PerThread = 500;
        using var channel = CreateChannel();
        var item = new CountingWorkItem { OwnerThreadId = Environment.CurrentManagedThreadId };
        using var start = new ManualResetEventSlim();
        // The same item object posted many times: each post is one run.
        TestThread[] posters = Enumerable.Range(0, Threads).Select(i => TestThread.Start($"poster-{i}", () =>
        {
            Assert.True(start.Wait(ChannelPump.DefaultTimeout));
            for (int n = 0; n < PerThread; n++)
            {
                channel.Post(item);
            }
        })).ToArray();
        start.Set();
        var events = new CompletionEvent[8];
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (item.Runs < Threads * PerThread && watch.Elapsed < ChannelPump.DefaultTimeout)
        {
            // Only the posts themselves can end each wait; a lost wake-up would wait out the
            // whole 30 s (a finite timeout, so that shows as a failure rather than a hang).
            var one = System.Diagnostics.Stopwatch.StartNew();
            Assert.Equal(0, channel.Dispatch(events, ChannelPump.DefaultTimeout));
            Assert.True(one.Elapsed < TimeSpan.FromSeconds(25), "a posted item did not wake the dispatch");
        }
        foreach (TestThread poster in posters)
        {
            poster.Join();
        }
        Assert.Equal(Threads * PerThread, item.Runs);
        Assert.Equal(0, item.WrongThread);
        Assert.Equal(0, channel.Dispatch(events, TimeSpan.Zero));
        Assert.Equal(Threads * PerThread, item.Runs);
    }
}

public sealed class IoUringConcurrencyTests : ConcurrencyTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollConcurrencyTests : ConcurrencyTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
