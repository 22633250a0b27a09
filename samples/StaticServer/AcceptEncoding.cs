using System.Globalization;
using Microsoft.Extensions.Primitives;

namespace MegaPipe.StaticServer;

// The weights an Accept-Encoding header gives to br and gzip (RFC 9110 12.5.3); 0 = not acceptable.
internal static class AcceptEncoding
{
    public static void Weigh(StringValues header, out double brotli, out double gzip)
    {
        double br = -1;
        double gz = -1;
        double any = -1;
        foreach (string? value in header)
        {
            ReadOnlySpan<char> rest = value;
            foreach (Range range in rest.Split(','))
            {
                ReadOnlySpan<char> element = rest[range];
                int semicolon = element.IndexOf(';');
                ReadOnlySpan<char> coding = (semicolon < 0 ? element : element[..semicolon]).Trim();
                double q = semicolon < 0 ? 1 : Weight(element[(semicolon + 1)..]);
                if (coding.Equals("br", StringComparison.OrdinalIgnoreCase))
                {
                    br = q;
                }
                else if (coding.Equals("gzip", StringComparison.OrdinalIgnoreCase) || coding.Equals("x-gzip", StringComparison.OrdinalIgnoreCase))
                {
                    gz = q;
                }
                else if (coding is "*")
                {
                    any = q;
                }
            }
        }
        brotli = br >= 0 ? br : Math.Max(any, 0);
        gzip = gz >= 0 ? gz : Math.Max(any, 0);
    }

    // The q parameter among ";"-separated parameters; 1 without one.
    private static double Weight(ReadOnlySpan<char> parameters)
    {
        foreach (Range range in parameters.Split(';'))
        {
            ReadOnlySpan<char> p = parameters[range].Trim();
            if (p.Length >= 2 && (p[0] is 'q' or 'Q') && p[1] == '=')
            {
                return double.TryParse(p[2..], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double q) ? Math.Clamp(q, 0, 1) : 0;
            }
        }
        return 1;
    }
}
