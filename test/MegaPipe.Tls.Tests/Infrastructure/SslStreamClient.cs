using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace MegaPipe.Tls.Tests.Infrastructure;

// A .NET SslStream client over a real loopback socket. Accepts the test server's self-signed certificate only.
internal sealed class SslStreamClient : IAsyncDisposable
{
    private SslStreamClient(Socket socket, SslStream stream)
    {
        Socket = socket;
        Stream = stream;
    }

    public Socket Socket { get; }

    public SslStream Stream { get; }

    public static async Task<SslStreamClient> ConnectAsync(int port, SslProtocols protocols = SslProtocols.None, X509Certificate2? clientCertificate = null, string targetHost = "localhost", List<SslApplicationProtocol>? applicationProtocols = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = new CancellationTokenSource(TestTimeouts.Long);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true));
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = targetHost,
            EnabledSslProtocols = protocols,
            ApplicationProtocols = applicationProtocols,
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
            ClientCertificates = clientCertificate is null ? null : new X509CertificateCollection { clientCertificate },
            LocalCertificateSelectionCallback = clientCertificate is null ? null : (_, _, _, _, _) => clientCertificate,
        };
        await stream.AuthenticateAsClientAsync(options, timeout.Token);
        return new SslStreamClient(socket, stream);
    }

    /// <summary>Writes <paramref name="data"/> and reads the same number of bytes back; returns them.</summary>
    public async Task<byte[]> EchoAsync(byte[] data)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Long);
        await Stream.WriteAsync(data, timeout.Token);
        byte[] echoed = new byte[data.Length];
        await Stream.ReadExactlyAsync(echoed, timeout.Token);
        Assert.Equal(data, echoed);
        return echoed;
    }

    public async ValueTask DisposeAsync() => await Stream.DisposeAsync();
}
