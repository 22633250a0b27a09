using System.Net.WebSockets;
using System.Text;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace MegaPipe.Transport.FunctionalTests;

// WebSockets over the HTTP/1.1 upgrade.
public abstract partial class TransportTests
{
    [Fact]
    public async Task WebSocket_EchoesMessages()
    {
        await using TestServer server = await StartServerAsync(app =>
        {
            app.UseWebSockets();
            app.Map("/ws", async (HttpContext context) =>
            {
                if (!context.WebSockets.IsWebSocketRequest)
                {
                    context.Response.StatusCode = StatusCodes.Status400BadRequest;
                    return;
                }
                using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
                byte[] buffer = new byte[16 * 1024];
                while (true)
                {
                    ValueWebSocketReceiveResult received = await socket.ReceiveAsync(buffer.AsMemory(), context.RequestAborted);
                    if (received.MessageType == WebSocketMessageType.Close)
                    {
                        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
                        return;
                    }
                    await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
                }
            });
        });

        using var client = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        var uri = new UriBuilder(server.BaseAddress) { Scheme = "ws", Path = "/ws" }.Uri;
        await client.ConnectAsync(uri, timeout.Token);

        for (int i = 0; i < 20; i++)
        {
            byte[] text = Encoding.UTF8.GetBytes($"message {i}");
            await client.SendAsync(text, WebSocketMessageType.Text, true, timeout.Token);
            (WebSocketMessageType type, byte[] echoed) = await ReceiveMessageAsync(client, timeout.Token);
            Assert.Equal(WebSocketMessageType.Text, type);
            Assert.Equal($"message {i}", Encoding.UTF8.GetString(echoed));
        }

        // A 1 MB binary message, echoed in many frames.
        ReadOnlyMemory<byte> payload = TestData.Payload(1024 * 1024);
        await client.SendAsync(payload, WebSocketMessageType.Binary, true, timeout.Token);
        (WebSocketMessageType binaryType, byte[] binary) = await ReceiveMessageAsync(client, timeout.Token);
        Assert.Equal(WebSocketMessageType.Binary, binaryType);
        Assert.Equal(TestData.Sha256Hex(payload.Span), TestData.Sha256Hex(binary));

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Equal(WebSocketState.Closed, client.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
        Assert.Equal("bye", client.CloseStatusDescription);
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task WebSocket_ClientAbort_ServerReceiveEnds()
    {
        TaskCompletionSource accepted = NewSignal();
        TaskCompletionSource<Exception> receiveFailed = NewSignal<Exception>();
        await using TestServer server = await StartServerAsync(app =>
        {
            CommonEndpoints.Map(app);
            app.UseWebSockets();
            app.Map("/ws", async (HttpContext context) =>
            {
                using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
                accepted.TrySetResult();
                try
                {
                    // Waits for a message that never comes: the client goes away instead.
                    await socket.ReceiveAsync(new byte[1024].AsMemory(), context.RequestAborted);
                    receiveFailed.TrySetException(new InvalidOperationException("received a message"));
                }
                catch (Exception e)
                {
                    receiveFailed.TrySetResult(e);
                }
            });
        });

        using (var client = new ClientWebSocket())
        {
            using var timeout = new CancellationTokenSource(TestTimeouts.Default);
            await client.ConnectAsync(new UriBuilder(server.BaseAddress) { Scheme = "ws", Path = "/ws" }.Uri, timeout.Token);
            await accepted.Task.WaitAsync(TestTimeouts.Default);
            client.Abort(); // no close handshake
        }

        Exception error = await receiveFailed.Task.WaitAsync(TestTimeouts.Default);
        Output.WriteLine($"{error.GetType().FullName}: {error.Message}");
        Assert.True(error is WebSocketException or OperationCanceledException or IOException, error.ToString());
        await AssertServerServesAsync(server);
    }

    private static async Task<(WebSocketMessageType Type, byte[] Data)> ReceiveMessageAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        using var message = new MemoryStream();
        byte[] buffer = new byte[64 * 1024];
        while (true)
        {
            ValueWebSocketReceiveResult result = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return (result.MessageType, message.ToArray());
            }
        }
    }
}
