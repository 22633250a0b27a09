using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// The transport's one set of channels: every endpoint registers its accept queue in the same
/// ChannelCount channel threads, whatever the number of endpoints; unbinding one endpoint leaves
/// the others serving; the last listener stops the threads.
/// </summary>
public sealed class ChannelSetTests(ITestOutputHelper output)
{
    private const int Channels = 2;

    // On loopback the SYN is processed on the CPU of the thread that calls connect(), and each
    // endpoint's accept queues are steered by that CPU (mod ChannelCount): a client pinned to CPU n
    // is accepted by channel n mod 2 on every endpoint, and all its requests must be served there.
    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task LocalhostAndTwoMoreUrls_RunChannelCountThreads_AndServeEveryEndpointOnItsChannel(ChannelEngine engine)
    {
        int localhostPort = FreeLoopbackPort();
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app =>
            {
                // "<channel> <thread>": the connection's channel, and whether the request ran on its thread.
                app.MapGet("/where", (HttpContext context) =>
                {
                    IMegaPipeChannelFeature channel = context.Features.Get<IMegaPipeChannelFeature>()!;
                    string thread = channel.IsChannelThread ? Thread.CurrentThread.Name ?? "?" : "pool";
                    byte[] body = System.Text.Encoding.ASCII.GetBytes($"{channel.ChannelIndex}|{thread}");
                    context.Response.ContentLength = body.Length;
                    return context.Response.Body.WriteAsync(body).AsTask();
                });
            },
            kestrel =>
            {
                // localhost is two listeners (127.0.0.1 and [::1]): four endpoints in all.
                kestrel.ListenLocalhost(localhostPort);
                kestrel.Listen(IPAddress.Loopback, 0);
                kestrel.Listen(IPAddress.IPv6Loopback, 0);
            },
            options =>
            {
                options.ChannelCount = Channels;
                options.Engine = engine;
                // Application code runs on the channel thread that received the request whenever
                // Kestrel was waiting for it: the thread then names the channel serving the connection.
                options.UnsafeInlineScheduling = true;
            },
            output);

        MegaPipeTransportFactory factory = Factory(server);
        ChannelGroup group = factory.Group!;
        Assert.Equal(Channels, group.Count);
        Assert.Equal(4, server.Logs.Entries.Count(e => e.EventId.Name == "Listening"));
        Assert.Equal(3, server.Addresses.Count); // Kestrel reports localhost once.
        await WaitForChannelThreadsAsync(Channels);

        var endpoints = new List<IPEndPoint>
        {
            new(IPAddress.Loopback, localhostPort),
            new(IPAddress.IPv6Loopback, localhostPort),
        };
        endpoints.AddRange(server.Addresses.Where(a => !a.Contains("localhost", StringComparison.Ordinal)).Select(ParseEndPoint));
        Assert.Equal(4, endpoints.Count);

        int[] cpus = MegaPipeChannel.AllowedCpus();
        int inline = 0;
        foreach (IPEndPoint endpoint in endpoints)
        {
            foreach (int cpu in cpus.Take(4))
            {
                string[] answers = await RequestsFromCpuAsync(cpu, endpoint, requests: 8);
                foreach (string answer in answers)
                {
                    string[] parts = answer.Split('|');
                    Assert.True(parts[0] == (cpu % Channels).ToString(System.Globalization.CultureInfo.InvariantCulture),
                        $"{endpoint}: a client on CPU {cpu} was served by channel {parts[0]} (expected {cpu % Channels}); answers: {string.Join(", ", answers)}");
                    if (parts[1] != "pool")
                    {
                        inline++;
                        Assert.Equal(ChannelThread.ThreadNamePrefix + parts[0], parts[1]);
                    }
                }
            }
        }
        // Most requests after the first of each connection ran inline, on the thread checked above.
        Assert.True(inline > 0, "no request ran on a channel thread");

        // Still exactly the one set.
        Assert.Equal(Channels, CountChannelThreads());
        Assert.Same(group, factory.Group);
        server.AssertNoErrorsLogged();

