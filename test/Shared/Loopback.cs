// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Net.Sockets;

namespace MegaPipe.Tests.Shared;

/// <summary>
/// Loopback sockets for tests: listeners on port 0 (the kernel picks a free port, so tests never
/// collide), free ports for child processes that must be told one, and client connections.
/// </summary>
public static class Loopback
{
    /// <summary>A TCP socket bound to 127.0.0.1 on a port the kernel picked, listening with <paramref name="backlog"/>.</summary>
    public static Socket Listen(int backlog = (int)SocketOptionName.MaxConnections)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(backlog);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        return listener;
    }

    /// <summary>
    /// A loopback port that was free a moment ago, for a child process that binds it itself (one
    /// given port 0 would have to report its port back). Another process may take it meanwhile,
    /// as with any such port, which is why in-process listeners bind port 0 instead.
    /// </summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>A TCP client connected to <paramref name="endPoint"/> (Nagle off), within <paramref name="timeout"/>.</summary>
    public static async Task<Socket> ConnectAsync(EndPoint endPoint, TimeSpan timeout)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var cancel = new CancellationTokenSource(timeout);
            await socket.ConnectAsync(endPoint, cancel.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return socket;
    }
}
