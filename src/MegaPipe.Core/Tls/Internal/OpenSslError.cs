// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace MegaPipe.Tls.Internal;

// OpenSSL's error queue is per thread and the channel is one thread: every failure drains the whole
// queue here, so a stale error can never be blamed on (or make SSL_get_error misreport) the next
// connection. The text never contains key material: OpenSSL's reason strings name the library,
// the function and the reason only.
internal static class OpenSslError
{
    // Errors formatted into a reason; the rest are drained and counted.
    private const int MaxFormatted = 6;

    // Empties the queue and returns its errors as one reason string, or null when it was empty.
    public static unsafe string? Drain()
    {
        ulong error = Interop.ERR_get_error();
        if (error == 0)
        {
            return null;
        }
        var text = new StringBuilder();
        byte* buffer = stackalloc byte[256];
        int count = 0;
        for (; error != 0; error = Interop.ERR_get_error(), count++)
        {
            if (count >= MaxFormatted)
            {
                continue;
            }
            Interop.ERR_error_string_n(error, buffer, 256);
            if (count > 0)
            {
                text.Append("; ");
            }
            text.Append(new string((sbyte*)buffer));
        }
        if (count > MaxFormatted)
        {
            text.Append("; and ").Append(count - MaxFormatted).Append(" more");
        }
        return text.ToString();
    }

    // Drops whatever an earlier call left, before an I/O call whose result SSL_get_error interprets. Peeks first:
    // OpenSSL 3.0's ERR_clear_error resets all 16 slots on every call (5% of a small record's cost, perf/MegaPipe.Tls.Benchmarks
    // --profile-records), and the queue is almost always empty because every failure here drains it.
    public static void Clear()
    {
        if (Interop.ERR_peek_error() != 0)
        {
            Interop.ERR_clear_error();
        }
    }
}
