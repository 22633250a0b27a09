using System.Security.Authentication;
using MegaPipe.Tls.Internal;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// Ticket keys: created at start, rotated; the previous key still decrypts (and renews), older ones do not.
public sealed class SessionTicketKeyTests
{
    // Full handshake with a fresh client; returns the client's session holding the ticket it received.
    private static SafeSslSessionHandle FirstTicket(TlsServerContext server, TlsClientContext client)
    {
        using var pair = new InProcessPair(server, client);
        Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
        Assert.False(pair.Server.IsResumed);
        pair.ClientReadsPending();
        return pair.Client.GetClientSession();
    }

    private static bool Resumes(TlsServerContext server, TlsClientContext client, SafeSslSessionHandle ticket)
    {
        using var pair = new InProcessPair(server, client, resume: ticket);
        Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
        Assert.Equal(pair.Server.IsResumed, pair.Client.IsResumed);
        return pair.Server.IsResumed;
    }

    [Theory]
    [InlineData(SslProtocols.Tls13)]
    [InlineData(SslProtocols.Tls12)]
    public void TicketBeforeRotation_ResumesAfterOne_NotAfterTwo(SslProtocols protocol)
    {
        using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using var client = new TlsClientContext(protocol);
        using SafeSslSessionHandle ticket = FirstTicket(server, client);
        Assert.True(Resumes(server, client, ticket));
        server.RotateSessionTicketKeys();
        Assert.True(Resumes(server, client, ticket));
        server.RotateSessionTicketKeys();
        Assert.False(Resumes(server, client, ticket));
    }

    [Fact]
    public void RotationByInterval_FollowsTheClock()
    {
        var clock = new ManualTimeProvider();
        using var server = new TlsServerContext(new TlsServerOptions
        {
            ServerCertificate = TestCertificates.Ecdsa,
            SessionTicketKeyRotationInterval = TimeSpan.FromHours(1),
            TimeProvider = clock,
        });
        using var client = new TlsClientContext();
        using SafeSslSessionHandle ticket = FirstTicket(server, client);
        clock.Advance(TimeSpan.FromMinutes(59));
        Assert.True(Resumes(server, client, ticket));
        Assert.Equal(0, server.TicketKeys!.Rotations);
        clock.Advance(TimeSpan.FromMinutes(2)); // one rotation due: the ticket's key is now the previous one
        Assert.True(Resumes(server, client, ticket));
        Assert.Equal(1, server.TicketKeys.Rotations);
        clock.Advance(TimeSpan.FromHours(1)); // a second rotation: the ticket's key is gone
        Assert.False(Resumes(server, client, ticket));
        Assert.Equal(2, server.TicketKeys.Rotations);
    }

    [Fact]
    public void TicketWithPreviousKey_IsRenewedWithCurrentKey()
    {
        using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using var client = new TlsClientContext(SslProtocols.Tls13);
        using SafeSslSessionHandle old = FirstTicket(server, client);
        server.RotateSessionTicketKeys();
        SafeSslSessionHandle renewed;
        using (var pair = new InProcessPair(server, client, resume: old))
        {
            Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
            Assert.True(pair.Server.IsResumed);
            pair.ClientReadsPending();
            renewed = pair.Client.GetClientSession();
        }
        using (renewed)
        {
            server.RotateSessionTicketKeys();
            Assert.False(Resumes(server, client, old));
            Assert.True(Resumes(server, client, renewed));
        }
    }

    // TLS 1.3 clients use a ticket once: each resumption must leave them a new one, or every other connection of a
    // client that reconnects (wrk, browsers) is a full handshake.
    [Fact]
    public void Tls13Resumption_LeavesTheClientAFreshTicket()
    {
        using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using var client = new TlsClientContext(SslProtocols.Tls13);
        SafeSslSessionHandle ticket = FirstTicket(server, client);
        for (int i = 0; i < 3; i++)
        {
            using var pair = new InProcessPair(server, client, resume: ticket);
            Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
            Assert.True(pair.Server.IsResumed, $"resumption {i + 1} was a full handshake");
            pair.ClientReadsPending();
            SafeSslSessionHandle fresh = pair.Client.GetClientSession();
            // A NewSessionTicket after the resumption gives the client a new session; without one it keeps the spent one.
            Assert.NotEqual(ticket.DangerousGetHandle(), fresh.DangerousGetHandle());
            ticket.Dispose();
            ticket = fresh;
        }
        ticket.Dispose();
    }

    [Fact]
    public void TicketFromAnotherContext_DoesNotResume()
    {
        using var first = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using var second = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using var client = new TlsClientContext();
        using SafeSslSessionHandle ticket = FirstTicket(first, client);
        Assert.False(Resumes(second, client, ticket));
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    public void Tls13TicketCount_ZeroMeansNoResumption(int count, bool resumes)
    {
        using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa, Tls13SessionTicketCount = count });
        using var client = new TlsClientContext(SslProtocols.Tls13);
        using SafeSslSessionHandle ticket = FirstTicket(server, client);
        Assert.Equal(resumes, Resumes(server, client, ticket));
    }

    [Fact]
    public void Rotate_WithTicketsOff_IsRefused()
    {
        using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa, SessionTickets = false });
        Assert.Throws<InvalidOperationException>(server.RotateSessionTicketKeys);
    }
}
