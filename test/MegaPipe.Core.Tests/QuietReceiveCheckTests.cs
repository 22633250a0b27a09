using MegaPipe.Internal;

namespace MegaPipe.Core.Tests;

// The quiet-receive check's policy (src/MegaPipe.Core/Internal/QuietReceiveCheck.cs) on a clock
// of the test's own: when a receive is due for a re-arm after its arm or its data, how the check's
// own re-arms back off, and what the queue keeps. ResetRaceTests show it against the kernel.
public class QuietReceiveCheckTests
{
    private static readonly long Second = QuietReceiveCheck.BaseDelay;
    private const long Start = 1_000_000;

    private static HandleState ArmedReceive()
    {
        var state = new HandleState(0) { Status = HandleStatus.Open, Kind = HandleKind.Socket };
        state.Receive.Wanted = true;
        state.Receive.Armed(new Operation(0));
        return state;
    }

    // TakeDue at now: the handle due, or null and the wait it allows (ns).
    private static (HandleState? Due, long WaitNs) Take(QuietReceiveCheck check, long now)
    {
        long waitNs = -1;
        HandleState? due = check.TakeDue(now, ref waitNs);
        return (due, waitNs);
    }

    [Fact]
    public void Armed_IsDueOneSecondLater_NotBefore()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState state = ArmedReceive();
        check.OnArmed(state, Start);

        (HandleState? due, long waitNs) = Take(check, Start + Second - 1);
        Assert.Null(due);
        Assert.InRange(waitNs, 0, 1_000);
        Assert.Same(state, Take(check, Start + Second).Due);
        Assert.True(state.ReceiveCheck.Rearming);
        Assert.Equal(1, check.Rearms);
        Assert.Equal(0, check.Pending);
    }

    [Fact]
    public void ChecksOwnRearms_AreCheckedAgain_BackingOffTo32Seconds()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState state = ArmedReceive();
        long now = Start;
        check.OnArmed(state, now);
        long[] expectedDelays = [1, 2, 4, 8, 16, 32, 32, 32];
        foreach (long delay in expectedDelays)
        {
            Assert.Null(Take(check, now + delay * Second - 1).Due);
            now += delay * Second;
            Assert.Same(state, Take(check, now).Due);
            // The cancellation comes back and the receive is armed again: the check's re-arm.
            check.OnArmed(state, now);
        }
        Assert.Equal(expectedDelays.Length, check.Rearms);
    }

    [Fact]
    public void Data_BringsTheDelayBackToOneSecond_EvenAfterABackedOffRearm()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState state = ArmedReceive();
        long now = Start;
        check.OnArmed(state, now);
        foreach (long delay in new long[] { 1, 2, 4, 8 })
        {
            now += delay * Second;
            Assert.Same(state, Take(check, now).Due);
            check.OnArmed(state, now);
        }
        // Backed off to 16 s; data a second later moves the check to a second after the data.
        now += Second;
        check.OnData(state, now, more: true);
        Assert.Equal(2, check.Pending);
        Assert.Null(Take(check, now + Second - 1).Due);
        Assert.Same(state, Take(check, now + Second).Due);
        Assert.Equal(5, check.Rearms);
        // The entry of the backed-off time is stale: dropped when it comes up, with no re-arm.
        Assert.Equal(1, check.Pending);
        Assert.Null(Take(check, now + 16 * Second).Due);
        Assert.Equal(0, check.Pending);
        Assert.Equal(5, check.Rearms);
    }

    [Fact]
    public void DataThatEndsTheReceive_SchedulesNothing_AndANewArmStartsAtOneSecond()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState state = ArmedReceive();
        check.OnArmed(state, Start);
        Assert.Same(state, Take(check, Start + Second).Due);
        // The check's cancellation found the receive already ended (data without F_MORE).
        QuietReceiveCheck.OnEnded(state);
        check.OnData(state, Start + Second, more: false);
        check.OnArmed(state, Start + Second);
        Assert.Null(Take(check, Start + 2 * Second - 1).Due);
        Assert.Same(state, Take(check, Start + 2 * Second).Due);
    }

    [Fact]
    public void StoppedOrClosedReceives_AreNotRearmed()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState stopped = ArmedReceive();
        HandleState closing = ArmedReceive();
        HandleState freed = ArmedReceive();
        check.OnArmed(stopped, Start);
        check.OnArmed(closing, Start);
        check.OnArmed(freed, Start);
        stopped.Receive.Stop();
        closing.Status = HandleStatus.Closing;
        freed.Reset();
        Assert.Null(Take(check, Start + Second).Due);
        Assert.Equal(0, check.Rearms);
        Assert.Equal(0, check.Pending);
    }

    [Fact]
    public void Disabled_SchedulesNothing_AndDropsWhatWasQueued()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState queued = ArmedReceive();
        check.OnArmed(queued, Start);
        check.Enabled = false;
        HandleState later = ArmedReceive();
        check.OnArmed(later, Start);
        check.OnData(later, Start, more: true);
        Assert.Equal(1, check.Pending);
        Assert.Null(Take(check, Start).Due);
        Assert.Equal(0, check.Pending);
        Assert.Equal(0, check.Rearms);
    }

    [Fact]
    public void Unsupported_CannotBeEnabled()
    {
        var check = new QuietReceiveCheck(supported: false);
        Assert.False(check.Enabled);
        check.Enabled = true;
        Assert.False(check.Enabled);
        HandleState state = ArmedReceive();
        check.OnArmed(state, Start);
        Assert.Equal(0, check.Pending);
    }

    [Fact]
    public void SteadyData_KeepsOneEntryPerHandle()
    {
        var check = new QuietReceiveCheck(supported: true);
        HandleState state = ArmedReceive();
        check.OnArmed(state, Start);
        for (int i = 1; i <= 1000; i++)
        {
            check.OnData(state, Start + i * (Second / 100), more: true);
        }
        Assert.Equal(1, check.Pending);
        Assert.Null(Take(check, Start + 11 * Second - 1).Due);
        Assert.Same(state, Take(check, Start + 11 * Second).Due);
        Assert.Equal(0, check.Pending);
    }
}
