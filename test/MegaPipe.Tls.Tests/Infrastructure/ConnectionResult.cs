using System.Security.Authentication;

namespace MegaPipe.Tls.Tests.Infrastructure;

// How the harness saw one connection end.
internal enum ConnectionEnd
{
    None,
    CloseNotify,
    WithoutCloseNotify,
    Failed,
}

// What the harness server recorded about one connection, read after it ended.
internal sealed class ConnectionResult
{
    public TlsHandshakeStatus Handshake { get; set; } = TlsHandshakeStatus.NeedMoreInput;
    public string? FailureReason { get; set; }
    public ConnectionEnd End { get; set; }
    public SslProtocols Protocol { get; set; }
    public string? CipherSuiteName { get; set; }
    public System.Net.Security.TlsCipherSuite? CipherSuite { get; set; }
    public string? HostName { get; set; }
    public string ApplicationProtocol { get; set; } = "";
    public bool IsResumed { get; set; }
    public string? ClientCertificateSubject { get; set; }
    public long BytesEchoed { get; set; }
    public bool ErrorQueueEmptyAfterEnd { get; set; }

    public override string ToString()
        => $"handshake {Handshake}, end {End}, {Protocol} {CipherSuiteName}, host {HostName}, alpn '{ApplicationProtocol}', resumed {IsResumed}, client cert {ClientCertificateSubject}, echoed {BytesEchoed}, failure: {FailureReason}";
}
