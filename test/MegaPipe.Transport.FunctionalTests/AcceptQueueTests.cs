using MegaPipe.Transport.Internal;
using Microsoft.AspNetCore.Connections;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>The hand-off of ready connections to Kestrel's accept loop.</summary>
public sealed class AcceptQueueTests
{
    [Fact]
    public async Task AWaitingAccept_IsCompletedOnTheHandingThread()
    {
        var queue = new AcceptQueue<DefaultConnectionContext>();
        var connection = new DefaultConnectionContext("a");
        int continuationThread = -1;
        ConnectionContext? accepted = null;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ValueTask<ConnectionContext?> accept = queue.AcceptAsync(CancellationToken.None);
        Assert.False(accept.IsCompleted);
        // The accept loop's await, registered before anything is handed over, from a thread-pool
        // thread as Kestrel's loop runs (no synchronization context to post the continuation to).
        await Task.Run(() => accept.GetAwaiter().UnsafeOnCompleted(() =>
        {
            continuationThread = Environment.CurrentManagedThreadId;
            accepted = accept.GetAwaiter().GetResult();
            done.SetResult();
        }));
        int handing = -1;
        var thread = new Thread(() =>
        {
            handing = Environment.CurrentManagedThreadId;
            Assert.True(queue.TryAdd(connection));
        });
        thread.Start();
        thread.Join();
        await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Same(connection, accepted);
        Assert.Equal(handing, continuationThread);
    }

    [Fact]
    public async Task ConnectionsWaitInOrder_ThenCompleteReturnsTheOnesNeverTaken()
    {
        var queue = new AcceptQueue<DefaultConnectionContext>();
        DefaultConnectionContext[] connections = [new("1"), new("2"), new("3")];
        foreach (DefaultConnectionContext c in connections)
        {
            Assert.True(queue.TryAdd(c));
        }
        Assert.Same(connections[0], await queue.AcceptAsync(CancellationToken.None));
        Assert.Same(connections[1], await queue.AcceptAsync(CancellationToken.None));
        DefaultConnectionContext[] orphans = queue.Complete();
        Assert.Equal([connections[2]], orphans);
        Assert.Null(await queue.AcceptAsync(CancellationToken.None));
        Assert.False(queue.TryAdd(new DefaultConnectionContext("late")));
    }

    [Fact]
    public async Task Complete_EndsAWaitingAccept_AndCancellationEndsItWithAnError()
    {
        var queue = new AcceptQueue<DefaultConnectionContext>();
        ValueTask<ConnectionContext?> waiting = queue.AcceptAsync(CancellationToken.None);
        Assert.Empty(queue.Complete());
        Assert.Null(await waiting);

        var other = new AcceptQueue<DefaultConnectionContext>();
        using var cancel = new CancellationTokenSource();
        ValueTask<ConnectionContext?> cancelled = other.AcceptAsync(cancel.Token);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await cancelled);
        // The queue still works after a cancelled accept.
        var connection = new DefaultConnectionContext("after");
        ValueTask<ConnectionContext?> next = other.AcceptAsync(CancellationToken.None);
        Assert.True(other.TryAdd(connection));
        Assert.Same(connection, await next);
    }
}
