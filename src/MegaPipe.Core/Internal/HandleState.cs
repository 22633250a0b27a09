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
    // A shutdown before close is in flight.
    public bool ShutdownPending;
    // The socket holds a process descriptor counted in DescriptorBudget.
    public bool HoldsProcessDescriptor;

    // Listener: accepts are to be kept armed; how many are armed now.
    public bool AcceptWanted;
    public int AcceptsArmed;
    // Accepting paused after running out of descriptors (EMFILE, ENFILE, ...) until one is freed or a retry timer fires.
    public bool AcceptBackoff;
    // Armed accepts we cancelled (StopAccept or back-off) whose ECANCELED completions are still due.
    public int AcceptsCancelling;
    // A failure of this back-off episode was reported; cleared by the next accepted connection.
    public bool AcceptFailureReported;
    public EndPoint? ListenerEndPoint;

    // Continuous receive: wanted by the user; the armed multishot request; starved of buffers.
    public bool ReceiveWanted;
    public Operation? ReceiveOperation;
    public bool ReceiveStarved;
    // Consecutive transient failures (EAGAIN) of the continuous receive, re-armed without data.
    public int ReceiveRetries;
    // When (Stopwatch ticks) to re-check a continuous receive that went quiet after data; 0: none due.
    public long ReceiveCheckAt;
    // The receive is being re-armed by a check: that arm schedules no further check.
    public bool ReceiveCheckRearm;
    // The handle has an entry in the channel's receive-check queue.
    public bool ReceiveCheckQueued;

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
        HoldsProcessDescriptor = false;
        ShutdownPending = false;
        AcceptWanted = false;
        AcceptsArmed = 0;
        AcceptBackoff = false;
        AcceptsCancelling = 0;
        AcceptFailureReported = false;
        ListenerEndPoint = null;
        ReceiveWanted = false;
        ReceiveOperation = null;
        ReceiveStarved = false;
        ReceiveRetries = 0;
        ReceiveCheckAt = 0;
        ReceiveCheckRearm = false;
        ReceiveCheckQueued = false;
        PeerAddressLength = 0;
        LocalEndPoint = null;
        Generation++;
    }
}
