// Licensed under the MIT License. See LICENSE in the repository root.

using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Transport.Internal;

// The hand-off of ready connections from the channels to Kestrel's accept loop (one consumer: Kestrel
// calls AcceptAsync again only after the previous call completed). When the loop is waiting, the
// channel thread that has a connection completes the wait itself and runs the loop's continuation
// inline: Kestrel's accept loop only records the connection and queues it to the thread pool, so
// this saves the thread-pool hop (and, on a loaded core, the context switch) that a queue with
// asynchronous continuations costs every new connection. Otherwise connections wait here in order.
internal sealed class AcceptQueue<TConnection> : IValueTaskSource<ConnectionContext?>
    where TConnection : ConnectionContext
{
    private readonly Lock _gate = new();
    // Connections handed over while the loop was not waiting (under _gate).
    private readonly Queue<TConnection> _ready = new();
    // The loop's pending AcceptAsync: completed with a connection, or null once the queue is completed.
    private ManualResetValueTaskSourceCore<ConnectionContext?> _waiter = new() { RunContinuationsAsynchronously = false };
    // An AcceptAsync is pending on _waiter (under _gate).
    private bool _waiting;
    // No more connections: AcceptAsync returns null (under _gate).
    private bool _completed;
    private CancellationTokenRegistration _cancellation;

    public ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_ready.TryDequeue(out TConnection? connection))
            {
                return new ValueTask<ConnectionContext?>(connection);
            }
            if (_completed)
            {
                return new ValueTask<ConnectionContext?>((ConnectionContext?)null);
            }
            System.Diagnostics.Debug.Assert(!_waiting, "one AcceptAsync at a time");
            _waiter.Reset();
            _waiting = true;
            short version = _waiter.Version;
            if (cancellationToken.CanBeCanceled)
            {
                _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((AcceptQueue<TConnection>)state!).Cancel(token), this);
            }
            return new ValueTask<ConnectionContext?>(this, version);
        }
    }

    // Hands a ready connection to Kestrel; false once the queue is completed (the caller aborts it).
    // On a channel thread this may run Kestrel's accept loop before it returns.
    public bool TryAdd(TConnection connection)
    {
        lock (_gate)
        {
            if (_completed)
            {
                return false;
            }
            if (!_waiting)
            {
                _ready.Enqueue(connection);
                return true;
            }
            _waiting = false;
        }
        _cancellation.Dispose();
        _waiter.SetResult(connection);
        return true;
    }

    // No more connections: a pending AcceptAsync returns null. Returns the connections never taken.
    public TConnection[] Complete()
    {
        bool wake;
        TConnection[] orphans;
        lock (_gate)
        {
            _completed = true;
            wake = _waiting;
            _waiting = false;
            orphans = _ready.ToArray();
            _ready.Clear();
        }
        if (wake)
        {
            _cancellation.Dispose();
            _waiter.SetResult(null);
        }
        return orphans;
    }

    private void Cancel(CancellationToken token)
    {
        lock (_gate)
        {
            if (!_waiting)
            {
                return;
            }
            _waiting = false;
        }
        _waiter.SetException(new OperationCanceledException(token));
    }

    ConnectionContext? IValueTaskSource<ConnectionContext?>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ConnectionContext?>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<ConnectionContext?>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _waiter.OnCompleted(continuation, state, token, flags);
}
