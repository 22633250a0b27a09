using System.Net.Sockets;
using System.Text;
using MegaPipe.Core.Tests.Infrastructure;

namespace MegaPipe.Core.Tests;

// Close(handle, CloseMode) on real loopback connections: what the peer reads when the channel
// closes, FIN (end of stream) or RST (a reset), with nothing unread on the channel's side and
// with the peer's next request already waiting there unread, as at the end of a keep-alive
// connection. Immediate is close(2), whose unread data turns the FIN into a reset; Graceful
// shuts the send side down first, so the peer still reads the end of stream.
public abstract class CloseModeTests : EngineTestBase
{
    public enum PeerSees
    {
        EndOfStream,
        Reset,
    }

    public static TheoryData<CloseMode, bool, bool, PeerSees> Cases()
    {
        var data = new TheoryData<CloseMode, bool, bool, PeerSees>();
        foreach (bool lightweight in new[] { true, false })
        {
            data.Add(CloseMode.Graceful, false, lightweight, PeerSees.EndOfStream);
            data.Add(CloseMode.Graceful, true, lightweight, PeerSees.EndOfStream);
            data.Add(CloseMode.Immediate, false, lightweight, PeerSees.EndOfStream);
            data.Add(CloseMode.Immediate, true, lightweight, PeerSees.Reset);
            data.Add(CloseMode.Abort, false, lightweight, PeerSees.Reset);
            data.Add(CloseMode.Abort, true, lightweight, PeerSees.Reset);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Close_InEachMode_PeerSeesFinOrReset(CloseMode mode, bool requestQueued, bool lightweight, PeerSees expected)
    {
        using LoopbackServer server = CreateServer(Options(lightweight));
        int baseline = server.Channel.HandleCount;
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("conn");
        using (client)
        {
            // A response the peer reads in full before the end, in every mode.
            server.Channel.Write(conn, "response"u8.ToArray());
            Assert.Equal(8, server.Pump.WaitFor(ChannelCommand.Write, conn).Result);
            Assert.Equal("response", Encoding.ASCII.GetString(LoopbackServer.ReceiveExactly(client, 8)));
            if (requestQueued)
            {
                // The peer's next request arrives and nothing on the channel's side reads it.
                client.Send("GET /next HTTP/1.1\r\n\r\n"u8);
                WaitUntilQueued(server, conn);
            }

            server.Channel.Close(conn, mode);
            Assert.False(server.Channel.IsOpen(conn));
            CompletionEvent closed = server.Pump.WaitFor(ChannelCommand.Close, conn);
            Assert.Equal("conn", closed.Cookie);
            Assert.Equal(0, closed.Result);
            Assert.Equal(baseline, server.Channel.HandleCount);

            var buffer = new byte[64];
            PeerSees seen;
            try
            {
                int n = client.Receive(buffer);
                Assert.True(n == 0, $"{mode}: the peer read {n} bytes after the response, expected the end");
                seen = PeerSees.EndOfStream;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                seen = PeerSees.Reset;
            }
            Assert.True(expected == seen, $"{mode} with {(requestQueued ? "the peer's next request unread" : "nothing unread")}: the peer saw {seen}, expected {expected}");
        }
    }

    [Fact]
    public void Close_WithAModeThatIsNone_IsRefused_AndTheHandleStaysOpen()
    {
        using LoopbackServer server = CreateServer();
        (MegaPipeHandle conn, Socket client) = server.AcceptClient("conn");
        using (client)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => server.Channel.Close(conn, (CloseMode)3));
            Assert.True(server.Channel.IsOpen(conn));
            server.Channel.Close(conn, CloseMode.Graceful);
            server.Pump.WaitFor(ChannelCommand.Close, conn);
            LoopbackServer.ExpectEof(client);
        }
    }

    [Fact]
    public void Close_Graceful_OfAListener_ClosesIt()
    {
        using LoopbackServer server = CreateServer();
        int baseline = server.Channel.HandleCount;
        server.Channel.Close(server.ListenerHandle, CloseMode.Graceful);
        CompletionEvent closed = server.Pump.WaitFor(ChannelCommand.Close, server.ListenerHandle);
        Assert.Equal(0, closed.Result);
        Assert.Equal(baseline - 1, server.Channel.HandleCount);
    }

    // Waits until the connection has unread data on the channel's side, through a regular
    // descriptor to poll: its own, or for a lightweight socket one installed for the purpose.
    private static void WaitUntilQueued(LoopbackServer server, MegaPipeHandle conn)
    {
        bool installed = !server.Channel.TryGetDescriptor(conn, out int fd);
        if (installed)
        {
            server.Channel.InstallDescriptor(conn);
            CompletionEvent install = server.Pump.WaitFor(ChannelCommand.InstallDescriptor, conn);
            Assert.True(install.Succeeded, install.ToString());
            fd = install.Result;
        }
        try
        {
            Assert.True(TestNative.WaitReadable(fd, 30_000), "the peer's request did not arrive");
        }
        finally
        {
            if (installed)
            {
                TestNative.Close(fd);
            }
        }
    }
}

public sealed class IoUringCloseModeTests : CloseModeTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollCloseModeTests : CloseModeTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
