// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace MegaPipe.Transport.Internal;

// IConnectionSocketFeature on demand: the paper's lightweight socket gets a regular descriptor
// only when something needs one. The first time application code asks for the connection's
// Socket, the channel installs a descriptor for its socket (IORING_OP_FIXED_FD_INSTALL; a dup
// where the socket already has one) and the feature hands back a Socket that owns it: options set
// through it (setsockopt) apply to the connection, which goes on working on its channel. The
// descriptor is closed when the connection closes; the Socket is disposed then. Reading or
// writing through the Socket bypasses the transport, as with Kestrel's Sockets transport: don't.
internal sealed partial class MegaPipeConnection : IConnectionSocketFeature
{
    // The Socket handed out, and whether the connection closed (then none is handed out). Guarded
    // by _socketLock, which is never held while waiting for the channel: the channel thread takes
    // it too (DisposeSocket), and must not wait for a caller that waits for it.
    private Socket? _socket;
    private bool _socketClosed;
    private readonly Lock _socketLock = new();

    Socket IConnectionSocketFeature.Socket
    {
        get
        {
            if (Volatile.Read(ref _socket) is { } existing)
            {
                return existing;
            }
            Socket socket = CreateSocket();
            lock (_socketLock)
            {
                if (_socketClosed || _socket is not null)
                {
                    // The connection closed meanwhile, or another caller was first.
                    socket.Dispose();
                    return _socket ?? throw new ConnectionAbortedException("The connection is closed; it has no socket to give.");
                }
                Volatile.Write(ref _socket, socket);
                return socket;
            }
        }
    }

    private Socket CreateSocket()
    {
        int fd;
        if (_channel.IsOwnerThread)
        {
            // Application code running on the channel (UnsafeInlineScheduling).
            fd = InstallDescriptor();
        }
        else
        {
            var install = new InstallItem(this);
            try
            {
                _thread.Post(install);
            }
            catch (ObjectDisposedException e)
            {
                throw new ConnectionAbortedException("The connection's channel has stopped.", e);
            }
            fd = install.Result.Task.WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        }
        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        try
        {
            return new Socket(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    // On the channel thread: a descriptor for an open connection.
    private int InstallDescriptor()
    {
        if (!_lifetime.IsOpen)
        {
            throw new ConnectionAbortedException("The connection is closed; it has no socket to give.");
        }
        return _channel.InstallDescriptorNow(_handle);
    }

    // When the connection closes (channel thread): the installed descriptor goes with it.
    private void DisposeSocket()
    {
        Socket? socket;
        lock (_socketLock)
        {
            _socketClosed = true;
            socket = _socket;
        }
        socket?.Dispose();
    }

    private sealed class InstallItem(MegaPipeConnection connection) : IChannelWorkItem
    {
        public TaskCompletionSource<int> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Execute(MegaPipeChannel channel)
        {
            try
            {
                Result.SetResult(connection.InstallDescriptor());
            }
            catch (Exception e)
            {
                Result.SetException(e);
            }
        }
    }
}
