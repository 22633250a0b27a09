using System.Net;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

// Real TLS clients as processes: curl, openssl s_client, h2load and Python's ssl module. None verifies the
// self-signed certificate (the tests check it themselves where it matters).
internal static class TlsClients
{
    // Usage: client.py PORT MODE [VERSION]
    //   resume: two connections, each GET /bytes/16 on keep-alive; the second offers the first one's session;
    //           prints "reused <bool> <version>" for each.
    //   close:  GET /hello with Connection: close, then read to the end with ragged EOFs reported:
    //           "clean <first line>" after close_notify, "ragged <first line>" without.
    private const string PythonScript = """
        import socket, ssl, sys
        port, mode = int(sys.argv[1]), sys.argv[2]
        version = sys.argv[3] if len(sys.argv) > 3 else "1.3"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = v
        ctx.maximum_version = v
        ctx.set_alpn_protocols(["http/1.1"])

        def connect(session):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            return ctx.wrap_socket(s, server_hostname="localhost", session=session, suppress_ragged_eofs=False)

        def response(t):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = t.recv(4096)
                if not chunk:
                    raise Exception("closed before the response headers: %r" % data)
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
            while len(body) < length:
                body += t.recv(4096)
            return head.split(b"\r\n")[0].decode(), body

        if mode == "resume":
            session = None
            for i in range(2):
                t = connect(session)
                t.sendall(b"GET /bytes/16 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                status, body = response(t)
                assert status == "HTTP/1.1 200 OK", status
                print("reused", t.session_reused, t.version(), flush=True)
                session = t.session
                t.close()
        elif mode == "close":
            t = connect(None)
            t.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = t.recv(4096)
                    if not chunk:
                        print("clean", data.split(b"\r\n")[0].decode(), flush=True)
                        break
                    data += chunk
            except ssl.SSLEOFError:
                print("ragged", data.split(b"\r\n")[0].decode(), flush=True)
            t.close()
        """;

    private static readonly Lazy<string> s_pythonPath = new(() =>
    {
        string path = Path.Combine(TestCertificates.Directory, "https-client.py");
        File.WriteAllText(path, PythonScript.Replace("\r\n", "\n"));
        return path;
    });

    public static Task<ClientProcess> PythonAsync(IPEndPoint server, string mode, string version = "1.3")
        => ClientProcess.RunAsync("python3", s_pythonPath.Value, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), mode, version);

    /// <summary>curl to <paramref name="path"/>; the last output line is the HTTP version curl used.</summary>
    public static Task<ClientProcess> CurlAsync(IPEndPoint server, string path, params string[] extra)
        => ClientProcess.RunAsync("curl", ["-sS", "-k", "--max-time", "60", "-w", "\n%{http_version}\n", .. extra, $"https://127.0.0.1:{server.Port}{path}"]);

    /// <summary>h2load over TLS (ALPN h2) to <paramref name="path"/>.</summary>
    public static Task<ClientProcess> H2LoadAsync(IPEndPoint server, string path, int requests, int clients, int streams)
        => ClientProcess.RunAsync("h2load", "-n", requests.ToString(System.Globalization.CultureInfo.InvariantCulture), "-c", clients.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-m", streams.ToString(System.Globalization.CultureInfo.InvariantCulture), $"https://127.0.0.1:{server.Port}{path}");

    /// <summary>openssl s_client, left running with its stdin open (the caller drives it).</summary>
    public static ClientProcess OpenSsl(IPEndPoint server, params string[] extra)
        => new("openssl", ["s_client", "-connect", $"127.0.0.1:{server.Port}", .. extra]);

    /// <summary>openssl s_client that handshakes and quits at once (stdin closed); returns it once it exited.</summary>
    public static Task<ClientProcess> OpenSslOnceAsync(IPEndPoint server, params string[] extra)
        => ClientProcess.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{server.Port}", .. extra]);
}
