using System.Globalization;
using Microsoft.Extensions.Primitives;

namespace MegaPipe.StaticServer;

internal enum RangeOutcome
{
    // No usable Range header (absent, malformed, another unit, or several ranges): send it all.
    Ignore,
    Satisfiable,
    // 416, with Content-Range: bytes */length.
    Unsatisfiable,
}

// A single byte range (RFC 9110 14.1.2): "bytes=a-b", "bytes=a-", "bytes=-n".
internal static class HttpRange
{
    public static RangeOutcome Parse(StringValues header, long length, out long start, out long count)
    {
        start = 0;
        count = length;
        if (header.Count != 1 || header[0] is not { } value)
        {
            return RangeOutcome.Ignore;
        }
        ReadOnlySpan<char> text = value.AsSpan().Trim();
        if (!text.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase))
        {
            return RangeOutcome.Ignore;
        }
        text = text[6..];
        int dash = text.IndexOf('-');
        if (dash < 0 || text.Contains(','))
        {
            return RangeOutcome.Ignore;
        }
        ReadOnlySpan<char> first = text[..dash].Trim();
        ReadOnlySpan<char> last = text[(dash + 1)..].Trim();
        if (first.IsEmpty)
        {
            // The last n bytes.
            if (!TryParse(last, out long suffix))
            {
                return RangeOutcome.Ignore;
            }
            if (suffix == 0 || length == 0)
            {
                return RangeOutcome.Unsatisfiable;
            }
            start = Math.Max(0, length - suffix);
            count = length - start;
            return RangeOutcome.Satisfiable;
        }
        if (!TryParse(first, out long from))
        {
            return RangeOutcome.Ignore;
        }
        long to = long.MaxValue;
        if (!last.IsEmpty && (!TryParse(last, out to) || to < from))
        {
            return RangeOutcome.Ignore;
        }
        if (from >= length)
        {
            return RangeOutcome.Unsatisfiable;
        }
        to = Math.Min(to, length - 1);
        start = from;
        count = to - from + 1;
        return RangeOutcome.Satisfiable;
    }

    private static bool TryParse(ReadOnlySpan<char> digits, out long value)
        => long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}
