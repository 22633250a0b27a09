namespace MegaPipe.Perf;

// One experiment of `MegaPipe.Perf <experiment>|all`.
public interface IExperiment
{
    string Name { get; }

    string Summary { get; }

    // The experiment's defaults (rounds, seconds, warm-up) under what the command line set.
    PerfSettings Configure(PerfSettings settings);

    // Measured runs, for the progress display.
    int Steps(PerfSettings settings);

    // Measures, saves perf/results/<name>.json and writes the report; null for the experiments
    // that write their report directly (pingpong, web, static).
    ResultFile? Run(PerfSettings settings, Progress progress);

    // Writes perf/results/<name>.md and its plots from the saved results.
    void Render(ResultFile result, PerfSettings settings);

    // The lines the README's Benchmarks section shows for this experiment.
    IEnumerable<string> Headlines(ResultFile result);
}

// An experiment that measures and writes its Markdown report in one go, with no saved results to
// redraw it from (pingpong, static).
public sealed class DirectReportExperiment(string name, string summary, int rounds, double seconds, double warmup, Func<PerfSettings, int> steps, Action<PerfSettings, Progress> run) : IExperiment
{
    public string Name => name;

    public string Summary => summary;

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(rounds, seconds, warmup);

    public int Steps(PerfSettings settings) => steps(settings);

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        run(settings, progress);
        return null;
    }

    public void Render(ResultFile result, PerfSettings settings)
    {
    }

    public IEnumerable<string> Headlines(ResultFile result) => [];
}
