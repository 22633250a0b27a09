// Microbenchmarks of the TLS engine, in process: a server TlsSession and the engine's own client side wired
// back to back in memory, one thread, no sockets. Server-side figures time only the server's calls (Feed,
// Handshake, TakeOutput, Decrypt/Encrypt), so they are the CPU a channel thread spends per handshake or record.
// Usage: dotnet run -c Release --project perf/MegaPipe.Tls.Benchmarks [-- --quick]
using System.Diagnostics;
using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MegaPipe.Tls;
using MegaPipe.Tls.Internal;

bool quick = args.Contains("--quick");
if (args.Contains("--profile-handshakes"))
{
    // A long loop of one kind of handshake, for `perf record`.
    using X509Certificate2 certificate = CreateCertificate(ecdsa: !args.Contains("--rsa"));
    using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = certificate, SessionTickets = !args.Contains("--no-tickets") });
    using var client = new TlsClientContext(args.Contains("--tls12") ? SslProtocols.Tls12 : SslProtocols.Tls13);
    int batches = args.Contains("--longer") ? 160 : args.Contains("--long") ? 40 : 1;
    int index = Array.IndexOf(args, "--count");
    int perBatch = index >= 0 ? int.Parse(args[index + 1], System.Globalization.CultureInfo.InvariantCulture) : 2_000;
    for (int batch = 0; batch < batches; batch++)
    {
        (double s, double t) = Handshakes(server, client, perBatch, resume: args.Contains("--resume"));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Console.WriteLine($"server {s:F1} µs, total {t:F1} µs, RSS {Rss() / 1048576.0:F1} MiB, managed heap {GC.GetGCMemoryInfo().HeapSizeBytes / 1048576.0:F1} MiB, committed {GC.GetGCMemoryInfo().TotalCommittedBytes / 1048576.0:F1} MiB");
    }
    return 0;
}
int handshakes = quick ? 300 : 2000;

using X509Certificate2 rsa = CreateCertificate(ecdsa: false);
using X509Certificate2 ecdsa = CreateCertificate(ecdsa: true);
if (args.Contains("--profile-records"))
{
    // A long loop of small records, for `perf record`.
    using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = ecdsa });
    using var client = new TlsClientContext(SslProtocols.Tls13);
    (double encrypt, double decrypt) = Records(server, client, 64, 2_000_000);
    Console.WriteLine($"64-byte record: encrypt {encrypt:F2} µs, feed + decrypt {decrypt:F2} µs");
    return 0;
}
if (args.Contains("--memory"))
{
    // One measurement per process: memory freed by an earlier one would be reused and hide the growth.
    IdleMemory(ecdsa, 2000, trim: args.Contains("--trim"));
    return 0;
}

Console.WriteLine($"MegaPipe.Tls microbenchmarks: OpenSSL {OpenSslVersion()}, .NET {Environment.Version}, {Environment.ProcessorCount} CPUs, {handshakes} handshakes per row");
Console.WriteLine();
Console.WriteLine("| what | server µs/op | client+server µs/op |");
Console.WriteLine("|---|---|---|");

// The floor of a full RSA handshake: one RSA-2048 PKCS#1 signature, through the same libcrypto.
using (RSA key = rsa.GetRSAPrivateKey()!)
{
    byte[] hash = SHA256.HashData("x"u8);
    double sign = Measure(handshakes, () => key.SignHash(hash, HashAlgorithmName.SHA256, RSASignaturePadding.Pss));
    Console.WriteLine($"| RSA-2048 PSS signature alone (.NET RSA over the same libcrypto) | {sign:F1} | |");
}
using (ECDsa key = ecdsa.GetECDsaPrivateKey()!)
{
    byte[] hash = SHA256.HashData("x"u8);
    double sign = Measure(handshakes, () => key.SignHash(hash));
    Console.WriteLine($"| ECDSA P-256 signature alone | {sign:F1} | |");
}

foreach ((string name, X509Certificate2 certificate, SslProtocols protocol) in new[]
{
    ("full handshake, TLS 1.3, RSA-2048", rsa, SslProtocols.Tls13),
    ("full handshake, TLS 1.2, RSA-2048", rsa, SslProtocols.Tls12),
    ("full handshake, TLS 1.3, ECDSA P-256", ecdsa, SslProtocols.Tls13),
    ("full handshake, TLS 1.2, ECDSA P-256", ecdsa, SslProtocols.Tls12),
})
{
    using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = certificate });
    using var client = new TlsClientContext(protocol);
    (double serverUs, double totalUs) = Handshakes(server, client, handshakes, resume: false);
    Console.WriteLine($"| {name} | {serverUs:F1} | {totalUs:F1} |");
}

foreach (SslProtocols protocol in new[] { SslProtocols.Tls13, SslProtocols.Tls12 })
{
    using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = rsa });
    using var client = new TlsClientContext(protocol);
    (double serverUs, double totalUs) = Handshakes(server, client, handshakes, resume: true);
    Console.WriteLine($"| resumed handshake (ticket), {(protocol == SslProtocols.Tls13 ? "TLS 1.3" : "TLS 1.2")}, RSA-2048 certificate | {serverUs:F1} | {totalUs:F1} |");
}

