using System.Text;

namespace MegaPipe.Perf;

// Keeps the README's Benchmarks section showing the latest results: the lines between the
// markers are rewritten from the saved perf/results/<experiment>.json files, with the command
// and date of each, so no figure in it is typed by hand.
public static class Readme
{
    private const string Begin = "<!-- perf:results:begin -->";
    private const string End = "<!-- perf:results:end -->";

    public static void Update(PerfSettings settings, IEnumerable<IExperiment> experiments)
    {
        string path = Path.Combine(settings.RepoRoot, "README.md");
        if (!settings.UpdateReadme || !File.Exists(path))
        {
            return;
        }
        string text = File.ReadAllText(path);
        int begin = text.IndexOf(Begin, StringComparison.Ordinal), end = text.IndexOf(End, StringComparison.Ordinal);
        if (begin < 0 || end < begin)
        {
            Progress.Warn($"README.md has no {Begin} ... {End} block: not updated");
            return;
        }
        // Grouped by the command that produced them: `all` gives one group.
        var results = experiments.Select(e => (Experiment: e, Result: ResultFile.Load(settings.ResultPath(e.Name + ".json")))).ToList();
        var sb = new StringBuilder();
        sb.AppendLine(Begin);
        foreach (var group in results.Where(x => x.Result is not null).GroupBy(x => x.Result!.Command))
        {
            sb.AppendLine($"From `{group.Key}` ({group.First().Result!.StartedUtc:yyyy-MM-dd}, {group.First().Result!.Machine.Cpus} CPUs):");
            sb.AppendLine();
            foreach ((IExperiment e, ResultFile? r) in group)
            {
                // A run that shared the machine with other work says so next to its figures.
                double other = Stats.Median(r!.Measurements.Select(m => m.OtherCpus));
                string busy = other >= 0.25 ? $" **Other processes took {Markdown.N(other, "F2")} CPUs during the median run: not trustworthy, run again on a quiet machine.**" : "";
                foreach (string headline in e.Headlines(r))
                {
                    sb.AppendLine($"- {headline} ([{e.Name}.md](perf/results/{e.Name}.md)){busy}");
                }
            }
            sb.AppendLine();
        }
        foreach ((IExperiment e, _) in results.Where(x => x.Result is null))
        {
            sb.AppendLine($"- {e.Name}: not run yet.");
        }
        text = text[..begin] + sb.ToString() + text[end..];
        File.WriteAllText(path, text);
    }
}
