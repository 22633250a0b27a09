// Runs MegaPipe.NET's benchmarks side by side on this machine and writes perf/results/<experiment>.md
// (with PNG plots and the raw measurements as .json):
//
//   dotnet run -c Release --project perf/MegaPipe.Perf -- <experiment>[,<experiment>...]|all [options]
//   dotnet run -c Release --project perf/MegaPipe.Perf -- report <experiment>|all     (redraw from the .json)
//
// `all` is the paper's evaluation: msgsize, connlen, breakdown, scaling, memcached, nginx.
// Deployment: `startup` (time to the first answer, RSS) and `coldstart` (a cold 10 s wrk run against
// the warm one), each for the JIT, ReadyToRun and native AOT builds of the samples.
// Options: --rounds N --seconds S --warmup S (each experiment has its own defaults), --points a,b,c
// (the x axis), --lengths a,b (scaling), --variants a,b, --connections N (per channel),
// --channels N (breakdown), --cpus 0-3, --out DIR (a trial run: results elsewhere, README untouched),
// --no-readme, --baseline-repo DIR (endpoints: an earlier checkout measured beside this build).
//
// Server and load generator are separate processes pinned to different CPUs; variants run
// interleaved, round by round, and the reports give ratios, because absolute figures on a shared
// machine drift.
using MegaPipe.Perf;
using System.Runtime.InteropServices;
using Spectre.Console;
using Progress = MegaPipe.Perf.Progress;

IExperiment[] experiments =
[
    new MessageSizeExperiment(),
    new ConnectionLengthExperiment(),
    new BreakdownExperiment(),
    new ScalingExperiment(),
    new MemcachedExperiment(),
    new NginxExperiment(),
    new TlsExperiment(),
    new EndpointsExperiment(),
    new StartupExperiment(),
    new ColdStartExperiment(),
    new DirectReportExperiment("pingpong", "64 B ping-pong over persistent connections, Core API vs System.Net.Sockets", 3, 8, 2, s => s.Rounds * 2, (s, p) => PingPongExperiment.Run(s, p)),
    new WebExperiment(),
    new DirectReportExperiment("static", "samples/StaticServer vs nginx: 6 KiB, the paper's mix, 1 MiB", 1, 5, 2, StaticExperiment.Steps, (s, p) => StaticExperiment.Run(s, p)),
];
string[] paper = ["msgsize", "connlen", "breakdown", "scaling", "memcached", "nginx"];

if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
{
    Console.WriteLine("usage: MegaPipe.Perf <experiment>[,<experiment>...]|all [options]   or   MegaPipe.Perf report <experiment>|all");
    Console.WriteLine("experiments (all = the first six):");
    foreach (IExperiment e in experiments)
    {
        Console.WriteLine($"  {e.Name,-10} {e.Summary}");
    }
    return 2;
}

bool report = args[0] == "report";
string selection = report ? (args.Length > 1 ? args[1] : "all") : args[0];
string[] names = selection == "all" ? paper : selection.Split(',', StringSplitOptions.RemoveEmptyEntries);
IExperiment[] selected = names.Select(n => experiments.FirstOrDefault(e => e.Name == n) ?? throw new ArgumentException($"unknown experiment '{n}'; run without arguments for the list")).ToArray();
PerfSettings settings = PerfSettings.Parse(selection, args.Skip(report ? 2 : 1).ToArray());

if (report)
{
    foreach (IExperiment e in selected)
    {
        ResultFile? saved = ResultFile.Load(settings.ResultPath(e.Name + ".json"));
        if (saved is null)
        {
            Console.WriteLine($"{e.Name}: no saved results");
            continue;
        }
        e.Render(saved, settings);
        Console.WriteLine($"{e.Name}: wrote {settings.ResultPath(e.Name + ".md")}");
    }
    Readme.Update(settings, experiments.Where(e => paper.Contains(e.Name)));
    return 0;
}

// An interrupted run must not leave servers listening.
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => ProcessRunner.StopAll());
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => ProcessRunner.StopAll());
AppDomain.CurrentDomain.ProcessExit += (_, _) => ProcessRunner.StopAll();

// What the experiments need beyond .NET; each also refuses to run, with the same message, without its own.
(string Tool, string Package, string[] For)[] tools =
[
    ("/usr/bin/taskset", "util-linux", paper),
    ("/usr/bin/perf", "linux-perf (system calls are not counted without it)", paper),
    ("/usr/bin/wrk", "wrk", ["nginx", "web", "static", "coldstart"]),
    (NginxServer.Executable, "nginx-light", ["nginx", "static"]),
    ("/usr/bin/memcached", "memcached (the reference server)", ["memcached"]),
];
foreach ((string tool, string package, string[] usedBy) in tools)
{
    if (names.Any(usedBy.Contains) && !File.Exists(tool))
    {
        Progress.Warn($"{tool} is missing: apt-get install {package}");
    }
}
if (names.Contains("memcached") && MemcachedExperiment.FindLoadGenerator() is null)
{
    Progress.Warn("memcaslap (libmemcached's memaslap) is missing: apt-get install libmemcached-tools; the memcached experiment will not run");
}

var configured = selected.Select(e => (Experiment: e, Settings: e.Configure(settings))).ToArray();
int totalSteps = configured.Sum(c => c.Experiment.Steps(c.Settings));
AnsiConsole.MarkupLine(Markup.Escape($"{string.Join(", ", names)}: {totalSteps} measured runs on CPUs {CpuSet.Format(settings.Cpus)}; results in {settings.ResultsDirectory}; load average now {MachineInfo.ReadLoadAverage()}"));
var failures = new List<string>();
AnsiConsole.Progress()
    .AutoClear(false)
    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
    .Start(ctx =>
    {
        ProgressTask? overall = configured.Length > 1 ? ctx.AddTask("all", maxValue: totalSteps) : null;
        var tasks = configured.Select(c => ctx.AddTask(c.Experiment.Name, autoStart: false, maxValue: Math.Max(1, c.Experiment.Steps(c.Settings)))).ToArray();
        for (int i = 0; i < configured.Length; i++)
        {
            (IExperiment e, PerfSettings s) = configured[i];
            tasks[i].StartTask();
            try
            {
                ResultFile? result = e.Run(s, new Progress(tasks[i], overall));
                Progress.Log($"{e.Name}: wrote {s.ResultPath(e.Name + ".md")}");
                foreach (string headline in result is null ? [] : e.Headlines(result))
                {
                    AnsiConsole.MarkupLine($"[bold]{Markup.Escape(headline)}[/]");
                }
                double other = result is null ? 0 : Stats.Median(result.Measurements.Select(m => m.OtherCpus));
                if (other >= 0.25)
                {
                    Progress.Warn($"{e.Name}: other processes took {other:F2} CPUs during the median run; these figures are not trustworthy");
                }
            }
            catch (Exception ex) when (configured.Length > 1 && ex is not OutOfMemoryException)
            {
                // One experiment that cannot run (a missing tool, a crashed server) does not stop the others.
                failures.Add($"{e.Name}: {ex.Message}");
                Progress.Warn($"{e.Name} failed: {ex.Message}");
            }
            finally
            {
                overall?.Increment(tasks[i].MaxValue - tasks[i].Value);
                tasks[i].Value = tasks[i].MaxValue;
                tasks[i].StopTask();
            }
        }
    });

if (settings.UpdateReadme)
{
    Readme.Update(settings, experiments.Where(e => paper.Contains(e.Name)));
}
foreach (string failure in failures)
{
    Progress.Warn("FAILED " + failure);
}
return failures.Count == 0 ? 0 : 1;
