using System.Diagnostics;

namespace MegaPipe.Perf;

// One way of building a sample for deployment: how it is published (JIT, ReadyToRun, native AOT),
// with which runtime settings (MSBuild properties that end up in its runtimeconfig.json) and which
// environment, as a user would ship it. Published with its own build output in a temporary
// folder, so the repository's bin and obj are left alone.
public sealed record SampleBuild(string Name, string Description, string PublishArguments, IReadOnlyDictionary<string, string>? Environment = null)
{
    // A JIT publish (the samples publish natively by default): framework-dependent, tier 0 first, PGO.
    public static readonly SampleBuild Jit = new("jit", "`dotnet publish -p:PublishAot=false` (framework-dependent, JIT with tiered compilation and PGO, as `dotnet run` runs it)", "-p:PublishAot=false");

    // The reference for tier-1 code as soon as possible: the environment variable the other
    // experiments run with. It cannot go into runtimeconfig.json: the runtime reads
    // TC_CallCountingDelayMs from the environment only (TieredCompilation, QuickJit,
    // QuickJitForLoops and TieredPGO are the tiering knobs runtimeconfig.json has).
    public static readonly SampleBuild JitDelay0 = new("jit-delay0", "JIT with `DOTNET_TC_CallCountingDelayMs=0` in the environment", "-p:PublishAot=false",
        new Dictionary<string, string> { ["DOTNET_TC_CallCountingDelayMs"] = "0" });

    public static readonly SampleBuild JitNoTiering = new("jit-tc-off", "JIT with `TieredCompilation=false` (runtimeconfig.json: fully optimized at the first call, no PGO)", "-p:PublishAot=false -p:TieredCompilation=false");

    public static readonly SampleBuild ReadyToRun = new("r2r", "`-p:PublishReadyToRun=true` (precompiled code first, tiered up with PGO)", "-p:PublishAot=false -p:PublishReadyToRun=true --use-current-runtime --self-contained false");

    public static readonly SampleBuild ReadyToRunDelay0 = new("r2r-delay0", "ReadyToRun with `DOTNET_TC_CallCountingDelayMs=0` in the environment", "-p:PublishAot=false -p:PublishReadyToRun=true --use-current-runtime --self-contained false",
        new Dictionary<string, string> { ["DOTNET_TC_CallCountingDelayMs"] = "0" });

    public static readonly SampleBuild ReadyToRunNoTiering = new("r2r-tc-off", "ReadyToRun with `TieredCompilation=false` (precompiled code kept, the rest fully optimized at the first call)", "-p:PublishAot=false -p:PublishReadyToRun=true --use-current-runtime --self-contained false -p:TieredCompilation=false");

    // What the samples ship: their csproj sets PublishAot.
    public static readonly SampleBuild NativeAot = new("aot", "`dotnet publish` with `PublishAot=true`, the samples' default (native AOT: no JIT, no tiering)", "-p:PublishAot=true");

    public static readonly SampleBuild[] All = [Jit, JitDelay0, JitNoTiering, ReadyToRun, ReadyToRunDelay0, ReadyToRunNoTiering, NativeAot];

    // The description of a build by name, as this code defines it (or null).
    public static string? Describe(string name) => Array.Find(All, b => b.Name == name)?.Description;

    // Build names in the order of All (names All does not know last, as they came).
    public static string[] Order(IEnumerable<string> names)
    {
        string[] distinct = names.Distinct().ToArray();
        return distinct.OrderBy(n => Array.FindIndex(All, b => b.Name == n) is int i and >= 0 ? i : All.Length).ToArray();
    }

    // Publishes samples/<sample> this way into `folder`; returns the executable.
    public string Publish(PerfSettings settings, string sample, string folder)
    {
        string project = Path.Combine(settings.RepoRoot, "samples", sample, sample + ".csproj");
        string output = Path.Combine(folder, $"{sample}-{Name}");
        string arguments = $"publish \"{project}\" -c Release -o \"{output}\" -p:ArtifactsPath=\"{Path.Combine(folder, "artifacts-" + Name)}\" -nodeReuse:false -v q -nologo {PublishArguments}";
        var watch = Stopwatch.StartNew();
        string log = ProcessRunner.Run("dotnet", arguments, TimeSpan.FromMinutes(15));
        string exe = Path.Combine(output, sample);
        if (!File.Exists(exe))
        {
            throw new InvalidOperationException($"dotnet {arguments} failed after {watch.Elapsed.TotalSeconds:F0} s:\n{log}");
        }
        return exe;
    }
}
