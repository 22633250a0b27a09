using System.Net;
using System.Net.Sockets;
using MegaPipe;

namespace PingPong;

// The same ping-pong server written the usual .NET way: System.Net.Sockets with async/await
// (epoll underneath, one receive and one send system call per message).
public sealed class SocketsServer(PingPongOptions options) : IPingPongServer
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private long _transactions;

    public EndPoint LocalEndPoint => _listener.LocalEndPoint!;
    public ChannelCounters Counters => default;
    public long Transactions => Volatile.Read(ref _transactions);

    public void Start()
    {
        _listener.NoDelay = true;
        _listener.Bind(new IPEndPoint(IPAddress.Parse(options.Host), options.Port));
        _listener.Listen(512);
        _ = AcceptLoop();
    }

    private async Task AcceptLoop()
    {
        while (true)
        {
            Socket socket = await _listener.AcceptAsync();
            _ = Serve(socket);
        }
    }

    private async Task Serve(Socket socket)
    {
        var buffer = new byte[options.Size];
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None)) > 0)
            {
                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
                Interlocked.Increment(ref _transactions);
            }
        }
        catch (SocketException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }
}
