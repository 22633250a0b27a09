using System.Runtime.ExceptionServices;

namespace MegaPipe.Core.Tests.Infrastructure;

// A dedicated (non-pool) thread for code that must own a channel, or must be pinned to a CPU,
// while the test thread does something else. Join rethrows whatever the body threw.
public sealed class TestThread
{
    private readonly Thread _thread;
    private ExceptionDispatchInfo? _error;

    private TestThread(string name, Action body)
    {
        _thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                _error = ExceptionDispatchInfo.Capture(e);
            }
        })
        {
            Name = name,
            IsBackground = true,
        };
    }

    public static TestThread Start(string name, Action body)
    {
        var thread = new TestThread(name, body);
        thread._thread.Start();
        return thread;
    }

    public bool IsAlive => _thread.IsAlive;

    // Waits for the body to finish and rethrows its exception.
    public void Join(TimeSpan? timeout = null)
    {
        if (!_thread.Join(timeout ?? ChannelPump.DefaultTimeout))
        {
            throw new TimeoutException($"Thread {_thread.Name} did not finish in time.");
        }
        _error?.Throw();
    }

    // Runs body on a fresh thread and waits for it: the result or the exception it threw.
    public static T Run<T>(string name, Func<T> body)
    {
        T result = default!;
        Start(name, () => result = body()).Join();
        return result;
    }
}
