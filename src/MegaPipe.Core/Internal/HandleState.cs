// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Runtime.InteropServices;

namespace MegaPipe.Internal;

internal enum HandleStatus : byte
{
    Free,
    Open,
    // Close requested: in-flight requests are being cancelled; a Close event ends it.
    Closing,
    // Unregister requested: like Closing, but silent.
    Unregistering,
}

// The channel's record of one registered handle. Pooled per channel; the generation makes stale
// MegaPipeHandle values detectable.
internal sealed class HandleState
{
    public HandleState(int index) => Index = index;

    public int Index { get; }
    // Bumped when the slot is freed.
    public uint Generation = 1;
    public HandleStatus Status;
    public HandleKind Kind;
    public object? Cookie;
    // Descriptor or, when IsDirect, the index in the ring's fixed-file table.
    public int Fd = -1;
    public bool IsDirect;
    // The channel opened the descriptor and closes it with the handle.
    public bool OwnsDescriptor;
    // A caller's handle kept alive (DangerousAddRef) while registered.
    public SafeHandle? External;
    // Requests in the kernel that name this handle.
    public int InFlight;
    // The descriptor close has been submitted.
    public bool CloseSubmitted;
    // A graceful close on io_uring: the close is preceded by a receive of what is still unread (see MegaPipeChannel.Close.cs).
    public bool DrainBeforeClose;
    // The socket holds a process descriptor counted in DescriptorBudget.
    public bool HoldsProcessDescriptor;

    // A listener's accepts, and the address it is bound to.
    public AcceptState Accept;
    public EndPoint? ListenerEndPoint;

    // A socket's continuous receive, and the quiet-receive check's part of it.
    public ReceiveState Receive;
    public QuietReceiveCheck.Entry ReceiveCheck;

    // Connection addresses: the peer's sockaddr from accept or connect, the listener's endpoint.
    public byte[]? PeerAddress;
    public int PeerAddressLength;
    public EndPoint? LocalEndPoint;

    public void Reset()
    {
        Status = HandleStatus.Free;
        Cookie = null;
        Fd = -1;
        IsDirect = false;
        OwnsDescriptor = false;
        External = null;
        InFlight = 0;
        CloseSubmitted = false;
        DrainBeforeClose = false;
        HoldsProcessDescriptor = false;
        Accept = default;
        ListenerEndPoint = null;
        Receive = default;
        ReceiveCheck = default;
        PeerAddressLength = 0;
        LocalEndPoint = null;
        Generation++;
    }
}
