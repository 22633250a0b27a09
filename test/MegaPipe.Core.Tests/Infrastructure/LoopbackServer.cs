using System.Net;
using System.Net.Sockets;

namespace MegaPipe.Core.Tests.Infrastructure;

// A channel owned by the test thread with a listener on 127.0.0.1:0 that keeps accepting,
// plus helpers to get connected (channel handle, System.Net.Sockets peer) pairs.
public sealed class LoopbackServer : IDisposable
{
    public LoopbackServer(ChannelEngine engine, ChannelOptions? options = null)
    {
        Channel = EngineTestBase.CreateChannel(engine, options);
        try
        {
            Pump = new ChannelPump(Channel);
            Listener = MegaPipeListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), 1);
            ListenerHandle = Channel.RegisterListener(Listener, 0, "listener");
            Channel.Accept(ListenerHandle);
        }
        catch
        {
            Channel.Dispose();
            Listener?.Dispose();
            throw;
        }
    }

    public MegaPipeChannel Channel { get; }
    public ChannelPump Pump { get; }
    public MegaPipeListener Listener { get; }
    public MegaPipeHandle ListenerHandle { get; }
    public IPEndPoint EndPoint => (IPEndPoint)Listener.LocalEndPoint;

    public static ChannelOptions Options(bool lightweight) => new() { LightweightSockets = lightweight };

    // Connects a System.Net.Sockets client and returns the channel's accepted handle for it.
    public (MegaPipeHandle Connection, Socket Client) AcceptClient(object? cookie = null)
    {
        Socket client = CreateClient();
        try
        {
            Task connect = client.ConnectAsync(EndPoint);
            CompletionEvent accepted = Pump.WaitFor(ChannelCommand.Accept, ListenerHandle);
            Assert.True(accepted.Succeeded, accepted.ToString());
            Assert.True(connect.Wait(ChannelPump.DefaultTimeout), "connect did not complete");
            Assert.Equal(client.LocalEndPoint, Channel.GetRemoteEndPoint(accepted.Accepted));
            Channel.SetCookie(accepted.Accepted, cookie);
            return (accepted.Accepted, client);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public static Socket CreateClient()
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        {
            NoDelay = true,
            ReceiveTimeout = 30_000,
            SendTimeout = 30_000,
        };
        return client;
    }

    // Blocking read of exactly count bytes from a System.Net.Sockets peer.
    public static byte[] ReceiveExactly(Socket socket, int count, int chunk = 65536)
    {
        var data = new byte[count];
        int done = 0;
        while (done < count)
        {
            int n = socket.Receive(data, done, Math.Min(chunk, count - done), SocketFlags.None);
            if (n == 0)
            {
                throw new InvalidOperationException($"EOF after {done} of {count} bytes");
            }
            done += n;
        }
        return data;
    }

    // Blocking read until the peer's end of stream; throws if data arrives instead.
    public static void ExpectEof(Socket socket)
    {
        var buffer = new byte[64];
        int n = socket.Receive(buffer);
        Assert.True(n == 0, $"expected end of stream, got {n} bytes");
    }

    public void Dispose()
    {
        Channel.Dispose();
        Listener.Dispose();
    }
}
