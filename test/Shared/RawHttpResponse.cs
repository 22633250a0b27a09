// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace MegaPipe.Tests.Shared;

/// <summary>An HTTP/1.1 response read off a raw socket.</summary>
public sealed record RawHttpResponse(int StatusCode, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) => Headers.TryGetValue(name, out string? value) ? value : null;
}
