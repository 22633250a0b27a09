using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>One log entry a test server wrote.</summary>
public sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

/// <summary>Keeps every log entry of a test server in memory, so tests can assert on them.</summary>
public sealed class CollectingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();
    private readonly List<(Func<LogEntry, bool> Match, TaskCompletionSource<LogEntry> Seen)> _waiters = new();

    public IReadOnlyCollection<LogEntry> Entries => _entries;

    /// <summary>Completes with the first entry (already logged or still to come) that matches.</summary>
    public Task<LogEntry> WaitForAsync(Func<LogEntry, bool> match)
    {
        var seen = new TaskCompletionSource<LogEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            _waiters.Add((match, seen));
            if (_entries.FirstOrDefault(match) is { } entry)
            {
                seen.TrySetResult(entry);
            }
        }
        return seen.Task.WaitAsync(TestTimeouts.Default);
    }

    private void Add(LogEntry entry)
    {
        _entries.Enqueue(entry);
        lock (_waiters)
        {
            foreach ((Func<LogEntry, bool> match, TaskCompletionSource<LogEntry> seen) in _waiters)
            {
                if (match(entry))
                {
                    seen.TrySetResult(entry);
                }
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CollectingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => owner.Add(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception));
    }
}
