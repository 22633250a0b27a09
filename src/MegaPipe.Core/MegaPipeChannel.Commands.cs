// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Sockets;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// The single-shot commands (mp_read, file reads, shutdown, descriptor installation): each fills
// one submission entry and completes with one event.
public sealed unsafe partial class MegaPipeChannel
{
    /// <summary>
    /// Reads into <paramref name="buffer"/> (mp_read): a <see cref="ChannelCommand.Read"/> event
    /// reports the bytes read, 0 at end of stream. The buffer is pinned until then.
    /// </summary>
    public void Read(MegaPipeHandle handle, Memory<byte> buffer)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Read;
        op.Pin(buffer);
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = state.Kind == HandleKind.Socket ? IORING_OP_RECV : IORING_OP_READ;
        SetTarget(sqe, state);
        sqe->addr = (ulong)op.PinnedPointer(0);
        sqe->len = (uint)buffer.Length;
        // -1: the current position, for pipes and other streams.
        sqe->off = state.Kind == HandleKind.Socket ? 0 : ulong.MaxValue;
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>Reads a file at <paramref name="offset"/>; a <see cref="ChannelCommand.ReadFile"/> event reports the bytes read.</summary>
    public void ReadFile(MegaPipeHandle handle, Memory<byte> buffer, long offset)
    {
        HandleState state = Resolve(handle);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.ReadFile;
        op.Pin(buffer);
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_READ;
        SetTarget(sqe, state);
        sqe->addr = (ulong)op.PinnedPointer(0);
        sqe->len = (uint)buffer.Length;
        sqe->off = (ulong)offset;
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>Shuts down one or both directions of a socket; a <see cref="ChannelCommand.Shutdown"/> event follows.</summary>
    public void Shutdown(MegaPipeHandle handle, SocketShutdown how)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Shutdown;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_SHUTDOWN;
        SetTarget(sqe, state);
        sqe->len = how switch { SocketShutdown.Receive => (uint)SHUT_RD, SocketShutdown.Send => (uint)SHUT_WR, _ => (uint)SHUT_RDWR };
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Gives a lightweight socket a regular file descriptor (IORING_OP_FIXED_FD_INSTALL), for code
    /// that needs one. The <see cref="ChannelCommand.InstallDescriptor"/> event's result is the new
    /// descriptor, which the caller owns and closes; the handle stays usable.
    /// </summary>
    public void InstallDescriptor(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        if (!state.IsDirect)
        {
            ThrowHelper.ThrowInvalidOperation("The handle already has a regular descriptor; use TryGetDescriptor.");
        }
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.InstallDescriptor;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_FIXED_FD_INSTALL;
        SetTarget(sqe, state);
        sqe->install_fd_flags = 0; // O_CLOEXEC is set unless IORING_FIXED_FD_NO_CLOEXEC is given
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }
}
