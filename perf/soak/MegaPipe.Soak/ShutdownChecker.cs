using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace MegaPipe.Soak;

// Graceful shutdown under load. Workers send requests one at a time (no pipelining, so every
// outcome belongs to one request) and check every response; once each worker has had a response
// and the load has run --after seconds, the checker sends SIGTERM to the server and the workers go
// on until their reconnect is refused.
//
// The rule, per request sent:
//   answered        a complete response, status 200, the exact expected body;
//   closed cleanly  the server closed the connection (FIN: read returns 0) before any byte of the
//                   response: the request was not processed (allowed only after SIGTERM);
// and per connection:
//   not accepted    reset (RST) during connect or before its first response, after SIGTERM: a
//                   connection left in the listen backlog, or accepted by the transport but never
//                   taken by Kestrel, when the listener closed (the request never reached Kestrel);
//   refused         connect refused after SIGTERM: the listener is closed (the worker stops).
// Anything else fails: a partial response (EOF or RST after some of its bytes), a reset of a
// connection that had already been answered (it was certainly accepted), a wrong status or body,
// no response and no close within --timeout seconds, a malformed response, a Connection: close
// response not followed by a clean close, or any close/reset before SIGTERM.
public static class ShutdownChecker
{
    private const int SIGTERM = 15;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    private enum Kind
    {
        // Connection: close, a new connection per request: /plaintext and /json.
        Short,
        // Keep-alive, the large file.
        Large,
        // Keep-alive, /plaintext, /json and /6k.html in turn.
        KeepAlive,
    }

