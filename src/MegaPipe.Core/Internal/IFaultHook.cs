// Licensed under the MIT License. See LICENSE in the repository root.

using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// A hook for fault injection, implemented by the tests only (MegaPipe.Core.Tests'
// FaultInjector): it sees every submission entry just before the engine takes it, and may rewrite
// it, so that faults come back through the real engine as ordinary completions; and it may make a
// dispatch leave its completions in the CQ. Absent (null) in any other use, where it costs one
// null check per published batch of entries and one per dispatch turn with completions to reap.
// Owner thread only.
internal unsafe interface IFaultHook
{
    // Sees one entry of a batch being published to the engine; may rewrite it in place.
    void BeforeSubmit(io_uring_sqe* sqe);

    // Asked once per dispatch turn that has completions to reap: true leaves them unread this
    // time (the dispatch enters once more and returns no events).
    bool ShouldSkipReap();

    // After a skipped reap: whether the engine holds completions beyond a full CQ.
    void OnReapSkipped(bool overflowPending);
}
