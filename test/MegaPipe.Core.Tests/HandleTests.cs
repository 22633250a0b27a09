using System.Buffers;
using System.Net;
using System.Net.Sockets;
using MegaPipe.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests;

// Handle validity (owner channel, staleness, owner thread) and what Close/Unregister do to
// commands still in flight.
public abstract class HandleTests : EngineTestBase
{
    public static TheoryData<bool> Lightweight => new() { true, false };

    // Every command and handle operation, applied to one handle.
    private static IEnumerable<(string Name, Action Call)> HandleOperations(MegaPipeChannel channel, MegaPipeHandle handle)
    {
        yield return ("Accept", () => channel.Accept(handle));
        yield return ("Read", () => channel.Read(handle, new byte[8]));
        yield return ("ReadFile", () => channel.ReadFile(handle, new byte[8], 0));
        yield return ("Receive", () => channel.Receive(handle));
        yield return ("StopReceive", () => channel.StopReceive(handle));
        yield return ("Write", () => channel.Write(handle, new byte[8]));
        yield return ("Write(sequence)", () => channel.Write(handle, Segments.Split(new byte[16], 2, seed: 1)));
        yield return ("Shutdown", () => channel.Shutdown(handle, SocketShutdown.Both));
        yield return ("InstallDescriptor", () => channel.InstallDescriptor(handle));
        yield return ("SetCookie", () => channel.SetCookie(handle, 1));
        yield return ("GetCookie", () => channel.GetCookie(handle));
        yield return ("IsLightweight", () => channel.IsLightweight(handle));
        yield return ("TryGetDescriptor", () => channel.TryGetDescriptor(handle, out _));
        yield return ("GetRemoteEndPoint", () => channel.GetRemoteEndPoint(handle));
        yield return ("GetLocalEndPoint", () => channel.GetLocalEndPoint(handle));
        yield return ("Close", () => channel.Close(handle));
        yield return ("Unregister", () => channel.Unregister(handle));
    }

    private static void AssertAllThrow<T>(MegaPipeChannel channel, MegaPipeHandle handle)
        where T : Exception
    {
        foreach ((string name, Action call) in HandleOperations(channel, handle))
        {
            Exception? e = Record.Exception(call);
            Assert.True(e?.GetType() == typeof(T), $"{name}: expected {typeof(T).Name}, got {e?.GetType().Name ?? "no exception"}");
        }
    }