        await server.DisposeAsync();
        Assert.Null(factory.Group);
        await WaitForChannelThreadsAsync(0);
    }

    // One keep-alive connection from a thread pinned to cpu; the bodies of its responses to /where.
    private static Task<string[]> RequestsFromCpuAsync(int cpu, IPEndPoint endpoint, int requests)
    {
        var result = new TaskCompletionSource<string[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                MegaPipeChannel.PinCurrentThread(cpu);
                using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = (int)TestTimeouts.Default.TotalMilliseconds };
                socket.Connect(endpoint);
                using var stream = new NetworkStream(socket);
                using var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
                var answers = new string[requests];
                byte[] request = System.Text.Encoding.ASCII.GetBytes(RawHttpConnection.Get("/where"));
                for (int i = 0; i < requests; i++)
                {
                    stream.Write(request);
                    int length = -1;
                    string? line;
                    while (!string.IsNullOrEmpty(line = reader.ReadLine()))
                    {
                        if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                        {
                            length = int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                        }
                    }
                    Assert.True(line is not null && length > 0, "the response ended early or has no Content-Length");
                    char[] body = new char[length];
                    reader.ReadBlock(body);
                    answers[i] = new string(body);
                }
                result.SetResult(answers);
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        }) { IsBackground = true, Name = $"client-cpu{cpu}" };
        thread.Start();
        return result.Task.WaitAsync(TestTimeouts.Long);
    }

    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task UnbindingOneEndpoint_UnderLoad_LosesNothingOnTheOthers(ChannelEngine engine)
    {
        var source = new MutableConfigurationSource(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:A:Url"] = "http://127.0.0.1:0",
            ["Kestrel:Endpoints:B:Url"] = "http://[::1]:0",
            ["Kestrel:Endpoints:C:Url"] = "http://127.0.0.1:0",
        });
        IConfigurationRoot configuration = new ConfigurationBuilder().Add(source).Build();
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Configure(configuration.GetSection("Kestrel"), reloadOnChange: true),
            options =>
            {
                options.ChannelCount = Channels;
                options.Engine = engine;
            },
            output);
        MegaPipeTransportFactory factory = Factory(server);
        ChannelGroup group = factory.Group!;
        IPEndPoint[] bound = server.Addresses.Select(ParseEndPoint).ToArray();
        Assert.Equal(3, bound.Length);
        IPEndPoint removed = bound.Single(e => e.AddressFamily == AddressFamily.InterNetwork && !IsEndpointA(server, e));
        IPEndPoint[] kept = bound.Where(e => !e.Equals(removed)).ToArray();

        // Load on the two endpoints that stay: keep-alive connections, and a new connection per request.
        using var stopLoad = new CancellationTokenSource();
        var failures = new ConcurrentQueue<string>();
        long served = 0;
        Task[] load = kept.SelectMany(endpoint => new[]
        {
            Task.Run(() => KeepAliveLoadAsync(endpoint, stopLoad.Token, failures, () => Interlocked.Increment(ref served))),
            Task.Run(() => KeepAliveLoadAsync(endpoint, stopLoad.Token, failures, () => Interlocked.Increment(ref served))),
            Task.Run(() => ShortConnectionLoadAsync(endpoint, stopLoad.Token, failures, () => Interlocked.Increment(ref served))),
        }).ToArray();
        await Poll.UntilAsync(() => Interlocked.Read(ref served) >= 200, "the load to get going", intervalMilliseconds: 20);

        // Remove endpoint C: Kestrel's configuration reload unbinds and disposes its listener.
        source.Provider.Replace(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:A:Url"] = "http://127.0.0.1:0",
            ["Kestrel:Endpoints:B:Url"] = "http://[::1]:0",
        });
        await Poll.UntilAsync(() => !Accepts(removed), $"{removed} to stop accepting", intervalMilliseconds: 20);

        // The others keep serving through it and after it, on the same channel set.
        long afterUnbind = Interlocked.Read(ref served);
        await Poll.UntilAsync(() => Interlocked.Read(ref served) >= afterUnbind + 200, "the load to go on after the unbind", intervalMilliseconds: 20);
        stopLoad.Cancel();
        await Task.WhenAll(load).WaitAsync(TestTimeouts.Long);
        Assert.True(failures.IsEmpty, $"{failures.Count} requests failed on the endpoints that stayed, e.g.: {string.Join(" | ", failures.Take(5))}");
        Assert.Same(group, factory.Group);
        await WaitForChannelThreadsAsync(Channels);
        foreach (IPEndPoint endpoint in kept)
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(endpoint);
            Assert.Equal(200, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).StatusCode);
        }
        server.AssertNoErrorsLogged();
    }

    // Kestrel names endpoint A first in its addresses; C is the other IPv4 one.
    private static bool IsEndpointA(TestServer server, IPEndPoint endpoint) => ParseEndPoint(server.Addresses[0]).Equals(endpoint);

    private static async Task KeepAliveLoadAsync(IPEndPoint endpoint, CancellationToken stop, ConcurrentQueue<string> failures, Action onServed)
    {
        try
        {
            using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(endpoint);
            while (!stop.IsCancellationRequested)
            {
                RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hello"));
                if (response.StatusCode != 200 || response.BodyText != CommonEndpoints.Hello)
                {
                    failures.Enqueue($"{endpoint}: {response.StatusCode} '{response.BodyText}'");
                    return;
                }
                onServed();
            }
        }
        catch (Exception e)
        {
            failures.Enqueue($"{endpoint} keep-alive: {e.GetType().Name}: {e.Message}");
        }
    }

    private static async Task ShortConnectionLoadAsync(IPEndPoint endpoint, CancellationToken stop, ConcurrentQueue<string> failures, Action onServed)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(endpoint);
                RawHttpResponse response = await connection.RequestAsync(RawHttpConnection.Get("/hello", "Connection: close\r\n"));
                if (response.StatusCode != 200 || response.BodyText != CommonEndpoints.Hello)
                {
                    failures.Enqueue($"{endpoint}: {response.StatusCode} '{response.BodyText}'");
                    return;
                }
                onServed();
            }
            catch (Exception e)
            {
                failures.Enqueue($"{endpoint} short: {e.GetType().Name}: {e.Message}");
                return;
            }
        }
    }

    private static bool Accepts(IPEndPoint endpoint)
    {
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(endpoint);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return false;
        }
    }

    private static MegaPipeTransportFactory Factory(TestServer server)
        => server.App.Services.GetServices<IConnectionListenerFactory>().OfType<MegaPipeTransportFactory>().Single();

    private static IPEndPoint ParseEndPoint(string address)
    {
        var uri = new Uri(address);
        return new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port);
    }

    // Kestrel refuses port 0 for localhost: take a port the kernel hands out for both loopbacks.
    private static int FreeLoopbackPort()
    {
        for (int attempt = 0; ; attempt++)
        {
            using var v4 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            v4.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            int port = ((IPEndPoint)v4.LocalEndPoint!).Port;
            using var v6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                v6.Bind(new IPEndPoint(IPAddress.IPv6Loopback, port));
                return port;
            }
            catch (SocketException) when (attempt < 20)
            {
            }
        }
    }

    // The process's threads named as channel threads (/proc/self/task/*/comm), whatever created them.
    private static int CountChannelThreads()
    {
        int count = 0;
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n').StartsWith(ChannelThread.ThreadNamePrefix, StringComparison.Ordinal))
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // The thread exited while we looked.
            }
        }
        return count;
    }

    // Channel threads of an earlier test's server end just after its Stop returns: wait for the count to settle.
    private static Task WaitForChannelThreadsAsync(int expected)
        => Poll.UntilAsync(() => CountChannelThreads() == expected, () => $"exactly {expected} channel threads (now {CountChannelThreads()})", intervalMilliseconds: 20);

    // A configuration source whose values a test replaces, raising the reload token as a changed file would.
    private sealed class MutableConfigurationSource(IDictionary<string, string?> initial) : IConfigurationSource
    {
        public MutableProvider Provider { get; } = new(initial);

        public IConfigurationProvider Build(IConfigurationBuilder builder) => Provider;

        public sealed class MutableProvider : ConfigurationProvider
        {
            public MutableProvider(IDictionary<string, string?> initial)
            {
                Data = new Dictionary<string, string?>(initial, StringComparer.OrdinalIgnoreCase);
            }

            public void Replace(IDictionary<string, string?> values)
            {
                Data = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);
                OnReload();
            }
        }
    }
}
