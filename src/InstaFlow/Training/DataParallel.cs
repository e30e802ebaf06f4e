// The collective steps of data-parallel training: which rows of the global batch a rank computes, gradient averaging
// in buckets, the start-of-run broadcast of the trainer's whole state from rank 0, and the periodic check that every
// rank still holds the same parameters.
using System.Security.Cryptography;
using InstaFlow.Distributed;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Training;

public static class DataParallel
{
    /// <summary>
    /// Rows [Start, Start + Count) of piece <paramref name="piece"/> when a batch of <paramref name="batch"/> samples is
    /// cut into <paramref name="pieces"/> consecutive pieces whose sizes differ by at most one.
    /// </summary>
    public static (int Start, int Count) Piece(int batch, int pieces, int piece)
    {
        int q = batch / pieces, r = batch % pieces;
        return (piece * q + Math.Min(piece, r), q + (piece < r ? 1 : 0));
    }

    /// <summary>
    /// Sums each trainable parameter's gradient and <paramref name="extra"/> over all ranks, packing small gradients
    /// into buckets of <paramref name="bucketFloats"/> floats so that a UNet's hundreds of tensors take a few calls.
    /// A trainable parameter without a gradient gets zeros, so every rank sends the same layout.
    /// </summary>
    public static void SumGradients(ICommunicator world, IReadOnlyList<Parameter> parameters, Span<float> extra, int bucketFloats)
    {
        var grads = new List<Tensor>();
        foreach (var p in parameters)
        {
            if (!p.Value.RequiresGrad) continue;
            if (p.Grad == null)
            {
                p.Value.Grad = Tensor.EmptyPersistent(p.Shape);
                p.Value.Grad.Span.Clear();
            }
            grads.Add(p.Grad!);
        }
        var bucket = new float[Math.Max(bucketFloats, extra.Length)];
        var members = new List<Tensor>();
        int used = 0;
        void Flush()
        {
            if (used == 0) return;
            world.AllReduceSum(bucket.AsSpan(0, used));
            int at = 0;
            foreach (var g in members) { bucket.AsSpan(at, (int)g.Numel).CopyTo(g.Span); at += (int)g.Numel; }
            members.Clear(); used = 0;
        }
        foreach (var g in grads)
        {
            // a gradient larger than a bucket goes on its own, in place
            if (g.Numel >= bucket.Length) { world.AllReduceSum(g.Span); continue; }
            if (used + g.Numel > bucket.Length) Flush();
            g.Span.CopyTo(bucket.AsSpan(used)); members.Add(g); used += (int)g.Numel;
        }
        Flush();
        world.AllReduceSum(extra);
    }

    /// <summary>Every rank takes rank 0's values of these tensors (parameters, EMA, optimizer moments).</summary>
    public static void BroadcastTensors(ICommunicator world, IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors) world.Broadcast(t.Span);
    }

    /// <summary>SHA-256 over <paramref name="extra"/> and the bytes of the tensors, in order.</summary>
    public static byte[] Hash(IEnumerable<Tensor> tensors, byte[] extra)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(extra);
        foreach (var t in tensors) h.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Span));
        return h.GetHashAndReset();
    }

    /// <summary>How many ranks hold tensors whose hash differs from rank 0's (0 when all agree); the same on every rank.</summary>
    public static int CountDiffering(ICommunicator world, IEnumerable<Tensor> tensors, byte[] extra)
    {
        var mine = Hash(tensors, extra);
        var root = (byte[])mine.Clone();
        world.Broadcast(root);
        Span<float> differs = [mine.AsSpan().SequenceEqual(root) ? 0f : 1f];
        world.AllReduceSum(differs);
        return (int)differs[0];
    }
}
