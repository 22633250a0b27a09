using System.Security.Cryptography;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

// Deterministic payloads shared by the in-process server and client, so bodies can be checked by hash.
internal static class TestData
{
    public const int TenMegabytes = 10 * 1024 * 1024;

    private static readonly Lazy<byte[]> s_payload = new(() =>
    {
        byte[] data = new byte[TenMegabytes];
        new Random(20240601).NextBytes(data);
        return data;
    });

    /// <summary>The first <paramref name="length"/> bytes of a fixed pseudo-random 10 MB payload.</summary>
    public static ReadOnlyMemory<byte> Payload(int length) => s_payload.Value.AsMemory(0, length);

    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexString(SHA256.HashData(data));
}
