using Spectre.Console;

namespace MegaPipe.Perf;

// The live display of a long run: one bar per experiment (and one for `all`) with elapsed and
// remaining time (Spectre.Console), and one log line per measured run above the bars.
public sealed class Progress(ProgressTask? task, ProgressTask? overall = null)
{
    public static readonly Progress None = new(null);

    public void Step(string line)
    {
        Log(line);
        task?.Increment(1);
        overall?.Increment(1);
    }

    public static void Log(string line) => AnsiConsole.MarkupLine(Markup.Escape(line));

    public static void Warn(string line) => AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(line)}[/]");
}