    public static async Task<int> RunAsync(Options options)
    {
        var endPoint = options.EndPoint;
        int pid = options.GetInt("pid", 0);
        int workers = options.GetInt("connections", 48);
        var after = TimeSpan.FromSeconds(options.GetInt("after", 3));
        var timeout = TimeSpan.FromSeconds(options.GetInt("timeout", 10));
        var deadline = TimeSpan.FromSeconds(options.GetInt("deadline", 60));
        string largePath = options.Get("large-path", "/soak-1m.bin");
        byte[] large = File.ReadAllBytes(options.Get("large-file", "wwwroot/soak-1m.bin"));
        byte[] small = File.ReadAllBytes(options.Get("small-file", "wwwroot/6k.html"));
        if (pid <= 0)
        {
            Console.Error.WriteLine("shutdown: --pid of the server is required");
            return 2;
        }
        var expected = new Dictionary<string, byte[]>
        {
            ["/plaintext"] = "Hello, World!"u8.ToArray(),
            ["/json"] = """{"message":"Hello, World!"}"""u8.ToArray(),
            ["/6k.html"] = small,
            [largePath] = large,
        };

        long answeredBefore = 0, answeredAfter = 0, closedClean = 0, notAccepted = 0, refused = 0, connections = 0, failures = 0;
        var failureLog = new ConcurrentQueue<string>();
        var firstAnswered = new CountdownEvent(workers);
        bool signalSent = false;
        var watch = Stopwatch.StartNew();
        TimeSpan signalAt = TimeSpan.Zero;

        void Fail(string message)
        {
            Interlocked.Increment(ref failures);
            if (failureLog.Count < 30)
            {
                failureLog.Enqueue($"{watch.Elapsed.TotalSeconds,7:F3} s {message}");
            }
        }

        async Task Worker(int index)
        {
            var kind = (index % 4) switch { 0 => Kind.Short, 1 => Kind.Large, _ => Kind.KeepAlive };
            string[] paths = kind switch
            {
                Kind.Short => ["/plaintext", "/json"],
                Kind.Large => [largePath],
                _ => ["/plaintext", "/json", "/6k.html"],
            };
            bool counted = false;
            HttpClientConnection? connection = null;
            int sent = index;
            try
            {
                while (true)
                {
                    if (Volatile.Read(ref signalSent) && watch.Elapsed - signalAt > deadline)
                    {
                        Fail($"worker {index}: still running {deadline.TotalSeconds:F0} s after SIGTERM");
                        return;
                    }
                    if (connection is null)
                    {
                        try
                        {
                            using var cts = new CancellationTokenSource(timeout);
                            connection = await HttpClientConnection.ConnectAsync(endPoint, cts.Token).ConfigureAwait(false);
                            Interlocked.Increment(ref connections);
                        }
                        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && Volatile.Read(ref signalSent))
                        {
                            Interlocked.Increment(ref refused);
                            return;
                        }
                        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset && Volatile.Read(ref signalSent))
                        {
                            // The handshake completed in the kernel, then the closing listener reset it.
                            Interlocked.Increment(ref notAccepted);
                            continue;
                        }
                        catch (Exception e) when (e is SocketException or OperationCanceledException)
                        {
                            Fail($"worker {index}: connect: {e.Message}");
                            return;
                        }
                    }
                    string path = paths[sent++ % paths.Length];
                    bool signalledBefore = Volatile.Read(ref signalSent);
                    bool sentOk = await connection.SendAsync(HttpClientConnection.FormatRequest(path, close: kind == Kind.Short), CancellationToken.None).ConfigureAwait(false);
                    Response r = sentOk
                        ? await connection.ReadResponseAsync(timeout, keepBody: true).ConfigureAwait(false)
                        : new Response(ReadOutcome.Reset, 0, false, 0, "send failed");
                    bool afterSignal = Volatile.Read(ref signalSent);
                    string where = $"worker {index} ({kind}) {path} on a connection with {connection.ResponsesRead} responses{(afterSignal ? ", after SIGTERM" : "")}";
                    switch (r.Outcome)
                    {
                        case ReadOutcome.Complete:
                            if (r.Status != 200)
                            {
                                Fail($"{where}: status {r.Status}");
                                return;
                            }
                            if (!connection.Body.GetBuffer().AsSpan(0, (int)connection.Body.Length).SequenceEqual(expected[path]))
                            {
                                Fail($"{where}: body of {connection.Body.Length} bytes differs from the expected {expected[path].Length}");
                                return;
                            }
                            Interlocked.Increment(ref (signalledBefore ? ref answeredAfter : ref answeredBefore));
                            if (!counted)
                            {
                                counted = true;
                                firstAnswered.Signal();
                            }
                            if (r.ConnectionClose)
                            {
                                ReadOutcome end = await connection.ReadEndAsync(timeout).ConfigureAwait(false);
                                if (end != ReadOutcome.ClosedBeforeResponse)
                                {
                                    Fail($"{where}: Connection: close response followed by {end}, not a clean close");
                                    return;
                                }
                                connection.Dispose();
                                connection = null;
                            }
                            else if (kind == Kind.Short)
                            {
                                Fail($"{where}: no Connection: close in the response to a Connection: close request");
                                return;
                            }
                            break;
                        case ReadOutcome.ClosedBeforeResponse when afterSignal:
                            Interlocked.Increment(ref closedClean);
                            connection.Dispose();
                            connection = null;
                            break;
                        case ReadOutcome.Reset when afterSignal && connection.ResponsesRead == 0 && r.BytesReceived == 0:
                            Interlocked.Increment(ref notAccepted);
                            connection.Dispose();
                            connection = null;
                            break;
                        default:
                            Fail($"{where}: {r.Outcome} after {r.BytesReceived} bytes of the response ({r.Detail})");
                            return;
                    }
                }
            }
            finally
            {
                connection?.Dispose();
                if (!counted)
                {
                    firstAnswered.Signal();
                }
            }
        }

        Task[] tasks = Enumerable.Range(0, workers).Select(i => Task.Run(() => Worker(i))).ToArray();
        Task all = Task.WhenAll(tasks);
        bool ready = await Task.Run(() => firstAnswered.Wait(TimeSpan.FromSeconds(30))).ConfigureAwait(false);
        if (!ready || Interlocked.Read(ref failures) > 0)
        {
            Fail("not every worker had a response before SIGTERM");
        }
        await Task.WhenAny(all, Task.Delay(after)).ConfigureAwait(false);
        long answeredAtSignal = Interlocked.Read(ref answeredBefore);
        signalAt = watch.Elapsed;
        Volatile.Write(ref signalSent, true);
        if (kill(pid, SIGTERM) != 0)
        {
            Fail($"kill({pid}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        Console.WriteLine($"shutdown: SIGTERM sent to {pid} after {signalAt.TotalSeconds:F3} s of load and {answeredAtSignal} answered requests, at unix_ms={DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}");
        if (await Task.WhenAny(all, Task.Delay(deadline + timeout + TimeSpan.FromSeconds(5))).ConfigureAwait(false) != all)
        {
            Fail("workers still running past the deadline");
        }
        double drain = (watch.Elapsed - signalAt).TotalSeconds;

        Console.WriteLine($"shutdown: {workers} workers, {Interlocked.Read(ref connections)} connections; after SIGTERM the last worker ended in {drain:F3} s");
        Console.WriteLine($"  answered before SIGTERM     {answeredBefore}");
        Console.WriteLine($"  answered after SIGTERM      {answeredAfter}   (requests sent before the signal took effect, answered in full)");
        Console.WriteLine($"  closed cleanly, unanswered  {closedClean}   (FIN before any byte of the response)");
        Console.WriteLine($"  not accepted (reset)        {notAccepted}   (RST before the connection's first response, after SIGTERM)");
        Console.WriteLine($"  refused                     {refused}   (reconnect refused: listener closed)");
        Console.WriteLine($"  failures                    {failures}");
        foreach (string f in failureLog)
        {
            Console.WriteLine($"  FAILURE {f}");
        }
        var sb = new StringBuilder("RESULT");
        sb.Append($" shutdown_answered_before={answeredBefore} shutdown_answered_after={answeredAfter} shutdown_closed_clean={closedClean}");
        sb.Append($" shutdown_not_accepted={notAccepted} shutdown_refused={refused} shutdown_connections={connections} shutdown_failures={failures}");
        sb.Append($" shutdown_drain_s={drain:F3}");
        Console.WriteLine(sb.ToString());
        return failures == 0 ? 0 : 1;
    }
}
