// Runs MegaPipe.NET's benchmarks side by side on this machine and writes perf/results/<experiment>.md.
//
//   dotnet run -c Release --project perf/MegaPipe.Perf -- pingpong [--rounds 3] [--seconds 8]
//
// Server and load generator are separate processes pinned to different CPUs; variants run
// interleaved, round by round, and the report gives ratios, because absolute figures on a shared
// machine drift.
using MegaPipe.Perf;

string experiment = args.Length > 0 ? args[0] : "help";
var settings = PerfSettings.Parse(args.Skip(1).ToArray());
switch (experiment)
{
    case "pingpong":
        PingPongExperiment.Run(settings);
        break;
    case "web":
        WebExperiment.Run(settings);
        break;
    case "static":
        StaticExperiment.Run(settings);
        break;
    default:
        Console.WriteLine("experiments: pingpong, web, static");
        return 2;
}
return 0;
