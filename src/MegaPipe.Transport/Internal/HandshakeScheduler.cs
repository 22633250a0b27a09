// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;

namespace MegaPipe.Transport.Internal;

// How much of one dispatch turn TLS handshakes may take, so that a burst of new connections does not stall the
// channel's established ones. A handshake step (above all the first, with its private-key operation: an RSA-2048
// sign is about 0.3 ms) runs at once while this turn's handshakes have used less than TurnBudget; after that, and
// behind any already waiting, it waits in a FIFO for the next turns, which run the waiting ones after their own
// events (the loop does not sleep while any wait). Every other event of a turn (a keep-alive request, a send
// completion) is handled before those deferred handshakes. nginx gets a similar effect from accepting one new
// connection per loop iteration. Measured in perf/results/tls.md (keep-alive latency during a handshake storm).
// Channel thread only.
internal sealed class HandshakeScheduler
{
    // About three RSA-2048 full handshakes, or one full and a dozen resumed ones, per turn.
    public static readonly TimeSpan DefaultTurnBudget = TimeSpan.FromMilliseconds(1);

    // Timestamp ticks of handshake work per turn. Zero (tests) defers every step behind the turn's other events.
    private readonly long _turnBudget;

    private readonly Queue<MegaPipeConnection> _waiting = new();
    // Timestamp ticks spent on handshakes in the current turn.
    private long _spent;

    public HandshakeScheduler(TimeSpan turnBudget) => _turnBudget = (long)(turnBudget.TotalSeconds * Stopwatch.Frequency);

    // Connections whose handshake step waits for a later turn.
    public bool HasWaiting => _waiting.Count > 0;

    // A new dispatch turn began: its budget is whole again.
    public void BeginTurn() => _spent = 0;

    /// <summary>Runs the connection's handshake step now when this turn has budget left and none waits; false when it was queued.</summary>
    public bool TryRunNow()
        => _waiting.Count == 0 && _spent < _turnBudget;

    // Adds the time a handshake step took to the turn's spending.
    public void Charge(long startTimestamp) => _spent += Stopwatch.GetTimestamp() - startTimestamp;

    // The connection's step runs in a later turn (once, however many receives arrive meanwhile: the caller tracks that).
    public void Defer(MegaPipeConnection connection) => _waiting.Enqueue(connection);

    /// <summary>
    /// After a turn's events: the waiting handshake steps, oldest first, while the turn's budget lasts. A turn in which
    /// no handshake ran runs at least one, so that a zero budget still progresses (with any other budget that turn's
    /// budget is whole, and this is the same rule).
    /// </summary>
    public void RunWaiting()
    {
        bool first = _spent == 0;
        while (_waiting.Count > 0 && (first || _spent < _turnBudget))
        {
            first = false;
            MegaPipeConnection connection = _waiting.Dequeue();
            long start = Stopwatch.GetTimestamp();
            connection.RunDeferredHandshake();
            Charge(start);
        }
    }
}
