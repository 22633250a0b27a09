using System.Globalization;

namespace MegaPipe.Perf;

// Which CPUs a server and its load generator get. With k server CPUs the client gets k as well,
// on other CPUs when the machine has 2k; otherwise both run on the same k CPUs ("shared"), and
// the reports say so: on a two-core machine that is every point with two server channels.
public sealed record CpuPlan(int[] Server, int[] Client)
{
    public bool Shared => Server.Intersect(Client).Any();

    public string ServerList => CpuSet.Format(Server);

    public string ClientList => CpuSet.Format(Client);

    public string Describe() => Shared
        ? $"server and client share CPUs {ServerList} (the machine has too few CPUs to give each {Server.Length})"
        : $"server on CPU{(Server.Length > 1 ? "s" : "")} {ServerList}, client on CPU{(Client.Length > 1 ? "s" : "")} {ClientList}";

    public static CpuPlan For(int[] cpus, int serverCpus)
    {
        int k = Math.Clamp(serverCpus, 1, cpus.Length);
        if (2 * k <= cpus.Length)
        {
            // The client on the first k CPUs, the server on the last k. Client thread i connects
            // from CPU i, which the partitioned listener steers to accept queue (CPU mod k): every
            // server channel gets an equal share of the connections.
            return new CpuPlan(cpus[^k..], cpus[..k]);
        }
        return new CpuPlan(cpus[..k], cpus[..k]);
    }
}

public static class CpuSet
{
    // The CPUs this process may run on (taskset, cgroup cpusets), from /proc/self/status.
    public static int[] Allowed()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                {
                    return Parse(line["Cpus_allowed_list:".Length..].Trim());
                }
            }
        }
        catch (IOException)
        {
        }
        return Enumerable.Range(0, Environment.ProcessorCount).ToArray();
    }

    // "0-3,6" -> [0, 1, 2, 3, 6]
    public static int[] Parse(string list)
    {
        var cpus = new List<int>();
        foreach (string part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] range = part.Split('-');
            int first = int.Parse(range[0], CultureInfo.InvariantCulture);
            int last = range.Length > 1 ? int.Parse(range[1], CultureInfo.InvariantCulture) : first;
            for (int c = first; c <= last; c++)
            {
                cpus.Add(c);
            }
        }
        return cpus.Distinct().Order().ToArray();
    }

    public static string Format(IEnumerable<int> cpus) => string.Join(',', cpus);
}
