namespace MegaPipe.StaticServer;

// Refuses request paths that try to leave the root or hide what they name, before any file system
// access: dot segments (plain or percent-encoded), encoded slashes and backslashes, NUL and other
// control characters. Kestrel already removes plain dot segments from the path it decodes, so the
// raw request target is checked too: a client that sends them is refused, not silently corrected.
internal static class RequestPathValidator
{
    // True when the request may be served; path is the decoded path (always starting with '/').
    public static bool IsSafe(string path, string rawTarget)
    {
        if (path.Length == 0 || path[0] != '/')
        {
            return false;
        }
        foreach (char c in path)
        {
            if (c < 0x20 || c == 0x7F)
            {
                return false;
            }
        }
        if (HasDotSegment(path) || path.Contains('\\'))
        {
            return false;
        }
        return IsSafeRaw(RawPath(rawTarget));
    }

    // The path of the request target: origin form (/a/b?q), or absolute form (http://host/a/b?q).
    private static ReadOnlySpan<char> RawPath(string rawTarget)
    {
        ReadOnlySpan<char> raw = rawTarget;
        int query = raw.IndexOfAny('?', '#');
        if (query >= 0)
        {
            raw = raw[..query];
        }
        if (raw.Length > 0 && raw[0] != '/')
        {
            int scheme = raw.IndexOf("://", StringComparison.Ordinal);
            if (scheme >= 0)
            {
                raw = raw[(scheme + 3)..];
                int slash = raw.IndexOf('/');
                raw = slash >= 0 ? raw[slash..] : "/";
            }
        }
        return raw;
    }

    private static bool HasDotSegment(ReadOnlySpan<char> path)
    {
        foreach (Range range in path.Split('/'))
        {
            ReadOnlySpan<char> segment = path[range];
            if (segment is "." or "..")
            {
                return true;
            }
        }
        return false;
    }

    // Checks each raw segment with %2e read as a dot; %00, %2f and %5c are refused anywhere.
    private static bool IsSafeRaw(ReadOnlySpan<char> raw)
    {
        if (raw.Contains('\\') || raw.ContainsAnyInRange((char)0, (char)0x1F))
        {
            return false;
        }
        foreach (Range range in raw.Split('/'))
        {
            ReadOnlySpan<char> segment = raw[range];
            int dots = 0;
            bool onlyDots = segment.Length > 0;
            for (int i = 0; i < segment.Length; i++)
            {
                if (segment[i] == '%')
                {
                    if (i + 2 >= segment.Length)
                    {
                        return false; // a truncated escape
                    }
                    ReadOnlySpan<char> hex = segment.Slice(i + 1, 2);
                    if (hex.Equals("00", StringComparison.Ordinal) || hex.Equals("2f", StringComparison.OrdinalIgnoreCase) || hex.Equals("5c", StringComparison.OrdinalIgnoreCase))
                    {
                        return false;
                    }
                    if (hex.Equals("2e", StringComparison.OrdinalIgnoreCase))
                    {
                        dots++;
                    }
                    else
                    {
                        onlyDots = false;
                    }
                    i += 2;
                }
                else if (segment[i] == '.')
                {
                    dots++;
                }
                else
                {
                    onlyDots = false;
                }
            }
            if (onlyDots && dots is 1 or 2)
            {
                return false;
            }
        }
        return true;
    }
}
