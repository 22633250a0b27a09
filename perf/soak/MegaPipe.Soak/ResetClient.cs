using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace MegaPipe.Soak;

// Connections that end abruptly, for the length of the soak: each worker opens connection after
// connection, each ending in one of the modes below, most of them with RST (SO_LINGER 0). The
// server must shrug them all off: what this client checks is only that the connections that are
// meant to be answered are answered correctly (a reset is the client's doing, never a failure to
// be counted against the server unless the server sent it).
public static class ResetClient
{
    private enum Mode
    {
        // Connect, then RST at once (over TLS: once the handshake completed).
        ResetIdle,
        // TLS only: RST while the handshake runs (after the ClientHello, at a random moment).
        ResetMidHandshake,
        // Send part of a request (cut at a random byte), then RST.
        ResetPartialRequest,
        // Send a whole small request, RST without reading the response.
        ResetAfterRequest,
        // Request the large file, RST without reading: the server's send is in flight.
        ResetLargeUnread,
        // Request the large file, read the headers and a random part of the body, then RST.
        ResetMidResponse,
        // Pipeline three requests, read the first response, then RST.
        ResetPipelined,
        // Control: request the large file with Connection: close and read it all; it must be whole
        // and the server must then close cleanly.
        CompleteLarge,
    }

