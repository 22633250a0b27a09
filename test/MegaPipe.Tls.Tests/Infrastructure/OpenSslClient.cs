namespace MegaPipe.Tls.Tests.Infrastructure;

// `openssl s_client` against the harness: connect, send a line, wait for its echo, then quit (close_notify).
internal static class OpenSslClient
{
    public static ClientProcess Start(int port, params string[] arguments)
        => new("openssl", ["s_client", "-connect", $"127.0.0.1:{port}", .. arguments]);

    /// <summary>Runs one exchange; returns the finished process (its output holds the session details).</summary>
    public static async Task<ClientProcess> ExchangeAsync(int port, params string[] arguments)
    {
        ClientProcess client = Start(port, arguments);
        await client.WaitForOutputAsync("---\n");
        await client.WriteLineAsync("hello from s_client");
        await client.WaitForOutputAsync("hello from s_client");
        client.CloseInput();
        await client.WaitForExitAsync();
        return client;
    }

    /// <summary>Runs a client the server must refuse; returns it once it exited.</summary>
    public static async Task<ClientProcess> RefusedAsync(int port, params string[] arguments)
    {
        ClientProcess client = Start(port, arguments);
        client.CloseInput();
        await client.WaitForExitAsync();
        return client;
    }
}
