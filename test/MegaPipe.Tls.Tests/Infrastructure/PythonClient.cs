namespace MegaPipe.Tls.Tests.Infrastructure;

// Python's ssl module as a client: the script below is written to a temp file and run with python3.
internal static class PythonClient
{
    // Usage: client.py PORT VERSION(1.2|1.3) MODE
    //   resume: connect, echo, keep the session; connect again offering it; print "reused <bool>" for each.
    //   bye:    send "bye\n" and read to the end with ragged EOFs reported: "clean" after close_notify, "ragged" without.
    //   step:   like resume, but waits for a line on stdin before each further connection (the test rotates keys between).
    private const string Script = """
        import socket, ssl, sys
        port, version, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = v
        ctx.maximum_version = v

        def connect(session):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            return ctx.wrap_socket(s, server_hostname="localhost", session=session, suppress_ragged_eofs=False)

        def echo(t, line):
            t.sendall(line)
            data = b""
            while not data.endswith(b"\n"):
                chunk = t.recv(4096)
                if not chunk:
                    raise Exception("closed before the echo")
                data += chunk
            assert data == line, data

        if mode in ("resume", "step"):
            session = None
            for i in range(3 if mode == "step" else 2):
                if mode == "step" and i > 0:
                    sys.stdin.readline()
                t = connect(session)
                echo(t, b"ping %d\n" % i)
                print("reused", t.session_reused, t.version(), flush=True)
                # The ticket of the first connection is the one offered every time: it is what rotation must age.
                if session is None or mode == "resume":
                    session = t.session
                t.close()
        elif mode == "bye":
            t = connect(None)
            t.sendall(b"bye\n")
            data = b""
            try:
                while True:
                    chunk = t.recv(4096)
                    if not chunk:
                        print("clean", data, flush=True)
                        break
                    data += chunk
            except ssl.SSLEOFError:
                print("ragged", data, flush=True)
            t.close()
        """;

    private static readonly Lazy<string> s_path = new(() =>
    {
        string path = Path.Combine(TestCertificates.Directory, "client.py");
        File.WriteAllText(path, Script.Replace("\r\n", "\n"));
        return path;
    });

    public static ClientProcess Start(int port, string version, string mode) => new("python3", [s_path.Value, port.ToString(), version, mode]);
}
