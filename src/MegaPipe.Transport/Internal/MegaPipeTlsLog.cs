// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// Source-generated log messages of HTTPS on the channels, with fixed event ids (101 and up, apart from MegaPipeLog's).
// Reasons that carry peer-controlled text (an SNI name, a certificate subject) were escaped by the TLS engine.
internal static partial class MegaPipeTlsLog
{
    [LoggerMessage(101, LogLevel.Information, "HTTPS on {EndPoint} is served by Kestrel's SslStream, not on the MegaPipe channels: {Reason}", EventName = "HttpsFallback")]
    public static partial void HttpsFallback(ILogger logger, string endPoint, string reason);

    [LoggerMessage(102, LogLevel.Warning, "MegaPipe TLS is unavailable, so HTTPS endpoints fall back to Kestrel's SslStream: {Reason}", EventName = "TlsLibraryUnavailable")]
    public static partial void TlsLibraryUnavailable(ILogger logger, string reason);

    [LoggerMessage(103, LogLevel.Debug, @"Connection id ""{ConnectionId}"": TLS handshake failed: {Reason}", EventName = "TlsHandshakeFailed")]
    public static partial void HandshakeFailed(ILogger logger, string connectionId, string reason);

    [LoggerMessage(104, LogLevel.Debug, @"Connection id ""{ConnectionId}"": the TLS handshake did not complete within {Timeout}; closing.", EventName = "TlsHandshakeTimedOut")]
    public static partial void HandshakeTimedOut(ILogger logger, string connectionId, TimeSpan timeout);

    [LoggerMessage(105, LogLevel.Debug, @"Connection id ""{ConnectionId}"" established using {Protocol} {CipherSuite} ({Handshake}).", EventName = "TlsConnectionEstablished")]
    public static partial void Established(ILogger logger, string connectionId, SslProtocols protocol, string? cipherSuite, string handshake);

    [LoggerMessage(106, LogLevel.Debug, @"Connection id ""{ConnectionId}"": TLS record processing failed, aborting the connection: {Reason}", EventName = "TlsRecordFailed")]
    public static partial void RecordFailed(ILogger logger, string connectionId, string reason);

    [LoggerMessage(107, LogLevel.Information, "HTTPS on {EndPoint} is terminated on the MegaPipe channels: {Protocols}, {Certificate}, handshake timeout {Timeout}.", EventName = "HttpsOnChannels")]
    public static partial void HttpsOnChannels(ILogger logger, EndPoint endPoint, string protocols, string certificate, TimeSpan timeout);

    [LoggerMessage(108, LogLevel.Information, "Configuration endpoint '{Name}' keeps Kestrel's SslStream: {Reason}", EventName = "HttpsConfigurationEndpointSkipped")]
    public static partial void ConfigurationEndpointSkipped(ILogger logger, string name, string reason);

    [LoggerMessage(109, LogLevel.Warning, "MegaPipe:TlsForConfiguredEndpoints is on, but configuration endpoints cannot be put on the channels: {Reason}. They keep Kestrel's SslStream.", EventName = "HttpsConfigurationUnavailable")]
    public static partial void ConfigurationUnavailable(ILogger logger, string reason);

    [LoggerMessage(110, LogLevel.Warning, "HTTPS on {EndPoint}: client certificates are checked for revocation online (CheckCertificateRevocation), on the channel thread: a slow CRL or OCSP server stalls every connection of that channel while it answers.", EventName = "TlsOnlineRevocation")]
    public static partial void OnlineRevocation(ILogger logger, EndPoint endPoint);

    [LoggerMessage(111, LogLevel.Debug, "Configuration endpoint '{Name}' serves HTTPS on the MegaPipe channels.", EventName = "HttpsConfigurationEndpoint")]
    public static partial void ConfigurationEndpoint(ILogger logger, string name);
}
