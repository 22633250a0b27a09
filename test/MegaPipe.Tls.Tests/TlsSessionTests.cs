using System.Buffers;
using System.Security.Authentication;
using System.Security.Cryptography;
using MegaPipe.Tls.Internal;
using MegaPipe.Tls.Tests.Infrastructure;

namespace MegaPipe.Tls.Tests;

// The session's record and buffer contract, driven in memory against the engine's own client side.
public sealed class TlsSessionTests : IDisposable
{
    private readonly TlsServerContext _server = new(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
    private readonly TlsClientContext _client = new();

    public void Dispose()
    {
        _server.Dispose();
        _client.Dispose();
    }

    private InProcessPair Established(TlsClientContext? client = null)
    {
        var pair = new InProcessPair(_server, client ?? _client);
        Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
        return pair;
    }

    // Encrypts everything into one buffer through a destination of the given size.
    private static byte[] EncryptAll(TlsSession session, ReadOnlySpan<byte> plaintext, int destinationSize, out int calls)
    {
        var output = new ArrayBufferWriter<byte>();
        byte[] destination = new byte[destinationSize];
        calls = 0;
        while (true)
        {
            calls++;
            TlsWriteStatus status = session.Encrypt(plaintext, destination, out int consumed, out int written);
            output.Write(destination.AsSpan(0, written));
            plaintext = plaintext[consumed..];
            if (status == TlsWriteStatus.Completed)
            {
                return output.WrittenSpan.ToArray();
            }
            Assert.Equal(TlsWriteStatus.DestinationFull, status);
            Assert.True(calls < 100_000);
        }
    }

    private static byte[] DecryptAll(TlsSession session, int destinationSize, out bool sawDestinationFull)
    {
        var output = new ArrayBufferWriter<byte>();
        byte[] destination = new byte[destinationSize];
        sawDestinationFull = false;
        while (true)
        {
            TlsReadStatus status = session.Decrypt(destination, out int written);
            output.Write(destination.AsSpan(0, written));
            if (status == TlsReadStatus.NeedMoreInput)
            {
                return output.WrittenSpan.ToArray();
            }
            Assert.Equal(TlsReadStatus.DestinationFull, status);
            sawDestinationFull = true;
        }
    }

    private static List<int> RecordLengths(ReadOnlySpan<byte> records)
    {
        var lengths = new List<int>();
        while (!records.IsEmpty)
        {
            int length = (records[3] << 8) | records[4];
            lengths.Add(length);
            records = records[(5 + length)..];
        }
        return lengths;
    }

    [Fact]
    public void Decrypt_IntoSmallDestination_DeliversEverything()
    {
        using InProcessPair pair = Established();
        byte[] payload = RandomNumberGenerator.GetBytes(100_000);
        pair.Server.Feed(EncryptAll(pair.Client, payload, TlsSession.RecommendedOutputBufferSize, out _));
        Assert.Equal(payload, DecryptAll(pair.Server, 1000, out bool sawFull));
        Assert.True(sawFull);
    }

    [Fact]
    public void RecordsFedOneByteAtATime_DecryptWhenComplete()
    {
        using InProcessPair pair = Established();
        byte[] payload = RandomNumberGenerator.GetBytes(3000);
        byte[] records = EncryptAll(pair.Client, payload, 1100, out _); // three records
        var received = new List<byte>();
        byte[] destination = new byte[4096];
        foreach (byte b in records)
        {
            pair.Server.Feed([b]);
            Assert.Equal(TlsReadStatus.NeedMoreInput, pair.Server.Decrypt(destination, out int written));
            received.AddRange(destination.AsSpan(0, written).ToArray());
        }
        Assert.Equal(payload, received.ToArray());
    }

    [Fact]
    public void Encrypt_SmallDestination_SizesRecordsToFit()
    {
        using InProcessPair pair = Established();
        byte[] payload = RandomNumberGenerator.GetBytes(50_000);
        byte[] records = EncryptAll(pair.Server, payload, 1000, out int calls);
        Assert.True(calls >= 50, $"{calls} calls");
        Assert.All(RecordLengths(records), length => Assert.True(length <= 1000));
        pair.Client.Feed(records);
        Assert.Equal(payload, DecryptAll(pair.Client, 64 * 1024, out _));
    }

    [Fact]
    public void Encrypt_LargeDestination_FullRecords()
    {
        using InProcessPair pair = Established();
        byte[] payload = RandomNumberGenerator.GetBytes(4 * TlsSession.MaxRecordPlaintext);
        byte[] records = EncryptAll(pair.Server, payload, 4 * TlsSession.RecommendedOutputBufferSize, out int calls);
        Assert.Equal(1, calls);
        // TLS 1.3: 2^14 plaintext + content type + 16-byte tag per record.
        Assert.Equal([16401, 16401, 16401, 16401], RecordLengths(records));
    }

    [Fact]
    public void Encrypt_Sequence_GathersSmallSegments()
    {
        using InProcessPair pair = Established();
        byte[] payload = RandomNumberGenerator.GetBytes(30_000);
        // 3,000 segments of 10 bytes: one record per segment would be 3,000 records.
        ReadOnlySequence<byte> sequence = Segments.Split(payload, 10);
        var output = new ArrayBufferWriter<byte>();
        byte[] destination = new byte[TlsSession.RecommendedOutputBufferSize];
        while (!sequence.IsEmpty)
        {
            TlsWriteStatus status = pair.Server.Encrypt(sequence, destination, out long consumed, out int written);
            Assert.NotEqual(TlsWriteStatus.Failed, status);
            output.Write(destination.AsSpan(0, written));
            sequence = sequence.Slice(consumed);
        }
        Assert.Equal(2, RecordLengths(output.WrittenSpan).Count);
        pair.Client.Feed(output.WrittenSpan);
        Assert.Equal(payload, DecryptAll(pair.Client, 64 * 1024, out _));
    }

    [Fact]
    public void DataAndCloseNotifyInOneFeed_DataThenClosed()
    {
        using InProcessPair pair = Established();
        byte[] records = EncryptAll(pair.Client, "last words"u8, 4096, out _);
        pair.Client.Shutdown();
        byte[] closeNotify = new byte[1024];
        int length = pair.Client.TakeOutput(closeNotify);
        Assert.True(length > 0);
        pair.Server.Feed(records);
        pair.Server.Feed(closeNotify.AsSpan(0, length));
        byte[] destination = new byte[100];
        Assert.Equal(TlsReadStatus.Closed, pair.Server.Decrypt(destination, out int written));
        Assert.Equal("last words"u8.ToArray(), destination[..written]);
        Assert.True(pair.Server.CloseNotifyReceived);
        Assert.Equal(TlsReadStatus.Closed, pair.Server.Decrypt(destination, out written));
        Assert.Equal(0, written);
    }

    [Fact]
    public void EndOfInputOnRecordBoundary_IsClosedWithoutCloseNotify()
    {
        using InProcessPair pair = Established();
        pair.Server.Feed(EncryptAll(pair.Client, "data"u8, 4096, out _));
        pair.Server.CompleteInput();
        byte[] destination = new byte[100];
        Assert.Equal(TlsReadStatus.ClosedWithoutCloseNotify, pair.Server.Decrypt(destination, out int written));
        Assert.Equal(4, written);
        Assert.Null(pair.Server.FailureReason);
        Assert.False(pair.Server.CloseNotifyReceived);
    }

    [Theory]
    [InlineData(3)]   // inside the record header
    [InlineData(5)]   // exactly the header: OpenSSL has consumed it and waits for the body
    [InlineData(20)]  // inside the body
    public void EndOfInputInsideRecord_FailsAsTruncated(int keep)
    {
        using InProcessPair pair = Established();
        byte[] records = EncryptAll(pair.Client, "a record that will be cut"u8, 4096, out _);
        pair.Server.Feed(records.AsSpan(0, keep));
        byte[] destination = new byte[100];
        Assert.Equal(TlsReadStatus.NeedMoreInput, pair.Server.Decrypt(destination, out _));
        pair.Server.CompleteInput();
        Assert.Equal(TlsReadStatus.Failed, pair.Server.Decrypt(destination, out int written));
        Assert.Equal(0, written);
        Assert.Contains("truncated record", pair.Server.FailureReason);
    }

    [Fact]
    public void TamperedRecord_FailsWithReason_QueueDrained()
    {
        using InProcessPair pair = Established();
        byte[] records = EncryptAll(pair.Client, "integrity"u8, 4096, out _);
        records[^3] ^= 0x40;
        pair.Server.Feed(records);
        Assert.Equal(TlsReadStatus.Failed, pair.Server.Decrypt(new byte[100], out _));
        Assert.Contains("bad record mac", pair.Server.FailureReason);
        Assert.Equal(0ul, Interop.ERR_get_error());
        // The alert the server queued for the peer.
        Assert.True(pair.Server.PendingOutputLength > 0);
        Assert.Equal(TlsWriteStatus.Failed, pair.Server.Encrypt("x"u8, new byte[4096], out _, out _));
    }

    [Fact]
    public unsafe void StaleErrorOnThread_DoesNotFailNextSession()
    {
        // Leave errors in this thread's queue, as a failed unrelated call would.
        byte garbage = 0x30;
        byte* cursor = &garbage;
        Assert.Equal(0, Interop.d2i_X509(0, &cursor, 1));
        using InProcessPair pair = Established();
        pair.Server.Feed(EncryptAll(pair.Client, "fine"u8, 4096, out _));
        Assert.Equal("fine"u8.ToArray(), DecryptAll(pair.Server, 100, out _));
    }

    [Fact]
    public void TrimBuffers_ReleasesGrownBuffers_LosesNothing()
    {
        using InProcessPair pair = Established();
        Assert.False(pair.Server.TrimBuffers()); // the handshake's flights are small
        byte[] payload = RandomNumberGenerator.GetBytes(3 * TlsSession.MaxRecordPlaintext);
        void ExchangeBothWays()
        {
            pair.Server.Feed(EncryptAll(pair.Client, payload, 4 * TlsSession.RecommendedOutputBufferSize, out _));
            Assert.Equal(payload, DecryptAll(pair.Server, 64 * 1024, out _));
            pair.Client.Feed(EncryptAll(pair.Server, payload, 4 * TlsSession.RecommendedOutputBufferSize, out _));
            Assert.Equal(payload, DecryptAll(pair.Client, 64 * 1024, out _));
        }

        ExchangeBothWays();
        Assert.True(pair.Server.TrimBuffers()); // both BIOs grew to 16 KiB and more, and are empty
        Assert.False(pair.Server.TrimBuffers());
        ExchangeBothWays(); // works on the new BIOs

        // A grown write BIO that holds bytes (close_notify) is left alone; the empty read BIO is replaced.
        pair.Server.Shutdown();
        int pending = pair.Server.PendingOutputLength;
        Assert.True(pending > 0);
        Assert.True(pair.Server.TrimBuffers());
        Assert.Equal(pending, pair.Server.PendingOutputLength);
        pair.Transfer(pair.Server, pair.Client);
        Assert.Equal(TlsReadStatus.Closed, pair.Client.Decrypt(new byte[100], out _));
        Assert.True(pair.Server.TrimBuffers()); // now empty: the write BIO goes too
        Assert.False(pair.Server.TrimBuffers());
    }

    [Fact]
    public void Misuse_IsRefusedClearly()
    {
        TlsSession session = _server.CreateSession();
        Assert.Throws<InvalidOperationException>(() => session.Decrypt(new byte[10], out _));
        Assert.Throws<InvalidOperationException>(() => session.Encrypt("x"u8, new byte[100], out _, out _));
        session.Dispose();
        session.Dispose();
        Assert.Throws<ObjectDisposedException>(() => session.Feed("x"u8));
        Assert.Throws<ObjectDisposedException>(() => session.Handshake());
        Assert.Throws<ObjectDisposedException>(() => session.TakeOutput(new byte[10]));
    }

    [Fact]
    public void Tls13OnlyServer_RefusesTls12Client()
    {
        using var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa, SslProtocols = SslProtocols.Tls13 });
        using var client = new TlsClientContext(SslProtocols.Tls12);
        using var pair = new InProcessPair(server, client);
        Assert.Equal(TlsHandshakeStatus.Failed, pair.Handshake());
        Assert.Contains("unsupported protocol", pair.Server.FailureReason);
    }

    [Fact]
    public void ContextDisposedWhileSessionsLive_SessionsKeepWorking()
    {
        var server = new TlsServerContext(new TlsServerOptions { ServerCertificate = TestCertificates.Ecdsa });
        using var pair = new InProcessPair(server, _client);
        Assert.Equal(TlsHandshakeStatus.Completed, pair.Handshake());
        server.Dispose();
        Assert.Throws<ObjectDisposedException>(() => server.CreateSession());
        pair.Server.Feed(EncryptAll(pair.Client, "after dispose"u8, 4096, out _));
        Assert.Equal("after dispose"u8.ToArray(), DecryptAll(pair.Server, 100, out _));
        pair.Client.Feed(EncryptAll(pair.Server, "reply"u8, 4096, out _));
        Assert.Equal("reply"u8.ToArray(), DecryptAll(pair.Client, 100, out _));
    }
}
