using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// Counts a server's connections with a Kestrel connection middleware: one is active from the
/// moment Kestrel hands it to the endpoint's pipeline until Kestrel is done with it (after which
/// Kestrel disposes the transport connection). Tests wait on the counts as events, not by polling.
/// </summary>
public sealed class ConnectionTracker
{
    private readonly object _lock = new();
    private readonly List<(Func<ConnectionTracker, bool> Condition, TaskCompletionSource Signal)> _waiters = [];
    private int _opened;
    private int _active;
    private int _peak;

    /// <summary>Connections Kestrel has started.</summary>
    public int Opened => Volatile.Read(ref _opened);

    /// <summary>Connections Kestrel has started and not finished.</summary>
    public int Active => Volatile.Read(ref _active);

    /// <summary>The most connections active at once.</summary>
    public int Peak => Volatile.Read(ref _peak);

    /// <summary>Adds the counting middleware to an endpoint (first, so it sees every connection).</summary>
    public void Attach(ListenOptions listen) => listen.Use(next => async connection =>
    {
        Update(opened: 1, active: 1);
        try
        {
            await next(connection);
        }
        finally
        {
            Update(opened: 0, active: -1);
        }
    });

    /// <summary>Completes when <paramref name="condition"/> holds (checked now and on every change); fails after <paramref name="timeout"/>.</summary>
    public async Task WaitUntilAsync(Func<ConnectionTracker, bool> condition, string description, TimeSpan? timeout = null)
    {
        TaskCompletionSource signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (condition(this))
            {
                return;
            }
            _waiters.Add((condition, signal));
        }
        try
        {
            await signal.Task.WaitAsync(timeout ?? TestTimeouts.Default);
        }
        catch (TimeoutException)
        {
            lock (_lock)
            {
                _waiters.RemoveAll(w => w.Signal == signal);
            }
            throw new TimeoutException($"Timed out waiting for: {description} (opened {Opened}, active {Active}, peak {Peak}).");
        }
    }

    private void Update(int opened, int active)
    {
        lock (_lock)
        {
            _opened += opened;
            _active += active;
            _peak = Math.Max(_peak, _active);
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Condition(this))
                {
                    _waiters[i].Signal.TrySetResult();
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