using (var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = rsa }))
{
    int count = quick ? 20_000 : 200_000;
    double create = Measure(count, () => server.CreateSession().Dispose());
    Console.WriteLine($"| CreateSession + Dispose (SSL_new, 2 x BIO_new, SSL_set_bio, ex_data GCHandle, SSL_free) | {create:F2} | |");
    using var client = new TlsClientContext(SslProtocols.Tls13);
    foreach (int size in new[] { 64, 1024, 16 * 1024 })
    {
        (double encrypt, double decrypt) = Records(server, client, size, quick ? 20_000 : 100_000);
        Console.WriteLine($"| {size}-byte record, TLS 1.3 AES-128-GCM: Encrypt into caller buffer | {encrypt:F2} | |");
        Console.WriteLine($"| {size}-byte record, TLS 1.3 AES-128-GCM: Feed + Decrypt into caller span | {decrypt:F2} | |");
    }
}

Console.WriteLine();
Console.WriteLine("Idle memory: run with --memory and with --memory --trim (one measurement per process).");
return 0;

static double Measure(int count, Action action)
{
    for (int i = 0; i < Math.Min(count / 10 + 1, 200); i++)
    {
        action();
    }
    long start = Stopwatch.GetTimestamp();
    for (int i = 0; i < count; i++)
    {
        action();
    }
    return Stopwatch.GetElapsedTime(start).TotalMicroseconds / count;
}

static (double Server, double Total) Handshakes(TlsServerContext server, TlsClientContext client, int count, bool resume)
{
    byte[] buffer = new byte[64 * 1024];
    SafeSslSessionHandle? ticket = null;
    if (resume)
    {
        ticket = OneHandshake(server, client, buffer, null, out _, wantTicket: true);
    }
    for (int i = 0; i < 50; i++)
    {
        OneHandshake(server, client, buffer, ticket, out _, wantTicket: false)?.Dispose();
    }
    long serverTicks = 0;
    long start = Stopwatch.GetTimestamp();
    for (int i = 0; i < count; i++)
    {
        OneHandshake(server, client, buffer, ticket, out long ticks, wantTicket: false)?.Dispose();
        serverTicks += ticks;
    }
    double total = Stopwatch.GetElapsedTime(start).TotalMicroseconds / count;
    ticket?.Dispose();
    return (serverTicks * 1_000_000.0 / Stopwatch.Frequency / count, total);
}

// One handshake; serverTicks counts only the server session's calls (creation and disposal included).
static SafeSslSessionHandle? OneHandshake(TlsServerContext serverContext, TlsClientContext clientContext, byte[] buffer, SafeSslSessionHandle? resume, out long serverTicks, bool wantTicket)
{
    long t0 = Stopwatch.GetTimestamp();
    TlsSession server = serverContext.CreateSession();
    serverTicks = Stopwatch.GetTimestamp() - t0;
    TlsSession client = clientContext.CreateSession(null, resume);
    try
    {
        bool serverDone = false;
        for (int round = 0; round < 10 && !serverDone; round++)
        {
            client.Handshake();
            int n;
            while ((n = client.TakeOutput(buffer)) > 0)
            {
                t0 = Stopwatch.GetTimestamp();
                server.Feed(buffer.AsSpan(0, n));
                serverTicks += Stopwatch.GetTimestamp() - t0;
            }
            t0 = Stopwatch.GetTimestamp();
            TlsHandshakeStatus status = server.Handshake();
            n = server.TakeOutput(buffer);
            serverTicks += Stopwatch.GetTimestamp() - t0;
            if (status == TlsHandshakeStatus.Failed)
            {
                throw new InvalidOperationException(server.FailureReason);
            }
            serverDone = status == TlsHandshakeStatus.Completed;
            while (n > 0)
            {
                client.Feed(buffer.AsSpan(0, n));
                t0 = Stopwatch.GetTimestamp();
                n = server.TakeOutput(buffer);
                serverTicks += Stopwatch.GetTimestamp() - t0;
            }
        }
        if (client.Handshake() != TlsHandshakeStatus.Completed || (resume is not null && !server.IsResumed))
        {
            throw new InvalidOperationException("handshake did not complete as expected: " + client.FailureReason);
        }
        if (!wantTicket)
        {
            return null;
        }
        Span<byte> sink = stackalloc byte[64];
        client.Decrypt(sink, out _);
        return client.GetClientSession();
    }
    finally
    {
        client.Shutdown();
        client.Dispose();
        t0 = Stopwatch.GetTimestamp();
        server.Dispose();
        serverTicks += Stopwatch.GetTimestamp() - t0;
    }
}

