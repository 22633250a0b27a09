using System.Globalization;
using System.Text;

namespace MegaPipe.Perf;

// A small Markdown writer for the reports.
public sealed class Markdown
{
    private readonly StringBuilder _sb = new();

    public Markdown Line(string text = "")
    {
        _sb.AppendLine(text);
        return this;
    }

    public Markdown Heading(int level, string text) => Line(new string('#', level) + " " + text).Line();

    public Markdown Paragraph(string text) => Line(text).Line();

    public Markdown Bullet(string text) => Line("- " + text);

    public Markdown Image(string alt, string file) => Paragraph($"![{alt}]({file})");

    // A table: the first column left-aligned, the rest right-aligned.
    public Markdown Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        Line("| " + string.Join(" | ", header) + " |");
        Line("|" + string.Join("|", header.Select((_, i) => i == 0 ? "---" : "---:")) + "|");
        foreach (IReadOnlyList<string> row in rows)
        {
            Line("| " + string.Join(" | ", row) + " |");
        }
        return Line();
    }

    public override string ToString() => _sb.ToString();

    public static string N(double v, string format = "F0") => double.IsNaN(v) ? "–" : v.ToString(format, CultureInfo.InvariantCulture);

    public static string Ratio(double v) => double.IsNaN(v) || double.IsInfinity(v) ? "–" : v.ToString("F2", CultureInfo.InvariantCulture) + "x";

    public static string Percent(double v) => double.IsNaN(v) ? "–" : (v * 100).ToString("F0", CultureInfo.InvariantCulture) + " %";

    public static string Signed(double v, string format = "F1") => double.IsNaN(v) ? "–" : (v >= 0 ? "+" : "") + v.ToString(format, CultureInfo.InvariantCulture);

    public static string Size(double bytes) => bytes >= 1024 ? (bytes / 1024).ToString("0.#", CultureInfo.InvariantCulture) + " KiB" : bytes.ToString("0", CultureInfo.InvariantCulture) + " B";
}
