using System.Net;
using System.Net.Sockets;
using System.Text;
using MegaPipe.Core.Tests.Infrastructure;

namespace MegaPipe.Core.Tests;

public abstract class SmokeTests : EngineTestBase
{
    [Fact]
    public void AcceptReceiveWriteClose()
    {
        using var channel = CreateChannel();
        using var listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 1);
        var pump = new ChannelPump(channel);
        MegaPipeHandle lh = channel.RegisterListener(listener, 0, "listener");
        channel.Accept(lh);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Task connect = client.ConnectAsync(listener.LocalEndPoint);
        CompletionEvent accepted = pump.WaitFor(ChannelCommand.Accept);
        Assert.True(accepted.Succeeded, accepted.ToString());
        Assert.Equal("listener", accepted.Cookie);
        MegaPipeHandle conn = accepted.Accepted;
        channel.SetCookie(conn, "conn");
        channel.Receive(conn);
        connect.Wait();
        client.Send(Encoding.ASCII.GetBytes("hello"));
        pump.Until(() => pump.Received.TryGetValue(conn, out var s) && s.Length == 5);
        Assert.Equal("hello", Encoding.ASCII.GetString(pump.Received[conn].ToArray()));
        channel.Write(conn, Encoding.ASCII.GetBytes("world"));
        CompletionEvent written = pump.WaitFor(ChannelCommand.Write);
        Assert.Equal(5, written.Result);
        var buffer = new byte[16];
        Assert.Equal(5, client.Receive(buffer));
        channel.Close(conn);
        CompletionEvent closed = pump.WaitFor(ChannelCommand.Close);
        Assert.Equal("conn", closed.Cookie);
        Assert.Equal(0, client.Receive(buffer));
        Assert.Equal(listener.LocalEndPoint, channel.GetLocalEndPoint(lh));
    }
}

public sealed class IoUringSmokeTests : SmokeTests
{
    protected override ChannelEngine Engine => ChannelEngine.IoUring;
}

public sealed class EpollSmokeTests : SmokeTests
{
    protected override ChannelEngine Engine => ChannelEngine.Epoll;
}
