using System.Buffers;

namespace MegaPipe.Core.Tests.Infrastructure;

// Builds multi-segment ReadOnlySequence<byte> values for gathered writes.
public static class Segments
{
    public static ReadOnlySequence<byte> Create(IReadOnlyList<ReadOnlyMemory<byte>> parts)
    {
        if (parts.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }
        var first = new Segment(parts[0], 0);
        Segment last = first;
        for (int i = 1; i < parts.Count; i++)
        {
            last = last.Append(parts[i]);
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    // Cuts data into count pieces of varying sizes (some empty when allowEmpty), all slices of data.
    public static ReadOnlySequence<byte> Split(byte[] data, int count, int seed, bool allowEmpty = false)
    {
        var random = new Random(seed);
        var cuts = new List<int> { 0, data.Length };
        while (cuts.Count < count + 1)
        {
            int cut = random.Next(allowEmpty ? 0 : 1, data.Length);
            if (allowEmpty || !cuts.Contains(cut))
            {
                cuts.Add(cut);
            }
        }
        cuts.Sort();
        var parts = new List<ReadOnlyMemory<byte>>();
        for (int i = 0; i < cuts.Count - 1; i++)
        {
            parts.Add(data.AsMemory(cuts[i], cuts[i + 1] - cuts[i]));
        }
        return Create(parts);
    }

    public static int CountSegments(in ReadOnlySequence<byte> sequence)
    {
        int n = 0;
        foreach (ReadOnlyMemory<byte> _ in sequence)
        {
            n++;
        }
        return n;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
