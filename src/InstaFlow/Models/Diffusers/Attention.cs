// diffusers Attention (the processor-less default): q/k/v projections, fused multi-head attention, to_out.0.
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Diffusers;

public sealed class Attention : Module
{
    public readonly int Heads;
    public readonly Linear ToQ, ToK, ToV;
    public readonly ModuleList ToOut;
    private readonly Linear _out;

    public Attention(int queryDim, int? crossAttentionDim, int heads, int headDim, bool qkvBias)
    {
        Heads = heads;
        int inner = heads * headDim;
        int kv = crossAttentionDim ?? queryDim;
        ToQ = Child("to_q", new Linear(queryDim, inner, qkvBias));
        ToK = Child("to_k", new Linear(kv, inner, qkvBias));
        ToV = Child("to_v", new Linear(kv, inner, qkvBias));
        ToOut = Child("to_out", new ModuleList());
        _out = ToOut.Add(new Linear(inner, queryDim));
    }

    /// <summary>x: [B, Tq, C], context: [B, Tk, Ck] or null for self-attention -> [B, Tq, C].</summary>
    public Tensor Forward(Tensor x, Tensor? context = null)
    {
        // x: [B, Tq, C]; attention over a large map takes seconds: a dropped request stops before it
        Cooperative.ThrowIfCancellationRequested();
        var ctx = context ?? x;
        var o = Ops.Attention(ToQ.Forward(x), ToK.Forward(ctx), ToV.Forward(ctx), Heads);
        return _out.Forward(o);
    }
}
