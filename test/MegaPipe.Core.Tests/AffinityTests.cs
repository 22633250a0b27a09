using MegaPipe.Core.Tests.Infrastructure;

namespace MegaPipe.Core.Tests;

public class AffinityTests
{
    [Fact]
    public void AllowedCpus_AreTheAffinityMask_NotTheFirstProcessorCountIds()
    {
        int[] all = MegaPipeChannel.AllowedCpus();
        Assert.Equal(Environment.ProcessorCount, all.Length);
        Assert.Equal(all.Order(), all);

        // On a thread restricted to the last allowed CPU (as under taskset -c N), that is the only one.
        int last = all[^1];
        int[] restricted = TestThread.Run("affinity", () =>
        {
            MegaPipeChannel.PinCurrentThread(last);
            Assert.Equal(last, MegaPipeChannel.CurrentCpu);
            return MegaPipeChannel.AllowedCpus();
        });
        Assert.Equal([last], restricted);
    }
}
