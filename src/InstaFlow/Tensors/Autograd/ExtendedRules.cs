// Backward rules for the layer ops (conv, norms, upsample, max pool, embedding, attention); dispatched from BackwardRules.
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
        OpKind.MaxPool2d => new[] { MaxPoolBackward(n, g) },
        _ => throw new NotSupportedException($"no backward rule for {n.Op}"),
    };

    private static Tensor?[] Conv2dBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0]; var w = n.Saved[1];
        var p = n.Ints;
        var s = new Conv2dShape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), w.Dim(0), w.Dim(2), w.Dim(3), p[0], p[1], p[2], p[3], p[4]);
        Tensor? gx = null, gw = null, gb = null;
        if (n.Inputs[0].TracksGrad)
        {
            gx = Tensor.Empty(x.ShapeArray());
            FlopCounter.Add(s.Flops);
            // The input gradient is itself a conv: Winograd where the forward rule would take it for that conv.
            if (Conv2d.InputGradientConv(s) is { } t && Conv2dWinograd.ShouldUse(t)) Conv2d.BackwardInputWinograd(s, g.Data, w.Data, gx.Data);
            else Conv2d.BackwardInput(s, g.Data, w.Data, gx.Data);
        }
        bool hasBias = n.Inputs.Length > 2;
        bool needW = n.Inputs[1].TracksGrad, needB = hasBias && n.Inputs[2].TracksGrad;
        if (needW || needB)
        {
            gw = Tensor.Empty(w.ShapeArray());
            if (needB) gb = Tensor.Empty(w.Dim(0));
            FlopCounter.Add(s.Flops);
            if (needW && Conv2dWinograd.ShouldUseForWeightGradient(s)) Conv2d.BackwardWeightWinograd(s, g.Data, x.Data, gw.Data, gb != null ? gb.Data : null);
            else Conv2d.BackwardWeight(s, g.Data, x.Data, gw.Data, gb != null ? gb.Data : null);
        }
        return hasBias ? new[] { gx, needW ? gw : null, gb } : new[] { gx, gw };
    }

    private static Tensor?[] GroupNormBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0];
        int groups = n.Ints[0], b = x.Dim(0), ch = x.Dim(1);
        bool hasGamma = n.Ints[1] == 1, hasBeta = n.Ints[2] == 1;
        var (gx, dgamma, dbeta) = NormGrads(n, x, hasGamma ? ch : 0, hasBeta ? ch : 0);
        NormBackward.GroupNorm(x.Data, g.Data, hasGamma ? n.Saved[1].Data : null, n.Saved[2].Data, n.Saved[3].Data, b, ch, x.Numel / ((long)b * ch), groups,
            Ptr(gx), Ptr(dgamma), Ptr(dbeta));
        return NormResult(gx, dgamma, dbeta, hasGamma, hasBeta);
    }

    private static Tensor?[] LayerNormBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0];
        int len = x.Dim(-1);
        bool hasGamma = n.Ints[0] == 1, hasBeta = n.Ints[1] == 1;
        var (gx, dgamma, dbeta) = NormGrads(n, x, hasGamma ? len : 0, hasBeta ? len : 0);
        NormBackward.LayerNorm(x.Data, g.Data, hasGamma ? n.Saved[1].Data : null, n.Saved[2].Data, n.Saved[3].Data, x.Numel / len, len,
            Ptr(gx), Ptr(dgamma), Ptr(dbeta));
        return NormResult(gx, dgamma, dbeta, hasGamma, hasBeta);
    }

    /// <summary>Output tensors for the gradients the tape needs: the input's when it tracks gradients, gamma's and beta's when the norm has them.</summary>
    private static (Tensor? Gx, Tensor? Dgamma, Tensor? Dbeta) NormGrads(TapeNode n, Tensor x, int gammaLen, int betaLen) =>
        (n.Inputs[0].TracksGrad ? Tensor.Empty(x.ShapeArray()) : null, gammaLen > 0 ? Tensor.Empty(gammaLen) : null, betaLen > 0 ? Tensor.Empty(betaLen) : null);

    private static Tensor?[] NormResult(Tensor? gx, Tensor? dgamma, Tensor? dbeta, bool hasGamma, bool hasBeta)
    {
        var result = new List<Tensor?> { gx };
        if (hasGamma) result.Add(dgamma);
        if (hasBeta) result.Add(dbeta);
        return result.ToArray();
    }

    private static float* Ptr(Tensor? t) => t != null ? t.Data : null;

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

    private static Tensor MaxPoolBackward(TapeNode n, Tensor g)
    {
        var x = n.Saved[0];
        var gx = Tensor.Empty(x.ShapeArray());
        MaxPool.Backward(x.Data, g.Data, gx.Data, x.Numel / ((long)x.Dim(-2) * x.Dim(-1)), x.Dim(-2), x.Dim(-1), n.Ints[0], n.Ints[1], n.Ints[2]);
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
