using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

// Endpoints most tests use.
internal static class CommonEndpoints
{
    public const string Hello = "Hello, World!";

    public static void Map(IEndpointRouteBuilder app)
    {
        // A fixed body.
        app.MapGet("/hello", () => Hello);

        // The route value back: tells pipelined responses apart.
        app.MapGet("/id/{id}", (string id) => id);

        // The request body back, streamed.
        app.MapPost("/echo", async (HttpContext context) =>
        {
            context.Response.ContentType = context.Request.ContentType ?? "application/octet-stream";
            await context.Request.Body.CopyToAsync(context.Response.Body, context.RequestAborted);
        });

        // "<length> <SHA-256>" of the request body.
        app.MapPost("/sha256", async (HttpContext context) =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[64 * 1024];
            long length = 0;
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                length += read;
            }
            return $"{length} {Convert.ToHexString(hash.GetHashAndReset())}";
        });

        // The first {length} bytes of TestData's payload, in 64 KB writes.
        app.MapGet("/bytes/{length:int}", async (int length, HttpContext context) =>
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = length;
            ReadOnlyMemory<byte> payload = TestData.Payload(length);
            for (int offset = 0; offset < length; offset += 64 * 1024)
            {
                await context.Response.Body.WriteAsync(payload.Slice(offset, Math.Min(64 * 1024, length - offset)), context.RequestAborted);
            }
        });

        // The connection's addresses as Kestrel's HttpContext sees them: "<remote ip> <remote port> <local ip> <local port> <connection id>".
        app.MapGet("/connection", (HttpContext context) =>
        {
            ConnectionInfo c = context.Connection;
            return string.Join(' ',
                c.RemoteIpAddress?.ToString() ?? "-",
                c.RemotePort.ToString(CultureInfo.InvariantCulture),
                c.LocalIpAddress?.ToString() ?? "-",
                c.LocalPort.ToString(CultureInfo.InvariantCulture),
                c.Id);
        });
    }
}
