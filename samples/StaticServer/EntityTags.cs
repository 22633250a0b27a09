using Microsoft.Extensions.Primitives;

namespace MegaPipe.StaticServer;

// Matching an entity tag against If-None-Match / If-Match lists (RFC 9110 8.8.3.2, 13.1.1-2).
internal static class EntityTags
{
    // True when the list is "*" or holds etag; weak comparison ignores W/ prefixes, strong
    // comparison never matches a weak tag.
    public static bool Matches(StringValues header, string etag, bool weak)
    {
        foreach (string? value in header)
        {
            ReadOnlySpan<char> rest = value;
            while (true)
            {
                rest = rest.TrimStart(" \t,");
                if (rest.IsEmpty)
                {
                    break;
                }
                if (rest[0] == '*')
                {
                    return true;
                }
                bool isWeak = rest.StartsWith("W/", StringComparison.Ordinal);
                if (isWeak)
                {
                    rest = rest[2..];
                }
                if (rest.IsEmpty || rest[0] != '"')
                {
                    // Not an entity tag: skip to the next element.
                    int comma = rest.IndexOf(',');
                    if (comma < 0)
                    {
                        break;
                    }
                    rest = rest[(comma + 1)..];
                    continue;
                }
                int close = rest[1..].IndexOf('"');
                if (close < 0)
                {
                    break;
                }
                ReadOnlySpan<char> tag = rest[..(close + 2)];
                if ((weak || !isWeak) && tag.SequenceEqual(etag))
                {
                    return true;
                }
                rest = rest[(close + 2)..];
            }
        }
        return false;
    }
}
