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
        if (state.Kind == HandleKind.Socket)
        {
            Sqe.PrepareRecv(NextSqe(), state.Fd, state.IsDirect, op.PinnedPointer(0), buffer.Length, op.UserData);
        }
        else
        {
            Sqe.PrepareRead(NextSqe(), state.Fd, state.IsDirect, op.PinnedPointer(0), buffer.Length, Sqe.CurrentPosition, op.UserData);
        }
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
        Sqe.PrepareRead(NextSqe(), state.Fd, state.IsDirect, op.PinnedPointer(0), buffer.Length, (ulong)offset, op.UserData);
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>Shuts down one or both directions of a socket; a <see cref="ChannelCommand.Shutdown"/> event follows.</summary>
    public void Shutdown(MegaPipeHandle handle, SocketShutdown how)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Shutdown;
        int shut = how switch { SocketShutdown.Receive => SHUT_RD, SocketShutdown.Send => SHUT_WR, _ => SHUT_RDWR };
        Sqe.PrepareShutdown(NextSqe(), state.Fd, state.IsDirect, shut, op.UserData);
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
        Sqe.PrepareFixedFdInstall(NextSqe(), state.Fd, op.UserData);
        _commands++;
        SubmitIfNotBatching();
    }

    // A command's completion (a write's, once it is done): its event, or, when the handle is
    // closing, one step closer to the close.
    private void OnCommand(Operation op, HandleState state, int result, Span<CompletionEvent> events, ref int count)
    {
        ChannelCommand command = op.Command;
        FreeOperation(op);
        if (state.Status == HandleStatus.Open)
        {
            events[count++] = new CompletionEvent(command, HandleOf(state), state.Cookie, result);
        }
        else
        {
            TryFinishClose(state);
        }
    }
}
