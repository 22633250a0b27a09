// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace MegaPipe.Tls.Internal;

// Peer-controlled text (an SNI host name, a client certificate's subject) goes into failure reasons that the
// transport logs: control characters are escaped so that a peer cannot forge log lines, and length is bounded.
internal static class LogSafe
{
    private const int MaxLength = 256;

    public static string Text(string? value)
    {
        if (value is null)
        {
            return "(none)";
        }
        bool clean = value.Length <= MaxLength;
        foreach (char c in value)
        {
            clean &= !char.IsControl(c);
        }
        if (clean)
        {
            return value;
        }
        var builder = new StringBuilder(Math.Min(value.Length, MaxLength) + 16);
        foreach (char c in value.AsSpan(0, Math.Min(value.Length, MaxLength)))
        {
            if (char.IsControl(c))
            {
                builder.Append("\\x").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }
        if (value.Length > MaxLength)
        {
            builder.Append("...");
        }
        return builder.ToString();
    }
}
