using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http;
using System.Text;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using BadHttpRequestException = Microsoft.AspNetCore.Http.BadHttpRequestException;

namespace MegaPipe.Transport.FunctionalTests;

// Hostile and broken clients: silent, slow, non-reading, resetting, half-closing, talking garbage.
// Each test also checks that the server keeps serving and lets go of every connection.
public abstract partial class TransportTests
{
    [Fact]
    public async Task SilentAndStalledClients_AreTimedOut_ServerServesMeanwhile_NothingLeaks()
    {
        const int Silent = 200;
        const int PartialHeaders = 10;
        const int StalledBodies = 10;
        const int Stalling = Silent + PartialHeaders + StalledBodies;
        // Kestrel's timeouts are checked by a 1 s heartbeat; the window must hold the normal
        // requests below, made while every stalling client is connected.
        TimeSpan timeout = TimeSpan.FromSeconds(5);
        var tracker = new ConnectionTracker();
        var bodyErrors = new ConcurrentQueue<Exception?>();
        TaskCompletionSource allBodiesEnded = NewSignal();
        await using TestServer server = await StartHostileServerAsync(
            tracker,
            app =>
            {
                app.MapGet("/hostile/active", () => tracker.Active.ToString(CultureInfo.InvariantCulture));
                app.MapPost("/hostile/drain", async (HttpContext context) =>
                {
                    Exception? error = null;
                    try
                    {
                        await context.Request.Body.CopyToAsync(Stream.Null);
                    }
                    catch (BadHttpRequestException e)
                    {
                        error = e;
                        context.Response.StatusCode = e.StatusCode;
                    }
                    catch (Exception e)
                    {
                        error = e;
                    }
                    bodyErrors.Enqueue(error);
                    if (bodyErrors.Count == StalledBodies)
                    {
                        allBodiesEnded.TrySetResult();
                    }
                });
            },
            kestrel =>
            {
                kestrel.Limits.KeepAliveTimeout = timeout;
                kestrel.Limits.RequestHeadersTimeout = timeout;
                kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: timeout);
            });

