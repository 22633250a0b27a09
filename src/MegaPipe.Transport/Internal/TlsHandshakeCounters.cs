// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Transport.Internal;

// How one channel's TLS handshakes ended, for the megapipe.tls.handshakes counter: written on the channel thread
// (Volatile.Write, one writer), read by metrics on any thread.
internal sealed class TlsHandshakeCounters
{
    private long _full;
    private long _resumed;
    private long _failed;
    private long _timedOut;

    public long Full => Volatile.Read(ref _full);
    public long Resumed => Volatile.Read(ref _resumed);
    public long Failed => Volatile.Read(ref _failed);
    public long TimedOut => Volatile.Read(ref _timedOut);

    public void Completed(bool resumed)
    {
        if (resumed)
        {
            Volatile.Write(ref _resumed, _resumed + 1);
        }
        else
        {
            Volatile.Write(ref _full, _full + 1);
        }
    }

    public void Failure() => Volatile.Write(ref _failed, _failed + 1);

    public void Timeout() => Volatile.Write(ref _timedOut, _timedOut + 1);
}
