using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// A connection middleware that holds back the completion of the first connection's transport
/// output: Kestrel (and the transport's own DisposeAsync, which completes Transport.Output) complete
/// a wrapper, and the real output writer is completed only when the test says so, e.g. after the
/// server has stopped, as a middleware or application that keeps a connection's pipes past its end might.
/// </summary>
public sealed class LateOutputCompletion
{
    private readonly TaskCompletionSource<PipeWriter> _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Adds the middleware. Once Kestrel is done with the connection it aborts it, so the transport
    /// closes it although its output writer is not completed (the wrapper took Kestrel's completion).
    /// </summary>
    public void Attach(ListenOptions listen) => listen.Use(next => async connection =>
    {
        IDuplexPipe transport = connection.Transport;
        if (!_held.TrySetResult(transport.Output))
        {
            await next(connection);
            return;
        }
        connection.Transport = new DuplexPipe(transport.Input, new DeferringWriter(transport.Output));
        await next(connection);
        connection.Abort(new ConnectionAbortedException("The test's middleware is done with the connection."));
    });

    /// <summary>Completes the held output writer of the first connection now; returns what that threw, if anything.</summary>
    public async Task<Exception?> CompleteNowAsync()
    {
        PipeWriter output = await _held.Task.WaitAsync(TestTimeouts.Default);
        try
        {
            output.Complete();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    // Passes everything through but Complete.
    private sealed class DeferringWriter(PipeWriter inner) : PipeWriter
    {
        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Complete(Exception? exception = null)
        {
        }

        public override ValueTask CompleteAsync(Exception? exception = null) => ValueTask.CompletedTask;
    }
}
