using System.IO.Pipelines;
using System.Threading.Channels;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// A connection middleware that wraps each connection's transport input and signals every read
/// that has to wait for data: the server has consumed all it received and asks for more. A client
/// that sends its next byte only after such a signal makes the server see its bytes one at a time.
/// </summary>
public sealed class ReadObservingMiddleware
{
    private readonly Channel<ObservedConnection> _connections = Channel.CreateUnbounded<ObservedConnection>();

    public void Attach(ListenOptions listen) => listen.Use(next => connection =>
    {
        var observed = new ObservedConnection(connection.ConnectionId);
        IDuplexPipe transport = connection.Transport;
        connection.Transport = new DuplexPipe(new ObservingReader(transport.Input, observed), transport.Output);
        _connections.Writer.TryWrite(observed);
        return next(connection);
    });

    /// <summary>The next connection the server accepted.</summary>
    public async Task<ObservedConnection> NextConnectionAsync()
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        return await _connections.Reader.ReadAsync(timeout.Token);
    }

    public sealed class ObservedConnection(string connectionId)
    {
        private readonly SemaphoreSlim _waitingReads = new(0);
        private int _waitingReadCount;

        public string ConnectionId { get; } = connectionId;

        /// <summary>Reads that found no new data and had to wait.</summary>
        public int WaitingReads => Volatile.Read(ref _waitingReadCount);

        /// <summary>Completes at the next read that waits for data (each waiting read is signalled once).</summary>
        public async Task WaitForWaitingReadAsync()
        {
            if (!await _waitingReads.WaitAsync(TestTimeouts.Default))
            {
                throw new TimeoutException($"The server did not ask for more data (waiting reads so far: {WaitingReads}).");
            }
        }

        internal void OnWaitingRead()
        {
            Interlocked.Increment(ref _waitingReadCount);
            _waitingReads.Release();
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    private sealed class ObservingReader(PipeReader inner, ObservedConnection observed) : PipeReader
    {
        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ValueTask<ReadResult> read = inner.ReadAsync(cancellationToken);
            if (!read.IsCompleted)
            {
                observed.OnWaitingRead();
            }
            return read;
        }

        public override bool TryRead(out ReadResult result) => inner.TryRead(out result);

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}
