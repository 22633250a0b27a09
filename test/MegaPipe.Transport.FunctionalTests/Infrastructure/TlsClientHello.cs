using System.Net.Security;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// A real TLS ClientHello, as SslStream sends it: captured by running a client handshake over a
/// stream that keeps what is written and answers every read with end of stream.
/// </summary>
internal static class TlsClientHello
{
    private static readonly Lazy<byte[]> s_bytes = new(Capture);

    public static byte[] Bytes => s_bytes.Value;

    private static byte[] Capture()
    {
        var capture = new CapturingStream();
        using var ssl = new SslStream(capture);
        try
        {
            ssl.AuthenticateAsClient(new SslClientAuthenticationOptions { TargetHost = "localhost" });
        }
        catch (IOException)
        {
            // The "server" closed without answering: expected, the ClientHello was written first.
        }
        byte[] hello = capture.Written.ToArray();
        // A TLS handshake record: content type 22, version 3.x.
        if (hello.Length < 6 || hello[0] != 0x16 || hello[1] != 0x03)
        {
            throw new InvalidOperationException("SslStream did not write a TLS handshake record.");
        }
        return hello;
    }

    private sealed class CapturingStream : Stream
    {
        public MemoryStream Written { get; } = new();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => 0;

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Written.Write(buffer, offset, count);
    }
}
