// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Numerics;
using Microsoft.Extensions.Options;

namespace MegaPipe.Transport.Internal;

// Every option checked at start-up (ValidateOnStart, and again when the factory is created), each
// failure naming the option as it is configured ("MegaPipe:ReceiveBufferSize") and the allowed
// range: a bad setting must stop the app with a message, never start it half-working or make it
// fall back to another engine.
internal sealed class MegaPipeTransportOptionsValidator : IValidateOptions<MegaPipeTransportOptions>
{
    public const int MaxChannelCount = 1024;
    // io_uring's provided-buffer rings have at most 32768 entries, a power of two (io_uring_register_buf_ring(3)).
    public const int MaxReceiveBufferCount = 32768;
    public const int MinReceiveBufferSize = 64;
    public const int MaxReceiveBufferSize = 1024 * 1024;
    // What one channel's receive buffers may take in all (count x size).
    public const long MaxReceiveBufferBytes = 1L << 30;
    public const int MaxBacklog = 65535;

    public ValidateOptionsResult Validate(string? name, MegaPipeTransportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Check(bool valid, string option, string rule, object value)
        {
            if (!valid)
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"MegaPipe:{option} must be {rule} (it is {value})."));
            }
        }

        Check(options.ChannelCount is >= 1 and <= MaxChannelCount, nameof(options.ChannelCount), $"between 1 and {MaxChannelCount} (it defaults to the processor count, {Environment.ProcessorCount})", options.ChannelCount);
        bool countValid = options.ReceiveBufferCount is >= 1 and <= MaxReceiveBufferCount && BitOperations.IsPow2(options.ReceiveBufferCount);
        bool sizeValid = options.ReceiveBufferSize is >= MinReceiveBufferSize and <= MaxReceiveBufferSize;
        Check(countValid, nameof(options.ReceiveBufferCount), $"a power of two between 1 and {MaxReceiveBufferCount}, the sizes an io_uring provided-buffer ring can have", options.ReceiveBufferCount);
        Check(sizeValid, nameof(options.ReceiveBufferSize), $"between {MinReceiveBufferSize} and {MaxReceiveBufferSize} bytes", options.ReceiveBufferSize);
        long receiveBytes = (long)options.ReceiveBufferCount * options.ReceiveBufferSize;
        Check(!countValid || !sizeValid || receiveBytes <= MaxReceiveBufferBytes, "ReceiveBufferCount x MegaPipe:ReceiveBufferSize",
            $"at most {MaxReceiveBufferBytes} bytes per channel", receiveBytes);
        Check(options.Backlog is >= 1 and <= MaxBacklog, nameof(options.Backlog), $"between 1 and {MaxBacklog} (the kernel caps it at net.core.somaxconn)", options.Backlog);
        Check(options.MaxConnections is null or >= 1, nameof(options.MaxConnections), "at least 1, or unset for no limit", options.MaxConnections!);
        Check(Enum.IsDefined(options.Engine), nameof(options.Engine), "Auto, IoUring or Epoll", options.Engine);
        if (options.Engine == ChannelEngine.Auto)
        {
            // With Auto the environment decides; a value that is no engine is refused like a bad option.
            string? variable = Environment.GetEnvironmentVariable(MegaPipeChannel.EngineEnvironmentVariable);
            if (!MegaPipeChannel.TryParseEngine(variable, out _))
            {
                failures.Add($"{MegaPipeChannel.EngineEnvironmentVariable}={variable} is not an engine: use io_uring, epoll or auto (or leave it unset).");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // For a factory created without dependency injection's start-up validation.
    public static void ThrowIfInvalid(MegaPipeTransportOptions options)
    {
        ValidateOptionsResult result = new MegaPipeTransportOptionsValidator().Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(MegaPipeTransportOptions), result.Failures);
        }
    }
}
