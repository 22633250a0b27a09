// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// Connecting: a socket is created (by the ring, as a direct descriptor, for a lightweight
// socket), then connected; the connect completes as a single-shot command (OnCommand).
public sealed unsafe partial class MegaPipeChannel
{
    /// <summary>
    /// Opens a stream socket and connects it to <paramref name="remote"/>. The handle is usable for
    /// commands once the <see cref="ChannelCommand.Connect"/> event reports success.
    /// </summary>
    public MegaPipeHandle Connect(EndPoint remote, object? cookie = null)
    {
        ArgumentNullException.ThrowIfNull(remote);
        CheckOwner();
        HandleState state = AllocateHandle(HandleKind.Socket, -1, isDirect: false, ownsDescriptor: true);
        state.Cookie = cookie;
        state.PeerAddress ??= new byte[SocketAddressConverter.MaxSize];
        state.PeerAddressLength = SocketAddressConverter.Write(remote, state.PeerAddress);
        Operation op = AllocateOperation(OperationKind.ConnectSocket, state);
        op.Command = ChannelCommand.Connect;
        Sqe.PrepareSocket(NextSqe(), SocketAddressConverter.FamilyOf(remote), SOCK_STREAM, direct: Options.LightweightSockets, op.UserData);
        _commands++;
        SubmitIfNotBatching();
        return HandleOf(state);
    }

    // Second half of Connect: the socket exists, now connect it.
    private void SubmitConnect(Operation op)
    {
        HandleState state = op.Handle!;
        op.Kind = OperationKind.Command;
        new ReadOnlySpan<byte>(state.PeerAddress, 0, state.PeerAddressLength).CopyTo(new Span<byte>(op.Sockaddr, SocketAddressConverter.MaxSize));
        Sqe.PrepareConnect(NextSqe(), state.Fd, state.IsDirect, op.Sockaddr, state.PeerAddressLength, op.UserData);
    }

    private void OnConnectSocket(Operation op, HandleState state, int result, Span<CompletionEvent> events, ref int count)
    {
        if (result >= 0)
        {
            state.Fd = result;
            state.IsDirect = Options.LightweightSockets;
            if (state.IsDirect)
            {
                Volatile.Write(ref _registeredFilesInUse, _registeredFilesInUse + 1);
            }
            if (SocketsHoldProcessDescriptors)
            {
                state.HoldsProcessDescriptor = true;
                DescriptorBudget.Acquire();
            }
        }
        if (state.Status != HandleStatus.Open || result < 0)
        {
            // The socket failed (the Connect event reports it), or the handle is closing.
            OnCommand(op, state, result, events, ref count);
            return;
        }
        SubmitConnect(op);
    }
}
