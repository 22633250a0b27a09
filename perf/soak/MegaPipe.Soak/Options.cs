using System.Globalization;
using System.Net;

namespace MegaPipe.Soak;

// --name value pairs after the command.
public sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public Options(IEnumerable<string> args)
    {
        string? name = null;
        foreach (string arg in args)
        {
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                name = arg[2..];
                _values[name] = "true";
            }
            else if (name is not null)
            {
                _values[name] = arg;
                name = null;
            }
            else
            {
                throw new ArgumentException($"unexpected argument '{arg}'");
            }
        }
    }

    public IPEndPoint EndPoint => new(IPAddress.Parse(Get("host", "127.0.0.1")), GetInt("port", 5000));

    public TimeSpan Duration => TimeSpan.FromSeconds(GetInt("duration", 60));

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name, fallback);

    public int GetInt(string name, int fallback) => _values.TryGetValue(name, out string? v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
