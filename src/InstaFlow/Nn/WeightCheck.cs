// NaN/Inf checks on loaded weights: a cheap per-tensor test for a tensor that is entirely NaN/Inf (always run, a
// warning), and a full scan of a module's parameters that refuses any non-finite value (on request, --check-weights).
using InstaFlow.Tensors;

namespace InstaFlow.Nn;

public static class WeightCheck
{
    /// <summary>
    /// True when every element is NaN or infinite. Stops at the first finite value, so a healthy tensor costs one
    /// read; this is why it can run on every load while the full count is opt-in.
    /// </summary>
    public static unsafe bool AllNonFinite(Tensor t)
    {
        if (t.Numel == 0) return false;
        if (t.DType != TensorDType.F32)
        {
            ushort mask = ExponentMask(t.DType);
            var h = new ReadOnlySpan<ushort>(t.HalfData, checked((int)t.Numel));
            foreach (var b in h)
                if ((b & mask) != mask) return false;
            return true;
        }
        foreach (var v in t.Span)
            if (float.IsFinite(v)) return false;
        return true;
    }

    public static unsafe long CountNonFinite(Tensor t)
    {
        long n = 0;
        if (t.DType != TensorDType.F32)
        {
            ushort mask = ExponentMask(t.DType);
            foreach (var b in new ReadOnlySpan<ushort>(t.HalfData, checked((int)t.Numel)))
                if ((b & mask) == mask) n++;
            return n;
        }
        foreach (var v in t.Span)
            if (!float.IsFinite(v)) n++;
        return n;
    }

    // NaN and infinity are the values whose exponent bits are all ones.
    private static ushort ExponentMask(TensorDType dtype) => dtype == TensorDType.F16 ? (ushort)0x7C00 : (ushort)0x7F80;

    /// <summary>Throws <see cref="InvalidInputException"/> naming the first parameter of <paramref name="module"/> with a NaN or infinite value.</summary>
    public static void RequireFinite(Module module, string source)
    {
        foreach (var (name, p) in module.NamedParameters())
        {
            long bad = CountNonFinite(p.Value);
            if (bad > 0)
                throw new InvalidInputException($"{source}: weight \"{name}\" has {bad} NaN/Inf values of {p.Value.Numel}; the file is corrupt or was saved from a diverged run (re-download or re-export it)");
        }
    }
}
