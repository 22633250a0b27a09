// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Internal;

// A socket's continuous receive, as the channel runs it (MegaPipeChannel.Receive.cs): whether the
// user wants it, the multishot request in the kernel, and the wait for buffers after the buffer
// ring ran dry. It is armed exactly when wanted, not armed and not starved (ShouldArm).
internal struct ReceiveState
{
    // Receive was called and the receive has not been stopped (StopReceive, end of stream, an error, close).
    public bool Wanted;
    // The armed multishot request, or null when none is in the kernel.
    public Operation? Operation;
    // It ended with ENOBUFS while wanted and waits in the channel's starved list for buffers to return.
    public bool Starved;
    // Consecutive transient failures (EAGAIN) re-armed without data.
    public int Retries;

    // Wanted, not armed and not waiting for buffers: the one state in which to arm it.
    public readonly bool ShouldArm => Wanted && Operation is null && !Starved;

    // A multishot request was armed for it.
    public void Armed(Operation operation)
    {
        Operation = operation;
        Starved = false;
    }

    // StopReceive: no longer wanted, and no longer waiting for buffers.
    public void Stop()
    {
        Wanted = false;
        Starved = false;
    }

    // Buffers came back: true when the receive waited for them and is still to be armed.
    public bool EndStarvation()
    {
        bool rearm = Starved && Wanted && Operation is null;
        Starved = false;
        return rearm;
    }
}
