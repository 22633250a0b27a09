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

    // Drops whatever an earlier call left, before an I/O call whose result SSL_get_error interprets.
    public static void Clear() => Interop.ERR_clear_error();
}
