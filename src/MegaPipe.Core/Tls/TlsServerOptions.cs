// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MegaPipe.Tls;

/// <summary>
/// What a <see cref="TlsServerContext"/> is built from: the server's certificates, client certificate
/// policy, protocols, ALPN and session resumption. Mirrors what Kestrel's <c>HttpsConnectionAdapterOptions</c>
/// offers. The context copies these values when it is created; later changes do not affect it.
/// </summary>
public sealed partial class TlsServerOptions
{
    /// <summary>The server certificate, with its private key (RSA or ECDSA).</summary>
    /// <remarks>Defaults to <see langword="null"/>. Either this or <see cref="ServerCertificateSelector"/> is required.</remarks>
    public X509Certificate2? ServerCertificate { get; set; }

    /// <summary>
    /// The private key of <see cref="ServerCertificate"/> when the certificate does not carry one (for example when
    /// loaded from separate PEM files by <see cref="UsePemFiles"/>). RSA or ECDSA. Checked against the certificate
    /// when the context is created.
    /// </summary>
    /// <remarks>Defaults to <see langword="null"/>: the certificate's own private key is used.</remarks>
    public AsymmetricAlgorithm? ServerPrivateKey { get; set; }

    /// <summary>Intermediate certificates sent after <see cref="ServerCertificate"/>, leaf-most first.</summary>
    /// <remarks>Defaults to <see langword="null"/> (only the leaf is sent).</remarks>
    public X509Certificate2Collection? ServerCertificateChain { get; set; }

    /// <summary>
    /// Chooses the server certificate by the client's SNI host name (<see langword="null"/> when the client sent none).
    /// The first argument is the session's <see cref="TlsSession.State"/> (the transport sets it to the connection, as
    /// Kestrel passes its <c>ConnectionContext</c>). Called on the channel thread during the handshake, so it must be
    /// fast and must not block. A native context is
    /// built once per distinct certificate (by SHA-256; returning the same instances also skips the hashing) and
    /// cached, at most 1,024 of them; returning <see langword="null"/> falls back to
    /// <see cref="ServerCertificate"/>, or fails the handshake (alert unrecognized_name) when there is none.
    /// </summary>
    /// <remarks>Defaults to <see langword="null"/>.</remarks>
    public Func<object?, string?, X509Certificate2?>? ServerCertificateSelector { get; set; }

    /// <summary>Whether the client is asked for a certificate.</summary>
    /// <remarks>Defaults to <see cref="TlsClientCertificateMode.NoCertificate"/>.</remarks>
    public TlsClientCertificateMode ClientCertificateMode { get; set; } = TlsClientCertificateMode.NoCertificate;

    /// <summary>
    /// Decides whether a client certificate is accepted, given the chain .NET built for it and the policy errors found.
    /// The chain is valid only during the call. Runs on the channel thread during the handshake; it must not block and
    /// should not throw (an exception rejects the certificate, with the exception's message as the failure reason).
    /// </summary>
    /// <remarks>Defaults to <see langword="null"/>: a certificate is accepted only when it has no policy errors.</remarks>
    public Func<X509Certificate2, X509Chain?, SslPolicyErrors, bool>? ClientCertificateValidation { get; set; }

    /// <summary>
    /// How the client certificate's revocation is checked. <see cref="X509RevocationMode.Online"/> may fetch a CRL or
    /// OCSP response over the network on the channel thread, stalling every connection of that channel meanwhile.
    /// </summary>
    /// <remarks>Defaults to <see cref="X509RevocationMode.NoCheck"/>.</remarks>
    public X509RevocationMode ClientCertificateRevocationMode { get; set; } = X509RevocationMode.NoCheck;

    /// <summary>
    /// The protocol versions allowed: <see cref="SslProtocols.Tls12"/>, <see cref="SslProtocols.Tls13"/> or both.
    /// Anything older is refused with an <see cref="ArgumentException"/> when the context is created.
    /// </summary>
    /// <remarks>Defaults to <see cref="SslProtocols.None"/>, which means TLS 1.2 and TLS 1.3.</remarks>
    public SslProtocols SslProtocols { get; set; } = SslProtocols.None;

    /// <summary>
    /// The ALPN protocols the server accepts, most preferred first (the server's order wins, as in Kestrel).
    /// A client that offers ALPN but none of these fails the handshake with alert no_application_protocol (RFC 7301).
    /// </summary>
    /// <remarks>Defaults to an empty list: ALPN is not negotiated.</remarks>
    public IList<SslApplicationProtocol> ApplicationProtocols { get; set; } = new List<SslApplicationProtocol>();

    /// <summary>
    /// Whether sessions can be resumed with stateless session tickets (TLS 1.3 tickets and TLS 1.2 RFC 5077 tickets),
    /// encrypted with keys created at start and rotated every <see cref="SessionTicketKeyRotationInterval"/>.
    /// When off, no tickets are issued and sessions are not resumed.
    /// </summary>
    /// <remarks>Defaults to <see langword="true"/>.</remarks>
    public bool SessionTickets { get; set; } = true;

    /// <summary>
    /// How many TLS 1.3 session tickets the server sends after a full handshake (one after a resumption). A client
    /// that opens parallel connections uses one ticket per connection; each ticket costs the server about 18 µs of
    /// CPU per handshake here (perf/MegaPipe.Tls.Benchmarks). Ignored when <see cref="SessionTickets"/> is off.
    /// </summary>
    /// <remarks>Defaults to 2, as OpenSSL and nginx. Must be between 0 and 16.</remarks>
    public int Tls13SessionTicketCount { get; set; } = 2;

    /// <summary>
    /// How often a new ticket key is made current. A ticket made with the previous key is still accepted (and replaced
    /// by a fresh one); one made two rotations ago is not, so a ticket lives between one and two intervals.
    /// </summary>
    /// <remarks>Defaults to 12 hours. Must be positive.</remarks>
    public TimeSpan SessionTicketKeyRotationInterval { get; set; } = TimeSpan.FromHours(12);

    /// <summary>The clock that times ticket key rotation.</summary>
    /// <remarks>Defaults to <see cref="TimeProvider.System"/>.</remarks>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
