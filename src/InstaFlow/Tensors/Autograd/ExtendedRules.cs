// Backward rules for the layer ops (conv, norms, upsample, embedding, attention); dispatched from BackwardRules.
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tensors.Autograd;

internal static unsafe class ExtendedRules
{
    public static Tensor?[] Apply(TapeNode n, Tensor g, Tensor output) => n.Op switch
    {
        OpKind.Conv2d => Conv2dBackward(n, g),
        OpKind.GroupNorm => GroupNormBackward(n, g),
        OpKind.LayerNorm => LayerNormBackward(n, g),
        OpKind.Upsample => new[] { UpsampleBackward(n.Inputs[0], g) },
        OpKind.Embedding => new[] { EmbeddingBackward(n.Inputs[0], n.Ints, g) },
        OpKind.Attention => AttentionBackward(n, g),
        _ => throw new NotSupportedException($"no backward rule for {n.Op}"),
    };

    private static Tensor?[] Conv2dBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0]; var w = n.Saved[1];
        var p = n.Ints;
        var s = new Conv2dShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), w.Dim(0), w.Dim(2), w.Dim(3), p[0], p[1], p[2], p[3], p[4]);
        Tensor? gx = null, gw = null, gb = null;
        if (n.Inputs[0].TracksGrad) { gx = Tensor.Empty(x.ShapeArray()); FlopCounter.Add(s.Flops); Conv2d.BackwardInput(s, g.Data, w.Data, gx.Data); }
        bool hasBias = n.Inputs.Length > 2;
        bool needW = n.Inputs[1].TracksGrad, needB = hasBias && n.Inputs[2].TracksGrad;
        if (needW || needB)
        {
            gw = Tensor.Empty(w.ShapeArray());
            if (needB) gb = Tensor.Empty(w.Dim(0));
            FlopCounter.Add(s.Flops);
            Conv2d.BackwardWeight(s, g.Data, x.Data, gw.Data, gb != null ? gb.Data : null);
        }
        return hasBias ? new[] { gx, needW ? gw : null, gb } : new[] { gx, gw };
    }

    /// <summary>Shared by group and layer norm: rows of `len` values normalized with (mean, rstd); channel(i) maps a
    /// position in a row to its affine parameter index.</summary>
    private static Tensor?[] NormBackward(TapeNode n, Tensor g, long rows, long len, Func<long, long, int> channel, int paramCount, bool hasGamma, bool hasBeta)
    {
        var x = n.Saved[0]; var gamma = hasGamma ? n.Saved[1] : null; var mean = n.Saved[2]; var rstd = n.Saved[3];
        var gx = n.Inputs[0].TracksGrad ? Tensor.Empty(x.ShapeArray()) : null;
        float* px = x.Data, pg = g.Data, pm = mean.Data, pr = rstd.Data;
        float* pgam = gamma != null ? gamma.Data : null;
        float* pgx = gx != null ? gx.Data : null;
        // Per-row partial sums for gamma/beta, combined in row order afterwards (deterministic).
        var dgRows = new double[hasGamma || hasBeta ? rows * paramCount : 0];
        var dbRows = new double[dgRows.Length];
        Par.For((int)rows, r =>
        {
            float m = pm[r], rs = pr[r];
            double sumDy = 0, sumDyXhat = 0;
            for (long i = 0; i < len; i++)
            {
                long idx = r * len + i;
                int c = channel(r, i);
                float xhat = (px[idx] - m) * rs;
                float dy = pg[idx] * (pgam != null ? pgam[c] : 1f);
                sumDy += dy; sumDyXhat += dy * xhat;
                if (dgRows.Length > 0) { dgRows[r * paramCount + c] += pg[idx] * xhat; dbRows[r * paramCount + c] += pg[idx]; }
            }
            if (pgx == null) return;
            float mDy = (float)(sumDy / len), mDyX = (float)(sumDyXhat / len);
            for (long i = 0; i < len; i++)
            {
                long idx = r * len + i;
                int c = channel(r, i);
                float xhat = (px[idx] - m) * rs;
                float dy = pg[idx] * (pgam != null ? pgam[c] : 1f);
                pgx[idx] = rs * (dy - mDy - xhat * mDyX);
            }
        });
        var result = new List<Tensor?> { gx };
        if (hasGamma) result.Add(SumRows(dgRows, rows, paramCount));
        if (hasBeta) result.Add(SumRows(dbRows, rows, paramCount));
        return result.ToArray();
    }

    private static Tensor SumRows(double[] partial, long rows, int count)
    {
        var t = Tensor.Empty(count);
        for (int c = 0; c < count; c++)
        {
            double s = 0;
            for (long r = 0; r < rows; r++) s += partial[r * count + c];
            t.Data[c] = (float)s;
        }
        return t;
    }

    private static Tensor?[] GroupNormBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0];
        int groups = n.Ints[0], b = x.Dim(0), ch = x.Dim(1), cpg = ch / groups;
        long spatial = x.Numel / ((long)b * ch);
        return NormBackward(n, g, (long)b * groups, cpg * spatial, (r, i) => (int)(r % groups) * cpg + (int)(i / spatial), ch, n.Ints[1] == 1, n.Ints[2] == 1);
    }

    private static Tensor?[] LayerNormBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0];
        int len = x.Dim(-1);
        return NormBackward(n, g, x.Numel / len, len, (r, i) => (int)i, len, n.Ints[0] == 1, n.Ints[1] == 1);
    }

    private static Tensor UpsampleBackward(Tensor x, Tensor g)
    {
        int h = x.Dim(-2), w = x.Dim(-1), oh = g.Dim(-2), ow = g.Dim(-1);
        var iy = Ops.NearestIndex(h, oh); var ix = Ops.NearestIndex(w, ow);
        var gx = Tensor.Zeros(x.ShapeArray());
        long planes = x.Numel / ((long)h * w);
        float* pg = g.Data, px = gx.Data;
        Par.ForRange(planes, 1, (s, e) =>
        {
            for (long p = s; p < e; p++)
                for (int oy = 0; oy < oh; oy++)
                {
                    float* src = pg + (p * oh + oy) * ow;
                    float* dst = px + (p * h + iy[oy]) * w;
                    for (int ox = 0; ox < ow; ox++) dst[ix[ox]] += src[ox];
                }
        });
        return gx;
    }

    private static Tensor EmbeddingBackward(Tensor weight, int[] ids, Tensor g)
    {
        int d = weight.Dim(1);
        var gw = Tensor.Zeros(weight.ShapeArray());
        float* pg = g.Data, pw = gw.Data;
        for (int i = 0; i < ids.Length; i++) Blas.Axpy(1f, pg + (long)i * d, pw + (long)ids[i] * d, d);
        return gw;
    }

    private static Tensor?[] AttentionBackward(TapeNode n, Tensor g)
    {
        Tensor q = n.Saved[0], k = n.Saved[1], v = n.Saved[2], o = n.Saved[3], lse = n.Saved[4];
        int heads = n.Ints[0];
        var s = new AttentionShape(q.Dim(0), heads, q.Dim(1), k.Dim(1), q.Dim(2) / heads, n.Ints[1] == 1);
        var gq = Tensor.Empty(q.ShapeArray()); var gk = Tensor.Empty(k.ShapeArray()); var gv = Tensor.Empty(v.ShapeArray());
        // five products of the forward's size each (S again, dV, dP, dQ, dK) against the forward's two
        FlopCounter.Add(s.Flops / 2 * 5);
        Attention.Backward(s, q.Data, k.Data, v.Data, o.Data, lse.Data, g.Data, n.Floats[0], gq.Data, gk.Data, gv.Data);
        return new Tensor?[] { gq, gk, gv };
    }
}
