using System.Text;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>An HTTP/1.1 response read off a raw socket.</summary>
public sealed record RawHttpResponse(int StatusCode, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) => Headers.TryGetValue(name, out string? value) ? value : null;
}
