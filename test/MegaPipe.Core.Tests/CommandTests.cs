using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using MegaPipe.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests;

// Round trips of every command over real loopback sockets, pipes and files. Socket tests run
// with lightweight sockets (direct descriptors) and with regular descriptors.
public abstract class CommandTests : EngineTestBase
{
    public static TheoryData<bool> Lightweight => new() { true, false };

    private static byte[] RandomBytes(int count, int seed)
    {
        var data = new byte[count];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Accept_RegistersEachConnectionWithItsAddresses(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        int baseline = channel.HandleCount;
        var clients = new List<Socket>();
        try
        {
            // More connections than accepts kept armed (AcceptDepth 8): accepting continues.
            for (int i = 0; i < 12; i++)
            {
                (MegaPipeHandle conn, Socket client) = server.AcceptClient(i);
                clients.Add(client);
                Assert.True(channel.IsOpen(conn));
                Assert.Equal(i, channel.GetCookie(conn));
                Assert.Equal(lightweight, channel.IsLightweight(conn));
                Assert.Equal(!lightweight, channel.TryGetDescriptor(conn, out int fd));
                Assert.Equal(!lightweight, fd >= 0);
                Assert.Equal(client.LocalEndPoint, channel.GetRemoteEndPoint(conn));
                Assert.Equal(client.RemoteEndPoint, channel.GetLocalEndPoint(conn));
                Assert.Equal(baseline + i + 1, channel.HandleCount);
            }
            Assert.Equal(server.EndPoint, channel.GetLocalEndPoint(server.ListenerHandle));
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Connect_ToSocketsListener_ExchangesDataBothWays(bool lightweight)
    {
        using Socket listener = Loopback.Listen();
        using var channel = CreateChannel(Options(lightweight));
        var pump = new ChannelPump(channel);

        MegaPipeHandle handle = channel.Connect(listener.LocalEndPoint!, "out");
        Task<Socket> accept = listener.AcceptAsync();
        CompletionEvent connected = pump.WaitFor(ChannelCommand.Connect, handle);
        Assert.True(connected.Succeeded, connected.ToString());
        Assert.Equal("out", connected.Cookie);
        Assert.True(accept.Wait(ChannelPump.DefaultTimeout));
        using Socket peer = accept.Result;
        peer.ReceiveTimeout = 30_000;
        Assert.Equal(listener.LocalEndPoint, channel.GetRemoteEndPoint(handle));
        Assert.Equal(lightweight, channel.IsLightweight(handle));
        if (!lightweight)
        {
            Assert.Equal(peer.RemoteEndPoint, channel.GetLocalEndPoint(handle));
        }

        channel.Write(handle, Encoding.ASCII.GetBytes("ping"));
        Assert.Equal(4, pump.WaitFor(ChannelCommand.Write, handle).Result);
        Assert.Equal("ping", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(peer, 4)));

        var buffer = new byte[16];
        channel.Read(handle, buffer);
        peer.Send(Encoding.ASCII.GetBytes("pong"));
        CompletionEvent read = pump.WaitFor(ChannelCommand.Read, handle);
        Assert.Equal(4, read.Result);
        Assert.Equal("pong", Encoding.ASCII.GetString(buffer, 0, 4));

        channel.Close(handle);
        Assert.Equal("out", pump.WaitFor(ChannelCommand.Close, handle).Cookie);
        LoopbackServer.ExpectEof(peer);
        Assert.Equal(0, channel.HandleCount);
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Connect_Refused_ReportsErrorAndHandleCanBeClosed(bool lightweight)
    {
        // A bound socket that does not listen holds the port, so the connection is refused.
        using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        bound.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var channel = CreateChannel(Options(lightweight));
        var pump = new ChannelPump(channel);

        MegaPipeHandle handle = channel.Connect(bound.LocalEndPoint!, "refused");
        CompletionEvent connected = pump.WaitFor(ChannelCommand.Connect, handle);
        Assert.Equal(Errno.ECONNREFUSED, connected.Error);
        Assert.False(connected.Succeeded);
        channel.Close(handle);
        Assert.Equal("refused", pump.WaitFor(ChannelCommand.Close, handle).Cookie);
        Assert.Equal(0, channel.HandleCount);
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Connect_ChannelToChannel_EchoRoundTrip(bool lightweight)
    {
        var endpoint = new TaskCompletionSource<EndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        byte[] message = RandomBytes(100_000, 1);

        // The server channel lives on its own thread: accepts one connection and echoes until EOF.
        TestThread server = TestThread.Start("echo-server", () =>
        {
            using var channel = CreateChannel(Options(lightweight));
            using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 1);
            var pump = new ChannelPump(channel);
            MegaPipeHandle lh = channel.RegisterListener(listener, 0);
            channel.Accept(lh);
            endpoint.SetResult(listener.LocalEndPoint);
            MegaPipeHandle conn = pump.WaitFor(ChannelCommand.Accept, lh).Accepted;
            channel.Receive(conn);
            bool closed = false;
            var pending = new Queue<byte[]>();
            bool writing = false;
            pump.OnEvent = e =>
            {
                if (e.Handle != conn)
                {
                    return;
                }
                if (e.Command == ChannelCommand.Receive && e.Result > 0)
                {
                    pending.Enqueue(channel.GetReceivedData(e).ToArray());
                }
                else if (e.Command == ChannelCommand.Write)
                {
                    Assert.True(e.Succeeded, e.ToString());
                    writing = false;
                }
                else if (e.Command == ChannelCommand.Receive)
                {
                    Assert.Equal(0, e.Result);
                    pending.Enqueue([]); // end of stream marker
                }
                else if (e.Command == ChannelCommand.Close)
                {
                    closed = true;
                }
                // One write in flight per connection.
                if (!writing && pending.Count > 0 && !closed)
                {
                    byte[] next = pending.Dequeue();
                    if (next.Length == 0)
                    {
                        channel.Close(conn);
                    }
                    else
                    {
                        writing = true;
                        channel.Write(conn, next);
                    }
                }
            };
            pump.Until(() => closed || stop.IsCancellationRequested, what: "echo server done");
        });

        try
        {
            Assert.True(endpoint.Task.Wait(ChannelPump.DefaultTimeout));
            using var channel = CreateChannel(Options(lightweight));
            var pump = new ChannelPump(channel);
            MegaPipeHandle handle = channel.Connect(endpoint.Task.Result, "client");
            Assert.True(pump.WaitFor(ChannelCommand.Connect, handle).Succeeded);
            channel.Write(handle, message);
            var echoed = new byte[message.Length];
            int got = 0;
            bool written = false;
            channel.Read(handle, echoed);
            pump.Until(() =>
            {
                foreach (CompletionEvent e in pump.Events)
                {
                    if (e.Command == ChannelCommand.Write)
                    {
                        Assert.Equal(message.Length, e.Result);
                        written = true;
                    }
                    else if (e.Command == ChannelCommand.Read)
                    {
                        Assert.True(e.Result > 0, e.ToString());
                        got += e.Result;
                        if (got < message.Length)
                        {
                            channel.Read(handle, echoed.AsMemory(got));
                        }
                    }
                }
                pump.Events.Clear();
                return written && got == message.Length;
            }, what: "echo");
            Assert.Equal(message, echoed);

            // Half-close: the server sees EOF and closes, we see EOF.
            channel.Shutdown(handle, SocketShutdown.Send);
            Assert.Equal(0, pump.WaitFor(ChannelCommand.Shutdown, handle).Result);
            channel.Read(handle, new byte[16]);
            Assert.Equal(0, pump.WaitFor(ChannelCommand.Read, handle).Result);
            channel.Close(handle);
            pump.WaitFor(ChannelCommand.Close, handle);
            server.Join();
        }
        finally
        {
            stop.Cancel();
            server.Join();
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Read_OneShot_FillsOnlyTheGivenMemory(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("c");
        using (client)
        {
            var buffer = new byte[100];
            server.Channel.Read(conn, buffer.AsMemory(10, 50));
            client.Send(Encoding.ASCII.GetBytes("abcdef"));
            CompletionEvent read = server.Pump.WaitFor(ChannelCommand.Read, conn);
            Assert.Equal(6, read.Result);
            Assert.Equal(6, read.BytesTransferred);
            Assert.Equal("c", read.Cookie);
            Assert.Equal("abcdef", Encoding.ASCII.GetString(buffer, 10, 6));
            Assert.All(buffer[..10], b => Assert.Equal(0, b));
            Assert.All(buffer[16..], b => Assert.Equal(0, b));

            // More data than the buffer: a read takes at most its length, the rest waits for the next.
            byte[] data = RandomBytes(80, 2);
            client.Send(data);
            var received = new List<byte>();
            while (received.Count < data.Length)
            {
                var chunk = new byte[50];
                server.Channel.Read(conn, chunk);
                int n = server.Pump.WaitFor(ChannelCommand.Read, conn).Result;
                Assert.InRange(n, 1, 50);
                received.AddRange(chunk[..n]);
            }
            Assert.Equal(data, received.ToArray());

            client.Shutdown(SocketShutdown.Send);
            server.Channel.Read(conn, buffer);
            Assert.Equal(0, server.Pump.WaitFor(ChannelCommand.Read, conn).Result);
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Receive_Continuous_DeliversEveryMessageThenEof(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        ChannelPump pump = server.Pump;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("c");
        using (client)
        {
            channel.Receive(conn);
            var expected = new MemoryStream();
            for (int i = 0; i < 5; i++)
            {
                byte[] message = Encoding.ASCII.GetBytes($"message {i} " + new string('x', i * 1000));
                client.Send(message);
                expected.Write(message);
                pump.Until(() => pump.ReceivedCount(conn) == expected.Length, what: $"message {i}");
            }
            Assert.Equal(expected.ToArray(), pump.ReceivedBytes(conn));
            List<CompletionEvent> receives = pump.Events.Where(e => e.Command == ChannelCommand.Receive).ToList();
            Assert.True(receives.Count >= 5);
            Assert.All(receives, e => Assert.True(e.Result > 0 && e.Cookie is "c", e.ToString()));

            client.Shutdown(SocketShutdown.Send);
            CompletionEvent eof = pump.WaitFor(e => e.Command == ChannelCommand.Receive && e.Result == 0, "end of stream");
            Assert.False(eof.More);
            Assert.Equal(conn, eof.Handle);
            pump.Drain();
            Assert.Equal(channel.Options.ReceiveBufferCount, channel.ReceiveBuffersAvailable);

            // The connection still writes after the peer's half-close.
            channel.Write(conn, Encoding.ASCII.GetBytes("bye"));
            Assert.Equal(3, pump.WaitFor(ChannelCommand.Write, conn).Result);
            Assert.Equal("bye", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 3)));
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void StopReceive_HoldsDataBack_AndReceiveResumesInOrder(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        ChannelPump pump = server.Pump;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient();
        using (client)
        {
            channel.Receive(conn);
            client.Send("a"u8.ToArray());
            pump.Until(() => pump.ReceivedCount(conn) == 1);

            channel.StopReceive(conn);
            pump.DispatchOnce(TimeSpan.Zero);
            client.Send("b"u8.ToArray());
            // Nothing is received while stopped (the data waits in the socket).
            pump.DispatchOnce(TimeSpan.FromMilliseconds(200));
            pump.Drain();
            Assert.Equal("a", Encoding.ASCII.GetString(pump.ReceivedBytes(conn)));

            channel.Receive(conn);
            pump.Until(() => pump.ReceivedCount(conn) == 2);

            // Stopping and restarting before any dispatch loses nothing and reports no error.
            channel.StopReceive(conn);
            channel.Receive(conn);
            client.Send("c"u8.ToArray());
            pump.Until(() => pump.ReceivedCount(conn) == 3);
            client.Send("d"u8.ToArray());
            pump.Until(() => pump.ReceivedCount(conn) == 4);
            Assert.Equal("abcd", Encoding.ASCII.GetString(pump.ReceivedBytes(conn)));
            Assert.All(pump.History, e => Assert.True(e.Succeeded, e.ToString()));
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Write_SingleBuffer_ArrivesAtPeer(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("w");
        using (client)
        {
            byte[] data = RandomBytes(1000, 3);
            server.Channel.Write(conn, data);
            CompletionEvent written = server.Pump.WaitFor(ChannelCommand.Write, conn);
            Assert.Equal(1000, written.Result);
            Assert.Equal("w", written.Cookie);
            Assert.Equal(data, LoopbackServer.ReceiveExactly(client, data.Length));
        }
    }

    public static TheoryData<bool, int, int, bool> GatheredCases => new()
    {
        { true, 2, 10_000, false },
        { true, 64, 200_000, false },
        { true, 65, 200_000, false },
        { true, 300, 1_000_000, true },
        { false, 2, 10_000, false },
        { false, 65, 200_000, false },
        { false, 300, 1_000_000, true },
    };

    [Theory]
    [MemberData(nameof(GatheredCases))]
    public void Write_GatheredSequence_ArrivesIntact(bool lightweight, int segments, int size, bool withEmptySegments)
    {
        using var server = CreateServer(Options(lightweight));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient();
        using (client)
        {
            byte[] data = RandomBytes(size, segments);
            ReadOnlySequence<byte> sequence = Segments.Split(data, segments, seed: segments, allowEmpty: withEmptySegments);
            Assert.Equal(segments, Segments.CountSegments(sequence));
            Assert.Equal(size, sequence.Length);
            Task<byte[]> peer = Task.Run(() => LoopbackServer.ReceiveExactly(client, size));
            server.Channel.Write(conn, sequence);
            Assert.Equal(size, server.Pump.WaitFor(ChannelCommand.Write, conn).Result);
            Assert.True(peer.Wait(ChannelPump.DefaultTimeout), "the peer did not receive everything");
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(peer.Result));
        }
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Write_16MB_ToSlowReader_CompletesWithFullTotal(bool lightweight, bool gathered)
    {
        const int Size = 16 << 20;
        using var server = CreateServer(Options(lightweight));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient();
        using (client)
        {
            byte[] data = RandomBytes(Size, 16);
            // The peer reads 4 KB at a time: the kernel takes the write in short pieces.
            Task<byte[]> peer = Task.Run(() => LoopbackServer.ReceiveExactly(client, Size, chunk: 4096));
            ChannelCounters before = server.Channel.Counters;
            if (gathered)
            {
                server.Channel.Write(conn, Segments.Split(data, 200, seed: 5));
            }
            else
            {
                server.Channel.Write(conn, data);
            }
            CompletionEvent written = server.Pump.WaitFor(ChannelCommand.Write, conn);
            ChannelCounters delta = server.Channel.Counters - before;
            Assert.Equal(Size, written.Result);
            Assert.True(peer.Wait(ChannelPump.DefaultTimeout), "the peer did not receive everything");
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(peer.Result));
            // More than the socket buffers hold (tcp_wmem max is 4 MB): the write went in several pieces,
            // still reported as one command and one event.
            Assert.Equal(1, delta.Commands);
            Assert.True(delta.Submissions > 1, $"expected continued short writes, submissions {delta.Submissions}");
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Shutdown_Send_PeerSeesEof_AndCanStillSend(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("s");
        using (client)
        {
            server.Channel.Write(conn, "last"u8.ToArray());
            server.Pump.WaitFor(ChannelCommand.Write, conn);
            server.Channel.Shutdown(conn, SocketShutdown.Send);
            CompletionEvent shutdown = server.Pump.WaitFor(ChannelCommand.Shutdown, conn);
            Assert.Equal(0, shutdown.Result);
            Assert.Equal("s", shutdown.Cookie);
            Assert.Equal("last", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 4)));
            LoopbackServer.ExpectEof(client);

            var buffer = new byte[8];
            server.Channel.Read(conn, buffer);
            client.Send("back"u8.ToArray());
            Assert.Equal(4, server.Pump.WaitFor(ChannelCommand.Read, conn).Result);
            Assert.Equal("back", Encoding.ASCII.GetString(buffer, 0, 4));
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Close_DeliversCloseEvent_PeerSeesEof(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        int baseline = server.Channel.HandleCount;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("closing");
        using (client)
        {
            server.Channel.Receive(conn);
            server.Channel.Close(conn);
            Assert.False(server.Channel.IsOpen(conn));
            CompletionEvent closed = server.Pump.WaitFor(ChannelCommand.Close, conn);
            Assert.Equal("closing", closed.Cookie);
            Assert.Equal(0, closed.Result);
            LoopbackServer.ExpectEof(client);
            Assert.Equal(baseline, server.Channel.HandleCount);
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void Abort_DeliversCloseEvent_PeerSeesReset(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        int baseline = server.Channel.HandleCount;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("aborting");
        using (client)
        {
            server.Channel.Receive(conn);
            server.Channel.Abort(conn);
            Assert.False(server.Channel.IsOpen(conn));
            CompletionEvent closed = server.Pump.WaitFor(ChannelCommand.Close, conn);
            Assert.Equal("aborting", closed.Cookie);
            Assert.Equal(0, closed.Result);
            // SO_LINGER 0: RST, not the FIN of Close.
            var buffer = new byte[64];
            SocketException reset = Assert.Throws<SocketException>(() => client.Receive(buffer));
            Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
            Assert.Equal(baseline, server.Channel.HandleCount);
        }
    }

    [Fact]
    public void ReadFile_AtOffsets_ReturnsThoseBytes()
    {
        string path = Path.GetTempFileName();
        try
        {
            byte[] content = RandomBytes(100_000, 7);
            File.WriteAllBytes(path, content);
            using var channel = CreateChannel();
            var pump = new ChannelPump(channel);
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            (long Offset, int Length, int Expected)[] reads =
            [
                (0, 4096, 4096),
                (5000, 10_000, 10_000),
                (12_345, 1, 1),
                (99_000, 4096, 1000),  // short read at the end
                (100_000, 16, 0),      // at end of file
                (250_000, 16, 0),      // past end of file
            ];
            // One registration per read, all in flight together, so each event names its read.
            var handles = new MegaPipeHandle[reads.Length];
            var buffers = new byte[reads.Length][];
            for (int i = 0; i < reads.Length; i++)
            {
                handles[i] = channel.Register(file, HandleKind.File, i);
                buffers[i] = new byte[reads[i].Length];
                channel.ReadFile(handles[i], buffers[i], reads[i].Offset);
            }
            for (int i = 0; i < reads.Length; i++)
            {
                CompletionEvent e = pump.WaitFor(ChannelCommand.ReadFile, handles[i]);
                Assert.Equal(i, e.Cookie);
                Assert.Equal(reads[i].Expected, e.Result);
                Assert.Equal(content.AsSpan((int)Math.Min(reads[i].Offset, content.Length), reads[i].Expected).ToArray(), buffers[i][..e.Result]);
            }
            // The same offset read twice gives the same bytes: no file position is involved.
            var again = new byte[4096];
            channel.ReadFile(handles[0], again, 0);
            Assert.Equal(4096, pump.WaitFor(ChannelCommand.ReadFile, handles[0]).Result);
            Assert.Equal(content[..4096], again);
            foreach (MegaPipeHandle h in handles)
            {
                channel.Unregister(h);
            }
            pump.Until(() => channel.HandleCount == 0);
            Assert.False(file.IsClosed);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Pipe_ReadAndWrite_ThroughRegisteredEnds()
    {
        using var channel = CreateChannel();
        var pump = new ChannelPump(channel);
        (SafeFileHandle readEnd, SafeFileHandle writeEnd) = TestNative.CreatePipe();
        using (readEnd)
        using (writeEnd)
        {
            MegaPipeHandle r = channel.Register(readEnd, HandleKind.Pipe, "r");
            MegaPipeHandle w = channel.Register(writeEnd, HandleKind.Pipe, "w", ownsHandle: true);

            // A plain write is read by the channel.
            var buffer = new byte[64];
            channel.Read(r, buffer);
            TestNative.WriteAll(writeEnd, "from outside"u8);
            CompletionEvent read = pump.WaitFor(ChannelCommand.Read, r);
            Assert.Equal(12, read.Result);
            Assert.Equal("r", read.Cookie);
            Assert.Equal("from outside", Encoding.ASCII.GetString(buffer, 0, 12));

            // A channel write is read by a plain read.
            channel.Write(w, "from channel"u8.ToArray());
            Assert.Equal(12, pump.WaitFor(ChannelCommand.Write, w).Result);
            var plain = new byte[12];
            TestNative.ReadExactly(readEnd, plain);
            Assert.Equal("from channel", Encoding.ASCII.GetString(plain));

            // More than the pipe holds (64 KB), single and gathered (> 64 segments): short writes
            // are continued while the channel reads the other end.
            byte[] big = RandomBytes(300_000, 8);
            foreach (bool gathered in new[] { false, true })
            {
                if (gathered)
                {
                    channel.Write(w, Segments.Split(big, 150, seed: 9));
                }
                else
                {
                    channel.Write(w, big);
                }
                var received = new byte[big.Length];
                int got = 0;
                bool written = false;
                channel.Read(r, received.AsMemory(0, 65536));
                pump.Until(() =>
                {
                    foreach (CompletionEvent e in pump.Events)
                    {
                        if (e.Command == ChannelCommand.Write)
                        {
                            Assert.Equal(big.Length, e.Result);
                            written = true;
                        }
                        else if (e.Command == ChannelCommand.Read)
                        {
                            Assert.True(e.Result > 0, e.ToString());
                            got += e.Result;
                            if (got < big.Length)
                            {
                                channel.Read(r, received.AsMemory(got, Math.Min(65536, big.Length - got)));
                            }
                        }
                    }
                    pump.Events.Clear();
                    return written && got == big.Length;
                }, what: gathered ? "gathered pipe transfer" : "pipe transfer");
                Assert.Equal(SHA256.HashData(big), SHA256.HashData(received));
            }

            // Closing the owned write end closes the descriptor: the reader sees end of stream.
            channel.Close(w);
            Assert.Equal("w", pump.WaitFor(ChannelCommand.Close, w).Cookie);
            Assert.True(writeEnd.IsClosed);
            channel.Read(r, buffer);
            Assert.Equal(0, pump.WaitFor(ChannelCommand.Read, r).Result);

            // Unregistering leaves the caller's descriptor open.
            channel.Unregister(r);
            pump.Until(() => channel.HandleCount == 0);
            Assert.False(readEnd.IsClosed);
        }
    }

    [Theory]
    [MemberData(nameof(Lightweight))]
    public void InstallDescriptor_GivesWorkingRegularDescriptor(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("i");
        using (client)
        {
            if (!lightweight)
            {
                // A regular socket already has a descriptor.
                Assert.Throws<InvalidOperationException>(() => channel.InstallDescriptor(conn));
                Assert.True(channel.TryGetDescriptor(conn, out int existing));
                using var view = new Socket(new SafeSocketHandle(existing, ownsHandle: false));
                view.Send("regular"u8);
                Assert.Equal("regular", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 7)));
                return;
            }

            Assert.False(channel.TryGetDescriptor(conn, out _));
            channel.InstallDescriptor(conn);
            CompletionEvent installed = server.Pump.WaitFor(ChannelCommand.InstallDescriptor, conn);
            Assert.True(installed.Succeeded, installed.ToString());
            Assert.Equal("i", installed.Cookie);
            int fd = installed.Result;
            Assert.True(File.Exists($"/proc/self/fd/{fd}"), "the descriptor is not in the process table");
            using (var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true)))
            {
                socket.ReceiveTimeout = 30_000;
                Assert.Equal(client.LocalEndPoint, socket.RemoteEndPoint);
                socket.Send("via fd"u8);
                Assert.Equal("via fd", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 6)));
                client.Send("back"u8);
                Assert.Equal("back", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(socket, 4)));

                // The handle stays usable.
                channel.Write(conn, "handle"u8.ToArray());
                Assert.Equal(6, server.Pump.WaitFor(ChannelCommand.Write, conn).Result);
                Assert.Equal("handle", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 6)));
                channel.Close(conn);
                server.Pump.WaitFor(ChannelCommand.Close, conn);
            }
            // Both the direct descriptor and the installed one are closed now.
            LoopbackServer.ExpectEof(client);
        }
    }

    // InstallDescriptorNow waits for its own completion on the owner thread; the completions of
    // other handles that come meanwhile are kept, in order, for the next dispatch.
    [Theory]
    [MemberData(nameof(Lightweight))]
    public void InstallDescriptorNow_ReturnsADescriptor_AndLosesNoOtherCompletion(bool lightweight)
    {
        using var server = CreateServer(Options(lightweight));
        MegaPipeChannel channel = server.Channel;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("a");
        (MegaPipeHandle other, Socket otherClient) = server.AcceptClient("b");
        using (client)
        using (otherClient)
        {
            // Completions of the other connection come with the install's: the receive and the
            // write are submitted by the same enter (the peer's data is in the socket already),
            // and complete at submission, before the install.
            channel.Receive(other);
            otherClient.Send("first"u8);
            channel.Write(other, "out"u8.ToArray());
            // (A regular descriptor is duplicated at once, without an enter: they go at the next dispatch.)
            int fd = channel.InstallDescriptorNow(conn);
            Assert.True(File.Exists($"/proc/self/fd/{fd}"), "the descriptor is not in the process table");
            // With a lightweight socket the install went through the ring and the others' completions came with it.
            Assert.Equal(lightweight, channel.CompletionsDeferred >= 2);
            using (var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true)))
            {
                Assert.Equal(client.LocalEndPoint, socket.RemoteEndPoint);
                socket.Send("via fd"u8);
                Assert.Equal("via fd", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 6)));
            }
            // Nothing of the other connection was lost: its write and its data come as events.
            CompletionEvent written = server.Pump.WaitFor(ChannelCommand.Write, other);
            Assert.Equal(3, written.Result);
            Assert.Equal("out", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(otherClient, 3)));
            server.Pump.Until(() => server.Pump.ReceivedCount(other) >= 5, what: "the other connection's data");
            Assert.Equal("first", Encoding.ASCII.GetString(server.Pump.ReceivedBytes(other)));
            // The handle is still the channel's and usable.
            channel.Write(conn, "handle"u8.ToArray());
            Assert.Equal(6, server.Pump.WaitFor(ChannelCommand.Write, conn).Result);
            Assert.Equal("handle", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 6)));
        }
    }
}

public sealed class IoUringCommandTests : CommandTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollCommandTests : CommandTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
