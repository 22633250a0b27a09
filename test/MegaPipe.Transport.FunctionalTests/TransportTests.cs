using System.Net;
using System.Net.Http;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// Functional tests written once and run on both transports: <see cref="MegaPipeTransportTests"/>
/// and <see cref="SocketsTransportTests"/> only say which. Real Kestrel, real loopback clients.
/// </summary>
public abstract partial class TransportTests
{
    protected TransportTests(ITestOutputHelper output)
    {
        Output = output;
    }

    protected abstract TestTransport Transport { get; }

    protected ITestOutputHelper Output { get; }

    protected Task<TestServer> StartServerAsync(Action<WebApplication> configureApp, Action<KestrelServerOptions>? configureKestrel = null)
        => TestServer.StartAsync(Transport, configureApp, configureKestrel, output: Output);

    protected static HttpClient CreateClient(TestServer server, Action<SocketsHttpHandler>? configure = null)
    {
        var handler = new SocketsHttpHandler
        {
            // A pooled connection the server closed must not be reused by the next test step.
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TestTimeouts.Default,
            AutomaticDecompression = DecompressionMethods.None,
        };
        configure?.Invoke(handler);
        return new HttpClient(handler) { BaseAddress = server.BaseAddress, Timeout = TestTimeouts.Long };
    }

    protected static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected static TaskCompletionSource<T> NewSignal<T>() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // A few requests on fresh connections: the server still serves after whatever the test did,
    // and logged no unexpected error on the way.
    protected static async Task AssertServerServesAsync(TestServer server, params string[] allowedErrorEvents)
    {
        for (int i = 0; i < 3; i++)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
            RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
            Assert.Equal(200, response.StatusCode);
            Assert.Equal(CommonEndpoints.Hello, response.BodyText);
        }
        using HttpClient client = CreateClient(server);
        Assert.Equal(CommonEndpoints.Hello, await client.GetStringAsync("/hello"));
        server.AssertNoErrorsLogged(allowedErrorEvents);
    }
}
