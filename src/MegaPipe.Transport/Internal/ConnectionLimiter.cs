// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Transport.Internal;

// MaxConnections of one listener. At the limit every channel stops accepting, so new connections
// wait in the kernel's listen backlog instead of being taken and dropped; below it they accept
// again. A connection the kernel accepted in the race (accepts are armed ahead) is held unread by
// its ListenerBinding until a slot frees.
internal sealed class ConnectionLimiter
{
    private readonly long _max;
    private readonly object _gate = new();
    private long _count;
    private bool _paused;

    public ConnectionLimiter(long max) => _max = max;

    public long Max => _max;

    // Raised (outside the lock) when accepting should pause or resume; handlers read Paused.
    public event Action? PausedChanged;

    public bool Paused
    {
        get
        {
            lock (_gate)
            {
                return _paused;
            }
        }
    }

    public long Count => Interlocked.Read(ref _count);

    public bool TryAcquire()
    {
        bool changed = false;
        lock (_gate)
        {
            if (_count >= _max)
            {
                return false;
            }
            _count++;
            if (_count >= _max && !_paused)
            {
                _paused = changed = true;
            }
        }
        if (changed)
        {
            PausedChanged?.Invoke();
        }
        return true;
    }

    public void Release()
    {
        bool changed = false;
        lock (_gate)
        {
            _count--;
            if (_count < _max && _paused)
            {
                _paused = false;
                changed = true;
            }
        }
        if (changed)
        {
            PausedChanged?.Invoke();
        }
    }
}