        var silent = new List<RawHttpConnection>();
        var partial = new List<RawHttpConnection>();
        var stalled = new List<RawHttpConnection>();
        try
        {
            for (int i = 0; i < Silent; i++)
            {
                silent.Add(await RawHttpConnection.ConnectAsync(server.EndPoint));
            }
            for (int i = 0; i < PartialHeaders; i++)
            {
                RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
                partial.Add(client);
                await client.SendAsync("GET /hello HTTP/1.1\r\nHost: loc");
            }
            for (int i = 0; i < StalledBodies; i++)
            {
                RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
                stalled.Add(client);
                await client.SendAsync("POST /hostile/drain HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n0123456789");
            }
            await tracker.WaitUntilAsync(t => t.Opened >= Stalling, "Kestrel started every stalling connection");

            // Normal clients are served while all of them hang on.
            using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
            {
                RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hostile/active"));
                Assert.True(int.Parse(response.BodyText, CultureInfo.InvariantCulture) > Stalling, $"Served while {response.BodyText} connections were active: the stalling ones were timed out before the server was checked.");
            }
            await AssertServerServesAsync(server);

            // Kestrel times every one of them out and the transport closes them: the silent ones
            // by the keep-alive timeout (an orderly close, nothing sent), the partial headers by the
            // request headers timeout (408), the stalled bodies by the minimum data rate (the app's
            // read fails with a 408 BadHttpRequestException, which the app answers with).
            await Task.WhenAll(silent.Select(async client =>
            {
                (byte[] data, bool reset) = await client.ReadToCloseAsync(TestTimeouts.Long);
                Assert.Empty(data);
                Assert.False(reset, "FIN, not RST");
            }));
            await Task.WhenAll(partial.Select(async client =>
            {
                (byte[] data, _) = await client.ReadToCloseAsync(TestTimeouts.Long);
                Assert.Equal(408, RawHttpConnection.StatusCodeOf(data));
            }));
            await allBodiesEnded.Task.WaitAsync(TestTimeouts.Long);
            Assert.All(bodyErrors, error => Assert.IsAssignableFrom<BadHttpRequestException>(error));
            await Task.WhenAll(stalled.Select(async client =>
            {
                (byte[] data, _) = await client.ReadToCloseAsync(TestTimeouts.Long);
                Assert.Equal(408, RawHttpConnection.StatusCodeOf(data));
            }));
        }
        finally
        {
            silent.Concat(partial).Concat(stalled).ToList().ForEach(c => c.Dispose());
        }

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task RequestSentOneByteAtATime_ParsedByteByByte_AnsweredCorrectly()
    {
        var observer = new ReadObservingMiddleware();
        var tracker = new ConnectionTracker();
        await using TestServer server = await StartHostileServerAsync(
            tracker,
            app => app.MapGet("/hostile/describe", (HttpContext context) =>
                $"{context.Request.Method} {context.Request.Path}{context.Request.QueryString} x-one=[{context.Request.Headers["x-one"]}] x-two=[{context.Request.Headers["x-two"]}] cookie=[{context.Request.Headers.Cookie}]"),
            configureListen: observer.Attach);

        string[] requests =
        [
            "GET /hostile/describe?q=1&r=%20two HTTP/1.1\r\nHost: localhost\r\nX-One: first value\r\nx-two:\tsecond\t\r\nCookie: a=b; c=d\r\n\r\n",
            RawHttpConnection.Post("/echo", "a body sent one byte per send"),
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nchunk\r\n3\r\n-ed\r\n0\r\nTrailer: yes\r\n\r\n",
        ];
        string[] expected =
        [
            "GET /hostile/describe?q=1&r=%20two x-one=[first value] x-two=[second] cookie=[a=b; c=d]",
            "a body sent one byte per send",
            "chunk-ed",
        ];

        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
        Assert.True(connection.Socket.NoDelay);
        ReadObservingMiddleware.ObservedConnection observed = await observer.NextConnectionAsync();
        int sent = 0;
        for (int r = 0; r < requests.Length; r++)
        {
            byte[] bytes = Encoding.ASCII.GetBytes(requests[r]);
            for (int i = 0; i < bytes.Length; i++)
            {
                // Lock step: the next byte goes out only once the server has consumed every byte
                // so far and waits for more, so it receives and parses them one at a time.
                await observed.WaitForWaitingReadAsync();
                await connection.SendAsync(bytes.AsMemory(i, 1));
                sent++;
            }
            RawHttpResponse response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.StatusCode);
            Assert.Equal(expected[r], response.BodyText);
        }
        Assert.True(observed.WaitingReads >= sent, $"{observed.WaitingReads} waiting reads for {sent} bytes");

        connection.Dispose();
        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public Task ClientNeverReads_64MiBResponse_FlushStallsWithinBufferLimits_ThenClientReadsAll()
        => ClientNeverReadsAsync(resetAfterStall: false);

    [Fact]
    public Task ClientNeverReads_64MiBResponse_FlushStallsWithinBufferLimits_ThenClientResets()
        => ClientNeverReadsAsync(resetAfterStall: true);

