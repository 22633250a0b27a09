// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Internal;

// A listener's accepts, as the channel keeps them armed (MegaPipeChannel.Accept.cs): whether the
// user wants connections, how many accepts are in the kernel and how many of those the channel
// is cancelling, and the pause after descriptors ran out.
internal struct AcceptState
{
    // Accept was called and accepting has not been stopped (StopAccept, close, an unusable listener).
    public bool Wanted;
    // Accepts in the kernel now (at most ChannelOptions.AcceptDepth).
    public int Armed;
    // Of the armed accepts, those the channel cancelled (StopAccept or a pause) whose completions
    // are still due: every completion of one counts down, ECANCELED or not.
    public int Cancelling;
    // Accepting is paused after descriptors ran out (EMFILE, ENFILE, ...), until a handle of the
    // channel closes or the retry time comes; connections wait in the listen backlog meanwhile.
    public bool Paused;
    // The pause's first failure was reported; the next accepted connection clears it.
    public bool FailureReported;

    // Wanted and not paused: the state in which accepts are armed, up to the depth.
    public readonly bool ShouldArm => Wanted && !Paused;

    // The channel cancels every armed accept: their completions are expected, not errors.
    public void CancelAll() => Cancelling = Armed;

    // Counts the completion of an armed accept; true when the channel had cancelled it (it may
    // still have completed with a connection, or failed, before the cancellation reached it).
    public bool Complete()
    {
        Armed--;
        if (Cancelling > 0)
        {
            Cancelling--;
            return true;
        }
        return false;
    }

    // True the first time in a pause: the failure is reported once, not at every retry.
    public bool ReportFailureOnce()
    {
        if (FailureReported)
        {
            return false;
        }
        FailureReported = true;
        return true;
    }
}
