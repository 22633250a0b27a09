using System.Globalization;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Experiment 6, the paper's nginx macrobenchmark ("Based on Yahoo! HTTP traces: 6.3KiB, 2.3
// trans/conn on avg."): the static experiment's request mix (files averaging 6.3 KiB, about 2.3
// requests per connection) against samples/StaticServer on each transport and against nginx,
// each on one pinned CPU, under wrk on another.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- nginx [--rounds 3] [--seconds 3]
public sealed class NginxExperiment : IExperiment
{
    public string Name => "nginx";

    public string Summary => "6. nginx-style HTTP: the paper's static-file mix (6.3 KiB, 2.3 requests/connection), StaticServer on each transport vs nginx";

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 3, 1.5);

    private static StaticExperiment.Variant[] Variants(PerfSettings s) => StaticExperiment.AllVariants.Where(v => s.Wants(v.Name)).ToArray();

    public int Steps(PerfSettings settings) => settings.Rounds * Variants(settings).Length;

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        string server = StaticExperiment.BuildServer(settings);
        StaticExperiment.Scenario mix = StaticExperiment.Scenarios(settings).Single(s => s.Name == "mix");
        string tree = StaticExperiment.CreateTree();
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = $"server on CPU {settings.ServerCpu}, wrk (1 thread) on CPU {settings.ClientCpu}";
        result.Facts["scenario"] = mix.Description;
        result.Facts["variants"] = string.Join(',', Variants(settings).Select(v => v.Name));
        result.Facts["syscallNs"] = SyscallCost.NanosecondsPerCall().ToString("F1", CultureInfo.InvariantCulture);
        try
        {
            var variants = Variants(settings);
            for (int round = 1; round <= settings.Rounds; round++)
            {
                foreach (var v in MicroExperiment.Rotate(variants, round))
                {
                    StaticExperiment.Sample s = StaticExperiment.RunOne(settings, server, tree, v, mix);
                    result.Measurements.Add(new Measurement
                    {
                        Round = round,
                        Variant = v.Name,
                        Throughput = s.Rps,
                        SyscallsPerOp = s.SyscallsPerRequest,
                        ServerCpuUsPerOp = s.CpuUsPerRequest,
                        ServerBusy = s.ServerBusy,
                        ClientBusy = s.ClientBusy,
                        OtherCpus = s.OtherCpus,
                        Errors = s.Errors + s.Non2xx,
                        ServerCpus = 1,
                        ClientCpus = 1,
                    });
                    progress.Step(FormattableString.Invariant($"nginx round {round} {v.Name,-20} {s.Rps,10:F0} req/s  {s.SyscallsPerRequest,6:F3} syscalls/req  {s.CpuUsPerRequest,6:F2} µs CPU/req  server {s.ServerBusy:P0} wrk {s.ClientBusy:P0} busy  other {s.OtherCpus:F2} CPUs  errors {s.Errors} non-2xx {s.Non2xx}"));
                }
            }
        }
        finally
        {
            Directory.Delete(tree, recursive: true);
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] variants = MicroReport.VariantNames(r);
        double T(string v) => r.Median(v, 0, m => m.Throughput);
        double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp);
        var md = new Markdown();
        md.Heading(1, "Experiment 6: nginx-style HTTP (the paper's static-file workload)");
        md.Paragraph($"{r.Facts["scenario"]}: wrk with perf/wrk/static-mix.lua picks one of the files at random per request and sends `Connection: close` on about 1 request in 2.3. " +
            "megapipe = samples/StaticServer with its defaults (UseMegaPipe, the handler inline on the channel thread, file reads through the channel); megapipe-threadpool = the same with `--MegaPipe:UnsafeInlineScheduling false`; sockets = the same server on Kestrel's Sockets transport; " +
            "nginx = Debian's nginx, one worker, `sendfile on`, `open_file_cache`, access log off, serving the same tree.");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}.");
        md.Table(["variant", "requests/s", "ratio to nginx", "ratio to sockets", "system calls / request", "server CPU µs / request", "CPU ratio to nginx", "server CPU busy", "wrk CPU busy", "errors + non-2xx"],
            variants.Select(v => (IReadOnlyList<string>)
            [
                v, N(T(v)), Ratio(T(v) / T("nginx")), Ratio(T(v) / T("sockets")),
                N(r.Median(v, 0, m => m.SyscallsPerOp), "F3"), N(C(v), "F2"), Ratio(C(v) / C("nginx")),
                Percent(r.Median(v, 0, m => m.ServerBusy)), Percent(r.Median(v, 0, m => m.ClientBusy)),
                r.Measurements.Where(m => m.Variant == v).Sum(m => m.Errors).ToString(CultureInfo.InvariantCulture),
            ]));
        Charts.Bars(settings.ResultPath("nginx-throughput.png"), "Static-file mix (6.3 KiB, 2.3 requests/connection): requests/s", "requests/s", variants.Select(v => (v, T(v))).ToList());
        Charts.Bars(settings.ResultPath("nginx-cpu.png"), "Static-file mix: server CPU per request", "µs per request", variants.Select(v => (v, C(v))).ToList());
        md.Image("requests per second", "nginx-throughput.png");
        md.Image("server CPU per request", "nginx-cpu.png");
        md.Heading(2, "How close to saturation");
        double wrk = Stats.Median(r.Measurements.Select(m => m.ClientBusy));
        md.Paragraph($"wrk (one thread, C) ran at a median {Percent(wrk)} of its CPU; the servers at {string.Join(", ", variants.Select(v => $"{v} {Percent(r.Median(v, 0, m => m.ServerBusy))}"))}. " +
            MicroReport.LoadGeneratorVerdict(wrk, Stats.Median(r.Measurements.Select(m => m.OtherCpus))));
        md.Heading(2, "Why these numbers differ from the paper's");
        md.Bullet($"The talk reports \"75%\" improvement for nginx with MegaPipe, on its 8-core server with clients on other machines; that is nginx itself ported to MegaPipe, against nginx on BSD sockets. Here nginx is Debian's unmodified nginx (epoll, BSD sockets), and the MegaPipe side is a different server (ASP.NET Core's Kestrel with samples/StaticServer), so the comparison mixes the API with two different HTTP stacks: the ratio megapipe / sockets (same server, two transports: {Ratio(T("megapipe") / T("sockets"))}) is the transport's share of the difference.");
        md.Bullet($"One server CPU and one wrk CPU ({r.Machine.Cpus} CPUs in all), over loopback: the paper's experiment scaled nginx over cores, which this machine cannot show.");
        md.Bullet($"A system call costs {r.Facts.GetValueOrDefault("syscallNs", "?")} ns on this kernel ({r.Machine.Kernel}, getppid in a loop): nginx makes {N(r.Median("nginx", 0, m => m.SyscallsPerOp), "F2")} system calls per request here, about {N(r.Median("nginx", 0, m => m.SyscallsPerOp) * double.Parse(r.Facts.GetValueOrDefault("syscallNs", "NaN"), CultureInfo.InvariantCulture) / 1000, "F2")} µs of its {N(C("nginx"), "F2")} µs of CPU per request: the most that batching could save nginx on this kernel.");
        md.Bullet($"Other processes on this shared machine used {N(Stats.Median(r.Measurements.Select(m => m.OtherCpus)), "F2")} CPUs during the median run ({N(Stats.Max(r.Measurements.Select(m => m.OtherCpus)), "F2")} at most).");
        md.Line();
        File.WriteAllText(settings.ResultPath("nginx.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        double T(string v) => r.Median(v, 0, m => m.Throughput);
        double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp);
        yield return $"nginx (6.3 KiB mix, 2.3 requests/connection): StaticServer on MegaPipe {Ratio(T("megapipe") / T("nginx"))} nginx's requests/s ({N(C("megapipe"), "F1")} vs {N(C("nginx"), "F1")} µs CPU per request), {Ratio(T("megapipe") / T("sockets"))} the same server on Sockets";
    }
}