    [Fact]
    public async Task ManyClientsResetMidRequestBody_AppsObserveAbort_ConnectionsReleased()
    {
        const int Clients = 16;
        var tracker = new ConnectionTracker();
        int bodiesStarted = 0;
        TaskCompletionSource allStarted = NewSignal();
        var outcomes = new ConcurrentQueue<(Exception? Error, bool Aborted)>();
        TaskCompletionSource allEnded = NewSignal();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapPost("/hostile/upload", async (HttpContext context) =>
        {
            TaskCompletionSource aborted = NewSignal();
            context.RequestAborted.Register(() => aborted.TrySetResult());
            byte[] buffer = new byte[16 * 1024];
            Exception? error = null;
            bool started = false;
            try
            {
                while (await context.Request.Body.ReadAsync(buffer) > 0)
                {
                    if (!started)
                    {
                        started = true;
                        if (Interlocked.Increment(ref bodiesStarted) == Clients)
                        {
                            allStarted.TrySetResult();
                        }
                    }
                }
            }
            catch (Exception e)
            {
                error = e;
            }
            // Once the request ends, RequestAborted never fires: wait for it while still inside.
            bool sawAbort = await aborted.Task.WaitAsync(TestTimeouts.Default).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default);
            outcomes.Enqueue((error, sawAbort));
            if (outcomes.Count == Clients)
            {
                allEnded.TrySetResult();
            }
        }));

        var clients = new List<RawHttpConnection>();
        try
        {
            for (int i = 0; i < Clients; i++)
            {
                RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
                clients.Add(client);
                await client.SendAsync("POST /hostile/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10485760\r\n\r\n");
                await client.SendAsync(TestData.Payload(64 * 1024 + i * 1000));
            }
            await allStarted.Task.WaitAsync(TestTimeouts.Default);
            clients.ForEach(c => c.Reset());
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }

        await allEnded.Task.WaitAsync(TestTimeouts.Long);
        foreach ((Exception? error, bool aborted) in outcomes)
        {
            // The body read fails: a reset must not look like the end of the body.
            Assert.NotNull(error);
            Assert.True(error is IOException or OperationCanceledException, error.ToString());
            Assert.True(aborted, "RequestAborted fired");
        }
        await AssertConnectionsReleasedAsync(tracker);
        // Kestrel (on either transport) logs that it could not drain the body the app failed to read.
        await AssertServerServesAsync(server, "RequestBodyDrainBodyReaderInvalidState");
    }

    [Fact]
    public async Task ClientResetsDuringHeadersOrBeforeResponse_ServerSurvives_ConnectionsReleased()
    {
        var tracker = new ConnectionTracker();
        TaskCompletionSource<string> waiting = NewSignal<string>();
        TaskCompletionSource aborted = NewSignal();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapGet("/hostile/wait", async (HttpContext context) =>
        {
            waiting.TrySetResult(context.Connection.Id);
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aborted.TrySetResult();
            }
        }));

        // Half a request line, half the headers: Kestrel is parsing when the reset arrives.
        foreach (string fragment in new[] { "GET /hel", "GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Partial: abc" })
        {
            int opened = tracker.Opened;
            using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
            await client.SendAsync(fragment);
            await tracker.WaitUntilAsync(t => t.Opened > opened, "Kestrel started the connection");
            client.Reset();
        }

        // A complete request whose handler waits: the reset reaches it as RequestAborted.
        using (RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            await client.SendAsync(RawHttpConnection.Get("/hostile/wait"));
            await waiting.Task.WaitAsync(TestTimeouts.Default);
            client.Reset();
        }
        await aborted.Task.WaitAsync(TestTimeouts.Default);

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task ConnectAndVanish_200ClientsResetOrCloseRightAway_ServerSurvives_NothingLeaks()
    {
        const int Clients = 200;
        var tracker = new ConnectionTracker();
        await using TestServer server = await StartHostileServerAsync(tracker, _ => { });

        // Clients that leave at once, some before the server has even accepted them: a reset or a
        // FIN right after the handshake, or after a request for a 1 MiB response they never read.
        string request = RawHttpConnection.Get($"/bytes/{1024 * 1024}");
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async i =>
        {
            using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
            if (i % 4 >= 2)
            {
                await client.SendAsync(request);
            }
            if (i % 2 == 0)
            {
                client.Reset();
            }
        }));

        // The kernel completed every handshake, so the server accepts every one of them, even
        // those reset in its accept queue, and must let go of each.
        await tracker.WaitUntilAsync(t => t.Opened == Clients, "Kestrel started every connection", TestTimeouts.Long);
        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task ClientGone_ServerStopped_TransportOutputCompletedLate_NothingThrows()
    {
        var tracker = new ConnectionTracker();
        var late = new LateOutputCompletion();
        await using TestServer server = await TestServer.StartAsync(
            Transport,
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
            {
                tracker.Attach(listen);
                late.Attach(listen);
            }),
            // Inline: MegaPipe reacts to the output's completion on the completing thread, so a
            // throw surfaces here rather than on the thread pool, where it would kill the process.
            configureMegaPipe: options => options.UnsafeInlineScheduling = true,
            output: Output);

        // The client leaves; Kestrel is done with the connection, the middleware aborts it and the
        // transport closes it, its output writer still open.
        using (RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint))
        {
            Assert.Equal(CommonEndpoints.Hello, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
        }
        await AssertConnectionsReleasedAsync(tracker);

        // The server stops (MegaPipe disposes its channels), and only then is the transport's output
        // completed: whatever the transport does about it must not throw.
        using (var stopTimeout = new CancellationTokenSource(TestTimeouts.Default))
        {
            await server.App.StopAsync(stopTimeout.Token);
            Assert.False(stopTimeout.IsCancellationRequested, "StopAsync finished by itself, not by its timeout.");
        }
        Exception? error = await late.CompleteNowAsync();
        Assert.True(error is null, error?.ToString());
        server.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task ManyClientsResetMidResponse_AppsObserveAbort_ConnectionsReleased()
    {
        const int Clients = 16;
        var tracker = new ConnectionTracker();
        var outcomes = new ConcurrentQueue<(bool OutputClosed, Exception? Error, bool Aborted)>();
        TaskCompletionSource allEnded = NewSignal();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapGet("/hostile/endless", async (HttpContext context) =>
        {
            TaskCompletionSource aborted = NewSignal();
            context.RequestAborted.Register(() => aborted.TrySetResult());
            ReadOnlyMemory<byte> chunk = TestData.Payload(64 * 1024);
            PipeWriter writer = context.Response.BodyWriter;
            bool outputClosed = false;
            Exception? error = null;
            try
            {
                // Streams until the client goes away. No cancellation token: the reset itself must
                // release a flush waiting for the client, which then reports the output completed.
                // (Write and FlushAsync, not WriteAsync: once Kestrel has aborted the output, its
                // WriteAsync completes at once without saying so, and 16 handlers spinning on it
                // would starve the thread pool of the work item that signals RequestAborted.)
                while (!context.RequestAborted.IsCancellationRequested)
                {
                    writer.Write(chunk.Span);
                    FlushResult result = await writer.FlushAsync();
                    if (result.IsCompleted || result.IsCanceled)
                    {
                        outputClosed = true;
                        break;
                    }
                }
            }
            catch (Exception e)
            {
                error = e;
            }
            // Once the request ends, RequestAborted never fires: wait for it while still inside.
            bool sawAbort = await aborted.Task.WaitAsync(TestTimeouts.Default).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default);
            outcomes.Enqueue((outputClosed, error, sawAbort));
            if (outcomes.Count == Clients)
            {
                allEnded.TrySetResult();
            }
        }));

        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async i =>
        {
            using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
            await client.SendAsync(RawHttpConnection.Get("/hostile/endless"));
            (int status, _) = await client.ReadResponseHeadAsync();
            Assert.Equal(200, status);
            await client.ReadBodySha256Async(256 * 1024 + i * 4096);
            client.Reset();
        }));

        await allEnded.Task.WaitAsync(TestTimeouts.Long);
        foreach ((bool outputClosed, Exception? error, bool aborted) in outcomes)
        {
            Assert.True(aborted, "RequestAborted fired");
            Assert.True(error is null or OperationCanceledException or IOException, error?.ToString());
            Output.WriteLine($"output closed {outputClosed}, error {error?.GetType().Name ?? "none"}");
        }
        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task HalfCloseAfterRequest_TreatedAsDisconnect_ServerClosesWithFin()
    {
        var tracker = new ConnectionTracker();
        TaskCompletionSource aborted = NewSignal();
        TaskCompletionSource<FlushResult> lateWrite = NewSignal<FlushResult>();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapGet("/hostile/after-abort", async (HttpContext context) =>
        {
            // Kestrel does not support half-closed HTTP/1.1 clients: a FIN is the client going
            // away. The handler answers only after it was told so.
            TaskCompletionSource seen = NewSignal();
            context.RequestAborted.Register(() => seen.TrySetResult());
            await seen.Task.WaitAsync(TestTimeouts.Default);
            aborted.TrySetResult();
            context.Response.ContentLength = 5;
            lateWrite.TrySetResult(await context.Response.BodyWriter.WriteAsync("late!"u8.ToArray()));
        }));

        using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
        await client.SendAsync(RawHttpConnection.Get("/hostile/after-abort"));
        client.ShutdownSend();
        await aborted.Task.WaitAsync(TestTimeouts.Default);
        Assert.True((await lateWrite.Task.WaitAsync(TestTimeouts.Default)).IsCompleted, "the write after the abort finds the output closed");

        // Nothing of the late response, and an orderly close (FIN), as the Sockets transport does:
        // Kestrel aborts the output without a reason, which means "close gracefully".
        (byte[] data, bool reset) = await client.ReadToCloseAsync();
        Assert.Equal("", RawHttpConnection.Preview(data));
        Assert.False(reset, "FIN, not RST");

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task HalfCloseDuringLargeResponse_DataAlreadySentArrivesThenFin()
    {
        var tracker = new ConnectionTracker();
        var response = new StallingResponse();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapGet("/hostile/large", response.HandleAsync));

        // The client does not read until the response stalls: the kernel buffers are full of it.
        using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint, receiveBufferSize: 64 * 1024);
        await client.SendAsync(RawHttpConnection.Get("/hostile/large"));
        (long flushed, _) = await WaitForStalledFlushAsync(server, response);
        client.ShutdownSend();

        // Kestrel takes the FIN for the client going away and ends the response.
        await response.Aborted.Task.WaitAsync(TestTimeouts.Default);
        StallingResponse.Outcome outcome = await response.Finished.Task.WaitAsync(TestTimeouts.Default);
        Assert.False(outcome.Complete, "the response was cut off");
        Assert.Null(outcome.Error);

        // What the server had handed to the kernel still arrives, intact, then an orderly close:
        // a reset would have thrown away megabytes of it.
        (byte[] data, bool reset) = await client.ReadToCloseAsync();
        Assert.False(reset, "FIN, not RST");
        int headersEnd = data.AsSpan().IndexOf("\r\n\r\n"u8);
        Assert.True(headersEnd > 0, RawHttpConnection.Preview(data));
        Assert.Equal(200, RawHttpConnection.StatusCodeOf(data));
        ReadOnlySpan<byte> body = data.AsSpan(headersEnd + 4);
        AssertBodyPrefix(body);
        long unsentAtMost = BufferedAboveTheKernel(server);
        Output.WriteLine($"{body.Length} body bytes before the FIN; the app had flushed {flushed}.");
        Assert.True(body.Length >= flushed - unsentAtMost, $"Only {body.Length} of the {flushed} flushed bytes arrived.");

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task HalfCloseMidRequestBody_AppSeesBadRequest_ServerSurvives()
    {
        const int Sent = 100 * 1024;
        var tracker = new ConnectionTracker();
        TaskCompletionSource bodyStarted = NewSignal();
        TaskCompletionSource<(long Read, Exception? Error)> outcome = NewSignal<(long, Exception?)>();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapPost("/hostile/upload", async (HttpContext context) =>
        {
            byte[] buffer = new byte[16 * 1024];
            long total = 0;
            try
            {
                int read;
                while ((read = await context.Request.Body.ReadAsync(buffer)) > 0)
                {
                    total += read;
                    bodyStarted.TrySetResult();
                }
                outcome.TrySetResult((total, null));
            }
            catch (BadHttpRequestException e)
            {
                context.Response.StatusCode = e.StatusCode;
                outcome.TrySetResult((total, e));
            }
            catch (Exception e)
            {
                outcome.TrySetResult((total, e));
            }
        }));

        using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
        await client.SendAsync("POST /hostile/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n");
        await client.SendAsync(TestData.Payload(Sent));
        await bodyStarted.Task.WaitAsync(TestTimeouts.Default);
        client.ShutdownSend();

        // The body ends early: the read fails instead of reporting the end of the body.
        (long read, Exception? error) = await outcome.Task.WaitAsync(TestTimeouts.Default);
        Output.WriteLine($"The app read {read} bytes, then: {error}");
        Assert.NotNull(error);
        Assert.True(error is BadHttpRequestException or IOException or OperationCanceledException, error.ToString());
        Assert.InRange(read, 1, Sent);

        // Then the server closes the connection (with a reset on every transport, as observed:
        // Kestrel aborts it after the bad body); the app's 400 gets out only if it was quicker.
        (byte[] data, bool reset) = await client.ReadToCloseAsync();
        Output.WriteLine($"The client got '{RawHttpConnection.Preview(data)}', then {(reset ? "RST" : "FIN")}.");
        if (data.Length > 0)
        {
            Assert.Equal(400, RawHttpConnection.StatusCodeOf(data));
        }

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    [Fact]
    public async Task Garbage_EachKindAnsweredWithAnErrorOrClosed_ServerKeepsServing()
    {
        var tracker = new ConnectionTracker();
        await using TestServer server = await StartHostileServerAsync(tracker, _ => { }, configureListen: listen => listen.Protocols = HttpProtocols.Http1);

        foreach (GarbageCase garbage in GarbageCases())
        {
            using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
            // The server may answer and close before it has read everything.
            await client.TrySendAsync(garbage.Bytes);
            (byte[] data, _) = await client.ReadToCloseAsync();
            garbage.Check(data);
        }

        // Again, all at once, mixed with normal clients.
        using HttpClient normal = CreateClient(server);
        Task[] hostile = Enumerable.Range(0, 4).SelectMany(_ => GarbageCases()).Select(async garbage =>
        {
            using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
            await client.TrySendAsync(garbage.Bytes);
            (byte[] data, _) = await client.ReadToCloseAsync();
            garbage.Check(data);
        }).ToArray();
        Task[] normals = Enumerable.Range(0, 20).Select(async i => Assert.Equal($"{i}", await normal.GetStringAsync($"/id/{i}"))).ToArray();
        await Task.WhenAll(hostile.Concat(normals)).WaitAsync(TestTimeouts.Long);
        normal.Dispose();

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    private sealed record GarbageCase(string Name, byte[] Bytes, Action<byte[]> Check)
    {
        public override string ToString() => Name;
    }

    private static IEnumerable<GarbageCase> GarbageCases()
    {
        byte[] random = new byte[4096];
        new Random(20240607).NextBytes(random);
        byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);
        Action<byte[]> Status(params int[] codes) => data =>
        {
            Assert.True(data.Length > 0, "The server closed without answering.");
            Assert.Equal(codes, RawHttpConnection.StatusCodesOf(data));
        };

        yield return new("random bytes", random, Status(400));
        yield return new("NUL bytes", [0, 0, 0, 0, (byte)'\r', (byte)'\n', (byte)'\r', (byte)'\n'], Status(400));
        yield return new("request line with a fourth part", Ascii("GET /hello HTTP/1.1 junk\r\nHost: localhost\r\n\r\n"), Status(400));
        yield return new("HTTP/0.9 request line", Ascii("GET /hello\r\n\r\n"), Status(400));
        yield return new("bare CR in the request line", Ascii("GET /hello HTTP/1.1\rHost: localhost\r\n\r\n"), Status(400));
        yield return new("unknown HTTP version", Ascii("GET /hello HTTP/9.9\r\nHost: localhost\r\n\r\n"), Status(505));
        yield return new("16 KiB request line", Ascii($"GET /{new string('a', 16 * 1024)} HTTP/1.1\r\nHost: localhost\r\n\r\n"), Status(414));
        yield return new("64 KiB header line", Ascii($"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Big: {new string('a', 64 * 1024)}\r\n\r\n"), Status(431));
        yield return new("200 headers", Ascii($"GET /hello HTTP/1.1\r\nHost: localhost\r\n{string.Concat(Enumerable.Range(0, 200).Select(i => $"X-H{i}: v\r\n"))}\r\n"), Status(431));
        yield return new("header without a colon", Ascii("GET /hello HTTP/1.1\r\nHost: localhost\r\nNoColonHere\r\n\r\n"), Status(400));
        yield return new("negative Content-Length", Ascii("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n"), Status(400));
        yield return new("binary junk after a valid request", [.. Ascii("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"), .. random], Status(200, 400));
        yield return new("TLS ClientHello", TlsClientHello.Bytes, Status(400));
        // Kestrel recognizes the HTTP/2 preface on an HTTP/1-only endpoint and answers in HTTP/2:
        // GOAWAY (type 7) with HTTP_1_1_REQUIRED (0xd).
        yield return new("HTTP/2 preface", [.. Ascii("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0], data =>
        {
            Assert.True(data.Length >= 17, $"Not a GOAWAY frame: '{RawHttpConnection.Preview(data)}'.");
            Assert.Equal(7, data[3]);
            Assert.Equal(0xd, (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(13, 4)));
        });
    }

    private async Task ClientNeverReadsAsync(bool resetAfterStall)
    {
        var tracker = new ConnectionTracker();
        var response = new StallingResponse();
        await using TestServer server = await StartHostileServerAsync(tracker, app => app.MapGet("/hostile/large", response.HandleAsync));

        using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint, receiveBufferSize: 64 * 1024);
        await client.SendAsync(RawHttpConnection.Get("/hostile/large"));
        (long flushed, int checks) = await WaitForStalledFlushAsync(server, response);

        // What the app managed to flush while the client read nothing is bounded by the buffers on
        // the way: Kestrel's response buffer, the transport's output pipe, the kernel's socket
        // buffers (the client's receive buffer, the server's send buffer at its autotuning limit),
        // one chunk, and slack.
        long aboveTheKernel = BufferedAboveTheKernel(server);
        long clientReceiveBuffer = client.Socket.ReceiveBufferSize;
        long serverSendBuffer = long.Parse(File.ReadAllText("/proc/sys/net/ipv4/tcp_wmem").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[2], CultureInfo.InvariantCulture);
        long bound = aboveTheKernel + clientReceiveBuffer + serverSendBuffer + (1024 * 1024);
        Output.WriteLine($"Stalled after {flushed} flushed bytes ({checks} checks); bound {bound} = Kestrel and transport buffers and a chunk {aboveTheKernel} + client SO_RCVBUF {clientReceiveBuffer} + tcp_wmem max {serverSendBuffer} + 1 MiB.");
        Assert.True(flushed <= bound, $"The app flushed {flushed} bytes to a client that reads nothing (bound {bound}).");
        Assert.True(bound < StallingResponse.Length / 4, "The bound must be far below the response, or the test proves nothing.");
        Assert.False(response.Finished.Task.IsCompleted);

        if (!resetAfterStall)
        {
            // The client reads it all: the stalled flush resumes and the body arrives intact.
            (int status, IReadOnlyDictionary<string, string> headers) = await client.ReadResponseHeadAsync();
            Assert.Equal(200, status);
            Assert.Equal(StallingResponse.Length.ToString(CultureInfo.InvariantCulture), headers["Content-Length"]);
            Assert.Equal(StallingResponse.Sha256, await client.ReadBodySha256Async(StallingResponse.Length));
            StallingResponse.Outcome outcome = await response.Finished.Task.WaitAsync(TestTimeouts.Default);
            Assert.True(outcome.Complete, outcome.ToString());
            client.Dispose();
        }
        else
        {
            // The client resets: the pending flush is released, the app learns of the abort.
            client.Reset();
            StallingResponse.Outcome outcome = await response.Finished.Task.WaitAsync(TestTimeouts.Default);
            Assert.False(outcome.Complete, outcome.ToString());
            Assert.True(outcome.Error is null or IOException or OperationCanceledException, outcome.ToString());
            await response.Aborted.Task.WaitAsync(TestTimeouts.Default);
        }

        await AssertConnectionsReleasedAsync(tracker);
        await AssertServerServesAsync(server);
    }

    // The stall: a FlushAsync that did not complete synchronously and is still pending after other
    // clients have been served meanwhile. A pending flush that completes in the meantime was the
    // transport catching up (kernel buffers still filling): wait for the next one. Returns the
    // bytes flushed by then and how many pending flushes were checked.
    private static async Task<(long Flushed, int Checks)> WaitForStalledFlushAsync(TestServer server, StallingResponse response)
    {
        await response.Started.Task.WaitAsync(TestTimeouts.Default);
        int checks = 0;
        using var timeout = new CancellationTokenSource(TestTimeouts.Long);
        while (true)
        {
            StallingResponse.PendingFlush pending = await response.NextPendingFlushAsync(timeout.Token);
            if (response.CompletedFlushes != pending.CompletedBefore)
            {
                continue;
            }
            checks++;
            await AssertServesOnceAsync(server);
            if (response.CompletedFlushes == pending.CompletedBefore)
            {
                return (response.FlushedBytes, checks);
            }
        }
    }

    // The most response bytes the server holds above the kernel once a flush waits: Kestrel's
    // response buffer, the transport's output pipe (MegaPipe's or Sockets' MaxWriteBufferSize,
    // whichever is larger) and the chunk being written.
    private static long BufferedAboveTheKernel(TestServer server)
    {
        IServiceProvider services = server.App.Services;
        long kestrelBuffer = services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits.MaxResponseBufferSize ?? 0;
        long transportBuffer = Math.Max(
            services.GetRequiredService<IOptions<MegaPipeTransportOptions>>().Value.MaxWriteBufferSize,
            services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.MaxWriteBufferSize ?? 0);
        return kestrelBuffer + transportBuffer + StallingResponse.ChunkSize;
    }

    // The body bytes the client got are the start of the StallingResponse body.
    private static void AssertBodyPrefix(ReadOnlySpan<byte> body)
    {
        for (int chunk = 0; !body.IsEmpty; chunk++)
        {
            ReadOnlySpan<byte> expected = StallingResponse.Chunk(chunk).Span;
            int length = Math.Min(expected.Length, body.Length);
            Assert.True(body[..length].SequenceEqual(expected[..length]), $"Body chunk {chunk} differs.");
            body = body[length..];
        }
    }

    // A server whose endpoint counts its connections (the tracker), with the common endpoints.
    private Task<TestServer> StartHostileServerAsync(
        ConnectionTracker tracker,
        Action<WebApplication> configureApp,
        Action<KestrelServerOptions>? configureLimits = null,
        Action<ListenOptions>? configureListen = null)
        => StartServerAsync(
            app =>
            {
                CommonEndpoints.Map(app);
                configureApp(app);
            },
            kestrel =>
            {
                configureLimits?.Invoke(kestrel);
                kestrel.Listen(IPAddress.Loopback, 0, listen =>
                {
                    tracker.Attach(listen);
                    configureListen?.Invoke(listen);
                });
            });

    // Kestrel is done with every connection and the transport has closed them all (MegaPipe's own count).
    private async Task AssertConnectionsReleasedAsync(ConnectionTracker tracker)
    {
        await tracker.WaitUntilAsync(t => t.Active == 0, "Kestrel finished every connection");
        bool counted = await TransportConnectionCount.WaitForZeroAsync();
        if (Transport.IsMegaPipe())
        {
            Assert.True(counted, "The MegaPipe transport reports its connections.");
        }
    }

    // One request on a fresh connection.
    private static async Task AssertServesOnceAsync(TestServer server)
    {
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
        RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
        Assert.Equal(CommonEndpoints.Hello, response.BodyText);
    }
}