    public static async Task<int> RunAsync(Options options)
    {
        IPEndPoint endPoint = options.EndPoint;
        TimeSpan duration = options.Duration;
        int workers = options.GetInt("connections", 4);
        string largePath = options.Get("large-path", "/soak-1m.bin");
        byte[]? expected = options.Get("large-file", "") is { Length: > 0 } file ? File.ReadAllBytes(file) : null;
        var timeout = TimeSpan.FromSeconds(options.GetInt("timeout", 10));
        // --modes ResetIdle,ResetPartialRequest,...: only these (default: all, in turn).
        Mode[] modes = options.Get("modes", "") is { Length: > 0 } list
            ? list.Split(',').Select(Enum.Parse<Mode>).ToArray()
            : Enum.GetValues<Mode>().Where(m => m != Mode.ResetMidHandshake || HttpClientConnection.Tls).ToArray();
        var counts = new long[modes.Length];
        var failures = new ConcurrentQueue<string>();
        long failureCount = 0;
        var watch = Stopwatch.StartNew();

        async Task Worker(int index)
        {
            var random = new Random(index * 7919 + Environment.ProcessId);
            int i = index;
            while (watch.Elapsed < duration)
            {
                Mode mode = modes[i++ % modes.Length];
                string? failure;
                try
                {
                    failure = await RunOne(mode, random).ConfigureAwait(false);
                }
                catch (SocketException e)
                {
                    failure = $"{e.SocketErrorCode}: {e.Message}";
                }
                catch (System.Security.Authentication.AuthenticationException e)
                {
                    failure = "TLS handshake failed: " + e.Message;
                }
                Interlocked.Increment(ref counts[Array.IndexOf(modes, mode)]);
                if (failure is not null)
                {
                    Interlocked.Increment(ref failureCount);
                    if (failures.Count < 20)
                    {
                        failures.Enqueue($"{mode}: {failure}");
                    }
                }
            }
        }

        async Task<string?> RunOne(Mode mode, Random random)
        {
            using var cts = new CancellationTokenSource(timeout);
            if (mode == Mode.ResetMidHandshake)
            {
                (Socket socket, Task handshake) = await HttpClientConnection.StartHandshakeAsync(endPoint, cts.Token).ConfigureAwait(false);
                await Task.Delay(random.Next(0, 3)).ConfigureAwait(false);
                socket.LingerState = new LingerOption(true, 0);
                socket.Dispose();
                // The handshake fails now (the socket is gone), or it had finished: either way this connection is over.
                await handshake.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                return null;
            }
            HttpClientConnection connection;
            try
            {
                connection = await HttpClientConnection.ConnectAsync(endPoint, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return "connect timed out";
            }
            using (connection)
            {
                switch (mode)
                {
                    case Mode.ResetIdle:
                        connection.Reset();
                        return null;
                    case Mode.ResetPartialRequest:
                    {
                        byte[] request = HttpClientConnection.FormatRequest(random.Next(2) == 0 ? "/plaintext" : largePath);
                        int cut = random.Next(1, request.Length - 1);
                        await connection.SendAsync(request.AsMemory(0, cut), cts.Token).ConfigureAwait(false);
                        if (random.Next(2) == 0)
                        {
                            await Task.Delay(random.Next(1, 5)).ConfigureAwait(false);
                        }
                        connection.Reset();
                        return null;
                    }
                    case Mode.ResetAfterRequest:
                        await connection.SendAsync(HttpClientConnection.FormatRequest(random.Next(2) == 0 ? "/plaintext" : "/json"), cts.Token).ConfigureAwait(false);
                        connection.Reset();
                        return null;
                    case Mode.ResetLargeUnread:
                        await connection.SendAsync(HttpClientConnection.FormatRequest(largePath), cts.Token).ConfigureAwait(false);
                        await Task.Delay(random.Next(0, 3)).ConfigureAwait(false);
                        connection.Reset();
                        return null;
                    case Mode.ResetMidResponse:
                    {
                        await connection.SendAsync(HttpClientConnection.FormatRequest(largePath), cts.Token).ConfigureAwait(false);
                        Response r = await connection.ReadResponseAsync(timeout, stopAfterBody: random.Next(0, 512 * 1024)).ConfigureAwait(false);
                        connection.Reset();
                        return r is { IsComplete: true, Status: 200 } ? null : $"{r.Outcome} status {r.Status} after {r.BytesReceived} bytes: {r.Detail}";
                    }
                    case Mode.ResetPipelined:
                    {
                        byte[] requests = [.. HttpClientConnection.FormatRequest("/plaintext"), .. HttpClientConnection.FormatRequest("/json"), .. HttpClientConnection.FormatRequest("/6k.html")];
                        await connection.SendAsync(requests, cts.Token).ConfigureAwait(false);
                        Response r = await connection.ReadResponseAsync(timeout, keepBody: true).ConfigureAwait(false);
                        connection.Reset();
                        if (r is not { IsComplete: true, Status: 200 })
                        {
                            return $"{r.Outcome} status {r.Status} after {r.BytesReceived} bytes: {r.Detail}";
                        }
                        return connection.Body.ToArray().AsSpan().SequenceEqual("Hello, World!"u8) ? null : "wrong /plaintext body";
                    }
                    case Mode.CompleteLarge:
                    {
                        if (!await connection.SendAsync(HttpClientConnection.FormatRequest(largePath, close: true), cts.Token).ConfigureAwait(false))
                        {
                            return "send failed";
                        }
                        Response r = await connection.ReadResponseAsync(timeout, keepBody: expected is not null).ConfigureAwait(false);
                        if (r is not { IsComplete: true, Status: 200 })
                        {
                            return $"{r.Outcome} status {r.Status} after {r.BytesReceived} bytes: {r.Detail}";
                        }
                        if (expected is not null && !connection.Body.GetBuffer().AsSpan(0, (int)connection.Body.Length).SequenceEqual(expected))
                        {
                            return $"body of {connection.Body.Length} bytes differs from the file's {expected.Length}";
                        }
                        ReadOutcome end = await connection.ReadEndAsync(timeout).ConfigureAwait(false);
                        return end == ReadOutcome.ClosedBeforeResponse ? null : $"after Connection: close the server did not close cleanly: {end}";
                    }
                    default:
                        throw new UnreachableException();
                }
            }
        }

        var reporter = Task.Run(async () =>
        {
            while (watch.Elapsed < duration)
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, Math.Max(1, duration.TotalSeconds / 4)))).ConfigureAwait(false);
                Console.WriteLine($"resets: {watch.Elapsed.TotalSeconds:F0} s, {counts.Sum()} connections, {Interlocked.Read(ref failureCount)} failures");
            }
        });
        await Task.WhenAll(Enumerable.Range(0, workers).Select(i => Task.Run(() => Worker(i)))).ConfigureAwait(false);
        await reporter.ConfigureAwait(false);

        long total = counts.Sum();
        Console.WriteLine($"resets: {total} connections in {watch.Elapsed.TotalSeconds:F0} s ({total / watch.Elapsed.TotalSeconds:F0}/s), {failureCount} failures");
        for (int m = 0; m < modes.Length; m++)
        {
            Console.WriteLine($"  {modes[m],-20} {counts[m]}");
        }
        foreach (string f in failures)
        {
            Console.WriteLine($"  FAILURE {f}");
        }
        Console.WriteLine($"RESULT resets_total={total} resets_failures={failureCount} {string.Join(' ', modes.Select((m, k) => $"resets_{m}={counts[k]}"))}");
        return failureCount == 0 ? 0 : 1;
    }
}
