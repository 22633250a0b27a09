// Licensed under the MIT License. See LICENSE in the repository root.

using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// Source-generated log messages with fixed event ids.
internal static partial class MegaPipeLog
{
    [LoggerMessage(1, LogLevel.Debug, @"Connection id ""{ConnectionId}"" received FIN.", EventName = "ConnectionReadFin")]
    public static partial void ConnectionReadFin(ILogger logger, string connectionId);

    [LoggerMessage(2, LogLevel.Debug, @"Connection id ""{ConnectionId}"" sending FIN because: ""{Reason}""", EventName = "ConnectionWriteFin")]
    public static partial void ConnectionWriteFin(ILogger logger, string connectionId, string reason);

    [LoggerMessage(3, LogLevel.Debug, @"Connection id ""{ConnectionId}"" reset by the peer ({Errno}).", EventName = "ConnectionReset")]
    public static partial void ConnectionReset(ILogger logger, string connectionId, Errno errno);

    [LoggerMessage(4, LogLevel.Debug, @"Connection id ""{ConnectionId}"" communication error: {Errno}.", EventName = "ConnectionError")]
    public static partial void ConnectionError(ILogger logger, string connectionId, Errno errno);

    [LoggerMessage(5, LogLevel.Debug, @"Connection id ""{ConnectionId}"" paused reading: the input pipe is full.", EventName = "ConnectionPause")]
    public static partial void ConnectionPause(ILogger logger, string connectionId);

    [LoggerMessage(6, LogLevel.Debug, @"Connection id ""{ConnectionId}"" resumed reading.", EventName = "ConnectionResume")]
    public static partial void ConnectionResume(ILogger logger, string connectionId);

    [LoggerMessage(7, LogLevel.Warning, "Accepting on {EndPoint} failed: {Errno}. The listener keeps accepting (after a pause when descriptors ran out; connections wait in the backlog meanwhile).", EventName = "AcceptFailed")]
    public static partial void AcceptFailed(ILogger logger, System.Net.EndPoint endPoint, Errno errno);

    [LoggerMessage(8, LogLevel.Information, "MegaPipe transport listening on {EndPoint}: {Channels} on {Engine}, batching {Batching}, partitioning {Partitioning}, lightweight sockets {Lightweight}, inline scheduling {Inline}.", EventName = "Listening")]
    public static partial void Listening(ILogger logger, System.Net.EndPoint endPoint, string channels, string engine, bool batching, string partitioning, string lightweight, bool inline);

    [LoggerMessage(16, LogLevel.Information, "Endpoint {EndPoint} is not served by MegaPipe: {Reason}. Kestrel's next transport serves it.", EventName = "EndpointNotServed")]
    public static partial void EndpointNotServed(ILogger logger, System.Net.EndPoint endPoint, string reason);

    [LoggerMessage(9, LogLevel.Warning, "MegaPipe channel {Channel} runs degraded: {Degradation}", EventName = "ChannelDegraded")]
    public static partial void ChannelDegraded(ILogger logger, int channel, string degradation);

    [LoggerMessage(11, LogLevel.Information, "MegaPipe engine: io_uring ({Reason}).", EventName = "EngineSelected")]
    public static partial void EngineIoUring(ILogger logger, string reason);

    [LoggerMessage(14, LogLevel.Warning, "MegaPipe engine: epoll fallback. {Reason}", EventName = "EngineFallback")]
    public static partial void EngineEpoll(ILogger logger, string reason);

    [LoggerMessage(12, LogLevel.Debug, "Connection limit {Max} reached on {EndPoint}: accepting paused, new connections wait in the backlog.", EventName = "ConnectionLimitReached")]
    public static partial void ConnectionLimitReached(ILogger logger, long max, System.Net.EndPoint endPoint);

    [LoggerMessage(13, LogLevel.Debug, "Connection on {EndPoint} accepted at the limit of {Max} connections: held until one closes.", EventName = "ConnectionDeferred")]
    public static partial void ConnectionDeferred(ILogger logger, System.Net.EndPoint endPoint, long max);

    [LoggerMessage(15, LogLevel.Debug, "Accepting on {EndPoint} still failing: {Errno}.", EventName = "AcceptStillFailing")]
    public static partial void AcceptStillFailing(ILogger logger, System.Net.EndPoint endPoint, Errno errno);

    [LoggerMessage(10, LogLevel.Critical, "MegaPipe channel {Channel} failed; the process cannot continue safely.", EventName = "ChannelFailed")]
    public static partial void ChannelFailed(ILogger logger, int channel, Exception exception);
}
