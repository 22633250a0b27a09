// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using MegaPipe.Internal;

namespace MegaPipe;

/// <summary>
/// A bound, listening endpoint split into per-channel accept queues (the paper's listening-socket
/// partitioning). Each channel registers its own partition with
/// <see cref="MegaPipeChannel.RegisterListener(MegaPipeListener, int, object?)"/>.
/// </summary>
public sealed class MegaPipeListener : IDisposable
{
    private readonly Socket[] _sockets;
    // The socket was handed over by the process that started us (systemd, a ListenHandle): its
    // Unix socket path belongs to that process and is not deleted on Dispose.
    private readonly bool _inherited;

    private MegaPipeListener(Socket[] sockets, EndPoint localEndPoint, bool partitioned, bool inherited = false)
    {
        _sockets = sockets;
        LocalEndPoint = localEndPoint;
        IsPartitioned = partitioned;
        _inherited = inherited;
    }

    /// <summary>True when the listener adopted a socket it did not create (<see cref="Adopt"/>).</summary>
    public bool IsInherited => _inherited;

    /// <summary>The bound address (with the actual port when port 0 was asked for).</summary>
    public EndPoint LocalEndPoint { get; }

    /// <summary>True when each partition has its own CPU-steered accept queue.</summary>
    public bool IsPartitioned { get; }

    /// <summary>The number of accept queues: the partition count, or 1 when not partitioned.</summary>
    public int QueueCount => _sockets.Length;

    /// <summary>
    /// Binds <paramref name="endPoint"/> for <paramref name="partitions"/> channels.
    /// </summary>
    /// <exception cref="SocketException">The address is in use (also when another process holds it with SO_REUSEPORT) or cannot be bound.</exception>
    public static MegaPipeListener Bind(EndPoint endPoint, int partitions, ListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        options ??= new ListenerOptions();
        bool partitioned = options.Partitioned && partitions > 1 && endPoint is IPEndPoint;
        int count = partitioned ? partitions : 1;
        var sockets = new Socket[count];
        int created = 0;
        try
        {
            EndPoint bindTo = endPoint;
            if (partitioned && endPoint is IPEndPoint { Port: not 0 })
            {
                // SO_REUSEPORT would let us silently join (or steal from) another process's listener on this
                // port. Bind once without it first: if that fails, the port is taken, and we report it the way
                // Kestrel does, as "address in use".
                using Socket probe = CreateSocket(endPoint);
                probe.Bind(endPoint);
            }
            for (int i = 0; i < count; i++)
            {
                Socket socket = CreateSocket(endPoint);
                sockets[i] = socket;
                created++;
                if (partitioned)
                {
                    socket.SetRawSocketOption(Interop.SOL_SOCKET, Interop.SO_REUSEPORT, BitConverter.GetBytes(1));
                }
                if (options.NoDelay && endPoint is IPEndPoint)
                {
                    socket.NoDelay = true;
                }
                socket.Bind(bindTo);
                // Later partitions bind the port the first one got (port 0 asks the kernel for one).
                bindTo = socket.LocalEndPoint!;
                socket.Listen(options.Backlog);
            }
            if (partitioned)
            {
                AttachCpuSteering(sockets[0], count);
            }
            return new MegaPipeListener(sockets, sockets[0].LocalEndPoint!, partitioned);
        }
        catch
        {
            for (int i = 0; i < created; i++)
            {
                sockets[i].Dispose();
            }
            throw;
        }
    }

    /// <summary>
    /// Adopts a listening stream socket the process was given (systemd socket activation, an
    /// inherited descriptor): one accept queue, shared by every channel that registers it (such a
    /// socket cannot be partitioned). It is made to listen with <paramref name="backlog"/> if it
    /// does not already (listen(2) on a listening socket only updates its backlog). The listener
    /// owns the socket from now on and closes it on <see cref="Dispose"/>; a Unix socket's path is left in place.
    /// </summary>
    /// <exception cref="ArgumentException">The socket is not a TCP or Unix domain stream socket.</exception>
    public static MegaPipeListener Adopt(Socket socket, int backlog = 512)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (socket.SocketType != SocketType.Stream || socket.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6 or AddressFamily.Unix))
        {
            throw new ArgumentException($"A MegaPipe listener needs a TCP or Unix domain stream socket; this one is {socket.AddressFamily} {socket.SocketType}.", nameof(socket));
        }
        EndPoint local = socket.LocalEndPoint ?? throw new ArgumentException("The socket is not bound.", nameof(socket));
        socket.Listen(backlog);
        return new MegaPipeListener([socket], local, partitioned: false, inherited: true);
    }

    private static Socket CreateSocket(EndPoint endPoint)
    {
        Socket socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (endPoint is IPEndPoint ip && ip.Address.Equals(IPAddress.IPv6Any))
        {
            socket.DualMode = true;
        }
        return socket;
    }

    // Attaches "A = cpu; A = A mod n; return A" to the reuseport group: a connection goes to the
    // listener at index (receiving CPU mod n), the n listeners being indexed in listen() order.
    // See the kernel selftest tools/testing/selftests/net/reuseport_bpf_cpu.c.
    private static unsafe void AttachCpuSteering(Socket socket, int partitions)
    {
        Interop.sock_filter* code = stackalloc Interop.sock_filter[3];
        code[0] = new Interop.sock_filter { code = Interop.BPF_LD_W_ABS, k = unchecked((uint)(Interop.SKF_AD_OFF + Interop.SKF_AD_CPU)) };
        code[1] = new Interop.sock_filter { code = Interop.BPF_ALU_MOD_K, k = (uint)partitions };
        code[2] = new Interop.sock_filter { code = Interop.BPF_RET_A };
        Interop.sock_fprog program = new() { len = 3, filter = code };
        var bytes = new ReadOnlySpan<byte>(&program, sizeof(Interop.sock_fprog));
        socket.SetRawSocketOption(Interop.SOL_SOCKET, Interop.SO_ATTACH_REUSEPORT_CBPF, bytes);
    }

    internal Socket GetSocket(int partition) => _sockets[IsPartitioned ? partition % _sockets.Length : 0];

    /// <summary>Closes every accept queue. Channels should close their listener handles first.</summary>
    public void Dispose()
    {
        foreach (Socket socket in _sockets)
        {
            socket.Dispose();
        }
        if (!_inherited && LocalEndPoint is UnixDomainSocketEndPoint unix && unix.ToString() is { Length: > 0 } path && path[0] != '@')
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
        }
    }
}
