using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace MegaPipe.Tls.Tests;

// Every OpenSSL constant and struct in src/MegaPipe.Core/Interop (Interop.Ssl, Interop.Crypto, OSSL_PARAM) against the
// installed OpenSSL 3 headers: a C probe compiled with gcc prints each value, so a constant added later cannot slip
// through. Needs gcc and libssl-dev (the headers of the libssl3 the tests run on).
public sealed class OpenSslConstantsTests
{
    private static readonly string[] Includes = ["stdio.h", "stddef.h", "openssl/buffer.h", "openssl/ssl.h", "openssl/err.h", "openssl/bio.h", "openssl/evp.h", "openssl/core.h", "openssl/x509_vfy.h"];

    private static IEnumerable<FieldInfo> Constants()
        => new[] { typeof(Interop.Ssl), typeof(Interop.Crypto) }
            .SelectMany(t => t.GetFields(BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static));

    private static long ValueOf(FieldInfo field)
    {
        object value = field.IsLiteral ? field.GetRawConstantValue()! : field.GetValue(null)!;
        return value switch
        {
            nuint n => unchecked((long)(ulong)n),
            ulong u => unchecked((long)u),
            _ => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        };
    }

    private static Dictionary<string, long> RunProbe()
    {
        var c = new StringBuilder();
        foreach (string include in Includes)
        {
            c.Append("#include <").Append(include).AppendLine(">");
        }
        c.AppendLine("int main(void) {");
        foreach (FieldInfo f in Constants())
        {
            c.AppendLine($"#ifdef {f.Name}");
            c.AppendLine($"  printf(\"{f.Name} %lld\\n\", (long long)({f.Name}));");
            c.AppendLine("#else");
            c.AppendLine($"  printf(\"missing:{f.Name} 0\\n\");");
            c.AppendLine("#endif");
        }
        c.AppendLine("  printf(\"sizeof(OSSL_PARAM) %zu\\n\", sizeof(OSSL_PARAM));");
        foreach (string field in new[] { "key", "data_type", "data", "data_size", "return_size" })
        {
            c.AppendLine($"  printf(\"offsetof(OSSL_PARAM.{field}) %zu\\n\", offsetof(OSSL_PARAM, {field}));");
        }
        c.AppendLine("  printf(\"sizeof(BUF_MEM) %zu\\n\", sizeof(BUF_MEM));");
        foreach (string field in new[] { "length", "data", "max", "flags" })
        {
            c.AppendLine($"  printf(\"offsetof(BUF_MEM.{field}) %zu\\n\", offsetof(BUF_MEM, {field}));");
        }
        c.AppendLine("  return 0;\n}");
        string directory = Path.Combine(Path.GetTempPath(), "megapipe-openssl-probe-" + Environment.ProcessId);
        Directory.CreateDirectory(directory);
        string source = Path.Combine(directory, "probe.c");
        string binary = Path.Combine(directory, "probe");
        File.WriteAllText(source, c.ToString());
        (int compileExit, string compileOutput) = Run("gcc", source, "-o", binary);
        Assert.True(compileExit == 0, "The OpenSSL header probe did not compile (are gcc and libssl-dev installed?):\n" + compileOutput);
        (int exit, string output) = Run(binary);
        Assert.Equal(0, exit);
        var values = new Dictionary<string, long>();
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = line.Split(' ');
            values[parts[0]] = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return values;
    }

    private static (int Exit, string Output) Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(120_000), file + " did not finish");
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void ConstantsAndOsslParam_MatchHeaders()
    {
        Dictionary<string, long> probe = RunProbe();
        var wrong = new List<string>();
        int checkedCount = 0;
        foreach (FieldInfo f in Constants())
        {
            if (probe.ContainsKey("missing:" + f.Name))
            {
                wrong.Add($"{f.Name}: no such macro in the OpenSSL headers");
                continue;
            }
            long ours = ValueOf(f);
            if (probe[f.Name] != ours)
            {
                wrong.Add($"{f.Name}: ours {ours}, header {probe[f.Name]}");
            }
            checkedCount++;
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        Assert.True(checkedCount >= 50, $"only {checkedCount} constants checked");
        Assert.Equal(probe["sizeof(OSSL_PARAM)"], Marshal.SizeOf<Interop.OSSL_PARAM>());
        foreach (string field in new[] { "key", "data_type", "data", "data_size", "return_size" })
        {
            Assert.Equal(probe[$"offsetof(OSSL_PARAM.{field})"], (long)Marshal.OffsetOf<Interop.OSSL_PARAM>(field));
        }
        Assert.Equal(probe["sizeof(BUF_MEM)"], Marshal.SizeOf<Interop.BUF_MEM>());
        foreach (string field in new[] { "length", "data", "max", "flags" })
        {
            Assert.Equal(probe[$"offsetof(BUF_MEM.{field})"], (long)Marshal.OffsetOf<Interop.BUF_MEM>(field));
        }
    }
}