    [Fact]
    public void HandleOfAnotherChannel_IsRejected()
    {
        using var a = CreateChannel();
        using var b = CreateChannel();
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle handle = a.Register(writeEnd, HandleKind.Pipe, "a");
            Assert.NotEqual(a.Id, b.Id);
            AssertAllThrow<ArgumentException>(b, handle);
            Assert.False(b.IsOpen(handle));
            AssertAllThrow<ArgumentException>(a, default);
            Assert.False(default(MegaPipeHandle).IsValid);

            // Nothing leaked into b, and the handle still works in a.
            Assert.Equal(0, b.HandleCount);
            Assert.True(a.IsOpen(handle));
            a.Write(handle, new byte[] { 42 });
            Assert.Equal(1, new ChannelPump(a).WaitFor(ChannelCommand.Write, handle).Result);
        }
    }

    [Fact]
    public void StaleHandle_AfterCloseOrUnregister_IsRejected_EvenWhenItsSlotIsReused()
    {
        using var channel = CreateChannel();
        var pump = new ChannelPump(channel);
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle closed = channel.Register(writeEnd, HandleKind.Pipe, "closed");
            channel.Close(closed);
            // Stale as soon as Close is called, and after the Close event.
            Assert.Throws<ArgumentException>(() => channel.Write(closed, new byte[1]));
            Assert.Equal("closed", pump.WaitFor(ChannelCommand.Close, closed).Cookie);
            Assert.False(channel.IsOpen(closed));
            AssertAllThrow<ArgumentException>(channel, closed);

            MegaPipeHandle unregistered = channel.Register(writeEnd, HandleKind.Pipe, "unregistered");
            channel.Unregister(unregistered);
            pump.Until(() => channel.HandleCount == 0);
            AssertAllThrow<ArgumentException>(channel, unregistered);

            // A new registration reuses a freed slot; the old handles still cannot reach it.
            MegaPipeHandle fresh = channel.Register(writeEnd, HandleKind.Pipe, "fresh");
            Assert.NotEqual(closed, fresh);
            Assert.NotEqual(unregistered, fresh);
            AssertAllThrow<ArgumentException>(channel, closed);
            AssertAllThrow<ArgumentException>(channel, unregistered);
            Assert.Equal("fresh", channel.GetCookie(fresh));
            channel.Write(fresh, new byte[] { 7 });
            Assert.Equal(1, pump.WaitFor(ChannelCommand.Write, fresh).Result);
            Assert.DoesNotContain(pump.History, e => e.Handle == closed && e.Command != ChannelCommand.Close);
            Assert.DoesNotContain(pump.History, e => e.Handle == unregistered);
        }
    }

    [Fact]
    public void CommandsFromAnotherThread_ThrowInvalidOperation()
    {
        using var channel = CreateChannel();
        using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 1);
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle handle = channel.Register(writeEnd, HandleKind.Pipe);
            List<string> failures = TestThread.Run("not-owner", () =>
            {
                var wrong = new List<string>();
                Assert.False(channel.IsOwnerThread);
                var calls = HandleOperations(channel, handle).ToList();
                calls.Add(("Register", () => channel.Register(readEnd, HandleKind.Pipe)));
                calls.Add(("RegisterListener", () => channel.RegisterListener(listener, 0)));
                calls.Add(("Connect", () => channel.Connect(listener.LocalEndPoint)));
                calls.Add(("Dispatch", () => channel.Dispatch(new CompletionEvent[1], TimeSpan.Zero)));
                calls.Add(("TryDispatch", () => channel.TryDispatch(out _, TimeSpan.Zero)));
                foreach ((string name, Action call) in calls)
                {
                    Exception? e = Record.Exception(call);
                    if (e is not InvalidOperationException || e is ObjectDisposedException)
                    {
                        wrong.Add($"{name}: {e?.GetType().Name ?? "no exception"}");
                    }
                }
                return wrong;
            });
            Assert.Empty(failures);

            // None of it reached the channel.
            Assert.Equal(1, channel.HandleCount);
            Assert.True(channel.IsOpen(handle));
            Assert.Equal(0, channel.Counters.Commands);
        }
    }

    [Fact]
    public void Unregister_CancelsPendingRead_WhichConsumesNothing()
    {
        using var channel = CreateChannel();
        // The read can only complete inside our own enter, which takes the cancel first: with
        // io_uring's DEFER_TASKRUN (a ring without it could complete the read on the way back from
        // the write(2) below; this kernel, and CI's, has it), and with the epoll engine, which
        // takes submissions before it polls.
        if (Engine == ChannelEngine.IoUring)
        {
            Assert.True(channel.Degradation is null, channel.Degradation);
        }
        var pump = new ChannelPump(channel);
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle r = channel.Register(readEnd, HandleKind.Pipe, "reader");
            var buffer = new byte[64];
            channel.Read(r, buffer);
            // The read is now waiting in the kernel.
            pump.DispatchOnce(TimeSpan.Zero);
            Assert.Equal(1, channel.HandleCount);

            channel.Unregister(r);
            // Bytes written after Unregister (even before the next dispatch) stay in the pipe.
            byte[] data = "still here"u8.ToArray();
            TestNative.WriteAll(writeEnd, data);
            pump.Until(() => channel.HandleCount == 0, what: "unregister to finish");
            // Give a leaked read every chance to run.
            pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
            pump.Drain();

            var plain = new byte[64];
            int n = TestNative.ReadWithTimeout(readEnd, plain, 5_000);
            Assert.True(n == data.Length, n < 0 ? "the pipe is empty: the cancelled read consumed the bytes" : $"read {n} bytes");
            Assert.Equal(data, plain[..n]);
            Assert.All(buffer, b => Assert.Equal(0, b));
            Assert.DoesNotContain(pump.History, e => e.Handle == r || "reader".Equals(e.Cookie));
            Assert.False(readEnd.IsClosed);
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Close_WithPendingReceive_NoEventOfTheHandleFollowsExceptClose(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        ChannelPump pump = server.Pump;
        int baseline = channel.HandleCount;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("conn");
        using (client)
        {
            channel.Receive(conn);
            client.Send(new byte[1000]);
            pump.Until(() => pump.ReceivedCount(conn) == 1000);

            // Data keeps arriving around the Close.
            client.Send(new byte[5000]);
            int mark = pump.History.Count;
            channel.Close(conn);
            client.Send(new byte[5000]);
            CompletionEvent closed = pump.WaitFor(ChannelCommand.Close, conn);
            Assert.Equal("conn", closed.Cookie);
            pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
            pump.Drain();

            List<CompletionEvent> after = pump.History.Skip(mark).Where(e => e.Handle == conn || "conn".Equals(e.Cookie)).ToList();
            Assert.Single(after);
            Assert.Equal(ChannelCommand.Close, after[0].Command);
            Assert.Equal(baseline, channel.HandleCount);
            Assert.Equal(channel.Options.ReceiveBufferCount, channel.ReceiveBuffersAvailable);
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Close_WithPendingReadAndWrite_OnlyCloseFollows(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        ChannelPump pump = server.Pump;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("conn");
        using (client)
        {
            channel.Read(conn, new byte[64]);
            // A write larger than the socket buffers stays in flight while the peer does not read.
            channel.Write(conn, new byte[32 << 20]);
            pump.DispatchOnce(TimeSpan.Zero);
            int mark = pump.History.Count;
            channel.Close(conn);
            pump.WaitFor(ChannelCommand.Close, conn);
            pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
            pump.Drain();
            List<CompletionEvent> after = pump.History.Skip(mark).Where(e => "conn".Equals(e.Cookie)).ToList();
            Assert.Single(after);
            Assert.Equal(ChannelCommand.Close, after[0].Command);
            Assert.Equal(1, channel.HandleCount);
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Unregister_AcceptedSocket_IsSilentAndClosesIt(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("conn");
        using (client)
        {
            server.Channel.Receive(conn);
            server.Channel.Unregister(conn);
            server.Pump.Until(() => server.Channel.HandleCount == 1);
            // The channel opened the socket, so nothing else could close it: Unregister did.
            LoopbackServer.ExpectEof(client);
            server.Pump.Drain();
            Assert.DoesNotContain(server.Pump.History, e => "conn".Equals(e.Cookie));
        }
    }

    [Fact]
    public void CloseListener_StopsAccepting_AndDeliversClose()
    {
        using var server = CreateServer();
        (MegaPipeHandle conn, Socket client) = server.AcceptClient();
        using (client)
        {
            server.Channel.Close(server.ListenerHandle);
            Assert.Equal("listener", server.Pump.WaitFor(ChannelCommand.Close, server.ListenerHandle).Cookie);
            Assert.Equal(1, server.Channel.HandleCount);
            Assert.True(server.Channel.IsOpen(conn));
            Assert.DoesNotContain(server.Pump.History, e => e.Command == ChannelCommand.Accept && !e.Succeeded);
        }
    }

    [Fact]
    public void Dispose_WithCommandsInFlight_ReleasesCallerHandles()
    {
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            var channel = CreateChannel();
            MegaPipeHandle r = channel.Register(readEnd, HandleKind.Pipe);
            channel.Register(writeEnd, HandleKind.Pipe, ownsHandle: true);
            channel.Read(r, new byte[16]);
            channel.Dispatch(new CompletionEvent[4], TimeSpan.Zero);
            channel.Dispose();
            channel.Dispose();

            Assert.Throws<ObjectDisposedException>(() => channel.Read(r, new byte[16]));
            Assert.Throws<ObjectDisposedException>(() => channel.Post(new NoWork()));
            // The owned end was closed; the caller's end was released, not closed.
            Assert.True(writeEnd.IsClosed);
            Assert.False(readEnd.IsClosed);
            Assert.Equal(0, TestNative.ReadWithTimeout(readEnd, new byte[16], 5_000));
        }
    }

    private sealed class NoWork : IChannelWorkItem
    {
        public void Execute(MegaPipeChannel channel)
        {
        }
    }
    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Close_RightAfterConnect_ClosesTheNewSocket(bool lightweight)
    {
        using Socket listener = Loopback.Listen();
        using var channel = CreateChannel(Options(lightweight));
        var pump = new ChannelPump(channel);
        MegaPipeHandle handle = channel.Connect(listener.LocalEndPoint!, "early");
        // Closed before the socket even exists (nothing has been submitted yet).
        channel.Close(handle);
        Assert.Equal("early", pump.WaitFor(ChannelCommand.Close, handle).Cookie);
        pump.DispatchOnce(TimeSpan.FromMilliseconds(100));
        Assert.DoesNotContain(pump.History, e => e.Command == ChannelCommand.Connect);
        Assert.Equal(0, channel.HandleCount);
    }

    [Fact]
    public void Accept_WhenFileTableIsFull_ReportsEnfileAndKeepsAccepting()
    {
        using var server = CreateServer(new ChannelOptions { LightweightSockets = true, FileTableSize = 2 });
        Assert.Equal(2, server.Channel.FileTableSize);
        (MegaPipeHandle first, Socket c1) = server.AcceptClient();
        (MegaPipeHandle _, Socket c2) = server.AcceptClient();
        using (c1)
        using (c2)
        {
            // A third connection has no slot: the accept reports ENFILE (the kernel drops that connection).
            using (Socket c3 = LoopbackServer.CreateClient())
            {
                c3.Connect(server.EndPoint);
                CompletionEvent failed = server.Pump.WaitFor(ChannelCommand.Accept, server.ListenerHandle);
                Assert.Equal(Errno.ENFILE, failed.Error);
                Assert.False(failed.Accepted.IsValid);
            }
            // Once a slot is free, accepting continues.
            server.Channel.Close(first);
            server.Pump.WaitFor(ChannelCommand.Close, first);
            (MegaPipeHandle fourth, Socket c4) = server.AcceptClient("fourth");
            using (c4)
            {
                server.Channel.Write(fourth, "ok"u8.ToArray());
                Assert.Equal(2, server.Pump.WaitFor(ChannelCommand.Write, fourth).Result);
                Assert.Equal("ok", System.Text.Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(c4, 2)));
            }
        }
    }
}

public sealed class IoUringHandleTests : HandleTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollHandleTests : HandleTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
