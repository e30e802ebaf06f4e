// Sinusoidal embedding of the network time value (the DDPM/SD form: half cosines, half sines, geometric frequencies
// from 1 down to 1/maxPeriod), so any ModelTimeMapping range (0..1 or 0..1000) gets usable features.
using InstaFlow.Tensors;

namespace InstaFlow.Flow;

public static class TimeEmbedding
{
    /// <summary>modelTime [B] -> [B, dim] (dim even); frequency scale multiplies the time first (e.g. 1000 for t in [0, 1]).</summary>
    public static Tensor Sinusoidal(Tensor modelTime, int dim, float scale = 1f, float maxPeriod = 10000f)
    {
        if (dim < 2 || dim % 2 != 0) throw new ArgumentException($"time embedding dimension must be even and >= 2, got {dim}");
        int b = modelTime.Dim(0), half = dim / 2;
        var e = Tensor.Empty(b, dim);
        var t = modelTime.Span; var o = e.Span;
        for (int i = 0; i < b; i++)
            for (int j = 0; j < half; j++)
            {
                double arg = scale * t[i] * Math.Exp(-Math.Log(maxPeriod) * j / half);
                o[i * dim + j] = (float)Math.Cos(arg);
                o[i * dim + half + j] = (float)Math.Sin(arg);
            }
        return e;
    }
}
