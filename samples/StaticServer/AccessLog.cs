using System.Globalization;
using System.Net;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace MegaPipe.StaticServer;

/// <summary>
/// nginx's access_log in the <c>combined</c> format:
/// <c>$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"</c>.
/// Requests only format and queue a line; a background task writes the file, so no request (and no
/// channel thread) waits for the disk.
/// </summary>
public sealed class AccessLog : IAsyncDisposable
{
    private readonly Channel<object> _queue = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TextWriter _writer;
    private readonly bool _ownsWriter;
    private readonly Task _pump;

    /// <summary>Opens the log: a file path (appended to), or "stdout".</summary>
    public AccessLog(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target == "stdout")
        {
            _writer = Console.Out;
        }
        else
        {
            var stream = new FileStream(target, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            _writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { NewLine = "\n" };
            _ownsWriter = true;
        }
        _pump = Task.Run(PumpAsync);
    }

    /// <summary>Queues the line of a finished request.</summary>
    public void Log(HttpContext context, long bodyBytesSent)
    {
        ArgumentNullException.ThrowIfNull(context);
        _queue.Writer.TryWrite(Format(context, bodyBytesSent, DateTimeOffset.Now));
    }

    /// <summary>Completes once every line queued before the call is written to the file.</summary>
    public Task FlushAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(done))
        {
            done.SetResult();
        }
        return done.Task;
    }

    /// <summary>Writes what is queued and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _pump.ConfigureAwait(false);
        if (_ownsWriter)
        {
            await _writer.DisposeAsync().ConfigureAwait(false);
        }
    }

    internal static string Format(HttpContext context, long bodyBytesSent, DateTimeOffset now)
    {
        var sb = new StringBuilder(160);
        IPAddress? remote = context.Connection.RemoteIpAddress;
        if (remote is { IsIPv4MappedToIPv6: true })
        {
            remote = remote.MapToIPv4();
        }
        sb.Append(remote?.ToString() ?? "-");
        sb.Append(" - - [");
        sb.Append(now.ToString("dd/MMM/yyyy:HH:mm:ss ", CultureInfo.InvariantCulture));
        TimeSpan offset = now.Offset;
        sb.Append(offset < TimeSpan.Zero ? '-' : '+');
        sb.Append(Math.Abs(offset.Hours).ToString("00", CultureInfo.InvariantCulture));
        sb.Append(Math.Abs(offset.Minutes).ToString("00", CultureInfo.InvariantCulture));
        sb.Append("] \"");
        HttpRequest request = context.Request;
        string target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (request.Path + request.QueryString);
        AppendEscaped(sb, $"{request.Method} {target} {request.Protocol}");
        sb.Append("\" ");
        sb.Append(context.Response.StatusCode.ToString(CultureInfo.InvariantCulture));
        sb.Append(' ');
        sb.Append(bodyBytesSent.ToString(CultureInfo.InvariantCulture));
        sb.Append(" \"");
        AppendEscaped(sb, request.Headers.Referer.ToString());
        sb.Append("\" \"");
        AppendEscaped(sb, request.Headers.UserAgent.ToString());
        sb.Append('"');
        return sb.ToString();
    }

    // nginx escapes '"', '\' and bytes outside printable ASCII as \xHH; an empty field is "-".
    private static void AppendEscaped(StringBuilder sb, string value)
    {
        if (value.Length == 0)
        {
            sb.Append('-');
            return;
        }
        foreach (char c in value)
        {
            if (c is '"' or '\\' || c < 0x20 || c >= 0x7F)
            {
                if (c > 0xFF)
                {
                    foreach (byte b in Encoding.UTF8.GetBytes(c.ToString()))
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"\\x{b:X2}");
                    }
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:X2}");
                }
            }
            else
            {
                sb.Append(c);
            }
        }
    }

    private async Task PumpAsync()
    {
        ChannelReader<object> reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out object? item))
            {
                if (item is string line)
                {
                    await _writer.WriteLineAsync(line).ConfigureAwait(false);
                }
                else
                {
                    await _writer.FlushAsync().ConfigureAwait(false);
                    ((TaskCompletionSource)item).SetResult();
                }
            }
            await _writer.FlushAsync().ConfigureAwait(false);
        }
    }
}