static (double Encrypt, double Decrypt) Records(TlsServerContext serverContext, TlsClientContext clientContext, int size, int count)
{
    byte[] buffer = new byte[64 * 1024];
    using TlsSession server = serverContext.CreateSession();
    using TlsSession client = clientContext.CreateSession();
    for (int round = 0; round < 10; round++)
    {
        client.Handshake();
        for (int n; (n = client.TakeOutput(buffer)) > 0;)
        {
            server.Feed(buffer.AsSpan(0, n));
        }
        server.Handshake();
        for (int n; (n = server.TakeOutput(buffer)) > 0;)
        {
            client.Feed(buffer.AsSpan(0, n));
        }
    }
    byte[] plaintext = RandomNumberGenerator.GetBytes(size);
    byte[] record = new byte[TlsSession.RecommendedOutputBufferSize];
    byte[] decrypted = new byte[TlsSession.MaxRecordPlaintext];
    // Client tickets and the like out of the way.
    client.Decrypt(decrypted, out _);
    double encrypt = Measure(count, () => server.Encrypt(plaintext, record, out _, out _));
    // Records can be decrypted once each (sequence numbers), so the client makes batches ahead, untimed.
    const int Batch = 256;
    byte[][] records = new byte[Batch][];
    long ticks = 0;
    int done = 0;
    while (done < count)
    {
        for (int i = 0; i < Batch; i++)
        {
            client.Encrypt(plaintext, record, out _, out int recordLength);
            records[i] = record.AsSpan(0, recordLength).ToArray();
        }
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < Batch; i++)
        {
            server.Feed(records[i]);
            if (server.Decrypt(decrypted, out int n) == TlsReadStatus.Failed || n != size)
            {
                throw new InvalidOperationException("decrypt failed: " + server.FailureReason);
            }
        }
        ticks += Stopwatch.GetTimestamp() - start;
        done += Batch;
    }
    return (encrypt, ticks * 1_000_000.0 / Stopwatch.Frequency / done);
}

// Memory of established, idle server sessions: each gets a full handshake and one 16 KiB record each way from a
// client that is then disposed, so the growth measured is the servers' (the SSL, its two memory BIOs, the session).
static void IdleMemory(X509Certificate2 certificate, int count, bool trim)
{
    using var serverContext = new TlsServerContext(new TlsServerOptions { ServerCertificate = certificate });
    using var clientContext = new TlsClientContext(SslProtocols.Tls13);
    byte[] buffer = new byte[64 * 1024];
    byte[] payload = RandomNumberGenerator.GetBytes(16 * 1024);
    var servers = new List<TlsSession>(count);
    Establish(); // warm up the allocator and the JIT
    servers[0].Dispose();
    servers.Clear();
    GC.Collect();
    GC.WaitForPendingFinalizers();
    long managedBefore = GC.GetTotalMemory(true);
    long rssBefore = Rss();
    for (int i = 0; i < count; i++)
    {
        Establish();
    }
    GC.Collect();
    GC.WaitForPendingFinalizers();
    long managed = GC.GetTotalMemory(true) - managedBefore;
    long rss = Rss() - rssBefore;
    Console.WriteLine($"Idle established server sessions ({count}, TLS 1.3, after one 16 KiB record each way{(trim ? ", then TrimBuffers" : "")}): managed {managed / (double)count:F0} B/session, process RSS {rss / (double)count / 1024:F1} KiB/session");
    foreach (TlsSession s in servers)
    {
        s.Dispose();
    }

    void Establish()
    {
        TlsSession server = serverContext.CreateSession();
        using TlsSession client = clientContext.CreateSession();
        for (int round = 0; round < 10; round++)
        {
            client.Handshake();
            for (int n; (n = client.TakeOutput(buffer)) > 0;)
            {
                server.Feed(buffer.AsSpan(0, n));
            }
            server.Handshake();
            for (int n; (n = server.TakeOutput(buffer)) > 0;)
            {
                client.Feed(buffer.AsSpan(0, n));
            }
        }
        client.Encrypt(payload, buffer, out _, out int written);
        server.Feed(buffer.AsSpan(0, written));
        while (server.Decrypt(buffer, out _) == TlsReadStatus.DestinationFull)
        {
        }
        server.Encrypt(payload, buffer, out _, out _);
        if (trim)
        {
            server.TrimBuffers();
        }
        servers.Add(server);
    }
}

static long Rss()
{
    string[] statm = File.ReadAllText("/proc/self/statm").Split(' ');
    return long.Parse(statm[1]) * Environment.SystemPageSize;
}

static string OpenSslVersion()
{
    var start = new ProcessStartInfo("openssl", "version") { RedirectStandardOutput = true };
    try
    {
        using Process p = Process.Start(start)!;
        return p.StandardOutput.ReadToEnd().Trim();
    }
    catch (System.ComponentModel.Win32Exception)
    {
        return "(openssl CLI not found)";
    }
}

static X509Certificate2 CreateCertificate(bool ecdsa)
{
    using AsymmetricAlgorithm key = ecdsa ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
    CertificateRequest request = key is RSA r
        ? new CertificateRequest("CN=localhost", r, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
        : new CertificateRequest("CN=localhost", (ECDsa)key, HashAlgorithmName.SHA256);
    var names = new SubjectAlternativeNameBuilder();
    names.AddDnsName("localhost");
    names.AddIpAddress(IPAddress.Loopback);
    request.CertificateExtensions.Add(names.Build());
    DateTimeOffset now = DateTimeOffset.UtcNow;
    using X509Certificate2 ephemeral = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
    return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
}
